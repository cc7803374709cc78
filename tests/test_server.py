"""The ACE-compatible gRPC server, driven by a real client built on NVIDIA's stubs over 127.0.0.1."""

from __future__ import annotations

import datetime
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

grpc = pytest.importorskip("grpc")
pytest.importorskip("nvidia_audio2face_3d")

from nvidia_ace import audio_pb2, status_pb2  # noqa: E402
from nvidia_audio2face_3d import (  # noqa: E402
    a2x_export_config_pb2,
    a2x_export_config_pb2_grpc,
    audio2face_pb2_grpc,
    messages_pb2,
)

from facecast.audio import float_to_pcm16_bytes, pcm16_to_float, resample  # noqa: E402
from facecast.constants import ARKIT_NAMES, TONGUE_NAMES  # noqa: E402
from facecast.emotion import EmotionTrack  # noqa: E402
from facecast.face.pipeline import SolveOptions  # noqa: E402
from facecast.server import ConfigError, ServerConfig, serve  # noqa: E402
from facecast.server import health as health_proto  # noqa: E402
from facecast.server.protocol import read_emotion_aggregate  # noqa: E402

SR = 16000
CHUNK_SECONDS = 0.1


def _clip(seconds: float, rate: int = SR, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) * np.sin(2 * np.pi * 180 * t)
    noise = 0.02 * np.random.default_rng(seed).standard_normal(len(t))
    return (tone + noise).astype(np.float32)


def _header(rate=SR, channels=1, bits=16, fmt=0, face=None, mult=None, off=None, clamp=False):
    return messages_pb2.AudioWithEmotionStream(
        audio_stream_header=messages_pb2.AudioWithEmotionStreamHeader(
            audio_header=audio_pb2.AudioHeader(
                audio_format=fmt, channel_count=channels, samples_per_second=rate, bits_per_sample=bits
            ),
            face_params=messages_pb2.FaceParameters(float_params=face or {}),
            blendshape_params=messages_pb2.BlendShapeParameters(
                bs_weight_multipliers=mult or {}, bs_weight_offsets=off or {}, enable_clamping_bs_weight=clamp
            ),
        )
    )


def _audio(pcm: bytes, emotions=()):
    keys = [messages_pb2.EmotionWithTimeCode(time_code=t, emotion=e) for t, e in emotions]
    body = messages_pb2.AudioWithEmotion(audio_buffer=pcm, emotions=keys)
    return messages_pb2.AudioWithEmotionStream(audio_with_emotion=body)


END = messages_pb2.AudioWithEmotionStream(end_of_audio=messages_pb2.AudioWithEmotionStream.EndOfAudio())


def _messages(pcm: bytes, rate=SR, emotions=(), header=None, end=True):
    yield header if header is not None else _header(rate)
    step = int(rate * CHUNK_SECONDS) * 2
    for i in range(0, len(pcm), step):
        yield _audio(pcm[i : i + step], emotions if i == 0 else ())
    if end:
        yield END


def _run(address, requests, metadata=None, credentials=None, options=()):
    channel = (grpc.secure_channel(address, credentials, options=options) if credentials
               else grpc.insecure_channel(address))  # fmt: skip
    with channel:
        stub = audio2face_pb2_grpc.A2FControllerServiceStub(channel)
        return list(stub.ProcessAudioStream(requests, metadata=metadata))


def _refused(address, requests, code, needle: str, metadata=None):
    """The call ends with gRPC status ``code`` whose details hold ``needle``; returns the answers before it."""
    answers = []
    with grpc.insecure_channel(address) as channel:
        call = audio2face_pb2_grpc.A2FControllerServiceStub(channel).ProcessAudioStream(requests, metadata=metadata)
        with pytest.raises(grpc.RpcError) as info:
            for answer in call:
                answers.append(answer)
    assert info.value.code() == code, (info.value.code(), info.value.details())
    assert needle in info.value.details(), info.value.details()
    return answers


