"""The gRPC services: ``A2FControllerService.ProcessAudioStream``, ``A2XExportConfigService`` and token auth.

All handlers run on the server's asyncio event loop; inference and the face pipeline run on the scheduler's
threads, which hand finished frames back with ``loop.call_soon_threadsafe``. One call's work is
:class:`facecast.server.stream_call.StreamCall`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging

import grpc
from nvidia_audio2face_3d import a2x_export_config_pb2, a2x_export_config_pb2_grpc

from facecast.model import Model
from facecast.server.config import ServerConfig
from facecast.server.export_config import effective_configs, render
from facecast.server.guard import Drainer, Reads, Refusal, retrieve
from facecast.server.protocol import brief_message
from facecast.server.scheduler import BatchScheduler
from facecast.server.stream_call import StreamCall

log = logging.getLogger("facecast.server")

HEALTH_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})
"""Calls that need no token (load balancers and probes)."""


class A2FControllerServicer:
    """``ProcessAudioStream``: header, audio with emotions, end of audio in; header, frames, event, status out.

    Registered with raw-bytes requests (:func:`facecast.server.wire.add_controller`). Refusals (no free slot,
    a limit) end the call with a gRPC status code after the client's pending requests are drained
    (:class:`facecast.server.guard.Drainer`).
    """

    def __init__(self, model: Model, scheduler: BatchScheduler, config: ServerConfig, drainer: Drainer) -> None:
        self.model = model
        self.scheduler = scheduler
        self.config = config
        self.drainer = drainer
        self.active = 0
        """Calls in progress (touched only on the event loop)."""
        self.refusals: dict[str, int] = {}
        """Calls refused so far, by status code name."""

    async def ProcessAudioStream(self, request_iterator, context: grpc.aio.ServicerContext) -> None:  # noqa: N802
        cfg = self.config
        if self.active >= cfg.max_streams:
            message = f"the server is at its limit of {cfg.max_streams} concurrent streams; try again later"
            await self._refuse(context, Reads(context), Refusal(grpc.StatusCode.RESOURCE_EXHAUSTED, message))
        self.active += 1
        call = StreamCall(self, context)
        task = asyncio.ensure_future(call.run())
        task.add_done_callback(retrieve)
        try:
            refusal = clean = None
            try:
                done, _ = await asyncio.wait((task,), timeout=cfg.max_stream_seconds)
                if not done:
                    task.cancel()
                    message = f"the stream ran for the server's limit of {cfg.max_stream_seconds:g} s"
                    refusal = Refusal(grpc.StatusCode.DEADLINE_EXCEEDED, message + " (max_stream_seconds)")
                else:
                    clean = task.result()
            except Refusal as exc:
                refusal = exc
            except asyncio.CancelledError:  # the client cancelled or went away
                task.cancel()
                raise
            except Exception as exc:  # the transport failed under a write: the client is gone
                log.info("a stream ended early: %s: %s", type(exc).__name__, exc)
                return
            finally:
                call.release()  # free the slot before draining
            if refusal is not None:
                await self._refuse(context, call.reads, refusal)
            elif not clean:  # an in-band error status went out; let the client finish writing before the call ends
                await self.drainer.drain(call.reads)
        finally:
            call.reads.cancel()

    async def _refuse(self, context: grpc.aio.ServicerContext, reads: Reads, refusal: Refusal) -> None:
        self.refusals[refusal.code.name] = self.refusals.get(refusal.code.name, 0) + 1
        await self.drainer.drain(reads)
        reads.cancel()
        try:
            await context.abort(refusal.code, brief_message(refusal.message))
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # the call had already ended (gRPC refused an oversized message while draining)
            log.info("refusal not sent (%s: %s)", type(exc).__name__, exc)


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
    """Refuses calls without metadata ``authorization: Bearer <token>`` (UNAUTHENTICATED); health stays open.

    A refused call's requests are never parsed; a streaming one is drained first (:class:`Drainer`).
    """

    def __init__(self, token: str, drainer: Drainer | None = None) -> None:
        self._token = token.encode()
        self._drainer = drainer or Drainer()

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method in HEALTH_METHODS:
            return handler
        values = [v for k, v in (handler_call_details.invocation_metadata or ()) if k.lower() == "authorization"]
        if len(values) == 1 and self._valid(values[0]):
            return handler
        reason = "missing 'authorization: Bearer <token>' metadata" if not values else "invalid bearer token"
        return _refusal(handler, reason, self._drainer)

    def _valid(self, value: str | bytes) -> bool:
        text = value.decode(errors="replace") if isinstance(value, bytes) else value
        scheme, _, credential = text.strip().partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(credential.strip().encode(), self._token)


def _refusal(handler: grpc.RpcMethodHandler, reason: str, drainer: Drainer) -> grpc.RpcMethodHandler:
    """A handler of the same kind as ``handler`` that ends the call with UNAUTHENTICATED (requests stay bytes)."""

    async def refuse(request, context):
        if handler.request_streaming:
            reads = Reads(context)
            await drainer.drain(reads)
            reads.cancel()
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, reason)

    kinds = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    make = kinds[(bool(handler.request_streaming), bool(handler.response_streaming))]
    return make(refuse, request_deserializer=None, response_serializer=handler.response_serializer)
