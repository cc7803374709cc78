"""One ProcessAudioStream call: a reader task feeding the stream, and the writer sending its frames back.

Both run on the server's event loop. The reader parses requests lightly (:mod:`facecast.server.wire`), counts
emotion keys before parsing them, and ends the call when the client sends nothing for the idle timeout or sends
audio slower than ``min_audio_rate`` (:class:`facecast.server.guard.AudioRateMeter`). Limits end the call with a
:class:`~facecast.server.guard.Refusal` (a gRPC status code); errors in what the client sent end it with an in-band
``status`` ERROR, as before.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import grpc

from facecast.model import Model
from facecast.server.config import ServerConfig
from facecast.server.guard import TICK_SECONDS, TIMEOUT, AudioRateMeter, Reads, Refusal
from facecast.server.protocol import (
    LimitExceeded,
    ProtocolError,
    end_event,
    header_message,
    parse_header,
    status_message,
)
from facecast.server.scheduler import BatchScheduler
from facecast.server.session import ServerStream
from facecast.server.session_v3 import DiffusionServerStream
from facecast.server.wire import parse_emotion_keys, parse_request


class Service(Protocol):
    """What a call needs of its servicer (:class:`facecast.server.grpc_service.A2FControllerServicer`)."""

    model: Model
    scheduler: BatchScheduler
    config: ServerConfig
    active: int
    """Calls holding a stream slot; a call gives its slot back when it ends."""


HALF_CLOSE_GRACE_S = 1.0
"""After the last frame, how long to wait for the client to close its side before the final status."""

STATUS_WRITE_S = 1.0
"""How long a refusal's in-band status may take to write before the call ends without it."""


class Internal(RuntimeError):
    """A server-side failure while computing a stream's frames."""