def _parts(answers):
    return [a.WhichOneof("stream_part") for a in answers]


def _weights(answers) -> np.ndarray:
    return np.array([a.animation_data.skel_animation.blend_shape_weights[0].values for a in answers
                     if a.WhichOneof("stream_part") == "animation_data"])  # fmt: skip


def _assert_success(answers, frames: int):
    parts = _parts(answers)
    assert parts == ["animation_data_stream_header"] + ["animation_data"] * frames + ["event", "status"], parts[-3:]
    assert answers[-2].event.event_type == messages_pb2.END_OF_A2F_AUDIO_PROCESSING
    assert answers[-1].status.code == status_pb2.Status.SUCCESS


def _assert_error(answers, needle: str):
    assert answers, "no answer at all"
    status = answers[-1]
    assert status.WhichOneof("stream_part") == "status"
    assert status.status.code == status_pb2.Status.ERROR
    assert needle in status.status.message, status.status.message
    assert "event" not in _parts(answers)


def _wait(predicate, timeout=10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture(scope="module")
def server(small_model):
    srv = serve(ServerConfig(port=0, max_streams=6, idle_timeout_seconds=10.0), model=small_model)
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def no_leaks(server):
    """After every test: no stream left on the server, no thread left behind."""
    before = threading.active_count()
    yield
    assert _wait(lambda: server.active_streams == 0 and server.scheduler.num_lanes == 0), "a stream leaked"
    assert _wait(lambda: threading.active_count() <= before), [t.name for t in threading.enumerate()]


@pytest.fixture(scope="module")
def good(small_model):
    """A short clip, its PCM and the offline animation of the same samples."""
    pcm = float_to_pcm16_bytes(_clip(0.4, seed=3))
    offline = small_model.animate(pcm16_to_float(pcm), blinks=False)
    return pcm, np.concatenate([offline.skin_weights, offline.tongue_weights], axis=1)


def _check_good(result, good):
    _assert_success(result, len(good[1]))
    assert np.abs(_weights(result) - good[1]).max() < 1e-5


# -- the protocol, and parity with offline mode ------------------------------------------------------------------


def test_round_trip_matches_offline(server, small_model):
    audio = _clip(1.1)
    pcm = float_to_pcm16_bytes(audio)
    face = {"skinStrength": 0.75, "lowerFaceSmoothing": 0.0, "tongueStrength": 1.25, "eyelidOpenOffset": 0.125}
    emotions = [(0.0, {"Joy": 0.5}), (0.75, {"Anger": 1.0, "OutOfBreath": 0.25})]
    header = _header(face=face, mult={"JawOpen": 2.0}, off={"MouthClose": 0.25, "TongueTipUp": 0.5})
    started = time.time()
    answers = _run(server.address, _messages(pcm, emotions=emotions, header=header))

    track = EmotionTrack().add(0.0, {"joy": 0.5}).add(0.75, {"anger": 1.0, "outofbreath": 0.25})
    options = SolveOptions({"jawOpen": 2.0}, {"mouthClose": 0.25, "tongueTipUp": 0.5})
    offline = small_model.animate(pcm16_to_float(pcm), emotion=track, face_params=face, blinks=False,
                                  blendshape_params=options)  # fmt: skip
    expected = np.concatenate([offline.skin_weights, offline.tongue_weights], axis=1)
    _assert_success(answers, len(offline))

    head = answers[0].animation_data_stream_header
    names = list(head.skel_animation_header.blend_shapes)
    assert names == [n[0].upper() + n[1:] for n in ARKIT_NAMES + TONGUE_NAMES]
    assert names[0] == "EyeBlinkLeft" and names[52] == "TongueTipUp" and len(names) == 68
    assert (head.audio_header.samples_per_second, head.audio_header.channel_count) == (SR, 1)
    assert head.audio_header.bits_per_sample == 16
    assert started - 1 <= head.start_time_code_since_epoch <= time.time()

    frames = [a.animation_data for a in answers[1:-2]]
    weights = _weights(answers)
    assert weights.shape == (len(offline), 68)
    assert np.abs(weights - expected).max() < 1e-5
    times = [f.skel_animation.blend_shape_weights[0].time_code for f in frames]
    assert np.allclose(times, offline.times)
    assert b"".join(f.audio.audio_buffer for f in frames) == pcm  # the echo covers the input exactly once
    assert len(frames[1].audio.audio_buffer) == 2 * (1066 - 533)
    assert frames[3].audio.time_code == pytest.approx(1600 / SR)

    aggregate = read_emotion_aggregate(frames[-1].metadata["emotion_aggregate"])
    assert aggregate.a2f_smoothed_output[0].emotion["Anger"] == pytest.approx(1.0)
    assert aggregate.input_emotions[0].emotion["OutOfBreath"] == pytest.approx(0.25)
    first = read_emotion_aggregate(frames[0].metadata["emotion_aggregate"])
    assert first.a2f_smoothed_output[0].emotion["Joy"] == pytest.approx(0.5)


def test_44k_input_is_resampled_like_offline(server, small_model):
    rate = 44100
    pcm = float_to_pcm16_bytes(_clip(0.7, rate, seed=1))
    answers = _run(server.address, _messages(pcm, rate=rate))
    # offline on the same samples resampled by facecast.audio.resample (soxr HQ). soxr's streaming resampler,
    # which the server runs chunk by chunk, gives the same samples as its one-shot call (checked here), so
    # the only difference left is ONNX Runtime's batch composition (~1e-7): 1e-5 is the same bound as at 16 kHz.
    audio16 = resample(pcm16_to_float(pcm), rate, SR)
    import soxr

    stream = soxr.ResampleStream(rate, SR, 1, dtype="float32", quality="HQ")
    pieces = [stream.resample_chunk(pcm16_to_float(pcm[i : i + 8820])) for i in range(0, len(pcm), 8820)]
    streamed = np.concatenate(pieces + [stream.resample_chunk(np.zeros(0, np.float32), last=True)])
    assert streamed.shape == audio16.shape and np.abs(streamed - audio16).max() < 1e-6

    offline = small_model.animate(audio16, blinks=False)
    _assert_success(answers, len(offline))
    expected = np.concatenate([offline.skin_weights, offline.tongue_weights], axis=1)
    assert np.abs(_weights(answers) - expected).max() < 1e-5
    head = answers[0].animation_data_stream_header
    assert head.audio_header.samples_per_second == rate
    assert b"".join(a.animation_data.audio.audio_buffer for a in answers[1:-2]) == pcm


def test_late_emotion_keys_apply_to_later_frames(server):
    pcm = float_to_pcm16_bytes(_clip(1.2))
    step = int(SR * CHUNK_SECONDS) * 2
    first_frame = threading.Event()

    def requests():
        yield _header()
        for i in range(0, len(pcm), step):
            if i == 8 * step:  # the chunk that starts at 0.8 s carries a key, sent once frames are coming back
                assert first_frame.wait(30)
            yield _audio(pcm[i : i + step], [(0.8, {"Joy": 1.0})] if i == 8 * step else [])
        yield END

    joy = []
    with grpc.insecure_channel(server.address) as channel:
        for answer in audio2face_pb2_grpc.A2FControllerServiceStub(channel).ProcessAudioStream(requests()):
            if answer.WhichOneof("stream_part") == "animation_data":
                first_frame.set()
                aggregate = read_emotion_aggregate(answer.animation_data.metadata["emotion_aggregate"])
                joy.append(aggregate.a2f_smoothed_output[0].emotion["Joy"])
    assert joy[0] == 0.0  # computed before the key arrived: no key yet, neutral
    assert joy[-1] == pytest.approx(1.0)  # computed after: the key holds to the end of the clip
    assert len(joy) == 36


# -- invalid streams end in an error status, and a concurrent stream is unaffected --------------------------------

_BAD = {
    "audio first": (lambda pcm: iter([_audio(pcm), END]), "first message must be an audio_stream_header"),
    "no messages": (lambda pcm: iter([]), "ended before an audio_stream_header"),
    "not pcm": (lambda pcm: _messages(pcm, header=_header(fmt=3)), "only AUDIO_FORMAT_PCM"),
    "stereo": (lambda pcm: _messages(pcm, header=_header(channels=2)), "channel_count must be 1"),
    "8-bit": (lambda pcm: _messages(pcm, header=_header(bits=8)), "bits_per_sample must be 16"),
    "no rate": (lambda pcm: _messages(pcm, header=_header(rate=0)), "samples_per_second"),
    "empty audio": (lambda pcm: _messages(b""), "no audio was received"),
    "empty chunks": (lambda pcm: iter([_header(), _audio(b""), END]), "no audio was received"),
    "odd bytes": (lambda pcm: iter([_header(), _audio(pcm[:3]), END]), "whole 16-bit samples"),
    "face param range": (lambda pcm: _messages(pcm, header=_header(face={"skinStrength": 5.0})), "skin_strength"),
    "face param name": (lambda pcm: _messages(pcm, header=_header(face={"noseLength": 1.0})), "noseLength"),
    "blendshape name": (lambda pcm: _messages(pcm, header=_header(mult={"JawOpn": 2.0})), "JawOpn"),
    "emotion name": (lambda pcm: _messages(pcm, emotions=[(0.0, {"Happiness": 1.0})]), "Happiness"),
    "emotion weight": (lambda pcm: _messages(pcm, emotions=[(0.0, {"Joy": 2.0})]), "[0, 1]"),
    "header twice": (lambda pcm: iter([_header(), _audio(pcm), _header(), END]), "sent twice"),
    "end twice": (lambda pcm: iter([_header(), _audio(pcm), END, END]), "end_of_audio was sent twice"),
    "audio after end": (lambda pcm: iter([_header(), _audio(pcm), END, _audio(pcm)]), "after end_of_audio"),
}


@pytest.mark.parametrize("case", list(_BAD))
def test_invalid_stream_ends_with_error_status(server, good, case):
    make, needle = _BAD[case]
    with ThreadPoolExecutor(1) as pool:
        ok = pool.submit(_run, server.address, _messages(good[0]))
        answers = _run(server.address, make(good[0]))  # completes: an error status, then a clean close
        _assert_error(answers, needle)
        _check_good(ok.result(timeout=60), good)


def test_client_cancel_frees_the_session(server, good):
    release = threading.Event()
    pcm = float_to_pcm16_bytes(_clip(2.0))

    def requests():
        yield _header()
        yield _audio(pcm[: len(pcm) // 2])
        release.wait(30)  # keep the stream open until the client has cancelled

    with ThreadPoolExecutor(1) as pool, grpc.insecure_channel(server.address) as channel:
        ok = pool.submit(_run, server.address, _messages(good[0]))
        call = audio2face_pb2_grpc.A2FControllerServiceStub(channel).ProcessAudioStream(requests())
        assert next(call).WhichOneof("stream_part") == "animation_data_stream_header"
        assert next(call).WhichOneof("stream_part") == "animation_data"
        assert server.active_streams >= 1
        call.cancel()
        release.set()
        with pytest.raises(grpc.RpcError) as info:
            list(call)
        assert info.value.code() == grpc.StatusCode.CANCELLED
        _check_good(ok.result(timeout=60), good)
    assert _wait(lambda: server.active_streams == 0 and server.scheduler.num_lanes == 0)


def test_backpressure_stops_reading_a_client_that_runs_ahead(small_model):
    srv = serve(ServerConfig(port=0, max_pending_frames=8), model=small_model)
    try:
        pcm = float_to_pcm16_bytes(_clip(20.0))
        # without BDP probing the client's receive window stays at 64 KiB (about 40 frames), so the bound is exact
        with grpc.insecure_channel(srv.address, options=[("grpc.http2.bdp_probe", 0)]) as channel:
            call = audio2face_pb2_grpc.A2FControllerServiceStub(channel).ProcessAudioStream(_messages(pcm))
            next(call)  # the header; then read nothing for a while
            assert _wait(lambda: srv.scheduler.num_lanes == 1)
            lane = srv.scheduler.lanes()[0]
            time.sleep(2.0)
            held = lane.seconds_received
            # the server has read the frames in the client's window, its backlog bound and one message, not the
            # 20 s the client offers (gRPC's client library queues the rest on the client side)
            assert 0.3 < held < 3.0, held
            for _ in range(60):  # reading frames lets the server read more audio
                assert next(call).WhichOneof("stream_part") == "animation_data"
            assert _wait(lambda: lane.seconds_received > held + 1.0)
            call.cancel()
    finally:
        srv.stop()


def test_a_client_that_stops_reading_is_dropped(small_model):
    srv = serve(ServerConfig(port=0, max_pending_frames=4, idle_timeout_seconds=0.5), model=small_model)
    try:
        pcm = float_to_pcm16_bytes(_clip(20.0))
        # without BDP probing the client's receive window stays at 64 KiB, so the server's writes block early
        with grpc.insecure_channel(srv.address, options=[("grpc.http2.bdp_probe", 0)]) as channel:
            call = audio2face_pb2_grpc.A2FControllerServiceStub(channel).ProcessAudioStream(_messages(pcm))
            next(call)
            assert _wait(lambda: srv.active_streams == 1)
            assert _wait(lambda: srv.active_streams == 0 and srv.scheduler.num_lanes == 0, timeout=20)
            with pytest.raises(grpc.RpcError) as info:
                list(call)
            assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert "read no answer" in info.value.details()
    finally:
        srv.stop()


# -- limits, auth, TLS ---------------------------------------------------------------------------------------------


def test_limits(small_model, good):
    cfg = ServerConfig(port=0, max_streams=2, max_clip_seconds=0.3, idle_timeout_seconds=0.5,
                       max_message_bytes=16 * 1024)  # fmt: skip
    srv = serve(cfg, model=small_model)
    try:
        gates = [threading.Event(), threading.Event()]

        def held(gate):
            yield _header()
            gate.wait(30)
            yield _audio(good[0][:3200])
            yield END

        with ThreadPoolExecutor(2) as pool, grpc.insecure_channel(srv.address) as channel:
            stub = audio2face_pb2_grpc.A2FControllerServiceStub(channel)
            calls = [stub.ProcessAudioStream(held(g)) for g in gates]
            for call in calls:
                next(call)  # both streams are open
            with pytest.raises(grpc.RpcError) as info:
                _run(srv.address, _messages(good[0]))
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "2 concurrent streams" in info.value.details()
            for gate in gates:
                gate.set()
            results = [pool.submit(list, call) for call in calls]
            for result in results:
                assert result.result(timeout=30)[-1].status.code == status_pb2.Status.SUCCESS
        # clip length, idle timeout, message size: a gRPC status code, after the same message in band
        long_clip = _messages(float_to_pcm16_bytes(_clip(0.5)))
        answers = _refused(srv.address, long_clip, grpc.StatusCode.RESOURCE_EXHAUSTED, "limit of 0.3 s")
        _assert_error(answers, "limit of 0.3 s")

        def idle():
            yield _header()
            time.sleep(1.5)

        _assert_error(_refused(srv.address, idle(), grpc.StatusCode.DEADLINE_EXCEEDED, "idle timeout"), "idle timeout")
        with pytest.raises(grpc.RpcError) as info:
            _run(srv.address, iter([_header(), _audio(bytes(40_000)), END]))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        srv.stop()


def test_bearer_token(small_model, good):
    srv = serve(ServerConfig(port=0, token="s3cret-token"), model=small_model)
    try:
        _check_good(_run(srv.address, _messages(good[0]), metadata=[("authorization", "Bearer s3cret-token")]), good)
        for metadata, reason in ((None, "missing"), ([("authorization", "Bearer nope")], "invalid"),
                                 ([("authorization", "s3cret-token")], "invalid")):  # fmt: skip
            with pytest.raises(grpc.RpcError) as info:
                _run(srv.address, _messages(good[0]), metadata=metadata)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert reason in info.value.details()
        with grpc.insecure_channel(srv.address) as channel:
            stub = a2x_export_config_pb2_grpc.A2XExportConfigServiceStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                list(stub.GetConfigs(a2x_export_config_pb2.ConfigsTypeRequest()))
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            health = health_proto.HealthStub(channel).Check(health_proto.HealthCheckRequest())
            assert health.status == health_proto.SERVING  # probes need no token
    finally:
        srv.stop()


def _self_signed(tmp_path, name: str):
    """A self-signed EC certificate for localhost and 127.0.0.1 (and CA): (cert path, key path, cert PEM, key PEM).
    Made with ``cryptography`` when installed, else with the ``openssl`` command."""
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return _openssl_self_signed(tmp_path, name)
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )  # fmt: skip
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    (tmp_path / f"{name}.crt").write_bytes(cert_pem)
    (tmp_path / f"{name}.key").write_bytes(key_pem)
    return str(tmp_path / f"{name}.crt"), str(tmp_path / f"{name}.key"), cert_pem, key_pem


def _openssl_self_signed(tmp_path, name: str):
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("needs the cryptography package or the openssl command")
    cert, key = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", f"/CN={name}",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-addext", "basicConstraints=critical,CA:TRUE"], check=True, capture_output=True)  # fmt: skip
    return str(cert), str(key), cert.read_bytes(), key.read_bytes()


