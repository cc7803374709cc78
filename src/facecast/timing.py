"""Chunks: several consecutive frames animated from one encoder pass over their joint span of audio.

A network trained for it (``NetworkConfig.chunk_frames``) runs the audio encoder once over a chunk and reads
each frame's features at that frame's window, instead of encoding every frame's window separately. Frames are
grouped in fixed blocks of ``K`` by frame number (frames ``mK .. mK + K - 1``), so the result depends only on
``K`` (and ``C``, below): offline, streaming and serving with the same settings give the same frames. The chunk
of a block starts at its first frame's window, is ``chunk_length`` samples long and is zero after its last
frame's window.

**Context frames** ``C`` (:class:`facecast.infer.engine.Engine`): the chunk starts ``C`` frames earlier, so the encoder
also hears that much of the past; only the block's ``K`` frames are decoded, and the look-ahead (the wait for the
last frame's window) is unchanged. With ``K + C`` at most the chunk length the network was trained for, every
frame sits at a position of a chunk it was trained at.
"""

from __future__ import annotations

import math

from facecast.constants import SAMPLE_RATE

FEATURE_HOP = 320
"""Samples between consecutive 50 Hz audio features (Whisper frames, autocorrelation windows)."""


def chunk_span(count: int, fps: float, sample_rate: int = SAMPLE_RATE) -> int:
    """An upper bound of the last window start of ``count`` consecutive frames, from the first one."""
    return int(math.ceil((count - 1) * sample_rate / fps - 1e-9)) if count > 1 else 0


def chunk_length(last_offset: int, buffer_len: int) -> int:
    """Samples of a chunk whose last frame window starts ``last_offset`` samples in (a multiple of 320)."""
    return -(-(last_offset + buffer_len) // FEATURE_HOP) * FEATURE_HOP


def block_length(count: int, fps: float, buffer_len: int) -> int:
    """The chunk length used for blocks of ``count`` frames at ``fps`` (the same for every block)."""
    return chunk_length(chunk_span(count, fps), buffer_len)
