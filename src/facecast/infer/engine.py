"""Schedule audio windows at the SDK's frame timing, batch them and run a backend.

Frame ``k`` is centred on sample ``floor(k * 16000 / fps)``; its window of ``buffer_len`` samples starts
``buffer_ofs`` samples earlier, is zero outside the clip and is multiplied by ``input_strength`` (spec 5.2). The
frame clock itself (frame times, windows, blocks) is :mod:`facecast.timing`; :meth:`Engine.network_inputs` is the
one place the network's inputs are assembled, for offline clips, streams, batches and the server alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from facecast.audio import check_samples, frame_levels, level_span
from facecast.constants import DEFAULT_FPS, EMOTION_NAMES, MAX_BATCH_SIZE, SAMPLE_RATE
from facecast.infer.backends import Backend
from facecast.pack import NetworkInfo
from facecast.timing import (
    block_length,
    block_range,
    check_context_frames,
    check_frames_per_pass,
    check_pass,
    extract_windows,
    frame_targets,
    frames_ready,
    num_frames,
)

ExplicitEmotion = np.ndarray | Callable[[np.ndarray], np.ndarray] | None
"""A fixed 10-vector, one row per frame, or a function of frame times (seconds) -> [N, 10]."""


def explicit_rows(explicit: ExplicitEmotion, times: np.ndarray) -> np.ndarray:
    """Per-frame explicit emotion [N, 10] from any accepted form."""
    n = len(times)
    if explicit is None:
        return np.zeros((n, len(EMOTION_NAMES)), np.float32)
    if callable(explicit):
        rows = np.asarray(explicit(times), dtype=np.float32)
    elif hasattr(explicit, "sample"):
        rows = np.asarray(explicit.sample(times), dtype=np.float32)
    else:
        rows = np.asarray(explicit, dtype=np.float32)
        if rows.ndim == 1:
            rows = np.broadcast_to(rows, (n, rows.shape[0]))
    if rows.shape != (n, len(EMOTION_NAMES)):
        raise ValueError(f"explicit emotion must give [{n}, {len(EMOTION_NAMES)}] values, got {rows.shape}")
    return rows


@dataclass
class NetworkOutput:
    """Raw network output for consecutive frames: the pose before face post-processing."""

    frame_index: np.ndarray
    """Frame numbers k."""
    target_samples: np.ndarray
    """Centre sample of each frame (16 kHz)."""
    result: np.ndarray
    """[N, D] network result: skin PCA | tongue PCA | jaw 15 | eyes 4."""
    emotion: np.ndarray
    """[N, 26] network emotion input: implicit 16 then explicit 10."""
    num_shapes_skin: int
    num_shapes_tongue: int
    fps: float
    sample_rate: int = SAMPLE_RATE
    levels: np.ndarray | None = None
    """Audio level around each frame (dBFS, :func:`facecast.audio.frame_levels`), for the quiet hold."""

    def __len__(self) -> int:
        return len(self.frame_index)

    @property
    def times(self) -> np.ndarray:
        """Frame times in seconds."""
        return self.target_samples / self.sample_rate

    @property
    def skin(self) -> np.ndarray:
        return self.result[:, : self.num_shapes_skin]

    @property
    def tongue(self) -> np.ndarray:
        return self.result[:, self.num_shapes_skin : self.num_shapes_skin + self.num_shapes_tongue]

    @property
    def jaw(self) -> np.ndarray:
        start = self.num_shapes_skin + self.num_shapes_tongue
        return self.result[:, start : start + 15]

    @property
    def eyes(self) -> np.ndarray:
        return self.result[:, -4:]

    @property
    def explicit_emotion(self) -> np.ndarray:
        return self.emotion[:, -len(EMOTION_NAMES) :]

    @classmethod
    def concatenate(cls, parts: list[NetworkOutput], template: NetworkOutput) -> NetworkOutput:
        """Join consecutive outputs (``template`` gives the sizes when ``parts`` is empty)."""
        if not parts:
            return cls(
                np.zeros(0, np.int64),
                np.zeros(0, np.int64),
                np.zeros((0, template.result.shape[1]), np.float32),
                np.zeros((0, template.emotion.shape[1]), np.float32),
                template.num_shapes_skin,
                template.num_shapes_tongue,
                template.fps,
                template.sample_rate,
                None if template.levels is None else np.zeros(0),
            )
        levels = [p.levels for p in parts]
        return cls(
            np.concatenate([p.frame_index for p in parts]),
            np.concatenate([p.target_samples for p in parts]),
            np.concatenate([p.result for p in parts]),
            np.concatenate([p.emotion for p in parts]),
            template.num_shapes_skin,
            template.num_shapes_tongue,
            template.fps,
            template.sample_rate,
            None if any(v is None for v in levels) else np.concatenate(levels),
        )


@dataclass
class NetworkInputs:
    """The network's inputs for consecutive frames, as :meth:`Engine.network_inputs` builds them."""

    frames: np.ndarray
    """Frame numbers k."""
    targets: np.ndarray
    """Centre sample of each frame (16 kHz)."""
    arrays: tuple[np.ndarray, ...]
    """The backend's inputs, one batch row per window: ``(windows [N, L], emotion [N, E])`` for
    :meth:`~facecast.infer.backends.Backend.run`; or one row per block of ``frames_per_pass`` frames:
    ``(chunks [n, L], offsets [n, K], emotion [n, K, E])`` for ``run_chunks``."""
    emotion: np.ndarray
    """[N, E] network emotion rows of ``frames``: implicit, then explicit."""
    fps: float
    skip: int = 0
    """Frames of the first block before ``frames[0]`` (blocks only): result rows to pass over."""

    def __len__(self) -> int:
        """Batch rows: windows, or blocks."""
        return len(self.arrays[0])

    def frame_results(self, result: np.ndarray) -> np.ndarray:
        """The backend's result on :attr:`arrays` ([rows, D] or [rows, K, D]) as one row per frame [N, D]."""
        rows = result.reshape(-1, result.shape[-1])
        return rows[self.skip : self.skip + len(self.frames)]