def test_tls_and_mutual_tls(small_model, good, tmp_path):
    cert, key, cert_pem, _ = _self_signed(tmp_path, "server")
    options = [("grpc.ssl_target_name_override", "localhost")]
    srv = serve(ServerConfig(port=0, tls_cert=cert, tls_key=key), model=small_model)
    try:
        creds = grpc.ssl_channel_credentials(root_certificates=cert_pem)
        _check_good(_run(srv.address, _messages(good[0]), credentials=creds, options=options), good)
        with pytest.raises(grpc.RpcError) as info:
            _run(srv.address, _messages(good[0]))  # plaintext to a TLS port
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        srv.stop()

    client_cert, _, client_pem, client_key = _self_signed(tmp_path, "client")
    srv = serve(ServerConfig(port=0, tls_cert=cert, tls_key=key, tls_client_ca=client_cert), model=small_model)
    try:
        mutual = grpc.ssl_channel_credentials(cert_pem, private_key=client_key, certificate_chain=client_pem)
        _check_good(_run(srv.address, _messages(good[0]), credentials=mutual, options=options), good)
        with pytest.raises(grpc.RpcError) as info:
            _run(srv.address, _messages(good[0]), credentials=grpc.ssl_channel_credentials(cert_pem), options=options)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        srv.stop()


