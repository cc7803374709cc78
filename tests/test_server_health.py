"""facecast's own gRPC health service (``grpc.health.v1.Health``): Check, Watch, shutdown and wire compatibility.

The live-server tests start facecast's app; the others serve :class:`HealthServicer` alone on the app's gRPC event
loop. When ``grpcio-health-checking`` is installed (it is optional), its stock stub and servicer are used to show
that facecast speaks the standard protocol in both directions.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import time

import pytest

grpc = pytest.importorskip("grpc")
pytest.importorskip("nvidia_audio2face_3d")

from google.protobuf import descriptor_pb2  # noqa: E402

from facecast.server import ServerConfig, serve  # noqa: E402
from facecast.server import health as fh  # noqa: E402
from facecast.server.app import _LOOP, SERVICE_NAMES  # noqa: E402

DEADLINE = 20.0


def _on(loop: asyncio.AbstractEventLoop, coro):
    """Run ``coro`` on the gRPC event-loop thread and return its result."""
    return asyncio.run_coroutine_threadsafe(coro, loop).result(DEADLINE)


def _wait(predicate, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture(scope="module")
def server(small_model):
    srv = serve(ServerConfig(port=0), model=small_model)
    yield srv
    srv.stop()


@contextlib.contextmanager
def _serve_alone(servicer, add):
    """Start a bare grpc.aio server with one health servicer on the app's loop; yields (loop, address)."""
    loop = _LOOP.acquire()

    async def start():
        srv = grpc.aio.server()
        add(servicer, srv)
        port = srv.add_insecure_port("127.0.0.1:0")
        await srv.start()
        return srv, port

    try:
        srv, port = _on(loop, start())
    except BaseException:
        _LOOP.release()
        raise
    try:
        yield loop, f"127.0.0.1:{port}"
    finally:
        _on(loop, srv.stop(0))
        _LOOP.release()


@pytest.fixture
def alone():
    """facecast's servicer alone: (servicer, loop, address)."""
    servicer = fh.HealthServicer()
    with _serve_alone(servicer, fh.add_health_servicer_to_server) as (loop, address):
        yield servicer, loop, address


# -- the message schema ------------------------------------------------------------------------------------------------


def test_messages_round_trip_and_use_the_standard_names():
    assert fh.HealthCheckRequest.DESCRIPTOR.full_name == "grpc.health.v1.HealthCheckRequest"
    assert fh.HealthCheckResponse.DESCRIPTOR.full_name == "grpc.health.v1.HealthCheckResponse"
    assert fh.HealthCheckResponse.SERVING == fh.SERVING == 1
    assert fh.HealthCheckResponse.SERVICE_UNKNOWN == fh.SERVICE_UNKNOWN == 3
    assert fh.HealthCheckRequest(service="a.B").SerializeToString() == b"\n\x03a.B"
    assert fh.HealthCheckResponse(status=fh.NOT_SERVING).SerializeToString() == b"\x08\x02"
    assert fh.HealthCheckResponse.FromString(b"\x08\x03").status == fh.SERVICE_UNKNOWN
    assert fh.FILE_DESCRIPTOR.name == "facecast/grpc_health_v1.proto"
    assert fh.FILE_DESCRIPTOR.services_by_name["Health"].methods_by_name["Watch"].server_streaming


def test_schema_matches_the_upstream_proto():
    health_pb2 = pytest.importorskip("grpc_health.v1.health_pb2")
    upstream = descriptor_pb2.FileDescriptorProto()
    health_pb2.DESCRIPTOR.CopyToProto(upstream)
    ours = fh.file_descriptor_proto()
    for message in ours.message_type:
        for field in message.field:
            field.ClearField("json_name")
    assert ours.package == upstream.package
    assert list(ours.message_type) == list(upstream.message_type)
    assert list(ours.service) == list(upstream.service)


