"""The public entry point: load a model pack once, animate clips and open streams."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facecast.animation import Animation
from facecast.audio import load_audio
from facecast.constants import DEFAULT_FPS, SAMPLE_RATE
from facecast.emotion import NUM_EMOTIONS, EmotionTrack, emotion_vector
from facecast.face.blinks import BlinkParams
from facecast.face.pipeline import FacePipeline, PipelineState, SolveOptions
from facecast.face.postprocess import FaceParams
from facecast.infer.backends import PRECISIONS, Backend, OnnxRuntimeBackend
from facecast.infer.engine import Engine, ExplicitEmotion, NetworkOutput, check_batch_size
from facecast.infer.stream import StreamSession
from facecast.models.random_pack import is_random_pack, random_claire_pack
from facecast.pack import ModelPack, load_pack
from facecast.timing import check_context_frames, check_frames_per_pass, check_pass, fps_fraction


def builtin_pack() -> Path:
    """The model used when none is given: the trained default model, else the random Claire-layout pack."""
    from facecast.models.builtin import default_pack, packaged_available

    return default_pack() if packaged_available() else random_claire_pack()


EmotionSpec = EmotionTrack | Mapping[str, float] | Sequence[str] | np.ndarray | ExplicitEmotion
"""Explicit emotion: a track of keyframes, ``{name: weight}``, CLI strings ``NAME=WEIGHT[@TIME]``, [10] or [N, 10]
values, or a function of frame times (seconds) -> [N, 10]."""


def as_explicit(emotion: EmotionSpec) -> ExplicitEmotion:
    """Normalise any accepted emotion form into what the engine takes."""
    if emotion is None or isinstance(emotion, EmotionTrack) or callable(emotion) or hasattr(emotion, "sample"):
        return emotion
    if isinstance(emotion, Mapping):
        return emotion_vector(emotion)
    if isinstance(emotion, np.ndarray):
        return emotion.astype(np.float32)
    if isinstance(emotion, Sequence) and all(isinstance(s, str) for s in emotion):
        return EmotionTrack.parse(list(emotion))
    return np.asarray(emotion, np.float32)


@dataclass(frozen=True)
class AnimationOptions:
    """How to animate a clip or a stream, validated once: what :class:`Model`'s methods take as keyword arguments
    (or as ``options=``), and what batches and the server animate with."""

    fps: float = DEFAULT_FPS
    """Output frame rate (taken as an exact fraction, :func:`facecast.timing.fps_fraction`)."""
    emotion: EmotionSpec = None
    """Explicit emotion (:data:`EmotionSpec`)."""
    face_params: Mapping[str, float] | FaceParams | None = None
    """model_config.json face parameters overriding the model's by name (snake_case or the NIM's camelCase), or a
    complete :class:`~facecast.face.postprocess.FaceParams`; ``None``: the model's."""
    blinks: BlinkParams | bool | None = True
    """facecast's blink generator: ``True`` (default settings), :class:`BlinkParams`, or ``False``/``None`` for
    the SDK's behaviour, no blinks."""
    blendshape_params: SolveOptions | None = None
    """Per-call blendshape multipliers, offsets and clamping."""
    geometry: bool = False
    """Also return skin and tongue vertices."""
    frames_per_pass: int | None = None
    """Frames animated from one encoder pass (models with a chunk network); ``None``: the model's."""
    context_frames: int | None = None
    """Frames of earlier audio each encoder pass also hears; ``None``: the model's."""
    explicit: ExplicitEmotion = field(init=False, repr=False, compare=False)
    """``emotion`` in the form the engine takes."""

    def __post_init__(self) -> None:
        fps_fraction(self.fps)
        explicit = as_explicit(self.emotion)
        if isinstance(explicit, np.ndarray) and (explicit.ndim not in (1, 2) or explicit.shape[-1] != NUM_EMOTIONS):
            raise ValueError(
                f"emotion values must have shape [{NUM_EMOTIONS}] or [N, {NUM_EMOTIONS}], got {explicit.shape}"
            )
        object.__setattr__(self, "explicit", explicit)
        if isinstance(self.face_params, Mapping):
            object.__setattr__(self, "face_params", dict(self.face_params))
        elif self.face_params is not None and not isinstance(self.face_params, FaceParams):
            raise TypeError(f"face_params must be a mapping of names to values, got {self.face_params!r}")
        if isinstance(self.blinks, BlinkParams):
            self.blinks.validate()
        elif self.blinks is not None and not isinstance(self.blinks, (bool, np.bool_)):
            raise TypeError(f"blinks must be True, False, None or BlinkParams, got {self.blinks!r}")
        if self.blendshape_params is not None and not isinstance(self.blendshape_params, SolveOptions):
            raise TypeError(f"blendshape_params must be SolveOptions, got {self.blendshape_params!r}")
        object.__setattr__(self, "geometry", bool(self.geometry))
        if self.frames_per_pass is not None:
            object.__setattr__(self, "frames_per_pass", check_frames_per_pass(self.frames_per_pass))
        if self.context_frames is not None:
            object.__setattr__(self, "context_frames", check_context_frames(self.context_frames))

    @property
    def blink_params(self) -> BlinkParams | None:
        """The blink generator's settings, ``None`` without blinks."""
        if self.blinks is True or isinstance(self.blinks, np.bool_) and self.blinks:
            return BlinkParams()
        return self.blinks or None

    def replace(self, **changes: Any) -> AnimationOptions:
        """A validated copy with ``changes``."""
        return dataclasses.replace(self, **changes)


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(AnimationOptions) if f.init}