# -- health, configs, settings ---------------------------------------------------------------------------------------


def test_health_serving(server):
    with grpc.insecure_channel(server.address) as channel:
        stub = health_proto.HealthStub(channel)
        for service in ("", "nvidia_ace.services.a2f_controller.v1.A2FControllerService"):
            reply = stub.Check(health_proto.HealthCheckRequest(service=service))
            assert reply.status == health_proto.SERVING
        with pytest.raises(grpc.RpcError) as info:
            stub.Check(health_proto.HealthCheckRequest(service="no.such.Service"))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_port_in_use_is_a_clear_error(server, small_model):
    with pytest.raises(ConfigError, match="cannot listen on 127.0.0.1"):
        serve(ServerConfig(port=server.port), model=small_model)


def test_int8_server_matches_offline_int8(small_pack, good):
    """``precision = "int8"`` serves the quantised network: the same weights as offline int8, not fp32's."""
    from facecast import load_model

    pcm, fp32_weights = good
    quantised = load_model(small_pack, device="cpu", precision="int8")
    offline = quantised.animate(pcm16_to_float(pcm), blinks=False)
    expected = np.concatenate([offline.skin_weights, offline.tongue_weights], axis=1)
    srv = serve(ServerConfig(port=0, model=str(small_pack), device="cpu", precision="int8"))
    try:
        answers = _run(srv.address, _messages(pcm))
    finally:
        srv.stop()
    _assert_success(answers, len(expected))
    to_int8, to_fp32 = np.abs(_weights(answers) - expected).max(), np.abs(_weights(answers) - fp32_weights).max()
    assert to_int8 < 1e-6 < to_fp32, (to_int8, to_fp32)  # the int8 network ran, exactly as offline
    with pytest.raises(ConfigError, match="precision must be one of"):
        ServerConfig(precision="int4").validate()
    with pytest.raises(ConfigError, match="onnxruntime"):
        ServerConfig(precision="int8", backend="torch").validate()


