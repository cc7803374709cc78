"""Hostile gRPC clients (issue 20, items 6-8 and the TLS part of 15): emotion-key floods, trickling clients, the
status codes of refusals, and bad TLS files.

A real ``grpc.aio`` server in this process serves the small test model; the attacks on gRPC's asyncio client run in
a child process (``tests/grpc_attacks.py``), as that client cannot share a process with this server's event loop.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

grpc = pytest.importorskip("grpc")
pytest.importorskip("nvidia_audio2face_3d")

from nvidia_ace import status_pb2  # noqa: E402
from nvidia_audio2face_3d import audio2face_pb2_grpc  # noqa: E402

from facecast.audio import pcm16_to_float  # noqa: E402
from facecast.server import ConfigError, ServerConfig, serve  # noqa: E402
from facecast.server.guard import AudioRateMeter  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import grpc_attacks as attacks  # noqa: E402

ATTACKS = Path(__file__).with_name("grpc_attacks.py")


def _attack(address: str, name: str, **kwargs) -> list[dict]:
    """Run one attack of ``grpc_attacks.py`` in a child process; its outcomes."""
    proc = subprocess.run([sys.executable, str(ATTACKS), address, name, json.dumps(kwargs)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _call(address, requests, metadata=None):
    """Sync client: (answers, status code, details)."""
    answers = []
    with grpc.insecure_channel(address) as channel:
        call = audio2face_pb2_grpc.A2FControllerServiceStub(channel).ProcessAudioStream(
            iter(requests), metadata=metadata
        )
        try:
            for answer in call:
                answers.append(answer)
        except grpc.RpcError as exc:
            return answers, exc.code(), exc.details()
        return answers, call.code(), call.details()


def _wait(predicate, timeout=20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _idle(srv) -> bool:
    return srv.active_streams == 0 and srv.scheduler.num_lanes == 0


@pytest.fixture
def start(small_model):
    """``start(**settings)`` serves the small model; every server is stopped after the test, and must be idle."""
    servers = []

    def make(**settings):
        srv = serve(ServerConfig(port=0, **settings), model=small_model)
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        assert _wait(lambda s=srv: _idle(s)), "a stream leaked"
        srv.stop()


def _good(seconds=0.4):
    pcm = attacks.tone(seconds, seed=3)
    return pcm, [attacks.header(), attacks.audio(pcm), attacks.END]


# -- item 6: emotion-key floods ----------------------------------------------------------------------------------


def test_the_red_team_key_flood_is_refused_before_its_keys_are_parsed(start):
    srv = start()
    flood = attacks.audio(attacks.tone(0.1), 140_000)
    assert len(flood.SerializeToString()) > 3_000_000
    answers, code, details = _call(srv.address, [attacks.header(), flood, attacks.END])
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (code, details)
    assert "140000 timed emotions in one message" in details and "max_emotion_keys_per_message" in details
    assert answers[-1].status.code == status_pb2.Status.ERROR  # the same message in band, for ACE clients
    assert srv.controller.refusals["RESOURCE_EXHAUSTED"] == 1


def test_key_limits_per_message_and_per_stream(start, small_model):
    srv = start(max_emotion_keys_per_message=50, max_emotion_keys_per_stream=120)
    pcm = attacks.tone(0.4, seed=3)
    half = len(pcm) // 2 & ~1
    # within both limits: accepted, and the keys shape the frames
    ok, code, _ = _call(srv.address, [attacks.header(), attacks.audio(pcm[:half], 50),
                                      attacks.audio(pcm[half:], 50, start=0.2), attacks.END])  # fmt: skip
    assert code == grpc.StatusCode.OK and ok[-1].status.code == status_pb2.Status.SUCCESS
    _, code, details = _call(srv.address, [attacks.header(), attacks.audio(pcm, 51), attacks.END])
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_emotion_keys_per_message" in details
    three = [attacks.audio(pcm[:640], 50, start=i) for i in range(3)]
    _, code, details = _call(srv.address, [attacks.header(), *three, attacks.END])
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_emotion_keys_per_stream" in details
    # an oversized single key is an error in what the client sent, not a limit
    huge = attacks.audio(pcm)
    huge.audio_with_emotion.emotions.add(time_code=0.0, emotion={f"x{i}": 0.0 for i in range(400)})
    answers, code, _ = _call(srv.address, [attacks.header(), huge, attacks.END])
    assert code == grpc.StatusCode.OK and "bytes; at most 4096" in answers[-1].status.message


def test_healthy_streams_are_exact_beside_a_key_flood(start, small_model):
    """The flood (in a child process) runs while three streams go on; their frames are still the offline ones."""
    srv = start(max_streams=8)
    pcm, requests = _good(1.5)
    offline = small_model.animate(pcm16_to_float(np.frombuffer(pcm, "<i2")), blinks=False)
    expected = np.concatenate([offline.skin_weights, offline.tongue_weights], axis=1)
    with ThreadPoolExecutor(4) as pool:
        flood = pool.submit(_attack, srv.address, "key_flood", messages=10, calls=3)
        healthy = [pool.submit(_call, srv.address, requests) for _ in range(3)]
        for future in healthy:
            answers, code, _ = future.result(timeout=120)
            assert code == grpc.StatusCode.OK
            weights = [a.animation_data.skel_animation.blend_shape_weights[0].values for a in answers
                       if a.WhichOneof("stream_part") == "animation_data"]  # fmt: skip
            assert np.abs(np.array(weights) - expected).max() < 1e-5
        outcomes = flood.result(timeout=300)
    assert [o["code"] for o in outcomes] == ["RESOURCE_EXHAUSTED"] * 3, outcomes


# -- item 7: trickling clients, wall time ------------------------------------------------------------------------


def test_audio_rate_meter_windows_and_pauses():
    meter = AudioRateMeter(0.5, 10.0, now=100.0)
    meter.add(1.0, now=101.0)
    assert meter.shortfall(109.0) is None  # the first window is a grace period
    assert meter.shortfall(110.0) == pytest.approx(0.1)  # 1 s of audio in 10 s
    meter.add(6.0, now=110.5)
    assert meter.shortfall(111.0) is None  # 6 s in the last 10 s (the first second has left the window)
    meter.pause(112.0)  # backpressure: 100 s of not reading do not count
    assert meter.clock(212.0) == pytest.approx(12.0)
    meter.resume(212.0)
    assert meter.shortfall(215.0) is None  # reading clock 15: the 6 s key is still inside
    assert meter.shortfall(221.0) == pytest.approx(0.0)
    assert AudioRateMeter(0.0, 1.0, now=0.0).shortfall(50.0) is None  # 0 turns the check off


def test_a_trickling_client_is_ended_and_frees_its_slot(start):
    srv = start(max_streams=2, min_audio_rate=0.5, audio_rate_window_seconds=1.0, idle_timeout_seconds=10.0)
    # 2 bytes every 0.3 s for up to 12 s: each message resets the idle timeout, so only the rate check ends it
    trickle = [attacks.header(), *[attacks.audio(bytes(2))] * 40, attacks.END]
    outcome = {}

    def slow():
        with grpc.insecure_channel(srv.address) as channel:
            call = audio2face_pb2_grpc.A2FControllerServiceStub(channel).ProcessAudioStream(_paced(trickle, 0.3))
            try:
                outcome["answers"] = list(call)
                outcome["code"] = grpc.StatusCode.OK
            except grpc.RpcError as exc:
                outcome["code"], outcome["details"] = exc.code(), exc.details()

    thread = threading.Thread(target=slow)
    started = time.monotonic()
    thread.start()
    thread.join(60)
    assert outcome["code"] == grpc.StatusCode.DEADLINE_EXCEEDED, outcome
    assert "min_audio_rate" in outcome["details"] and "0.5x" in outcome["details"]
    assert time.monotonic() - started < 11.0  # ended by the rate check, well before the 12 s of trickling
    assert _wait(lambda: _idle(srv))


def _paced(requests, seconds):
    for i, request in enumerate(requests):
        if i > 1:
            time.sleep(seconds)
        yield request


def test_real_time_paused_and_held_back_clients_are_not_ended_by_the_rate_check(start):
    srv = start(min_audio_rate=0.25, audio_rate_window_seconds=2.0)
    pcm = attacks.tone(3.0, seed=1)
    chunks = [attacks.audio(pcm[i : i + 3200]) for i in range(0, len(pcm), 3200)]  # 100 ms each

    def paused():  # real time, with a 0.8 s pause: 1.2 s of audio in every 2 s, above 0.25x
        for i, request in enumerate([attacks.header(), *chunks, attacks.END]):
            time.sleep(0.8 if i == 12 else 0.1 if i > 1 else 0.0)
            yield request

    answers, code, details = _call(srv.address, paused())
    assert code == grpc.StatusCode.OK, details
    assert answers[-1].status.code == status_pb2.Status.SUCCESS
    # a client that sends 10 s at once but reads nothing for 3 s: the server reads it only as frames leave
    # (backpressure; 0.5x real time here), and the time it holds back is not held against the client's audio rate
    held = start(min_audio_rate=0.9, audio_rate_window_seconds=1.0, max_pending_frames=4)
    pcm = attacks.tone(10.0, seed=1)
    chunks = [attacks.audio(pcm[i : i + 3200]) for i in range(0, len(pcm), 3200)]
    with grpc.insecure_channel(held.address, options=[("grpc.http2.bdp_probe", 0)]) as channel:
        call = audio2face_pb2_grpc.A2FControllerServiceStub(channel).ProcessAudioStream(
            iter([attacks.header(), *chunks, attacks.END])
        )
        next(call)
        time.sleep(3.0)
        rest = list(call)
    assert rest[-1].status.code == status_pb2.Status.SUCCESS


def test_a_stream_longer_than_max_stream_seconds_is_ended(start):
    srv = start(max_stream_seconds=1.5, min_audio_rate=0.0)
    pcm = attacks.tone(4.0)
    chunks = [attacks.audio(pcm[i : i + 3200]) for i in range(0, len(pcm), 3200)]
    _, code, details = _call(srv.address, _paced([attacks.header(), *chunks, attacks.END], 0.1))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED and "max_stream_seconds" in details


def test_trickle_attack_of_the_red_team_frees_every_slot(start):
    """10 clients at 2 bytes every 0.5 s on a 10-slot server: all ended by the rate check; then a stream runs."""
    srv = start(max_streams=10, min_audio_rate=0.5, audio_rate_window_seconds=1.0)
    outcomes = _attack(srv.address, "trickle", clients=10, every=0.5, sends=40)
    assert [o["code"] for o in outcomes] == ["DEADLINE_EXCEEDED"] * 10, outcomes
    assert max(o["seconds"] for o in outcomes) < 15.0  # the trickles would have lasted 20 s
    assert _wait(lambda: _idle(srv))
    _, code, _ = _call(srv.address, _good()[1])
    assert code == grpc.StatusCode.OK


# -- item 8: status codes of refusals ----------------------------------------------------------------------------


def test_token_refusals_reach_an_asyncio_client_as_unauthenticated(start):
    srv = start(token="s3cret")
    for metadata in ([["authorization", "s3cret"]], [["authorization", "Bearer nope"]], None):
        outcomes = _attack(srv.address, "fast_writer", messages=300, attempts=4, metadata=metadata)
        assert {o["code"] for o in outcomes} == {"UNAUTHENTICATED"}, (metadata, outcomes)
        assert all(o["details"] for o in outcomes)
    outcomes = _attack(
        srv.address, "fast_writer", messages=20, attempts=1, metadata=[["authorization", "Bearer s3cret"]]
    )
    assert outcomes[0]["code"] == "OK" and outcomes[0]["status"][0] == status_pb2.Status.SUCCESS


def test_slot_and_protocol_refusals_reach_an_asyncio_client_with_their_code(start):
    srv = start(max_streams=1)
    with grpc.insecure_channel(srv.address) as channel:
        held = audio2face_pb2_grpc.A2FControllerServiceStub(channel).ProcessAudioStream(_paced(_good()[1], 3.0))
        next(held)  # the one slot is taken
        outcomes = _attack(srv.address, "fast_writer", messages=300, attempts=4)
        assert {o["code"] for o in outcomes} == {"RESOURCE_EXHAUSTED"}, outcomes
        assert "1 concurrent streams" in outcomes[0]["details"]
        assert list(held)[-1].status.code == status_pb2.Status.SUCCESS
    # a bad header while the client keeps writing: the in-band error and a clean end, never INTERNAL
    outcomes = _attack(srv.address, "fast_writer", messages=300, attempts=4, bad_header=True)
    assert {o["code"] for o in outcomes} == {"OK"}, outcomes
    assert all("channel_count must be 1" in o["status"][1] for o in outcomes)


def test_oversized_messages_are_resource_exhausted(start):
    srv = start()
    for size in (4 * 1024 * 1024 + 2, 100 * 1024 * 1024):
        _, code, details = _call(srv.address, [attacks.header(), attacks.audio(bytes(size)), attacks.END])
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (size, code, details)
        assert "larger than max" in details
    _, code, _ = _call(srv.address, _good()[1])
    assert code == grpc.StatusCode.OK


def test_undecodable_request_is_an_error_in_band(start):
    srv = start()
    with grpc.insecure_channel(srv.address) as channel:
        raw = channel.stream_stream("/nvidia_ace.services.a2f_controller.v1.A2FControllerService/ProcessAudioStream")
        answers = list(raw(iter([b"\xff\xff\xff"])))
    from nvidia_audio2face_3d import messages_pb2

    last = messages_pb2.A2F3DAnimationDataStream.FromString(answers[-1])
    assert last.status.code == status_pb2.Status.ERROR and "not an AudioWithEmotionStream" in last.status.message


# -- item 15: bad TLS files --------------------------------------------------------------------------------------


def test_bad_tls_files_are_one_line_naming_the_file(tmp_path, small_model):
    from test_server import _self_signed

    cert, key, _, _ = _self_signed(tmp_path, "server")
    _, other_key, _, _ = _self_signed(tmp_path, "other")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    broken = tmp_path / "broken.crt"
    broken.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_text("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n")
    cases = [
        (dict(tls_cert=str(garbage), tls_key=key), f"tls_cert {garbage}: not a PEM certificate"),
        (dict(tls_cert=str(broken), tls_key=key), f"tls_cert {broken}: not a valid PEM certificate"),
        (dict(tls_cert=cert, tls_key=str(garbage)), f"tls_key {garbage}: not a PEM private key"),
        (dict(tls_cert=cert, tls_key=other_key), f"tls_key {other_key}: does not match the certificate"),
        (dict(tls_cert=cert, tls_key=str(encrypted)), f"tls_key {encrypted}: the key is encrypted"),
        (dict(tls_cert=cert, tls_key=key, tls_client_ca=str(garbage)), f"tls_client_ca {garbage}: not a PEM"),
    ]
    for settings, needle in cases:
        with pytest.raises(ConfigError) as info:
            serve(ServerConfig(port=0, **settings), model=small_model)
        assert needle in str(info.value)


def test_cli_bad_tls_certificate_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.crt"
    bad.write_text("garbage\n")
    proc = subprocess.run([sys.executable, "-m", "facecast", "serve", "--grpc", "0", "--tls-cert", str(bad),
                           "--tls-key", str(bad)], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"facecast: error: tls_cert {bad}: not a PEM certificate (no '-----BEGIN CERTIFICATE-----' block)"]