def _options(options: AnimationOptions | None, **given: Any) -> AnimationOptions:
    """``options``, or the keyword arguments as :class:`AnimationOptions`; both at once only when the keywords are
    left at their defaults."""
    if options is None:
        return AnimationOptions(**given)
    if not isinstance(options, AnimationOptions):
        raise TypeError(f"options must be AnimationOptions, got {options!r}")
    clash = [name for name, value in given.items() if not _is_default(value, _DEFAULTS[name])]
    if clash:
        raise TypeError(f"give {', '.join(clash)} either in options or as keyword arguments, not both")
    return options


def _is_default(value: Any, default: Any) -> bool:
    if value is default:
        return True
    number = (int, float, np.integer, np.floating)
    both = isinstance(value, number) and isinstance(default, number) and not isinstance(value, (bool, np.bool_))
    return both and value == default


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

    @property
    def is_diffusion(self) -> bool:
        """Whether this is a v3.0 diffusion model (a GRU track per clip or stream)."""
        from facecast.pack_v3 import DiffusionPack

        return isinstance(self.pack, DiffusionPack)

    # -- what every clip and stream goes through --------------------------------------------------------------

    def face_params(self, options: AnimationOptions) -> FaceParams:
        """The face parameters ``options`` ask for: the model's with their overrides, validated."""
        return self.pipeline.face_params(options.face_params)

    def engine_for(self, options: AnimationOptions, params: FaceParams | None = None) -> Engine:
        """The engine for ``options`` (``params``: their :meth:`face_params`, when already known)."""
        params = self.face_params(options) if params is None else params
        return self.engine.with_options(params.input_strength, options.frames_per_pass, options.context_frames)

    def finish(
        self, raw: NetworkOutput, state: PipelineState, params: FaceParams, options: AnimationOptions
    ) -> Animation:
        """Face pipeline and blendshape solve for consecutive network frames of one clip or stream."""
        anim = self.pipeline.process(raw, state, params, options.blink_params, options.blendshape_params,
                                     options.geometry)  # fmt: skip
        anim.random_weights = self.random_weights
        return anim

    # -- public entry points ----------------------------------------------------------------------------------

    def infer(
        self,
        audio: np.ndarray | str | os.PathLike,
        fps: float = DEFAULT_FPS,
        emotion: EmotionSpec = None,
        options: AnimationOptions | None = None,
    ) -> NetworkOutput:
        """Raw network pose for a clip (a path, or 16 kHz mono float samples)."""
        options = _options(options, fps=fps, emotion=emotion)
        if not isinstance(audio, np.ndarray):
            audio = load_audio(audio)
        return self.engine_for(options).run(audio, options.fps, options.explicit)

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
        options: AnimationOptions | None = None,
    ) -> Animation:
        """Animate a clip: ARKit skin and tongue weights, jaw and eye transforms, per frame.

        ``emotion`` sets explicit emotion; ``auto_emotion`` names an Audio2Emotion ONNX (file or folder) whose
        output drives the emotion instead, with ``emotion`` as the preferred emotion. ``face_params`` overrides
        model_config.json values by name (snake_case or the NIM's camelCase). ``blinks`` adds facecast's blink
        generator (``False`` for the SDK's behaviour, no blinks). ``geometry`` also returns skin and tongue
        vertices. ``options`` gives all of these at once (:class:`AnimationOptions`).
        """
        options = _options(options, fps=fps, emotion=emotion, face_params=face_params, blinks=blinks,
                           blendshape_params=blendshape_params, geometry=geometry)  # fmt: skip
        if not isinstance(audio, np.ndarray):
            audio = load_audio(audio)
        audio = np.asarray(audio, np.float32).reshape(-1)
        params = self.face_params(options)
        explicit = options.explicit
        if auto_emotion is not None:
            from facecast.infer.a2e import AudioToEmotion

            preferred = explicit if isinstance(explicit, EmotionTrack) else None
            if isinstance(options.emotion, Mapping):
                preferred = dict(options.emotion)
            explicit = AudioToEmotion(_a2e_path(auto_emotion), fps=options.fps).track(audio, preferred=preferred)
        raw = self.engine_for(options, params).run(audio, options.fps, explicit)
        anim = self.finish(raw, self.pipeline.new_state(), params, options)
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
        options: AnimationOptions | None = None,
    ) -> Animation:
        """Animate a file of any length, decoded, resampled and animated block by block.

        Gives the same frames as :meth:`animate` on the whole file (the stream is exact); only the compact
        per-frame results are held, not the audio (unless ``keep_audio``). To keep memory flat whatever the
        length, consume :meth:`animate_file_blocks` instead.
        """
        options = _options(options, fps=fps, emotion=emotion, face_params=face_params, blinks=blinks,
                           blendshape_params=blendshape_params)  # fmt: skip
        parts, audio = [], []
        for block, samples in self._file_blocks(path, options, block_seconds):
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
        options: AnimationOptions | None = None,
    ) -> Iterator[Animation]:
        """:meth:`animate_file` as consecutive :class:`Animation` blocks, in memory that does not grow with the
        file's length (write each block out and drop it); the blocks concatenate to :meth:`animate_file`."""
        options = _options(options, fps=fps, emotion=emotion, face_params=face_params, blinks=blinks,
                           blendshape_params=blendshape_params)  # fmt: skip
        for block, _ in self._file_blocks(path, options, block_seconds):
            yield block

    def _file_blocks(self, path: str | os.PathLike, options: AnimationOptions, block_seconds: float):
        from facecast.audio import stream_audio

        stream = AnimationStream(self, options, SAMPLE_RATE)
        for samples in stream_audio(path, SAMPLE_RATE, block_seconds):
            yield stream.push(samples), samples
        yield stream.close(), None

    def stream(
        self,
        fps: float = DEFAULT_FPS,
        emotion: EmotionSpec = None,
        sample_rate: int = SAMPLE_RATE,
        frames_per_pass: int | None = None,
        options: AnimationOptions | None = None,
    ) -> StreamSession:
        """A raw streaming session: push audio chunks, get network frames once their window is complete.

        ``frames_per_pass`` defaults to the model's (the same frames as offline); 1 gives the lowest latency."""
        options = _options(options, fps=fps, emotion=emotion, frames_per_pass=frames_per_pass)
        return StreamSession(self.engine_for(options), options.fps, options.explicit, sample_rate)

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
        options: AnimationOptions | None = None,
    ) -> AnimationStream:
        """A streaming session that returns :class:`Animation` frames (weights, jaw, eyes) as they are ready.

        ``frames_per_pass`` defaults to the model's (the same frames as offline); 1 gives the lowest latency."""
        options = _options(options, fps=fps, emotion=emotion, face_params=face_params, blinks=blinks,
                           blendshape_params=blendshape_params, geometry=geometry,
                           frames_per_pass=frames_per_pass)  # fmt: skip
        return AnimationStream(self, options, sample_rate)


