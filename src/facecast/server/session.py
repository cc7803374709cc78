"""One client stream on the server: audio in, ready windows out to the scheduler, animation frames back.

The event-loop thread pushes audio and emotion keys (:meth:`ServerStream.push`, :meth:`~ServerStream.end`); the
scheduler thread takes ready windows (:meth:`~ServerStream.take`); the finisher thread turns network results into
answer messages (:meth:`~ServerStream.finish`). Windows, emotion rows and the face pipeline are exactly those of
:meth:`facecast.Model.animate` (``blinks=False``), so a stream gives the offline frames.

Timed emotions become keys of one :class:`~facecast.emotion.EmotionTrack` (linear between keys, held outside them).
A frame is computed once the audio up to its time plus the look-ahead has arrived, with the keys received by then.
Keys sent up front (the ACE sample clients send them with the first audio chunk) give exactly the offline result;
a key that arrives later changes only the frames computed after it arrived.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from facecast.audio import pcm16_to_float
from facecast.constants import SAMPLE_RATE
from facecast.emotion import EmotionTrack
from facecast.infer.engine import NetworkInputs
from facecast.model import AnimationOptions, Model
from facecast.server.protocol import LimitExceeded, ProtocolError, StreamSettings, frame_message
from facecast.timing import block_range, frame_targets, frames_ready, num_frames


@dataclass
class Job:
    """Consecutive frames of one stream, ready for the network."""

    stream: ServerStream
    inputs: NetworkInputs
    """The frames' network inputs (:meth:`facecast.infer.engine.Engine.network_inputs`): one batch row per window,
    or per block of frames with chunks."""
    audio: tuple[np.ndarray, int] | None = None
    """The stream's audio buffer when the job was taken and its first sample number: the finisher reads the
    frames' audio levels from it (buffers are replaced, never written, so the reference stays valid)."""

    @property
    def frames(self) -> np.ndarray:
        return self.inputs.frames

    def __len__(self) -> int:
        """Batch rows (windows, or blocks)."""
        return len(self.inputs)


class _KeyTrack(EmotionTrack):
    """An emotion track whose key arrays are built once per change, not on every sample (a stream may hold
    thousands of keys and is sampled once per batch)."""

    def __init__(self) -> None:
        super().__init__()
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None

    def add(self, time, emotion) -> EmotionTrack:
        self._arrays = None
        return super().add(time, emotion)

    def _cached(self) -> tuple[np.ndarray, np.ndarray]:
        if self._arrays is None:
            self._arrays = (EmotionTrack.times.fget(self), EmotionTrack.values.fget(self))
        return self._arrays

    @property
    def times(self) -> np.ndarray:
        return self._cached()[0]

    @property
    def values(self) -> np.ndarray:
        return self._cached()[1]


Deliver = Callable[[object], None]
"""Called from worker threads with a list of answer messages or an exception."""


