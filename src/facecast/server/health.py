"""The standard gRPC health service, ``grpc.health.v1.Health``, on facecast's own message descriptors.

Implements the gRPC health-checking protocol (``Check`` and ``Watch``) without the ``grpcio-health-checking``
package, whose releases for the pinned ``grpcio`` cap ``protobuf`` below what ``onnx`` needs. The wire format is the
standard one, so any stock health client (``grpc_health_probe``, Kubernetes gRPC probes, other languages' stubs)
works against it.

The message classes are built at import time from a descriptor written here, in a private descriptor pool and under
a file name of its own, so they never clash with the real ``grpc/health/v1/health.proto`` if that is loaded too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

PACKAGE = "grpc.health.v1"
SERVICE = f"{PACKAGE}.Health"
CHECK_METHOD = f"/{SERVICE}/Check"
WATCH_METHOD = f"/{SERVICE}/Watch"
PROTO_FILE = "facecast/grpc_health_v1.proto"

# HealthCheckResponse.ServingStatus
UNKNOWN = 0
SERVING = 1
NOT_SERVING = 2
SERVICE_UNKNOWN = 3
"""Only ``Watch`` sends it: the service named is not (yet) known to the server."""
STATUS_NAMES = {UNKNOWN: "UNKNOWN", SERVING: "SERVING", NOT_SERVING: "NOT_SERVING", SERVICE_UNKNOWN: "SERVICE_UNKNOWN"}


def file_descriptor_proto() -> descriptor_pb2.FileDescriptorProto:
    """The health protocol's ``.proto`` file, as a descriptor (same package, messages and service as upstream)."""
    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name=PROTO_FILE, package=PACKAGE, syntax="proto3")

    request = proto.message_type.add(name="HealthCheckRequest")
    request.field.add(name="service", json_name="service", number=1, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)

    response = proto.message_type.add(name="HealthCheckResponse")
    status = response.enum_type.add(name="ServingStatus")
    for number, name in STATUS_NAMES.items():
        status.value.add(name=name, number=number)
    response.field.add(name="status", json_name="status", number=1, type=field.TYPE_ENUM, label=field.LABEL_OPTIONAL,
                       type_name=f".{PACKAGE}.HealthCheckResponse.ServingStatus")  # fmt: skip

    service = proto.service.add(name="Health")
    types = {"input_type": f".{PACKAGE}.HealthCheckRequest", "output_type": f".{PACKAGE}.HealthCheckResponse"}
    service.method.add(name="Check", **types)
    service.method.add(name="Watch", server_streaming=True, **types)
    return proto


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(file_descriptor_proto())
FILE_DESCRIPTOR = _POOL.FindFileByName(PROTO_FILE)

HealthCheckRequest: type[Message] = message_factory.GetMessageClass(
    FILE_DESCRIPTOR.message_types_by_name["HealthCheckRequest"]
)
HealthCheckResponse: type[Message] = message_factory.GetMessageClass(
    FILE_DESCRIPTOR.message_types_by_name["HealthCheckResponse"]
)


class HealthServicer:
    """The asyncio health servicer: per-service serving status, ``Check`` and ``Watch``.

    Call :meth:`set` and :meth:`enter_graceful_shutdown` on the server's event loop. The status of the server as a
    whole is the one set for the empty service name ``""``.
    """

    def __init__(self) -> None:
        self._status: dict[str, int] = {}
        self._watchers: dict[str, set[asyncio.Queue[int]]] = {}
        self._shutting_down = False

    def status(self, service: str = "") -> int | None:
        """The status set for ``service``, or None if it was never set."""
        return self._status.get(service)

    async def set(self, service: str, status: int) -> None:
        """Set the serving status of ``service`` and tell its watchers; ignored once shutting down."""
        if self._shutting_down:
            return
        self._update(service, status)

    async def enter_graceful_shutdown(self) -> None:
        """Mark every service NOT_SERVING and ignore later :meth:`set` calls (for the time before the server stops)."""
        if self._shutting_down:
            return
        self._shutting_down = True
        for service in list(self._status):
            self._update(service, NOT_SERVING)

    def _update(self, service: str, status: int) -> None:
        if status not in STATUS_NAMES:
            raise ValueError(f"unknown serving status {status!r}")
        self._status[service] = status
        for queue in self._watchers.get(service, ()):
            queue.put_nowait(status)

    async def Check(self, request: Message, context: grpc.aio.ServicerContext) -> Message:  # noqa: N802
        """The service's current status; NOT_FOUND for a service never set."""
        status = self._status.get(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return HealthCheckResponse(status=status)

    async def Watch(self, request: Message, context: grpc.aio.ServicerContext) -> AsyncIterator[Message]:  # noqa: N802
        """The current status (SERVICE_UNKNOWN for a service never set), then every change, until the call ends."""
        service = request.service
        queue: asyncio.Queue[int] = asyncio.Queue()
        self._watchers.setdefault(service, set()).add(queue)
        try:
            last = None
            status = self._status.get(service, SERVICE_UNKNOWN)
            while True:
                if status != last:
                    yield HealthCheckResponse(status=status)
                    last = status
                status = await queue.get()
        finally:
            watchers = self._watchers.get(service)
            if watchers is not None:
                watchers.discard(queue)
                if not watchers:
                    del self._watchers[service]

    def watchers(self, service: str = "") -> int:
        """How many ``Watch`` calls follow ``service`` now."""
        return len(self._watchers.get(service, ()))


def add_health_servicer_to_server(servicer: HealthServicer, server: grpc.aio.Server) -> None:
    """Serve ``servicer`` as ``grpc.health.v1.Health`` on ``server``."""
    request, response = HealthCheckRequest.FromString, HealthCheckResponse.SerializeToString
    handlers = {
        "Check": grpc.unary_unary_rpc_method_handler(servicer.Check, request, response),
        "Watch": grpc.unary_stream_rpc_method_handler(servicer.Watch, request, response),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))


class HealthStub:
    """A client for ``grpc.health.v1.Health`` on a ``grpc.Channel`` or a ``grpc.aio.Channel``.

    ``Check(HealthCheckRequest(service=...))`` answers one ``HealthCheckResponse``; ``Watch(...)`` streams them.
    """

    def __init__(self, channel: grpc.Channel | grpc.aio.Channel) -> None:
        request, response = HealthCheckRequest.SerializeToString, HealthCheckResponse.FromString
        self.Check = channel.unary_unary(CHECK_METHOD, request_serializer=request, response_deserializer=response)
        self.Watch = channel.unary_stream(WATCH_METHOD, request_serializer=request, response_deserializer=response)


def check(channel: grpc.Channel, service: str = "", timeout: float | None = None) -> int:
    """The serving status of ``service`` over a blocking channel (raises ``grpc.RpcError``, NOT_FOUND if unknown)."""
    return HealthStub(channel).Check(HealthCheckRequest(service=service), timeout=timeout).status
