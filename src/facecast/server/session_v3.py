"""One client stream of a v3.0 diffusion model on the server: a GRU track, run window by window.

A v3.0 window's GRU state is the next window's input, so a stream offers the scheduler at most one window at a
time (:meth:`DiffusionServerStream.pending` is 0 while its window is in flight); the scheduler joins the windows
of many streams into one network call (:func:`facecast.infer.diffusion.join_windows`: windows, identities,
emotions and noise along the batch axis, GRU states along theirs). When a window's answer comes back its GRU
state is kept, every output frame it completes goes through the face pipeline to the client, and the scheduler
is woken for the stream's next window. Windows, noise, emotion rows and frames are those of
:meth:`facecast.Model.animate` (``blinks=False``), so a stream gives the offline frames.

Latency: a kept frame needs its whole 1 s window, 267-750 ms of audio after it
(:attr:`facecast.pack_v3.DiffusionInfo.lookahead_seconds`), plus the window's compute time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from facecast.infer.diffusion import WindowInputs, join_windows, split_results
from facecast.model import Model
from facecast.server.protocol import StreamSettings
from facecast.server.session import Deliver, ServerStream


@dataclass
class WindowJob:
    """The next window of one stream's track."""

    stream: DiffusionServerStream
    inputs: WindowInputs

    def __len__(self) -> int:
        return 1


def join_jobs(jobs: list[WindowJob]) -> WindowInputs:
    """The scheduler's join for v3.0 windows."""
    return join_windows([job.inputs for job in jobs])


def split_answers(result: tuple[np.ndarray, np.ndarray], jobs: list[WindowJob]) -> list[tuple[np.ndarray, ...]]:
    """The scheduler's split for v3.0 windows: each job's (prediction, output_latents)."""
    return split_results(result, len(jobs))


class DiffusionServerStream(ServerStream):
    """:class:`ServerStream` for a v3.0 model: one window in flight at a time, GRU state carried."""

    def __init__(
        self, model: Model, settings: StreamSettings, fps: float, max_clip_seconds: float, deliver: Deliver,
        wake: Callable[[], None],
    ) -> None:  # fmt: skip
        super().__init__(model, settings, fps, max_clip_seconds, deliver)
        self._wake = wake
        """Tells the scheduler this stream may have a window ready (called when an answer has been kept)."""
        self._in_flight = False
        self._sent = 0

    def _frames_ready(self) -> int:
        return self._engine.frames_ready(self._total, self.fps)

    def end(self) -> int:
        added = super().end()
        with self._lock:
            self._engine.frames_ready(self._total, self.fps, final=True)
        return added

    # -- scheduler thread --------------------------------------------------------------------------------------

    def pending(self) -> int:
        """1 when the track's next window is complete and needed (and none is in flight), else 0."""
        if self.closed or self._in_flight:
            return 0
        with self._lock:
            return int(self._engine.frames_computed(self.fps) < self.ready)

    def take(self, count: int) -> WindowJob:
        with self._lock:
            inputs = self._engine.window_inputs(self._audio, self._origin, self.options.explicit)
            self._in_flight = True
        return WindowJob(self, inputs)

    # -- finisher thread ---------------------------------------------------------------------------------------

    def finish(self, job: WindowJob, result: tuple[np.ndarray, np.ndarray]) -> None:
        """Keep the window's answer, then animate and send every frame it completes."""
        with self._lock:
            self._engine.accept_window(*result)
            self._in_flight = False
            done = min(self._engine.frames_computed(self.fps), self.ready)
            frames = np.arange(self._sent, max(done, self._sent))
            raw = None
            if len(frames):
                raw = self._engine.run_frames(self._audio, frames, self.fps, self.options.explicit, self._origin)
            self._sent = max(done, self._sent)
            self._drop_audio()
        self._wake()
        if raw is None or self.closed:
            return
        anim = self.model.finish(raw, self._state, self._params, self.options)
        self._send(anim, frames, raw.explicit_emotion)

    def fail(self, exc: BaseException) -> None:
        self._in_flight = False
        super().fail(exc)