def test_the_server_needs_no_grpc_health_package():
    code = (
        "import sys; sys.modules['grpc_health'] = None\n"
        "import facecast.server.app, facecast.server.health\n"
        "assert not any(m.startswith('grpc_health.') for m in sys.modules), 'grpc_health imported'\n"
        "print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


# -- facecast's app, facecast's client -------------------------------------------------------------------------------


def test_live_server_check(server):
    with grpc.insecure_channel(server.address) as channel:
        stub = fh.HealthStub(channel)
        for service in ("",) + SERVICE_NAMES:
            assert stub.Check(fh.HealthCheckRequest(service=service), timeout=DEADLINE).status == fh.SERVING
        assert fh.check(channel, timeout=DEADLINE) == fh.SERVING
        with pytest.raises(grpc.RpcError) as info:
            fh.check(channel, "no.such.Service", timeout=DEADLINE)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_live_server_watch(server):
    with grpc.insecure_channel(server.address) as channel:
        stub = fh.HealthStub(channel)
        call = stub.Watch(fh.HealthCheckRequest(service=SERVICE_NAMES[0]), timeout=DEADLINE)
        assert next(call).status == fh.SERVING
        call.cancel()
        unknown = stub.Watch(fh.HealthCheckRequest(service="no.such.Service"), timeout=DEADLINE)
        assert next(unknown).status == fh.SERVICE_UNKNOWN
        unknown.cancel()


def test_shutdown_streams_not_serving(small_model):
    srv = serve(ServerConfig(port=0), model=small_model)
    stopper = threading.Thread(target=srv.stop)
    try:
        with grpc.insecure_channel(srv.address) as channel:
            call = fh.HealthStub(channel).Watch(fh.HealthCheckRequest(), timeout=DEADLINE)
            assert next(call).status == fh.SERVING
            stopper.start()
            assert next(call).status == fh.NOT_SERVING
            with pytest.raises(grpc.RpcError):  # then the server goes away
                next(call)
    finally:
        if stopper.ident:
            stopper.join(DEADLINE)
        srv.stop()  # a no-op once the thread has stopped it
    assert srv.wait(0)


# -- the servicer on its own -----------------------------------------------------------------------------------------


def test_check_answers_what_was_set(alone):
    servicer, loop, address = alone
    with grpc.insecure_channel(address) as channel:
        with pytest.raises(grpc.RpcError) as info:
            fh.check(channel, "", timeout=DEADLINE)  # nothing set yet, not even the server as a whole
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        _on(loop, servicer.set("a.B", fh.NOT_SERVING))
        assert fh.check(channel, "a.B", timeout=DEADLINE) == fh.NOT_SERVING
        _on(loop, servicer.set("a.B", fh.SERVING))
        assert fh.check(channel, "a.B", timeout=DEADLINE) == fh.SERVING
    with pytest.raises(ValueError):
        _on(loop, servicer.set("a.B", 7))


def test_watch_streams_unknown_then_each_change(alone):
    servicer, loop, address = alone
    with grpc.insecure_channel(address) as channel:
        call = fh.HealthStub(channel).Watch(fh.HealthCheckRequest(service="a.B"), timeout=DEADLINE)
        assert next(call).status == fh.SERVICE_UNKNOWN
        assert _wait(lambda: servicer.watchers("a.B") == 1)
        for status in (fh.SERVING, fh.SERVING, fh.NOT_SERVING, fh.SERVING):  # a repeat is not sent again
            _on(loop, servicer.set("a.B", status))
        assert [next(call).status for _ in range(3)] == [fh.SERVING, fh.NOT_SERVING, fh.SERVING]
        _on(loop, servicer.set("other.Service", fh.NOT_SERVING))  # another service's change is not sent
        _on(loop, servicer.set("a.B", fh.NOT_SERVING))
        assert next(call).status == fh.NOT_SERVING
        call.cancel()
        assert _wait(lambda: servicer.watchers("a.B") == 0), "a cancelled Watch left its queue behind"


def test_graceful_shutdown_sets_everything_not_serving_for_good(alone):
    servicer, loop, address = alone
    for service in ("", "a.B", "c.D"):
        _on(loop, servicer.set(service, fh.SERVING))
    with grpc.insecure_channel(address) as channel:
        call = fh.HealthStub(channel).Watch(fh.HealthCheckRequest(service="c.D"), timeout=DEADLINE)
        assert next(call).status == fh.SERVING
        _on(loop, servicer.enter_graceful_shutdown())
        assert next(call).status == fh.NOT_SERVING
        _on(loop, servicer.set("a.B", fh.SERVING))  # ignored from now on
        _on(loop, servicer.set("new.Service", fh.SERVING))
        for service in ("", "a.B", "c.D"):
            assert fh.check(channel, service, timeout=DEADLINE) == fh.NOT_SERVING
        with pytest.raises(grpc.RpcError) as info:
            fh.check(channel, "new.Service", timeout=DEADLINE)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        call.cancel()


# -- wire compatibility with grpcio-health-checking (optional) -------------------------------------------------------


def test_stock_client_against_facecast_server(server):
    health_pb2 = pytest.importorskip("grpc_health.v1.health_pb2")
    health_pb2_grpc = pytest.importorskip("grpc_health.v1.health_pb2_grpc")
    with grpc.insecure_channel(server.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("",) + SERVICE_NAMES:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=DEADLINE)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as info:
            stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=DEADLINE)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        call = stub.Watch(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=DEADLINE)
        assert next(call).status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
        call.cancel()


def test_stock_client_sees_facecast_changes(alone):
    health_pb2 = pytest.importorskip("grpc_health.v1.health_pb2")
    health_pb2_grpc = pytest.importorskip("grpc_health.v1.health_pb2_grpc")
    servicer, loop, address = alone
    with grpc.insecure_channel(address) as channel:
        call = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service="a.B"), timeout=DEADLINE)
        assert next(call).status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
        _on(loop, servicer.set("a.B", fh.SERVING))
        assert next(call).status == health_pb2.HealthCheckResponse.SERVING
        _on(loop, servicer.enter_graceful_shutdown())
        assert next(call).status == health_pb2.HealthCheckResponse.NOT_SERVING
        call.cancel()


def test_facecast_client_against_stock_server():
    health = pytest.importorskip("grpc_health.v1.health")
    health_pb2 = pytest.importorskip("grpc_health.v1.health_pb2")
    health_pb2_grpc = pytest.importorskip("grpc_health.v1.health_pb2_grpc")
    stock = health.aio.HealthServicer()
    with _serve_alone(stock, health_pb2_grpc.add_HealthServicer_to_server) as (loop, address):
        _on(loop, stock.set("a.B", health_pb2.HealthCheckResponse.NOT_SERVING))
        with grpc.insecure_channel(address) as channel:
            assert fh.check(channel, "a.B", timeout=DEADLINE) == fh.NOT_SERVING
            with pytest.raises(grpc.RpcError) as info:
                fh.check(channel, "no.such.Service", timeout=DEADLINE)
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
            call = fh.HealthStub(channel).Watch(fh.HealthCheckRequest(service="a.B"), timeout=DEADLINE)
            assert next(call).status == fh.NOT_SERVING
            _on(loop, stock.set("a.B", health_pb2.HealthCheckResponse.SERVING))
            assert next(call).status == fh.SERVING
            call.cancel()
