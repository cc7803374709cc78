"""The public entry point: load a model pack once, animate clips and open streams."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from facecast.animation import Animation
from facecast.audio import load_audio
from facecast.constants import DEFAULT_FPS, SAMPLE_RATE
from facecast.emotion import EmotionTrack, emotion_vector
from facecast.face.blinks import BlinkParams
from facecast.face.pipeline import FacePipeline, SolveOptions
from facecast.infer.backends import PRECISIONS, Backend, OnnxRuntimeBackend
from facecast.infer.engine import Engine, ExplicitEmotion, NetworkOutput
from facecast.infer.stream import StreamSession
from facecast.models.random_pack import is_random_pack, random_claire_pack
from facecast.pack import ModelPack, load_pack


def builtin_pack() -> Path:
    """The model used when none is given: the trained default model, else the random Claire-layout pack."""
    from facecast.models.builtin import default_pack, packaged_available

    return default_pack() if packaged_available() else random_claire_pack()


EmotionSpec = EmotionTrack | Mapping[str, float] | Sequence[str] | np.ndarray | None
"""Explicit emotion: a track of keyframes, ``{name: weight}``, CLI strings ``NAME=WEIGHT[@TIME]``, or [10]."""


def as_explicit(emotion: EmotionSpec) -> ExplicitEmotion:
    """Normalise any accepted emotion form into what the engine takes."""
    if emotion is None or isinstance(emotion, EmotionTrack):
        return emotion
    if isinstance(emotion, Mapping):
        return emotion_vector(emotion)
    if isinstance(emotion, np.ndarray):
        return emotion.astype(np.float32)
    if isinstance(emotion, Sequence) and all(isinstance(s, str) for s in emotion):
        return EmotionTrack.parse(list(emotion))
    return np.asarray(emotion, np.float32)


def _blinks(blinks: BlinkParams | bool | None) -> BlinkParams | None:
    if blinks is True:
        return BlinkParams()
    if blinks is False or blinks is None:
        return None
    return blinks.validate()


class Model:
    """A loaded regression model: the pack, an inference backend, the engine and the face pipeline."""

    def __init__(
        self,
        pack: ModelPack,
        backend: Backend,
        batch_size: int | None = None,
        frames_per_pass: int | None = None,
        context_frames: int | None = None,
    ) -> None:
        self.pack = pack
        self.backend = backend
        self.random_weights = is_random_pack(pack.root)
        self.pipeline = FacePipeline(pack)
        input_strength = self.pipeline.default_params.input_strength
        if frames_per_pass is None:
            chunked = callable(getattr(backend, "run_chunks", None))
            frames_per_pass = pack.chunk_frames if chunked and pack.chunk_frames else 1
        self.engine = Engine(backend, pack.network_info, pack.implicit_emotion, input_strength, batch_size,
                             frames_per_pass, pack.chunk_frames, context_frames)  # fmt: skip
        self.pipeline.rest_result = self.engine.rest_result

    @property
    def frames_per_pass(self) -> int:
        """Frames animated from one encoder pass (1: a window per frame); see :mod:`facecast.timing`."""
        return self.engine.frames_per_pass

    @property
    def info(self):
        return self.pack.network_info

    def infer(
        self, audio: np.ndarray | str | os.PathLike, fps: float = DEFAULT_FPS, emotion: EmotionSpec = None
    ) -> NetworkOutput:
        """Raw network pose for a clip (a path, or 16 kHz mono float samples)."""
        if not isinstance(audio, np.ndarray):
            audio = load_audio(audio)
        return self.engine.run(audio, fps, as_explicit(emotion))

    def animate(
        self,
        audio: np.ndarray | str | os.PathLike,
        fps: float = DEFAULT_FPS,
        emotion: EmotionSpec = None,
        face_params: Mapping[str, float] | None = None,
        blinks: BlinkParams | bool | None = True,
        auto_emotion: str | os.PathLike | None = None,
        blendshape_params: SolveOptions | None = None,
        geometry: bool = False,
    ) -> Animation:
        """Animate a clip: ARKit skin and tongue weights, jaw and eye transforms, per frame.

        ``emotion`` sets explicit emotion; ``auto_emotion`` names an Audio2Emotion ONNX (file or folder) whose
        output drives the emotion instead, with ``emotion`` as the preferred emotion. ``face_params`` overrides
        model_config.json values by name (snake_case or the NIM's camelCase). ``blinks`` adds facecast's blink
        generator (``False`` for the SDK's behaviour, no blinks). ``geometry`` also returns skin and tongue
        vertices.
        """
        if not isinstance(audio, np.ndarray):
            audio = load_audio(audio)
        audio = np.asarray(audio, np.float32).reshape(-1)
        params = self.pipeline.face_params(face_params)
        explicit = as_explicit(emotion)
        if auto_emotion is not None:
            from facecast.infer.a2e import AudioToEmotion

            preferred = explicit if isinstance(explicit, EmotionTrack) else None
            if isinstance(emotion, Mapping):
                preferred = dict(emotion)
            explicit = AudioToEmotion(_a2e_path(auto_emotion), fps=fps).track(audio, preferred=preferred)
        raw = self.engine.with_options(params.input_strength).run(audio, fps, explicit)
        anim = self.pipeline.process(
            raw, self.pipeline.new_state(), params, _blinks(blinks), blendshape_params, geometry
        )
        anim.random_weights = self.random_weights
        anim.audio = audio
        return anim

    def animate_file(
        self,
        path: str | os.PathLike,
        fps: float = DEFAULT_FPS,
        emotion: EmotionSpec = None,
        face_params: Mapping[str, float] | None = None,
        blinks: BlinkParams | bool | None = True,
        blendshape_params: SolveOptions | None = None,
        block_seconds: float = 30.0,
        keep_audio: bool = False,
    ) -> Animation:
        """Animate a file of any length, decoded, resampled and animated block by block.

        Gives the same frames as :meth:`animate` on the whole file (the stream is exact); only the compact
        per-frame results are held, not the audio (unless ``keep_audio``). To keep memory flat whatever the
        length, consume :meth:`animate_file_blocks` instead.
        """
        parts, audio = [], []
        for block, samples in self._file_blocks(path, fps, emotion, face_params, blinks, blendshape_params,
                                                block_seconds):  # fmt: skip
            parts.append(block)
            if keep_audio and samples is not None:
                audio.append(samples)
        anim = Animation.concatenate(parts)
        anim.audio = np.concatenate(audio) if keep_audio and audio else None
        return anim

    def animate_file_blocks(
        self,
        path: str | os.PathLike,
        fps: float = DEFAULT_FPS,
        emotion: EmotionSpec = None,
        face_params: Mapping[str, float] | None = None,
        blinks: BlinkParams | bool | None = True,
        blendshape_params: SolveOptions | None = None,
        block_seconds: float = 30.0,
    ) -> Iterator[Animation]:
        """:meth:`animate_file` as consecutive :class:`Animation` blocks, in memory that does not grow with the
        file's length (write each block out and drop it); the blocks concatenate to :meth:`animate_file`."""
        for block, _ in self._file_blocks(path, fps, emotion, face_params, blinks, blendshape_params, block_seconds):
            yield block

    def _file_blocks(self, path, fps, emotion, face_params, blinks, blendshape_params, block_seconds):
        from facecast.audio import stream_audio

        stream = self.animation_stream(fps, emotion, SAMPLE_RATE, face_params, blinks, blendshape_params)
        for samples in stream_audio(path, SAMPLE_RATE, block_seconds):
            yield stream.push(samples), samples
        yield stream.close(), None

    def stream(
        self,
        fps: float = DEFAULT_FPS,
        emotion: EmotionSpec = None,
        sample_rate: int = SAMPLE_RATE,
        frames_per_pass: int | None = None,
    ) -> StreamSession:
        """A raw streaming session: push audio chunks, get network frames once their window is complete.

        ``frames_per_pass`` defaults to the model's (the same frames as offline); 1 gives the lowest latency."""
        return StreamSession(self.engine.with_options(frames_per_pass=frames_per_pass), fps, as_explicit(emotion),
                             sample_rate)  # fmt: skip

    def animation_stream(
        self,
        fps: float = DEFAULT_FPS,
        emotion: EmotionSpec = None,
        sample_rate: int = SAMPLE_RATE,
        face_params: Mapping[str, float] | None = None,
        blinks: BlinkParams | bool | None = True,
        blendshape_params: SolveOptions | None = None,
        geometry: bool = False,
        frames_per_pass: int | None = None,
    ) -> AnimationStream:
        """A streaming session that returns :class:`Animation` frames (weights, jaw, eyes) as they are ready.

        ``frames_per_pass`` defaults to the model's (the same frames as offline); 1 gives the lowest latency."""
        return AnimationStream(self, fps, emotion, sample_rate, face_params, blinks, blendshape_params, geometry,
                               frames_per_pass)  # fmt: skip


class AnimationStream:
    """Push audio, pull animation frames: the network stream followed by the face pipeline, with its state."""

    def __init__(
        self,
        model: Model,
        fps: float,
        emotion: EmotionSpec,
        sample_rate: int,
        face_params: Mapping[str, float] | None,
        blinks: BlinkParams | bool | None,
        blendshape_params: SolveOptions | None,
        geometry: bool,
        frames_per_pass: int | None = None,
    ) -> None:
        self.model = model
        self.params = model.pipeline.face_params(face_params)
        engine = model.engine.with_options(self.params.input_strength, frames_per_pass)
        self.session = StreamSession(engine, fps, as_explicit(emotion), sample_rate)
        self.state = model.pipeline.new_state()
        self.blinks = _blinks(blinks)
        self.solve = blendshape_params
        self.geometry = geometry

    @property
    def lookahead_seconds(self) -> float:
        return self.session.lookahead_seconds

    def _finish(self, raw: NetworkOutput) -> Animation:
        anim = self.model.pipeline.process(raw, self.state, self.params, self.blinks, self.solve, self.geometry)
        anim.random_weights = self.model.random_weights
        return anim

    def push(self, samples: np.ndarray) -> Animation:
        """Add audio (float, at the stream's sample rate); returns the frames that became ready."""
        return self._finish(self.session.push(samples))

    def close(self) -> Animation:
        """End of audio: the remaining frames."""
        return self._finish(self.session.close())


def _a2e_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_dir():
        candidates = sorted(path.glob("*.onnx"))
        if len(candidates) != 1:
            raise ValueError(f"{path}: expected exactly one .onnx Audio2Emotion network in the folder")
        return candidates[0]
    return path


def load_model(
    path: str | os.PathLike | ModelPack | None = None,
    device: str = "auto",
    backend: str = "onnxruntime",
    threads: int | None = None,
    batch_size: int | None = None,
    precision: str = "fp32",
    frames_per_pass: int | None = None,
    context_frames: int | None = None,
) -> Model:
    """Load a model pack folder (NVIDIA's or facecast's, or one already read); ``None`` gives the built-in default.

    ``backend`` is ``"onnxruntime"`` (runs ``network.onnx`` unchanged) or ``"torch"`` (imports its weights into
    facecast's torch module; needs torch). ``precision="int8"`` runs a statically quantised copy of the network
    (built once into the cache; about 2x faster on CPUs with VNNI, at a measured accuracy cost).
    ``batch_size`` is the frames per inference call (default 32 windows, or 128 frames with chunks).
    ``frames_per_pass`` sets how many frames one encoder pass animates (models with a chunk network; default:
    the most they were trained for). ``context_frames`` sets how many frames of earlier audio each pass also
    encodes (default: as many as the chunk network was trained for, so a stream's latency depends on
    ``frames_per_pass`` only and every frame hears the same past); ``frames_per_pass=1, context_frames=0``
    encodes each frame's window alone, as NVIDIA's models always do.
    """
    if isinstance(path, ModelPack):
        pack, root = path, path.root
    else:
        root = Path(path) if path is not None else builtin_pack()
        pack = load_pack(root)
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose {' or '.join(PRECISIONS)}")
    uses_chunks = bool(pack.chunk_frames) and not (frames_per_pass == 1 and context_frames == 0)
    if backend == "onnxruntime":
        network, chunk = pack.network_path, pack.chunk_network_path if uses_chunks else None
        if precision == "int8":
            from facecast.infer.quantize import int8_chunk_network, int8_network

            network = int8_network(pack)
            chunk = int8_chunk_network(pack) if uses_chunks else None
        runner: Backend = OnnxRuntimeBackend(network, device=device, threads=threads, chunk_path=chunk)
    elif backend == "torch":
        if precision != "fp32":
            raise ValueError("the torch backend runs fp32 only; use the onnxruntime backend for int8")
        from facecast.infer.backends import TorchBackend
        from facecast.network.onnx_io import import_onnx

        network = import_onnx(pack.network_path)
        if uses_chunks:
            network.cfg.chunk_frames = pack.chunk_frames
        runner = TorchBackend(network, device=device)
    else:
        raise ValueError(f"unknown backend {backend!r}; choose onnxruntime or torch")
    if frames_per_pass is not None and frames_per_pass > 1 and not pack.chunk_frames:
        raise ValueError(f"{root}: this model has no chunk network; frames_per_pass must be 1")
    if context_frames and not pack.chunk_frames:
        raise ValueError(f"{root}: this model has no chunk network; context_frames must be 0")
    return Model(pack, runner, batch_size, frames_per_pass, context_frames)