def check_batch_size(batch_size: object) -> int:
    """``batch_size`` as a whole number from 1 to :data:`~facecast.constants.MAX_BATCH_SIZE`, or ValueError."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise ValueError(f"batch_size must be a whole number, got {batch_size!r}")
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be from 1 to {MAX_BATCH_SIZE}, got {batch_size}")
    return int(batch_size)


class Engine:
    """Runs a regression network over audio at the SDK's frame timing, in batches."""

    def __init__(
        self,
        backend: Backend,
        info: NetworkInfo,
        implicit_emotion: np.ndarray | None = None,
        input_strength: float = 1.0,
        batch_size: int | None = None,
        frames_per_pass: int = 1,
        chunk_frames: int = 0,
        context_frames: int | None = None,
    ) -> None:
        """``chunk_frames``: the longest chunk (in frames) the network was trained for, 0 without a chunk
        network. ``context_frames``: frames of past audio each encoder pass adds before its block (see
        :mod:`facecast.timing`); ``None`` gives as many as the training allows, ``chunk_frames - frames_per_pass``."""
        self._batch_request, self._context_request = batch_size, context_frames
        self.backend = backend
        self.frames_per_pass = check_frames_per_pass(frames_per_pass, chunked=self._chunked)
        self.chunk_frames = int(chunk_frames)
        if context_frames is None:
            context_frames = self._default_context(self.frames_per_pass)
        self.context_frames = check_context_frames(context_frames, chunked=self._chunked)
        if self._chunked:
            check_pass(self.frames_per_pass, self.context_frames, self.chunk_frames)
        if batch_size is None:  # chunks are batches already: larger calls pay off (bench: 1.2x at 128 frames)
            batch_size = 128 if self.uses_blocks else 32
        batch_size = check_batch_size(batch_size)
        self.info = info
        self.batch_size = batch_size
        self.input_strength = float(input_strength)
        self._rest_cache: dict[bytes, np.ndarray] = {}
        implicit = np.zeros(info.implicit_emotion_len, np.float32) if implicit_emotion is None else implicit_emotion
        self.implicit_emotion = np.asarray(implicit, dtype=np.float32).reshape(-1)
        if self.implicit_emotion.shape[0] != info.implicit_emotion_len:
            raise ValueError(
                f"implicit emotion has {self.implicit_emotion.shape[0]} values, the network takes "
                f"{info.implicit_emotion_len}"
            )

    @property
    def lookahead_samples(self) -> int:
        """Audio needed after a frame's time: its window's look-ahead (see :meth:`latency_samples` for blocks)."""
        return self.info.lookahead_samples

    def latency_samples(self, fps: float) -> int:
        """The longest wait from a frame's time until it can be computed: look-ahead plus, with chunks, the
        rest of its block."""
        return self.lookahead_samples + int(frame_targets(self.frames_per_pass - 1, 1, fps)[0])

    @property
    def _chunked(self) -> bool:
        """Whether the backend runs a chunk network."""
        return callable(getattr(self.backend, "run_chunks", None))

    def _default_context(self, frames_per_pass: int) -> int:
        """As much past context as the network was trained for: its longest chunk less the block."""
        return max(self.chunk_frames - int(frames_per_pass), 0) if self._chunked else 0

    @property
    def uses_blocks(self) -> bool:
        """Whether frames are computed in blocks through the chunk network (rather than a window each)."""
        return self.frames_per_pass > 1 or self.context_frames > 0

    @property
    def rows_per_call(self) -> int:
        """Batch rows per backend call: ``batch_size`` windows, or the blocks holding about as many frames."""
        if not self.uses_blocks:
            return self.batch_size
        return max(1, self.batch_size // (self.frames_per_pass + self.context_frames))

    def frames_ready(self, received: int, fps: float, final: bool = False) -> int:
        """Frames computable from the first ``received`` samples of a stream: those whose window is complete, in
        whole blocks (a block is computed once its last frame is ready); every frame of the clip once ``final``."""
        if final:
            return num_frames(received, fps)
        ready = frames_ready(received, self.lookahead_samples, fps)
        return ready - ready % self.frames_per_pass

    def first_sample(self, frame: int, fps: float) -> int:
        """The earliest audio sample that frame ``frame`` (and every later one) still reads."""
        first = frame - frame % self.frames_per_pass - self.context_frames
        return int(frame_targets(first, 1, fps)[0]) - self.info.buffer_ofs

    def with_options(
        self, input_strength: float | None = None, frames_per_pass: int | None = None, context_frames: int | None = None
    ) -> Engine:
        """This engine, or a copy sharing its backend with other settings (the context as this engine's was asked
        for: a default context follows a new ``frames_per_pass``)."""
        strength = self.input_strength if input_strength is None else float(input_strength)
        if frames_per_pass is None:
            frames_per_pass = self.frames_per_pass
        context = self._context_request if context_frames is None else context_frames
        asked = context if context is not None else self._default_context(frames_per_pass)
        if strength == self.input_strength and frames_per_pass == self.frames_per_pass and asked == self.context_frames:
            return self
        return Engine(self.backend, self.info, self.implicit_emotion, strength, self._batch_request, frames_per_pass,
                      self.chunk_frames, context)  # fmt: skip

    def network_inputs(
        self,
        audio: np.ndarray,
        first: int,
        count: int,
        fps: float,
        explicit: ExplicitEmotion = None,
        origin: int = 0,
    ) -> NetworkInputs:
        """The network's inputs for frames ``first .. first + count - 1`` of a clip whose first held sample
        (``audio[0]``) is sample ``origin``: a window per frame, or the chunks of the whole blocks holding them.

        Offline clips, streams, batches and the server all build their inputs here, so they give the same frames.
        A block's chunk starts at the window of the frame ``context_frames`` before its first frame."""
        frames = np.arange(first, first + count, dtype=np.int64)
        targets = frame_targets(first, count, fps)
        if not self.uses_blocks:
            windows = extract_windows(audio, targets - self.info.buffer_ofs, self.info.buffer_len, origin,
                                      self.input_strength)  # fmt: skip
            emotion = self.emotion_rows(targets, explicit)
            return NetworkInputs(frames, targets, (windows, emotion), emotion, float(fps))
        frames_per_pass, context_frames, info = self.frames_per_pass, self.context_frames, self.info
        first_block, end_block = block_range(first, count, frames_per_pass)
        blocks = end_block - first_block
        span = frame_targets(first_block * frames_per_pass - context_frames,
                             blocks * frames_per_pass + context_frames, fps)  # fmt: skip
        # each block's frames, its context first
        rows = span[frames_per_pass * np.arange(blocks)[:, None] + np.arange(frames_per_pass + context_frames)]
        block_targets = rows[:, context_frames:]
        offsets = block_targets - rows[:, :1]
        length = block_length(frames_per_pass + context_frames, fps, info.buffer_len)
        chunks = extract_windows(audio, rows[:, 0] - info.buffer_ofs, length, origin, self.input_strength)
        for row, end in enumerate(offsets[:, -1] + info.buffer_len):
            chunks[row, end:] = 0.0
        emotion = self.emotion_rows(block_targets.reshape(-1), explicit)
        skip = first - first_block * frames_per_pass
        arrays = (chunks, offsets, emotion.reshape(blocks, frames_per_pass, -1))
        return NetworkInputs(frames, targets, arrays, emotion[skip : skip + count], float(fps), skip)

    def infer(self, *arrays: np.ndarray) -> np.ndarray:
        """Run the backend over batch rows (:attr:`NetworkInputs.arrays`, of one span of frames or of several
        joined) in calls of :attr:`rows_per_call` rows -> [rows, D], or [rows, K, D] through the chunk network."""
        blocks = len(arrays) == 3
        run = self.backend.run_chunks if blocks else self.backend.run
        rows, per_call = len(arrays[0]), self.rows_per_call
        shape = (rows, arrays[1].shape[1]) if blocks else (rows,)
        out = np.empty((*shape, self.info.result_size), np.float32)
        for lo in range(0, rows, per_call):
            hi = min(lo + per_call, rows)
            out[lo:hi] = run(*(a[lo:hi] for a in arrays))
        return out

    def output(self, inputs: NetworkInputs, result: np.ndarray, levels: np.ndarray | None = None) -> NetworkOutput:
        """The :class:`NetworkOutput` of ``inputs`` from the backend's ``result`` on their arrays."""
        info = self.info
        return NetworkOutput(inputs.frames, inputs.targets, inputs.frame_results(result), inputs.emotion,
                             info.num_shapes_skin, info.num_shapes_tongue, inputs.fps, levels=levels)  # fmt: skip

    def run_frames(
        self,
        audio: np.ndarray,
        frames: np.ndarray,
        fps: float,
        explicit: ExplicitEmotion = None,
        origin: int = 0,
    ) -> NetworkOutput:
        """Run consecutive frames ``frames`` of a clip whose first held sample (``audio[0]``) is sample ``origin``,
        :attr:`rows_per_call` windows (or blocks) at a time."""
        frames = np.asarray(frames, dtype=np.int64)
        first, count = (int(frames[0]), len(frames)) if len(frames) else (0, 0)
        frames_per_pass, per_call = self.frames_per_pass, self.rows_per_call
        first_block, end_block = block_range(first, count, frames_per_pass)
        results = [np.zeros((0, self.info.result_size), np.float32)]
        emotions = [np.zeros((0, self.info.emotion_len), np.float32)]
        for block in range(first_block, end_block, per_call):  # the spans of rows_per_call windows (or blocks)
            lo, hi = max(first, block * frames_per_pass), min(first + count, (block + per_call) * frames_per_pass)
            inputs = self.network_inputs(audio, lo, hi - lo, fps, explicit, origin)
            results.append(inputs.frame_results(self.infer(*inputs.arrays)))
            emotions.append(inputs.emotion)
        targets = frame_targets(first, count, fps)
        result = results[-1] if len(results) == 2 else np.concatenate(results)
        emotion = emotions[-1] if len(emotions) == 2 else np.concatenate(emotions)
        return NetworkOutput(frames, targets, np.ascontiguousarray(result), np.ascontiguousarray(emotion),
                             self.info.num_shapes_skin, self.info.num_shapes_tongue, float(fps),
                             levels=self.frame_levels(audio, targets, origin))  # fmt: skip

    def rest_result(self, emotion: np.ndarray) -> np.ndarray:
        """The network's result [D] for a window of silence with one frame's emotion input [26] (the quiet hold's
        rest pose); cached per emotion."""
        row = np.ascontiguousarray(emotion, np.float32).reshape(1, self.info.emotion_len)
        key = row.tobytes()
        cache = self._rest_cache
        if key not in cache:
            if len(cache) >= 256:
                cache.clear()
            silence = np.zeros((1, self.info.buffer_len), np.float32)
            cache[key] = np.asarray(self.backend.run(silence, row), np.float32)[0].copy()
        return cache[key]

    def frame_levels(self, audio: np.ndarray, targets: np.ndarray, origin: int = 0) -> np.ndarray:
        """Audio level (dBFS) around each frame, within this network's look-ahead (for the quiet hold)."""
        return frame_levels(audio, targets, origin, level_span(self.lookahead_samples))

    def emotion_rows(self, targets: np.ndarray, explicit: ExplicitEmotion) -> np.ndarray:
        """Network emotion input [N, 26] of frames centred on ``targets``: implicit, then explicit."""
        emotion = np.empty((len(targets), self.info.emotion_len), np.float32)
        emotion[:, : self.info.implicit_emotion_len] = self.implicit_emotion
        emotion[:, self.info.implicit_emotion_len :] = explicit_rows(explicit, targets / SAMPLE_RATE)
        return emotion

    def run(self, audio: np.ndarray, fps: float = DEFAULT_FPS, explicit: ExplicitEmotion = None) -> NetworkOutput:
        """Animate a whole 16 kHz mono clip: one frame per 1/fps seconds from t = 0."""
        audio = check_samples(np.asarray(audio, dtype=np.float32).reshape(-1))
        count = num_frames(len(audio), fps)
        return self.run_frames(audio, np.arange(count), fps, explicit)