def test_chunk_network_served_in_blocks_matches_offline(chunk_pack):
    """A model with a chunk network is served K frames per encoder pass, with the offline frames of that K."""
    from facecast import load_model

    pcm = float_to_pcm16_bytes(_clip(1.25, seed=5))  # 38 frames: the last block of 4 is partial
    emotions = [(0.0, {"Joy": 0.5}), (0.6, {"Sadness": 1.0})]
    track = EmotionTrack().add(0.0, {"joy": 0.5}).add(0.6, {"sadness": 1.0})
    results = {}
    for per_pass, context in ((4, None), (1, None), (1, 0)):  # one per pass: 3 context frames, or plain windows
        model = load_model(chunk_pack, device="cpu", frames_per_pass=per_pass, context_frames=context)
        offline = model.animate(pcm16_to_float(pcm), emotion=track, blinks=False)
        expected = np.concatenate([offline.skin_weights, offline.tongue_weights], axis=1)
        srv = serve(ServerConfig(port=0, model=str(chunk_pack), device="cpu", frames_per_pass=per_pass,
                                 context_frames=context))  # fmt: skip
        try:
            assert srv.model.frames_per_pass == per_pass
            assert srv.model.engine.context_frames == (0 if per_pass == 4 or context == 0 else 3)
            answers = _run(srv.address, _messages(pcm, emotions=emotions))
            stats = srv.scheduler.stats
        finally:
            srv.stop()
        _assert_success(answers, len(expected))
        assert np.abs(_weights(answers) - expected).max() < 1e-5
        results[per_pass, context] = _weights(answers)
        assert stats.windows == (10 if per_pass == 4 else 38)  # batch rows: blocks of 4, or frames
    assert np.abs(results[4, None] - results[1, None]).max() > 1e-4
    assert np.abs(results[1, None] - results[1, 0]).max() > 1e-4  # the context changes what a frame hears
    # the server caps frames per pass at what the model was trained for
    srv = serve(ServerConfig(port=0, model=str(chunk_pack), device="cpu", frames_per_pass=64))
    try:
        assert srv.model.frames_per_pass == 4
    finally:
        srv.stop()
    with pytest.raises(ConfigError, match="frames_per_pass"):
        ServerConfig(frames_per_pass=0).validate()
    with pytest.raises(ConfigError, match="context_frames"):
        ServerConfig(context_frames=-1).validate()
