"""ACE compatibility of the server's answers: the export-config service's files and the emotion metadata's type,
read by clients on both packagings of NVIDIA's protos."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

grpc = pytest.importorskip("grpc")
pytest.importorskip("nvidia_audio2face_3d")

from nvidia_audio2face_3d import a2x_export_config_pb2, a2x_export_config_pb2_grpc, messages_pb2  # noqa: E402
from test_server import _clip, _messages, _run  # noqa: E402

from facecast.audio import float_to_pcm16_bytes  # noqa: E402
from facecast.server import ServerConfig, serve  # noqa: E402
from facecast.server.protocol import read_emotion_aggregate  # noqa: E402


@pytest.fixture(scope="module")
def server(small_model):
    srv = serve(ServerConfig(port=0, max_streams=6, idle_timeout_seconds=10.0), model=small_model)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def good():
    """A short clip's PCM (the second item, the offline weights, is not needed here)."""
    return float_to_pcm16_bytes(_clip(0.4, seed=3)), None


def test_get_configs(server, small_model, small_pack):
    """The three files NVIDIA's NIM documents (stylization, deployment, advanced), snake_case, no local path."""
    request_type = a2x_export_config_pb2.ConfigsTypeRequest
    with grpc.insecure_channel(server.address) as channel:
        stub = a2x_export_config_pb2_grpc.A2XExportConfigServiceStub(channel)
        as_json = list(stub.GetConfigs(request_type(config_type=request_type.JSON)))
        as_yaml = list(stub.GetConfigs(request_type(config_type=request_type.YAML)))
    names = ["stylization_config", "deployment_config", "advanced_config"]
    assert [c.name for c in as_json] == [f"{n}.json" for n in names]
    assert [c.name for c in as_yaml] == [f"{n}.yaml" for n in names]
    stylization, deployment, advanced = (json.loads(c.content) for c in as_json)
    defaults = small_model.pipeline.default_params
    assert stylization["face_params"]["skin_strength"] == defaults.skin_strength
    assert stylization["blendshape_parameters"]["multipliers"]["JawOpen"] == 1.0
    assert stylization["a2e"]["emotions"][7] == "OutOfBreath"
    assert stylization["a2e"]["post_processing_params"]["live_blend_coef"] == 0.7
    assert deployment["max_streams"] == 6 and deployment["auth"] == "none" and "token" not in deployment
    assert advanced["network"]["window_samples"] == small_model.info.buffer_len
    text = "".join(c.content for c in as_json + as_yaml)
    assert str(small_pack) not in text and str(Path.home()) not in text and "/tmp" not in text
    assert deployment["model"] == stylization["a2f"]["inference_model_id"]
    yaml = pytest.importorskip("yaml")
    for as_text, parsed in zip(as_yaml, (stylization, deployment, advanced), strict=True):
        assert yaml.safe_load(as_text.content) == parsed


def test_emotion_metadata_unpacks_with_the_nim_proto_names(server, good):
    """The emotion metadata carries the NIM's type name: a client on protos of package
    ``nvidia_ace.emotion_aggregate.v1`` (as NVIDIA's sample wheel generates them; built here from the same fields)
    unpacks it with ``Any.Unpack``; the PyPI stubs' clients read it with :func:`read_emotion_aggregate`."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    source = descriptor_pb2.FileDescriptorProto()
    messages_pb2.EmotionAggregate.DESCRIPTOR.file.CopyToProto(source)
    package = "nvidia_ace.emotion_aggregate.v1"
    proto = descriptor_pb2.FileDescriptorProto(name=f"{package}.proto", package=package, syntax=source.syntax)
    for message in source.message_type:
        if message.name in ("EmotionAggregate", "EmotionWithTimeCode"):
            copy = proto.message_type.add()
            copy.CopyFrom(message)
            for field in copy.field:
                if field.type_name:
                    field.type_name = field.type_name.replace(source.package, proto.package)
            for nested in copy.nested_type:
                for field in nested.field:
                    if field.type_name:
                        field.type_name = field.type_name.replace(source.package, proto.package)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    nim_aggregate = message_factory.GetMessageClass(pool.FindMessageTypeByName(
        "nvidia_ace.emotion_aggregate.v1.EmotionAggregate"))  # fmt: skip
    pcm, _ = good
    answers = _run(server.address, _messages(pcm, emotions=[(0.0, {"Joy": 0.5})]))
    packed = next(a.animation_data for a in answers if a.WhichOneof("stream_part") == "animation_data").metadata[
        "emotion_aggregate"
    ]
    assert packed.type_url == "type.googleapis.com/nvidia_ace.emotion_aggregate.v1.EmotionAggregate"
    unpacked = nim_aggregate()
    assert packed.Unpack(unpacked)
    assert unpacked.a2f_smoothed_output[0].emotion["Joy"] == pytest.approx(0.5)
    assert not packed.Unpack(messages_pb2.EmotionAggregate())  # the PyPI stubs' name differs
    assert read_emotion_aggregate(packed).a2f_smoothed_output[0].emotion["Joy"] == pytest.approx(0.5)
