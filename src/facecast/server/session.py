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
from facecast.infer.engine import NetworkOutput, explicit_rows, extract_windows, frame_targets, num_frames
from facecast.model import Model
from facecast.server.protocol import ProtocolError, StreamSettings, frame_message


@dataclass
class Job:
    """Consecutive frames of one stream, ready for the network."""

    stream: ServerStream
    frames: np.ndarray
    targets: np.ndarray
    inputs: tuple[np.ndarray, ...]
    """Backend inputs, one batch row per window (or per block of frames with chunks)."""
    emotion: np.ndarray
    """The network emotion rows of ``frames``."""
    audio: tuple[np.ndarray, int] | None = None
    """The stream's audio buffer when the job was taken and its first sample number: the finisher reads the
    frames' audio levels from it (buffers are replaced, never written, so the reference stays valid)."""

    def __len__(self) -> int:
        """Batch rows (windows, or blocks)."""
        return len(self.inputs[0])


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
        info = model.info
        self._buffer_len, self._buffer_ofs = info.buffer_len, info.buffer_ofs
        self._implicit = model.engine.implicit_emotion
        self._emotion_len = info.emotion_len
        self._track = EmotionTrack()
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
        self._engine = model.engine.with_options(settings.face_params.input_strength)
        self._per_pass = self._engine.frames_per_pass
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
            raise ProtocolError(f"the clip is longer than the server's limit of {self.max_clip_seconds:g} s")
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
            need = self._total - (self._buffer_len - self._buffer_ofs)
            ready = num_frames(need + 1, self.fps) if need >= 0 else 0
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

    def _append(self, samples: np.ndarray) -> None:
        if len(samples):
            self._audio = np.concatenate((self._audio, samples.astype(np.float32, copy=False)))
            self._total += len(samples)

    @property
    def seconds_received(self) -> float:
        return self._total_in / self._rate_in

    # -- scheduler thread --------------------------------------------------------------------------------------

    def pending(self) -> int:
        """Ready batch rows not yet taken: frames, or whole blocks of frames with chunks."""
        if self.closed:
            return 0
        k = self._per_pass
        if k == 1:
            return self.ready - self._taken
        blocks = -(-self.ready // k) if self.final_frames is not None else self.ready // k
        return max(blocks - self._taken // k, 0)

    def take(self, count: int) -> Job:
        """The next ``count`` ready rows: windows (or blocks) and emotion rows, as offline mode builds them."""
        if self._engine.uses_blocks:
            return self._take_blocks(count)
        with self._lock:
            first = self._taken
            count = min(count, self.ready - first)
            frames = np.arange(first, first + count, dtype=np.int64)
            targets = frame_targets(first, count, self.fps)
            scale = self.settings.face_params.input_strength
            windows = extract_windows(self._audio, targets - self._buffer_ofs, self._buffer_len, self._origin, scale)
            emotion = np.empty((count, self._emotion_len), np.float32)
            emotion[:, : len(self._implicit)] = self._implicit
            emotion[:, len(self._implicit) :] = explicit_rows(self._track, targets / SAMPLE_RATE)
            audio = (self._audio, self._origin)
            self._taken = first + count
            self._drop_audio()
        return Job(self, frames, targets, (windows, emotion), emotion, audio)

    def _take_blocks(self, count: int) -> Job:
        k = self._per_pass
        with self._lock:
            first = self._taken
            blocks = min(count, self.pending())
            chunks, offsets, emotion = self._engine.block_inputs(self._audio, first // k, blocks, self.fps,
                                                                 self._track, self._origin)  # fmt: skip
            self._taken = first + blocks * k
            end = self._taken if self.final_frames is None else min(self._taken, self.final_frames)
            targets = frame_targets(first, end - first, self.fps)
            audio = (self._audio, self._origin)
            self._drop_audio()
        frames = np.arange(first, end, dtype=np.int64)
        kept = emotion.reshape(blocks * k, -1)[: len(frames)]
        return Job(self, frames, targets, (chunks, offsets, emotion), kept, audio)

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
        info = self.model.info
        result = result.reshape(-1, result.shape[-1])[: len(job.frames)]
        levels = None
        if job.audio is not None and self.settings.face_params.quiet_hold > 0:
            levels = self._engine.frame_levels(job.audio[0], job.targets, job.audio[1])
        raw = NetworkOutput(job.frames, job.targets, result, job.emotion, info.num_shapes_skin,
                            info.num_shapes_tongue, self.fps, levels=levels)  # fmt: skip
        anim = self.model.pipeline.process(raw, self._state, self.settings.face_params, None, self.settings.solve)
        parts = [w for w in (anim.skin_weights, anim.tongue_weights) if w is not None]
        weights = np.concatenate(parts, axis=1) if parts else np.zeros((len(job), 0), np.float32)
        spans = self._echo_spans(job.frames)
        explicit = raw.explicit_emotion
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