class AnimationStream:
    """Push audio, pull animation frames: the network stream followed by the face pipeline, with its state."""

    def __init__(self, model: Model, options: AnimationOptions, sample_rate: int = SAMPLE_RATE) -> None:
        self.model = model
        self.options = options
        self.params = model.face_params(options)
        self.session = StreamSession(model.engine_for(options, self.params), options.fps, options.explicit,
                                     sample_rate)  # fmt: skip
        self.state = model.pipeline.new_state()

    @property
    def lookahead_seconds(self) -> float:
        return self.session.lookahead_seconds

    def _finish(self, raw: NetworkOutput) -> Animation:
        return self.model.finish(raw, self.state, self.params, self.options)

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
    identity: str | None = None,
    fold: bool | None = None,
    noise_seed: int = 0,
    constant_noise: bool = True,
) -> Model:
    """Load a model pack folder (NVIDIA's or facecast's, or one already read); ``None`` gives the built-in default.

    ``backend`` is ``"onnxruntime"`` (runs ``network.onnx`` unchanged) or ``"torch"`` (imports its weights into
    facecast's torch module; needs torch). ``precision="int8"`` runs a statically quantised copy of the network
    (built once into the cache with the layers that lose too much kept fp32, its pose error measured against fp32
    on held-out speech and stored beside it; above 2% it is refused and fp32 runs, with a one-line warning).
    ``batch_size`` is the frames per inference call (default 32 windows, or 128 frames with chunks).
    ``frames_per_pass`` sets how many frames one encoder pass animates (models with a chunk network; default:
    the most they were trained for). ``context_frames`` sets how many frames of earlier audio each pass also
    encodes (default: as many as the chunk network was trained for, so a stream's latency depends on
    ``frames_per_pass`` only and every frame hears the same past); ``frames_per_pass=1, context_frames=0``
    encodes each frame's window alone, as NVIDIA's models always do.
    ``identity`` names the identity of a multi-identity v3.0 diffusion folder (default: its first); such a
    folder's int8 copy is dynamic int8, measured the same way (:mod:`facecast.infer.quantize_v3`); ``fold`` runs
    it with its constant noise folded in (:func:`facecast.models.diffusion.load_diffusion_model`); ``noise_seed``
    and ``constant_noise`` set its diffusion noise (one draw for every window, the SDK's default, or a new one each).
    """
    from facecast.pack_v3 import DiffusionPack, is_diffusion_folder

    if isinstance(path, DiffusionPack) or (isinstance(path, (str, os.PathLike)) and is_diffusion_folder(path)):
        from facecast.models.diffusion import load_diffusion_model  # v3.0 (issue 21)

        if precision not in PRECISIONS + ("fp16",):
            raise ValueError(f"unknown precision {precision!r}; choose {', '.join(PRECISIONS + ('fp16',))}")
        return load_diffusion_model(Model, path, identity, device, backend, threads, seed=noise_seed,
                                    constant_noise=constant_noise, precision=precision, folded=fold)  # fmt: skip
    if isinstance(path, ModelPack):
        pack, root = path, path.root
    else:
        root = Path(path) if path is not None else builtin_pack()
        pack = load_pack(root)
    if batch_size is not None:
        check_batch_size(batch_size)
    if fold or noise_seed or not constant_noise:
        raise ValueError("fold and the noise options apply to v3.0 diffusion folders only")
    if precision == "fp16":
        raise ValueError("precision fp16 is for v3.0 folders on a GPU; v2.3 packs run fp32 or int8 (--device "
                         "tensorrt builds fp16 engines itself)")  # fmt: skip
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose {' or '.join(PRECISIONS)}")
    try:  # before the backend is built
        if frames_per_pass is not None:
            check_frames_per_pass(frames_per_pass, chunked=bool(pack.chunk_frames))
        if context_frames is not None:
            check_context_frames(context_frames, chunked=bool(pack.chunk_frames))
        per_pass = pack.chunk_frames or 1 if frames_per_pass is None else frames_per_pass
        context = max(pack.chunk_frames - per_pass, 0) if context_frames is None else context_frames
        check_pass(per_pass, context, pack.chunk_frames)
    except ValueError as exc:
        raise ValueError(f"{root}: {exc}") from None
    uses_chunks = bool(pack.chunk_frames) and not (frames_per_pass == 1 and context_frames == 0)
    if backend == "onnxruntime":
        network, chunk = pack.network_path, pack.chunk_network_path if uses_chunks else None
        if precision == "int8":  # measured per pack against fp32; refused above 2% (fp32, with a one-line warning)
            from facecast.infer.quantize import int8_or_fp32

            network, chunk = int8_or_fp32(pack, uses_chunks)
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
    model = Model(pack, runner, batch_size, frames_per_pass, context_frames)
    check_network(model)
    return model


def check_network(model: Model) -> None:
    """Run the network once on silence (a window, and a block through the chunk network when one is used): a pack
    whose network does not take what ``network_info.json`` describes, or answers with NaN, fails here, naming the
    pack, rather than in the middle of a clip."""
    info = model.info
    where = f"{model.pack.root}: the network"
    try:
        rest = model.engine.rest_result(np.zeros(info.emotion_len, np.float32))
        if model.engine.uses_blocks:
            rest = np.concatenate([rest, model.engine.run(np.zeros(info.buffer_len, np.float32)).result.ravel()])
    except MemoryError:
        raise
    except Exception as exc:  # ONNX Runtime's errors are plain Exceptions
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        shape = f"window {info.buffer_len} samples, {info.emotion_len} emotion values"
        problem = f"{where} does not run on the inputs network_info.json describes ({shape}): {reason}"
        raise ValueError(problem) from None
    if not np.isfinite(rest).all():
        raise ValueError(f"{where} answers silence with NaN or infinite values; its weights are broken")