class StreamCall:
    """One ProcessAudioStream call (see the module docstring)."""

    def __init__(self, service: Service, context: grpc.aio.ServicerContext) -> None:
        self.service = service
        self.context = context
        self.config = service.config
        self.loop = asyncio.get_running_loop()
        self.reads = Reads(context)
        self.queue: asyncio.Queue = asyncio.Queue()
        self.capacity = asyncio.Event()
        self.capacity.set()
        self.stream: ServerStream | None = None
        self.reader: asyncio.Task | None = None
        self.meter: AudioRateMeter | None = None
        self.keys = 0
        """Timed emotions received so far."""
        self.written = 0
        self.released = False

    async def run(self) -> bool:
        """Serve the call; True when it ended cleanly. Raises :class:`Refusal` to end it with a status code."""
        try:
            await self._serve()
            return True
        except LimitExceeded as exc:
            refusal = Refusal(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except ProtocolError as exc:
            await self._write_error(str(exc))
            return False
        except Internal as exc:
            await self._write_error(f"internal server error: {exc}")
            return False
        except Refusal as exc:
            refusal = exc
        if not refusal.stalled:  # tell the client in band too, as ACE clients read errors there
            try:
                await asyncio.wait_for(self.context.write(status_message(False, refusal.message)), STATUS_WRITE_S)
            except Exception:  # a slow or gone client: the status code still goes out
                pass
        raise refusal

    async def _write_error(self, message: str) -> None:
        """The in-band error status (a client that has gone away cannot get it)."""
        try:
            await self._write(status_message(False, message))
        except Refusal:
            raise
        except Exception:  # the transport failed: the client is gone
            pass

    async def _write(self, message) -> None:
        try:
            await asyncio.wait_for(self.context.write(message), self.config.idle_timeout_seconds)
        except asyncio.TimeoutError:
            timeout = self.config.idle_timeout_seconds
            raise Refusal(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"the client read no answer for {timeout:g} s (idle timeout)", True
            ) from None

    async def _serve(self) -> None:
        first = await self._next()
        if first is grpc.aio.EOF:
            raise ProtocolError("the stream ended before an audio_stream_header")
        part = first.WhichOneof("stream_part")
        if part != "audio_stream_header":
            raise ProtocolError(f"the first message must be an audio_stream_header, got {part or 'an empty message'}")
        model = self.service.model
        settings = parse_header(first.audio_stream_header, model.pipeline)
        if model.is_diffusion:  # a v3.0 model: one GRU track per stream, a window at a time
            stream = DiffusionServerStream(model, settings, self.config.fps, self.config.max_clip_seconds,
                                           self._deliver, self.service.scheduler.notify)  # fmt: skip
        else:
            stream = ServerStream(model, settings, self.config.fps, self.config.max_clip_seconds, self._deliver)
        self.stream = stream
        self.meter = AudioRateMeter(self.config.min_audio_rate, self.config.audio_rate_window_seconds,
                                    self.loop.time())  # fmt: skip
        self.service.scheduler.add(stream)
        await self._write(header_message(settings.sample_rate, stream.pose_names, time.time()))
        self.reader = asyncio.create_task(self._read_loop())
        await self._write_frames()
        try:  # let the client close its side, so that anything it sent after end_of_audio is reported
            await asyncio.wait_for(asyncio.shield(self.reader), HALF_CLOSE_GRACE_S)
        except asyncio.TimeoutError:
            pass
        while not self.queue.empty():
            self._check(self.queue.get_nowait())
        await self._write(end_event())
        await self._write(status_message(True, f"processed {self.written} frames"))

    def release(self) -> None:
        """Free the stream and its slot (once): stop reading, drop frames still being computed."""
        if self.released:
            return
        self.released = True
        if self.reader is not None and not self.reader.done():
            self.reader.cancel()
        if self.stream is not None:
            self.stream.closed = True
            self.service.scheduler.remove(self.stream)
        self.service.active -= 1

    # -- writer ------------------------------------------------------------------------------------------------

    async def _write_frames(self) -> None:
        stream = self.stream
        while stream.final_frames is None or self.written < stream.final_frames:
            item = await self.queue.get()
            self._check(item)
            if isinstance(item, list):
                for message in item:
                    await self._write(message)
                    self.written += 1
                self._update_capacity()

    @staticmethod
    def _check(item) -> None:
        if isinstance(item, (ProtocolError, Refusal)):
            raise item
        if isinstance(item, BaseException):
            raise Internal(str(item) or type(item).__name__) from item

    def _deliver(self, item) -> None:
        """From the finisher thread: frame messages or an exception."""
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: the server is shutting down
            pass

    def _update_capacity(self) -> None:
        if self.stream.ready - self.written < self.config.max_pending_frames:
            self.capacity.set()
        else:
            self.capacity.clear()

    # -- reader ------------------------------------------------------------------------------------------------

    async def _next(self):
        """The next request (a light request, :mod:`facecast.server.wire`) or EOF. Ends the call at the idle
        timeout, and while audio is expected, when it arrives too slowly."""
        idle = self.config.idle_timeout_seconds
        deadline = self.loop.time() + idle
        while True:
            left = deadline - self.loop.time()
            if left <= 0:
                raise Refusal(grpc.StatusCode.DEADLINE_EXCEEDED, f"no message for {idle:g} s (idle timeout)")
            data = await self.reads.next(min(left, TICK_SECONDS))
            if data is not TIMEOUT:
                return data if data is grpc.aio.EOF else parse_request(data)
            self._check_rate()

    def _check_rate(self) -> None:
        if self.meter is None or self.stream is None or self.stream.final_frames is not None:
            return
        rate = self.meter.shortfall(self.loop.time())
        if rate is not None:
            cfg = self.config
            raise Refusal(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"audio arrived at {rate:.3g}x real time over the last {cfg.audio_rate_window_seconds:g} s; the server"
                f" needs at least {cfg.min_audio_rate:g}x (min_audio_rate)",
            )

    async def _read_loop(self) -> None:
        stream, scheduler, meter = self.stream, self.service.scheduler, self.meter
        try:
            while True:
                if stream.final_frames is None and not self.capacity.is_set():
                    meter.pause(self.loop.time())  # backpressure: stop reading while the client is ahead
                    await self.capacity.wait()
                    meter.resume(self.loop.time())
                message = await self._next()
                if message is grpc.aio.EOF:
                    if stream.final_frames is None:  # closing without end_of_audio also ends the audio
                        self._end()
                    return
                part = message.WhichOneof("stream_part")
                if part == "audio_with_emotion":
                    body = message.audio_with_emotion
                    emotions = parse_emotion_keys(self._count_keys(body.emotions))
                    if stream.push(body.audio_buffer, emotions):
                        scheduler.notify()
                    meter.add(len(body.audio_buffer) / 2 / stream.settings.sample_rate, self.loop.time())
                    self._check_rate()
                    self._update_capacity()
                elif part == "end_of_audio":
                    self._end()
                elif part == "audio_stream_header":
                    raise ProtocolError("audio_stream_header was sent twice; send it once, first")
                else:
                    raise ProtocolError("a message with no stream_part set")
        except asyncio.CancelledError:
            raise
        except LimitExceeded as exc:
            self.queue.put_nowait(Refusal(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)))
        except Exception as exc:  # ProtocolError, Refusal, or a failure the writer reports as internal
            self.queue.put_nowait(exc)

    def _count_keys(self, keys):
        """``keys`` when within the per-message and per-stream limits; raises :class:`LimitExceeded` otherwise."""
        cfg = self.config
        if len(keys) > cfg.max_emotion_keys_per_message:
            raise LimitExceeded(
                f"{len(keys)} timed emotions in one message; the server's limit is {cfg.max_emotion_keys_per_message}"
                " (max_emotion_keys_per_message)"
            )
        self.keys += len(keys)
        if self.keys > cfg.max_emotion_keys_per_stream:
            raise LimitExceeded(
                f"more than {cfg.max_emotion_keys_per_stream} timed emotions in one stream, the server's limit"
                " (max_emotion_keys_per_stream)"
            )
        return keys

    def _end(self) -> None:
        if self.stream.final_frames is not None:
            raise ProtocolError("end_of_audio was sent twice")
        if self.stream.end():
            self.service.scheduler.notify()
        self.queue.put_nowait("end")  # wakes the writer even when no frame is left to compute
