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


def test_fuzz_grpc_counts(server):
    print("grpc fuzz cases:", CASES)
    assert CASES["streams"] > 0 and CASES["errors"] > 0 and CASES["successes"] > 0
