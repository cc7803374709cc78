"""The frame clock: frame rates as exact fractions, frame times, audio windows and the block (chunk) arithmetic.

**Frames.** Frame ``k`` is centred on sample ``floor(k * 16000 / fps)`` (:func:`frame_targets`), with the frame rate
taken as an exact fraction (:func:`fps_fraction`: 29.97 is 30000/1001); a finished clip has a frame for every
centre inside it (:func:`num_frames`). A frame's window of ``buffer_len`` samples starts ``buffer_ofs`` samples
before its centre and is zero outside the clip (:func:`extract_windows`); it needs
:attr:`facecast.pack.NetworkInfo.lookahead_samples` of audio after the frame's time (:func:`frames_ready`).

**Chunks.** Several consecutive frames can be animated from one encoder pass over their joint span of audio. A
network trained for it (``NetworkConfig.chunk_frames``) runs the audio encoder once over a chunk and reads each
frame's features at that frame's window, instead of encoding every frame's window separately. Frames are
grouped in fixed blocks of ``frames_per_pass`` (K below) by frame number (frames ``mK .. mK + K - 1``,
:func:`block_range`), so the result depends only on K (and C, below): offline, streaming and serving with the
same settings give the same frames. The chunk of a block starts at its first frame's window, is
``chunk_length`` samples long and is zero after its last frame's window.

**Context frames** C (``context_frames``, :class:`facecast.infer.engine.Engine`): the chunk starts C frames
earlier, so the encoder also hears that much of the past; only the block's K frames are decoded, and the
look-ahead (the wait for the last frame's window) is unchanged. With ``K + C`` at most the chunk length the
network was trained for, every frame sits at a position of a chunk it was trained at.
"""

from __future__ import annotations

import math
import numbers
from fractions import Fraction

import numpy as np

from facecast.constants import MAX_FPS, MIN_FPS, SAMPLE_RATE

FEATURE_HOP = 320
"""Samples between consecutive 50 Hz audio features (Whisper frames, autocorrelation windows)."""

MAX_FRAMES_PER_PASS = 1000
"""The most frames one encoder pass may animate (and the most context frames it may add); a chunk network
allows only what it was trained for (:func:`check_pass`)."""


def fps_fraction(fps: float) -> Fraction:
    """The frame rate as an exact fraction (29.97 -> 30000/1001): the one conversion every frame clock uses."""
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real):
        raise ValueError(f"fps must be a number, got {fps!r}")
    if not math.isfinite(fps) or not MIN_FPS <= fps <= MAX_FPS:
        raise ValueError(f"fps must be from {MIN_FPS:g} to {MAX_FPS:g}, got {fps:g}")
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


def frames_ready(received: int, lookahead: int, fps: float) -> int:
    """Frames whose window lies inside the first ``received`` samples of a stream still going on: every k with
    ``target_k + lookahead <= received`` (``lookahead``: :attr:`facecast.pack.NetworkInfo.lookahead_samples`)."""
    need = received - lookahead
    # the count of centres <= need is the count of centres < need + 1
    return num_frames(need + 1, fps) if need >= 0 else 0


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


def check_frames_per_pass(value: object, name: str = "frames_per_pass", chunked: bool | None = None) -> int:
    """``value`` as frames per encoder pass (a whole number from 1 to :data:`MAX_FRAMES_PER_PASS`), or
    :class:`ValueError` naming ``name``; ``chunked=False`` (a network without a chunk graph) allows only 1."""
    frames_per_pass = _whole(value, name, 1)
    if chunked is False and frames_per_pass > 1:
        raise ValueError(f"{name} > 1 needs a network trained for chunks (this model has no chunk network)")
    return frames_per_pass


def check_context_frames(value: object, name: str = "context_frames", chunked: bool | None = None) -> int:
    """``value`` as context frames (a whole number from 0 to :data:`MAX_FRAMES_PER_PASS`), or :class:`ValueError`
    naming ``name``; ``chunked=False`` (a network without a chunk graph) allows only 0."""
    context_frames = _whole(value, name, 0)
    if chunked is False and context_frames > 0:
        raise ValueError(f"{name} > 0 needs a network trained for chunks (this model has no chunk network)")
    return context_frames


def check_pass(frames_per_pass: int, context_frames: int, chunk_frames: int) -> None:
    """Refuse a pass the chunk network was not trained for: more than ``chunk_frames`` frames per pass, or a
    chunk (the block and its context) longer than ``chunk_frames``; ``chunk_frames`` 0 (no chunk network, or its
    length unknown) checks nothing."""
    if chunk_frames <= 0:
        return
    if frames_per_pass > chunk_frames:
        raise ValueError(f"frames_per_pass must be from 1 to {chunk_frames} for this model (what its chunk network "
                         f"was trained for), got {frames_per_pass}")  # fmt: skip
    if frames_per_pass + context_frames > chunk_frames:
        raise ValueError(f"frames_per_pass + context_frames must be at most {chunk_frames} for this model (the "
                         f"longest chunk it was trained for), got {frames_per_pass} + {context_frames}")  # fmt: skip


def _whole(value: object, name: str, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if value < lo:
        raise ValueError(f"{name} must be at least {lo}, got {value}")
    if value > MAX_FRAMES_PER_PASS:
        raise ValueError(f"{name} must be at most {MAX_FRAMES_PER_PASS}, got {value}")
    return int(value)


def block_range(first: int, count: int, frames_per_pass: int) -> tuple[int, int]:
    """The blocks ``first_block .. end_block - 1`` holding frames ``first .. first + count - 1`` (none when
    ``count`` is 0)."""
    first_block = first // frames_per_pass
    return first_block, -(-(first + count) // frames_per_pass) if count > 0 else first_block


def chunk_span(count: int, fps: float, sample_rate: int = SAMPLE_RATE) -> int:
    """An upper bound of the last window start of ``count`` consecutive frames, from the first one."""
    return int(math.ceil((count - 1) * sample_rate / fps - 1e-9)) if count > 1 else 0


def chunk_length(last_offset: int, buffer_len: int) -> int:
    """Samples of a chunk whose last frame window starts ``last_offset`` samples in (a multiple of 320)."""
    return -(-(last_offset + buffer_len) // FEATURE_HOP) * FEATURE_HOP


def block_length(count: int, fps: float, buffer_len: int) -> int:
    """The chunk length used for blocks of ``count`` frames at ``fps`` (the same for every block)."""
    return chunk_length(chunk_span(count, fps), buffer_len)
