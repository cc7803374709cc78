"""Schedule audio windows at the SDK's frame timing, batch them and run a backend.

Frame ``k`` is centred on sample ``floor(k * 16000 / fps)``; its window of ``buffer_len`` samples starts
``buffer_ofs`` samples earlier, is zero outside the clip and is multiplied by ``input_strength`` (spec 5.2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from facecast.audio import frame_levels, level_span
from facecast.constants import DEFAULT_FPS, EMOTION_NAMES, SAMPLE_RATE
from facecast.infer.backends import Backend
from facecast.pack import NetworkInfo
from facecast.timing import block_length

ExplicitEmotion = np.ndarray | Callable[[np.ndarray], np.ndarray] | None
"""A fixed 10-vector, one row per frame, or a function of frame times (seconds) -> [N, 10]."""


def fps_fraction(fps: float) -> Fraction:
    """The frame rate as an exact fraction (29.97 -> 30000/1001)."""
    if not np.isfinite(fps) or fps <= 0 or fps > 1000:
        raise ValueError(f"fps must be between 0 and 1000, got {fps}")
    exact = Fraction(str(fps)).limit_denominator(100_000)
    if exact.denominator == 1:
        return exact
    ntsc = Fraction(round(fps * 1.001) * 1000, 1001)  # 29.97 -> 30000/1001, 59.94 -> 60000/1001
    return ntsc if abs(float(ntsc) - fps) < 1e-4 else exact


def frame_targets(first: int, count: int, fps: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Centre samples of frames ``first .. first + count - 1``: floor(k * sample_rate / fps)."""
    rate = fps_fraction(fps)
    k = np.arange(first, first + count, dtype=np.int64)
    return (k * sample_rate * rate.denominator) // rate.numerator


