"""Hostile gRPC streams: random parts in random order, odd sizes and values end cleanly, never hang or crash.

Each generated stream must end, within a deadline, in a final Status (SUCCESS or ERROR with a message) or a
gRPC error code that names a client problem; afterwards the server holds no session and keeps serving.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

grpc = pytest.importorskip("grpc")
pytest.importorskip("nvidia_audio2face_3d")

from nvidia_ace import audio_pb2, status_pb2  # noqa: E402
from nvidia_audio2face_3d import audio2face_pb2_grpc, messages_pb2  # noqa: E402

from facecast.server import ServerConfig, serve  # noqa: E402

CLIENT_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}
CASES = {"streams": 0, "errors": 0, "successes": 0}
FLOODS = {"grpc key floods": 0, "refused": 0, "in-band errors": 0, "successes": 0}
TRICKLES = {"trickles": 0, "ended for rate": 0, "successes": 0}
PER_MESSAGE, PER_STREAM = 20, 50
"""The key limits of the flood server."""


@pytest.fixture(scope="module")
def server(small_model):
    srv = serve(ServerConfig(port=0, max_streams=4, idle_timeout_seconds=3.0, max_message_bytes=256 * 1024),
                model=small_model)  # fmt: skip
    yield srv
    srv.stop()


names = st.sampled_from(["skinStrength", "lowerFaceSmoothing", "JawOpen", "Joy", "anger", "", "bogus", "\x00x"])
floats = st.floats(allow_nan=True, allow_infinity=True, width=32)

header = st.builds(
    lambda rate, channels, bits, fmt, face, mult: messages_pb2.AudioWithEmotionStream(
        audio_stream_header=messages_pb2.AudioWithEmotionStreamHeader(
            audio_header=audio_pb2.AudioHeader(
                audio_format=fmt, channel_count=channels, samples_per_second=rate, bits_per_sample=bits
            ),  # fmt: skip
            face_params=messages_pb2.FaceParameters(float_params=face),
            blendshape_params=messages_pb2.BlendShapeParameters(bs_weight_multipliers=mult),
        )
    ),
    rate=st.sampled_from([0, 1, 8000, 16000, 44100, 192000, 2**31 - 1]),
    channels=st.sampled_from([0, 1, 2, 8]),
    bits=st.sampled_from([0, 8, 16, 24, 32]),
    fmt=st.sampled_from([0, 1]),
    face=st.dictionaries(names, floats, max_size=2),
    mult=st.dictionaries(names, floats, max_size=2),
)
audio = st.builds(
    lambda size, emotions: messages_pb2.AudioWithEmotionStream(
        audio_with_emotion=messages_pb2.AudioWithEmotion(
            audio_buffer=np.random.default_rng(size)
            .integers(-3000, 3000, size // 2 + 1, dtype=np.int16)
            .tobytes()[:size],
            emotions=[messages_pb2.EmotionWithTimeCode(time_code=t, emotion=e) for t, e in emotions],
        )
    ),
    size=st.sampled_from([0, 1, 3, 320, 3200, 32000]),
    emotions=st.lists(
        st.tuples(st.floats(-5, 1e6, allow_nan=False), st.dictionaries(names, floats, max_size=2)), max_size=2
    ),  # fmt: skip
)
valid_header = st.sampled_from([16000, 22050, 44100]).map(
    lambda rate: messages_pb2.AudioWithEmotionStream(
        audio_stream_header=messages_pb2.AudioWithEmotionStreamHeader(
            audio_header=audio_pb2.AudioHeader(channel_count=1, samples_per_second=rate, bits_per_sample=16)
        )
    )
)
end = st.just(messages_pb2.AudioWithEmotionStream(end_of_audio=messages_pb2.AudioWithEmotionStream.EndOfAudio()))
stream = st.one_of(
    st.lists(st.one_of(header, audio, end), min_size=0, max_size=7),  # anything in any order
    st.tuples(valid_header, st.lists(audio, min_size=1, max_size=4), st.lists(st.one_of(audio, end), max_size=2)).map(
        lambda t: [t[0], *t[1], *t[2]]
    ),  # a good header, then audio, maybe a proper end
)


_GOOD = [
    messages_pb2.AudioWithEmotionStream(
        audio_stream_header=messages_pb2.AudioWithEmotionStreamHeader(
            audio_header=audio_pb2.AudioHeader(channel_count=1, samples_per_second=16000, bits_per_sample=16)
        )
    ),
    messages_pb2.AudioWithEmotionStream(
        audio_with_emotion=messages_pb2.AudioWithEmotion(audio_buffer=np.zeros(8000, np.int16).tobytes())
    ),
    messages_pb2.AudioWithEmotionStream(end_of_audio=messages_pb2.AudioWithEmotionStream.EndOfAudio()),
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(parts=_GOOD)  # always run one well-formed stream, so both outcomes are exercised
@given(parts=stream)
def test_fuzz_grpc_streams(server, parts):
    CASES["streams"] += 1
    with grpc.insecure_channel(server.address) as channel:
        stub = audio2face_pb2_grpc.A2FControllerServiceStub(channel)
        try:
            answers = list(stub.ProcessAudioStream(iter(parts), timeout=20))
        except grpc.RpcError as exc:
            assert exc.code() in CLIENT_CODES, (exc.code(), exc.details())
            CASES["errors"] += 1
        else:
            assert answers, "the stream ended without a Status"
            final = answers[-1]
            assert final.WhichOneof("stream_part") == "status"
            assert final.status.code in (status_pb2.Status.SUCCESS, status_pb2.Status.ERROR)
            if final.status.code == status_pb2.Status.ERROR:
                assert final.status.message
                CASES["errors"] += 1
            else:
                CASES["successes"] += 1
                for a in answers:
                    if a.WhichOneof("stream_part") == "animation_data":
                        values = a.animation_data.skel_animation.blend_shape_weights[0].values
                        assert all(math.isfinite(v) for v in values)
    deadline = time.monotonic() + 10
    while (server.active_streams or server.scheduler.num_lanes) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.active_streams == 0 and server.scheduler.num_lanes == 0, "a session leaked"


# -- emotion-key floods: counts around both limits, odd keys, mangled bytes ---------------------------------------


@pytest.fixture(scope="module")
def flood_server(small_model):
    srv = serve(ServerConfig(port=0, max_streams=4, idle_timeout_seconds=5.0, max_emotion_keys_per_message=PER_MESSAGE,
                             max_emotion_keys_per_stream=PER_STREAM), model=small_model)  # fmt: skip
    yield srv
    srv.stop()


KEY_KINDS = {
    "good": lambda i: messages_pb2.EmotionWithTimeCode(time_code=i * 0.01, emotion={"joy": 0.5}),
    "unknown name": lambda i: messages_pb2.EmotionWithTimeCode(time_code=0.0, emotion={"glee": 1.0}),
    "nan time": lambda i: messages_pb2.EmotionWithTimeCode(time_code=float("nan"), emotion={"joy": 0.5}),
    "negative time": lambda i: messages_pb2.EmotionWithTimeCode(time_code=-1.0),
    "huge key": lambda i: messages_pb2.EmotionWithTimeCode(emotion={f"e{j}": 0.0 for j in range(500)}),
    "empty": lambda i: messages_pb2.EmotionWithTimeCode(),
}
key_message = st.tuples(
    st.one_of(
        st.sampled_from([0, 1, PER_MESSAGE - 1, PER_MESSAGE, PER_MESSAGE + 1, 3 * PER_MESSAGE, 5000]),
        st.integers(0, 2 * PER_MESSAGE),
    ),  # fmt: skip
    st.sampled_from(sorted(KEY_KINDS)),
    st.sampled_from(["good", "good", "good", "truncated", "flipped"]),
)


def _expected(plan) -> str:
    """What the server must answer: the first message past a limit is refused, the first bad key is an error."""
    total = 0
    for count, kind, wire in plan:
        if wire != "good":
            return "any"  # mangled bytes: a clean end of some kind, checked below
        if count > PER_MESSAGE:
            return "refused"
        total += count
        if total > PER_STREAM:
            return "refused"
        if count and kind not in ("good", "empty"):  # an empty key is a neutral emotion at 0 s
            return "error"
    return "success"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(plan=[(PER_MESSAGE, "good", "good")] * 2)
@example(plan=[(PER_MESSAGE, "good", "good")] * 3)
@example(plan=[(140_000, "good", "good")])
@given(plan=st.lists(key_message, min_size=1, max_size=4))
def test_fuzz_grpc_key_floods(flood_server, plan):
    FLOODS["grpc key floods"] += 1
    rng = np.random.default_rng(len(plan))
    requests = [_GOOD[0].SerializeToString()]
    for count, kind, wire in plan:
        keys = [KEY_KINDS[kind](i) for i in range(count)]
        body = messages_pb2.AudioWithEmotion(audio_buffer=np.zeros(800, np.int16).tobytes(), emotions=keys)
        data = messages_pb2.AudioWithEmotionStream(audio_with_emotion=body).SerializeToString()
        if wire == "truncated":
            data = data[: int(rng.integers(1, len(data)))]
        elif wire == "flipped":
            data = bytearray(data)
            data[int(rng.integers(0, len(data)))] ^= 0xFF
            data = bytes(data)
        requests.append(data)
    requests.append(_GOOD[2].SerializeToString())
    expected = _expected(plan)
    path = "/nvidia_ace.services.a2f_controller.v1.A2FControllerService/ProcessAudioStream"
    with grpc.insecure_channel(flood_server.address) as channel:
        try:
            answers = list(channel.stream_stream(path)(iter(requests), timeout=30))
            code = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details()
    oversized = any(len(data) > 4 * 1024 * 1024 for data in requests)  # gRPC refuses these, even while draining
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        FLOODS["refused"] += 1
        if "larger than max" in details:
            assert oversized, details
        else:
            assert expected in ("refused", "any") and "max_emotion_keys_per_" in details, (expected, details)
    else:
        assert code == grpc.StatusCode.OK and not oversized, (code, expected)
        final = messages_pb2.A2F3DAnimationDataStream.FromString(answers[-1]).status
        ok = final.code == status_pb2.Status.SUCCESS
        FLOODS["successes" if ok else "in-band errors"] += 1
        assert expected == "any" or expected == ("success" if ok else "error"), (expected, final.message)
        assert final.message
    _assert_idle(flood_server)


# -- trickles: audio slower and faster than the minimum rate ------------------------------------------------------


@pytest.fixture(scope="module")
def trickle_server(small_model):
    srv = serve(ServerConfig(port=0, max_streams=4, min_audio_rate=0.5, audio_rate_window_seconds=0.5),
                model=small_model)  # fmt: skip
    yield srv
    srv.stop()


def _paced(requests, every: float):
    for i, request in enumerate(requests):
        if i > 1:
            time.sleep(every)
        yield request


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(size=2, every=0.1)  # the red team's trickle, sped up: 2 bytes every 10 s -> every 0.1 s
@example(size=3200, every=0.1)  # real time
@given(size=st.sampled_from([0, 2, 64, 320, 1600, 3200, 6400]), every=st.sampled_from([0.05, 0.1, 0.2]))
def test_fuzz_grpc_trickles(trickle_server, size, every):
    TRICKLES["trickles"] += 1
    sends = int(1.5 / every)  # 1.5 s of sending: three rate windows
    rate = size / 2 / 16000 / every
    requests = [_GOOD[0], *[messages_pb2.AudioWithEmotionStream(audio_with_emotion=messages_pb2.AudioWithEmotion(
        audio_buffer=bytes(size)))] * sends, _GOOD[2]]  # fmt: skip
    with grpc.insecure_channel(trickle_server.address) as channel:
        stub = audio2face_pb2_grpc.A2FControllerServiceStub(channel)
        try:
            answers = list(stub.ProcessAudioStream(_paced(requests, every), timeout=30))
            ended = None
        except grpc.RpcError as exc:
            ended = exc
    if ended is not None:
        assert ended.code() == grpc.StatusCode.DEADLINE_EXCEEDED and "min_audio_rate" in ended.details()
        TRICKLES["ended for rate"] += 1
        assert rate < 1.5, f"a stream at {rate:g}x real time was ended"
    else:
        assert rate > 0.1, f"a trickle at {rate:g}x real time was not ended"
        final = answers[-1].status
        assert final.code == status_pb2.Status.SUCCESS or (size == 0 and "no audio" in final.message), final
        TRICKLES["successes"] += 1
    _assert_idle(trickle_server)


def _assert_idle(server) -> None:
    deadline = time.monotonic() + 10
    while (server.active_streams or server.scheduler.num_lanes) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.active_streams == 0 and server.scheduler.num_lanes == 0, "a session leaked"


def test_fuzz_grpc_counts(server):
    print("grpc fuzz cases:", CASES)
    print("grpc key flood cases:", FLOODS)
    print("grpc trickle cases:", TRICKLES)
    assert CASES["streams"] > 0 and CASES["errors"] > 0 and CASES["successes"] > 0
    if FLOODS["grpc key floods"]:
        assert FLOODS["refused"] and FLOODS["in-band errors"] and FLOODS["successes"], FLOODS
    if TRICKLES["trickles"]:
        assert TRICKLES["ended for rate"] and TRICKLES["successes"], TRICKLES
