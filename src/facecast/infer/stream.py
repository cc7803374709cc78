"""Streaming inference: push audio chunks of any size, get each frame as soon as its window is complete.

A frame needs :attr:`~facecast.pack.NetworkInfo.lookahead_samples` after its centre (260 ms for NVIDIA's models):
that is the stream's look-ahead. An engine that animates ``frames_per_pass`` frames per encoder pass
(:mod:`facecast.timing`) computes them in blocks of that many, so a frame also waits for the rest of its block.
:meth:`StreamSession.close` flushes the tail with zero padding, exactly as offline mode, so a stream gives the same
frames as :meth:`Engine.run` on the whole clip.
"""

from __future__ import annotations

import numpy as np

from facecast.audio import check_samples
from facecast.constants import DEFAULT_FPS, SAMPLE_RATE
from facecast.infer.engine import Engine, ExplicitEmotion, NetworkOutput
from facecast.timing import fps_fraction


class StreamClosedError(RuntimeError):
    """Audio was pushed after :meth:`StreamSession.close`."""


class StreamSession:
    """One audio stream through an :class:`Engine`; keeps only the audio its next frames still need."""

    def __init__(
        self,
        engine: Engine,
        fps: float = DEFAULT_FPS,
        explicit: ExplicitEmotion = None,
        sample_rate: int = SAMPLE_RATE,
    ) -> None:
        self.engine = engine
        self.fps = float(fps)
        fps_fraction(self.fps)  # validates fps
        self.explicit = explicit
        self.sample_rate = int(sample_rate)
        self._resampler = None
        if self.sample_rate != SAMPLE_RATE:
            import soxr

            self._resampler = soxr.ResampleStream(self.sample_rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        self._buffer = np.zeros(0, np.float32)
        self._origin = 0  # absolute sample index of _buffer[0]
        self._total = 0  # samples received (16 kHz)
        self._next_frame = 0
        self._closed = False
        self._template = engine.run_frames(np.zeros(0, np.float32), np.zeros(0, np.int64), self.fps)

    @property
    def lookahead_seconds(self) -> float:
        """The most audio that must arrive after a frame's time before the frame can be computed (the window's
        look-ahead, plus the rest of its block when the engine animates several frames per pass)."""
        return self.engine.latency_samples(self.fps) / SAMPLE_RATE

    @property
    def samples_received(self) -> int:
        return self._total

    @property
    def frames_emitted(self) -> int:
        return self._next_frame

    def push(self, samples: np.ndarray) -> NetworkOutput:
        """Add mono float samples (at the session's sample rate); returns the frames that became ready."""
        if self._closed:
            raise StreamClosedError("cannot push audio into a closed stream")
        samples = check_samples(np.asarray(samples, dtype=np.float32).reshape(-1), "audio chunk")
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        self._append(samples)
        return self._emit(final=False)

    def close(self) -> NetworkOutput:
        """End of audio: compute every remaining frame whose centre lies inside the clip."""
        if self._closed:
            return NetworkOutput.concatenate([], self._template)
        if self._resampler is not None:
            self._append(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        self._closed = True
        return self._emit(final=True)

    def _append(self, samples: np.ndarray) -> None:
        if len(samples):
            self._buffer = np.concatenate((self._buffer, samples))
            self._total += len(samples)

    def _emit(self, final: bool) -> NetworkOutput:
        end = self.engine.frames_ready(self._total, self.fps, final)
        if end <= self._next_frame:
            return NetworkOutput.concatenate([], self._template)
        frames = np.arange(self._next_frame, end)
        out = self.engine.run_frames(self._buffer, frames, self.fps, self.explicit, origin=self._origin)
        self._next_frame = end
        # drop audio no future frame can reach
        first_needed = self.engine.first_sample(end, self.fps)
        drop = min(max(first_needed - self._origin, 0), len(self._buffer))
        if drop:
            self._buffer = self._buffer[drop:]
            self._origin += drop
        return out