class ServerStream:
    """Windowing, emotion keys, audio echo and face-pipeline state of one ProcessAudioStream call."""

    def __init__(
        self, model: Model, settings: StreamSettings, fps: float, max_clip_seconds: float, deliver: Deliver
    ) -> None:
        self.model = model
        self.settings = settings
        self.fps = float(fps)
        self.max_clip_seconds = float(max_clip_seconds)
        self.deliver = deliver
        self.closed = False
        """Set when the call is over (finished, failed or cancelled): late results are dropped."""
        self._lookahead = getattr(model.info, "lookahead_samples", 0)  # a v3.0 engine counts its own
        self._track = _KeyTrack()
        self.options = AnimationOptions(fps=self.fps, emotion=self._track, face_params=settings.face_params,
                                        blinks=False, blendshape_params=settings.solve)  # fmt: skip
        """Timed emotions become keys of ``_track``, which the options hold (and so see as they arrive)."""
        self._lock = threading.Lock()
        self._rate_in = settings.sample_rate
        self._resampler = None
        if self._rate_in != SAMPLE_RATE:
            import soxr

            self._resampler = soxr.ResampleStream(self._rate_in, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        self._audio = np.zeros(0, np.float32)  # 16 kHz samples from _origin on
        self._origin = 0
        self._total = 0
        self._echo = np.zeros(0, np.int16)  # input-rate samples from _echo_origin on
        self._echo_origin = 0
        self._total_in = 0
        self.ready = 0
        """Frames whose window is complete (all of them once the audio has ended)."""
        self._taken = 0
        self.final_frames: int | None = None
        """The clip's frame count, known once the audio has ended."""
        self._state = model.pipeline.new_state()
        self._params = model.face_params(self.options)
        self._engine = model.engine_for(self.options, self._params)
        pipeline = model.pipeline
        self.pose_names = (pipeline.skin.names if pipeline.skin else ()) + (
            pipeline.tongue.names if pipeline.tongue else ()
        )

    # -- event-loop thread -------------------------------------------------------------------------------------

    def push(self, pcm: bytes, emotions: list[tuple[float, np.ndarray]]) -> int:
        """Add int16 PCM at the input rate and emotion keys; returns how many frames became ready."""
        if self.final_frames is not None:
            raise ProtocolError("audio arrived after end_of_audio")
        if len(pcm) % 2:
            raise ProtocolError(f"audio_buffer must hold whole 16-bit samples, got {len(pcm)} bytes")
        count = len(pcm) // 2
        if (self._total_in + count) / self._rate_in > self.max_clip_seconds:
            raise LimitExceeded(f"the clip is longer than the server's limit of {self.max_clip_seconds:g} s")
        ints = np.frombuffer(pcm, dtype="<i2")
        samples = pcm16_to_float(ints.astype(np.int16)) if count else np.zeros(0, np.float32)
        if self._resampler is not None and count:
            samples = self._resampler.resample_chunk(samples)
        with self._lock:
            for time, vector in emotions:
                self._track.add(time, vector)
            self._echo = np.concatenate((self._echo, ints.astype(np.int16)))
            self._total_in += count
            self._append(samples)
            ready = self._frames_ready()
            added = max(ready - self.ready, 0)
            self.ready = max(ready, self.ready)
        return added

    def end(self) -> int:
        """End of audio: every frame whose centre lies inside the clip becomes ready; returns how many were added."""
        if self.final_frames is not None:
            raise ProtocolError("end_of_audio arrived twice")
        if self._total_in == 0:
            raise ProtocolError("no audio was received before end_of_audio")
        tail = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True) if self._resampler else None
        with self._lock:
            if tail is not None:
                self._append(tail)
            self.final_frames = num_frames(self._total, self.fps)
            added = max(self.final_frames - self.ready, 0)
            self.ready = max(self.final_frames, self.ready)
        return added

    def _frames_ready(self) -> int:
        """Under the lock: frames whose audio, look-ahead included, has arrived."""
        return frames_ready(self._total, self._lookahead, self.fps)

    def _append(self, samples: np.ndarray) -> None:
        if len(samples):
            self._audio = np.concatenate((self._audio, samples.astype(np.float32, copy=False)))
            self._total += len(samples)

    @property
    def seconds_received(self) -> float:
        return self._total_in / self._rate_in

    # -- scheduler thread --------------------------------------------------------------------------------------

    def pending(self) -> int:
        """Ready batch rows not yet taken: frames, or whole blocks of frames with chunks (and the last, partial
        block once the audio has ended)."""
        if self.closed:
            return 0
        frames_per_pass = self._engine.frames_per_pass
        ready = self.ready if self.final_frames is not None else self.ready - self.ready % frames_per_pass
        first_block, end_block = block_range(self._taken, max(ready - self._taken, 0), frames_per_pass)
        return end_block - first_block

    def take(self, count: int) -> Job:
        """The next ``count`` ready rows: windows (or blocks) and emotion rows, as offline mode builds them."""
        with self._lock:
            first = self._taken
            rows = min(count, self.pending())
            self._taken = first + rows * self._engine.frames_per_pass
            end = min(self._taken, self.ready)  # the last block may end after the clip
            inputs = self._engine.network_inputs(self._audio, first, end - first, self.fps, self.options.explicit,
                                                 self._origin)  # fmt: skip
            audio = (self._audio, self._origin)
            self._drop_audio()
        return Job(self, inputs, audio)

    def _drop_audio(self) -> None:
        """Under the lock: forget the audio before the next frame's window."""
        next_start = self._engine.first_sample(self._taken, self.fps)
        drop = min(max(next_start - self._origin, 0), len(self._audio))
        if drop:
            self._audio = self._audio[drop:]
            self._origin += drop

    # -- finisher thread ---------------------------------------------------------------------------------------

    def finish(self, job: Job, result: np.ndarray) -> None:
        """Face pipeline and solve for a job's network output, then hand the frame messages to the client."""
        if self.closed or not len(job.frames):
            return
        levels = None
        if job.audio is not None and self._params.quiet_hold > 0:
            levels = self._engine.frame_levels(job.audio[0], job.inputs.targets, job.audio[1])
        raw = self._engine.output(job.inputs, result, levels)
        self._send(self.model.finish(raw, self._state, self._params, self.options), job.frames, raw.explicit_emotion)

    def _send(self, anim, frames: np.ndarray, explicit: np.ndarray) -> None:
        """Answer messages for consecutive animated frames (with their audio echo), to the client."""
        parts = [w for w in (anim.skin_weights, anim.tongue_weights) if w is not None]
        weights = np.concatenate(parts, axis=1) if parts else np.zeros((len(frames), 0), np.float32)
        spans = self._echo_spans(frames)
        messages = [
            frame_message(float(anim.times[i]), weights[i], start / self._rate_in, audio, explicit[i], explicit[i])
            for i, (start, audio) in enumerate(spans)
        ]
        self.deliver(messages)

    def _echo_spans(self, frames: np.ndarray) -> list[tuple[int, bytes]]:
        """The input-rate PCM of each frame's span [k / fps, (k + 1) / fps); the last frame takes the rest."""
        bounds = frame_targets(int(frames[0]), len(frames) + 1, self.fps, self._rate_in)
        out = []
        with self._lock:
            last = self.final_frames is not None and int(frames[-1]) == self.final_frames - 1
            if last:
                bounds[-1] = max(bounds[-1], self._total_in)
            for i in range(len(frames)):
                lo = max(int(bounds[i]) - self._echo_origin, 0)
                hi = max(min(int(bounds[i + 1]), self._total_in) - self._echo_origin, lo)
                out.append((int(bounds[i]), self._echo[lo:hi].astype("<i2").tobytes()))
            drop = min(max(int(bounds[-1]) - self._echo_origin, 0), len(self._echo))
            if drop:
                self._echo = self._echo[drop:]
                self._echo_origin += drop
        return out

    def fail(self, exc: BaseException) -> None:
        """An internal error while computing this stream's frames."""
        if not self.closed:
            self.deliver(exc)
