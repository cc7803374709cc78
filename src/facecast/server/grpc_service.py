"""The gRPC services: ``A2FControllerService.ProcessAudioStream``, ``A2XExportConfigService`` and token auth.

All handlers run on the server's asyncio event loop; inference and the face pipeline run on the scheduler's
threads, which hand finished frames back with ``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time

import grpc
from nvidia_audio2face_3d import a2x_export_config_pb2, a2x_export_config_pb2_grpc, audio2face_pb2_grpc

from facecast.model import Model
from facecast.server.config import ServerConfig
from facecast.server.export_config import effective_configs, render
from facecast.server.protocol import (
    ProtocolError,
    end_event,
    header_message,
    parse_emotions,
    parse_header,
    status_message,
)
from facecast.server.scheduler import BatchScheduler
from facecast.server.session import ServerStream

log = logging.getLogger("facecast.server")

HALF_CLOSE_GRACE_S = 1.0
"""After the last frame, how long to wait for the client to close its side before the final status."""

HEALTH_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})
"""Calls that need no token (load balancers and probes)."""


class _Internal(RuntimeError):
    """A server-side failure while computing a stream's frames."""


class _Stalled(RuntimeError):
    """The client stopped reading answers for longer than the idle timeout."""


class A2FControllerServicer(audio2face_pb2_grpc.A2FControllerServiceServicer):
    """``ProcessAudioStream``: header, audio with emotions, end of audio in; header, frames, event, status out."""

    def __init__(self, model: Model, scheduler: BatchScheduler, config: ServerConfig) -> None:
        self.model = model
        self.scheduler = scheduler
        self.config = config
        self.active = 0
        """Calls in progress (touched only on the event loop)."""

    async def ProcessAudioStream(self, request_iterator, context: grpc.aio.ServicerContext) -> None:  # noqa: N802
        if self.active >= self.config.max_streams:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the server is at its limit of {self.config.max_streams} concurrent streams; try again later",
            )
        self.active += 1
        call = _StreamCall(self, context)
        try:
            await call.run()
        except _Stalled:
            # free the slot now: the status can only leave once the client reads (or goes away)
            call.release()
            timeout = self.config.idle_timeout_seconds
            await context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"the client read no answer for {timeout:g} s (idle timeout)"
            )
        finally:
            call.release()


class _StreamCall:
    """One ProcessAudioStream call: a reader task feeding the stream, and the writer (this coroutine)."""

    def __init__(self, service: A2FControllerServicer, context: grpc.aio.ServicerContext) -> None:
        self.service = service
        self.context = context
        self.config = service.config
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()
        self.capacity = asyncio.Event()
        self.capacity.set()
        self.stream: ServerStream | None = None
        self.reader: asyncio.Task | None = None
        self.written = 0
        self.released = False

    async def run(self) -> None:
        try:
            await self._serve()
        except ProtocolError as exc:
            await self._write(status_message(False, str(exc)))
        except _Internal as exc:
            await self._write(status_message(False, f"internal server error: {exc}"))

    async def _write(self, message) -> None:
        try:
            await asyncio.wait_for(self.context.write(message), self.config.idle_timeout_seconds)
        except asyncio.TimeoutError:
            raise _Stalled() from None

    async def _serve(self) -> None:
        first = await self._read()
        if first is grpc.aio.EOF:
            raise ProtocolError("the stream ended before an audio_stream_header")
        part = first.WhichOneof("stream_part")
        if part != "audio_stream_header":
            raise ProtocolError(f"the first message must be an audio_stream_header, got {part or 'an empty message'}")
        model = self.service.model
        settings = parse_header(first.audio_stream_header, model.pipeline)
        stream = ServerStream(model, settings, self.config.fps, self.config.max_clip_seconds, self._deliver)
        self.stream = stream
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
        if isinstance(item, ProtocolError):
            raise item
        if isinstance(item, BaseException):
            raise _Internal(str(item) or type(item).__name__) from item

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

    async def _read(self):
        try:
            return await asyncio.wait_for(self.context.read(), self.config.idle_timeout_seconds)
        except asyncio.TimeoutError:
            raise ProtocolError(
                f"no message for {self.config.idle_timeout_seconds:g} s (idle timeout); closing the stream"
            ) from None

    async def _read_loop(self) -> None:
        stream, scheduler = self.stream, self.service.scheduler
        try:
            while True:
                if stream.final_frames is None:
                    await self.capacity.wait()  # backpressure: stop reading while the client is ahead
                message = await self._read()
                if message is grpc.aio.EOF:
                    if stream.final_frames is None:  # closing without end_of_audio also ends the audio
                        self._end()
                    return
                part = message.WhichOneof("stream_part")
                if part == "audio_with_emotion":
                    body = message.audio_with_emotion
                    if stream.push(body.audio_buffer, parse_emotions(body.emotions)):
                        scheduler.notify()
                    self._update_capacity()
                elif part == "end_of_audio":
                    self._end()
                elif part == "audio_stream_header":
                    raise ProtocolError("audio_stream_header was sent twice; send it once, first")
                else:
                    raise ProtocolError("a message with no stream_part set")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # ProtocolError, or a failure the writer reports as internal
            self.queue.put_nowait(exc)

    def _end(self) -> None:
        if self.stream.final_frames is not None:
            raise ProtocolError("end_of_audio was sent twice")
        if self.stream.end():
            self.service.scheduler.notify()
        self.queue.put_nowait("end")  # wakes the writer even when no frame is left to compute


class ExportConfigServicer(a2x_export_config_pb2_grpc.A2XExportConfigServiceServicer):
    """``GetConfigs``: the effective model and deployment settings, as YAML or JSON."""

    def __init__(self, model: Model, config: ServerConfig) -> None:
        self.model = model
        self.config = config

    async def GetConfigs(self, request, context):  # noqa: N802
        request_type = a2x_export_config_pb2.ConfigsTypeRequest
        fmt = "json" if request.config_type == request_type.JSON else "yaml"
        for name, settings in effective_configs(self.model, self.config).items():
            yield a2x_export_config_pb2.A2XConfig(name=f"{name}.{fmt}", content=render(settings, fmt))


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls without metadata ``authorization: Bearer <token>`` (UNAUTHENTICATED); health stays open."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method in HEALTH_METHODS:
            return handler
        values = [v for k, v in (handler_call_details.invocation_metadata or ()) if k.lower() == "authorization"]
        if len(values) == 1 and self._valid(values[0]):
            return handler
        reason = "missing 'authorization: Bearer <token>' metadata" if not values else "invalid bearer token"
        return _refusal(handler, reason)

    def _valid(self, value: str | bytes) -> bool:
        text = value.decode(errors="replace") if isinstance(value, bytes) else value
        scheme, _, credential = text.strip().partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(credential.strip().encode(), self._token)


def _refusal(handler: grpc.RpcMethodHandler, reason: str) -> grpc.RpcMethodHandler:
    """A handler of the same kind as ``handler`` that ends the call with UNAUTHENTICATED."""

    async def refuse(request, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, reason)

    kinds = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    make = kinds[(bool(handler.request_streaming), bool(handler.response_streaming))]
    return make(refuse, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)  # fmt: skip