def num_frames(num_samples: int, fps: float, sample_rate: int = SAMPLE_RATE) -> int:
    """Frames of a finished clip: every k whose centre lies inside it."""
    rate = fps_fraction(fps)
    return int(-(-num_samples * rate.numerator // (sample_rate * rate.denominator)))


def extract_windows(
    audio: np.ndarray, starts: np.ndarray, length: int, origin: int = 0, scale: float = 1.0
) -> np.ndarray:
    """Windows of ``length`` samples beginning at absolute sample ``starts``; ``audio[0]`` is sample ``origin``.

    Samples outside ``audio`` read as zero.
    """
    out = np.zeros((len(starts), length), dtype=np.float32)
    n = len(audio)
    for row, start in enumerate(np.asarray(starts, dtype=np.int64) - origin):
        lo, hi = max(start, 0), min(start + length, n)
        if hi > lo:
            out[row, lo - start : hi - start] = audio[lo:hi]
    if scale != 1.0:
        out *= np.float32(scale)
    return out


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
        if frames_per_pass < 1:
            raise ValueError(f"frames_per_pass must be at least 1, got {frames_per_pass}")
        self.backend = backend
        chunked = self._chunked
        if frames_per_pass > 1 and not chunked:
            raise ValueError("frames_per_pass > 1 needs a network trained for chunks (this model has none)")
        self.chunk_frames = int(chunk_frames)
        if context_frames is None:
            context_frames = self._default_context(frames_per_pass)
        if context_frames < 0:
            raise ValueError(f"context_frames must be 0 or more, got {context_frames}")
        if context_frames > 0 and not chunked:
            raise ValueError("context_frames > 0 needs a network trained for chunks (this model has none)")
        if batch_size is None:  # chunks are batches already: larger calls pay off (bench: 1.2x at 128 frames)
            batch_size = 128 if frames_per_pass > 1 or context_frames > 0 else 32
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.context_frames = int(context_frames)
        self.info = info
        self.batch_size = batch_size
        self.frames_per_pass = int(frames_per_pass)
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
        return self.info.buffer_len - self.info.buffer_ofs

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
        per_pass = self.frames_per_pass if frames_per_pass is None else int(frames_per_pass)
        context = self._context_request if context_frames is None else int(context_frames)
        same_context = (context if context is not None else self._default_context(per_pass)) == self.context_frames
        if strength == self.input_strength and per_pass == self.frames_per_pass and same_context:
            return self
        return Engine(self.backend, self.info, self.implicit_emotion, strength, self._batch_request, per_pass,
                      self.chunk_frames, context)  # fmt: skip

    def infer(self, windows: np.ndarray, emotion: np.ndarray) -> np.ndarray:
        """Run the backend over [N, buffer_len] windows and [N, 26] emotions in batches -> [N, D]."""
        out = np.empty((len(windows), self.info.result_size), np.float32)
        for lo in range(0, len(windows), self.batch_size):
            hi = min(lo + self.batch_size, len(windows))
            out[lo:hi] = self.backend.run(windows[lo:hi], emotion[lo:hi])
        return out

    def infer_blocks(self, chunks: np.ndarray, offsets: np.ndarray, emotion: np.ndarray) -> np.ndarray:
        """Run the chunk network over blocks (see :meth:`block_inputs`) in batches -> [n, K, D]."""
        per_call = max(1, self.batch_size // (self.frames_per_pass + self.context_frames))
        out = np.empty((len(chunks), offsets.shape[1], self.info.result_size), np.float32)
        for lo in range(0, len(chunks), per_call):
            hi = min(lo + per_call, len(chunks))
            out[lo:hi] = self.backend.run_chunks(chunks[lo:hi], offsets[lo:hi], emotion[lo:hi])
        return out

    def run_frames(
        self,
        audio: np.ndarray,
        frames: np.ndarray,
        fps: float,
        explicit: ExplicitEmotion = None,
        origin: int = 0,
    ) -> NetworkOutput:
        """Run frames ``frames`` of a clip whose first held sample (``audio[0]``) is sample ``origin``."""
        frames = np.asarray(frames, dtype=np.int64)
        targets = frame_targets(int(frames[0]), len(frames), fps) if len(frames) else np.zeros(0, np.int64)
        levels = self.frame_levels(audio, targets, origin)
        if self.uses_blocks and len(frames):
            result, emotion = self._run_blocks(audio, int(frames[0]), len(frames), fps, explicit, origin)
            return NetworkOutput(frames, targets, result, emotion, self.info.num_shapes_skin,
                                 self.info.num_shapes_tongue, float(fps), levels=levels)  # fmt: skip
        emotion = self.emotion_rows(targets, explicit)
        result = np.empty((len(frames), self.info.result_size), np.float32)
        for lo in range(0, len(frames), self.batch_size):
            hi = min(lo + self.batch_size, len(frames))
            windows = extract_windows(
                audio, targets[lo:hi] - self.info.buffer_ofs, self.info.buffer_len, origin, self.input_strength
            )
            result[lo:hi] = self.backend.run(windows, emotion[lo:hi])
        return NetworkOutput(
            frames,
            targets,
            result,
            emotion,
            self.info.num_shapes_skin,
            self.info.num_shapes_tongue,
            float(fps),
            levels=levels,
        )

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

    def block_inputs(
        self, audio: np.ndarray, first_block: int, blocks: int, fps: float, explicit: ExplicitEmotion, origin: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Chunk-graph inputs of blocks ``first_block ..``: chunks [n, L], window offsets [n, K], emotion [n, K, E].

        A block's chunk starts at the window of the frame ``context_frames`` before its first frame."""
        k, c, info = self.frames_per_pass, self.context_frames, self.info
        span = frame_targets(first_block * k - c, blocks * k + c, fps)
        rows = span[k * np.arange(blocks)[:, None] + np.arange(k + c)]  # each block's frames, context first
        targets = rows[:, c:]
        offsets = targets - rows[:, :1]
        chunks = extract_windows(audio, rows[:, 0] - info.buffer_ofs, block_length(k + c, fps, info.buffer_len),
                                 origin, self.input_strength)  # fmt: skip
        for row, end in enumerate(offsets[:, -1] + info.buffer_len):
            chunks[row, end:] = 0.0
        emotion = self.emotion_rows(targets.reshape(-1), explicit).reshape(blocks, k, -1)
        return chunks, offsets, emotion

    def _run_blocks(
        self, audio: np.ndarray, first: int, count: int, fps: float, explicit: ExplicitEmotion, origin: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Results and emotion rows of frames ``first .. first + count - 1``, computed in whole blocks."""
        k = self.frames_per_pass
        first_block, end_block = first // k, -(-(first + count) // k)
        per_call = max(1, self.batch_size // (k + self.context_frames))
        results, emotions = [], []
        for lo in range(first_block, end_block, per_call):
            n = min(per_call, end_block - lo)
            chunks, offsets, emotion = self.block_inputs(audio, lo, n, fps, explicit, origin)
            results.append(self.infer_blocks(chunks, offsets, emotion).reshape(n * k, -1))
            emotions.append(emotion.reshape(n * k, -1))
        keep = slice(first - first_block * k, first - first_block * k + count)
        return np.ascontiguousarray(np.concatenate(results)[keep]), np.ascontiguousarray(np.concatenate(emotions)[keep])

    def run(self, audio: np.ndarray, fps: float = DEFAULT_FPS, explicit: ExplicitEmotion = None) -> NetworkOutput:
        """Animate a whole 16 kHz mono clip: one frame per 1/fps seconds from t = 0."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        count = num_frames(len(audio), fps)
        return self.run_frames(audio, np.arange(count), fps, explicit)
