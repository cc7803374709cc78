"""Reading ProcessAudioStream requests cheaply: they arrive as bytes and are parsed here, keys counted first.

gRPC would parse every request into ``AudioWithEmotionStream`` on the event loop before facecast sees it: a 3.2 MB
message of 140,000 timed emotions costs 11 ms and 40 MB of parser memory there, and each key was then converted in
Python (0.7 s). facecast registers the method without a deserializer and parses requests with a wire-compatible
"light" message whose timed emotions stay unparsed bytes (6 ms and 10 MB for that message), so the keys are counted
against the server's limits before any of them is parsed. The header and the end marker are NVIDIA's own messages.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import grpc
import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory
from nvidia_audio2face_3d import messages_pb2

from facecast.emotion import EmotionError, emotion_vector
from facecast.server.protocol import ProtocolError

A2F_SERVICE = "nvidia_ace.services.a2f_controller.v1.A2FControllerService"
"""The full gRPC name of NVIDIA's controller service."""

MAX_KEY_BYTES = 4096
"""Largest encoded timed emotion (a time and ten names with weights take about 200 bytes)."""

_PACKAGE = "facecast.server.light"
_ACE = "com.nvidia.ace.services.audio2face_3d.v1"


def _light_file() -> descriptor_pb2.FileDescriptorProto:
    """``AudioWithEmotionStream`` with the same field numbers, its timed emotions left as bytes."""
    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="facecast/server/light_request.proto",
        package=_PACKAGE,
        syntax="proto3",
        dependency=[messages_pb2.DESCRIPTOR.name],
    )
    audio = proto.message_type.add(name="LightAudioWithEmotion")
    audio.field.add(name="audio_buffer", number=1, type=field.TYPE_BYTES, label=field.LABEL_OPTIONAL)
    audio.field.add(name="emotions", number=2, type=field.TYPE_BYTES, label=field.LABEL_REPEATED)
    stream = proto.message_type.add(name="LightAudioWithEmotionStream")
    stream.oneof_decl.add(name="stream_part")
    for name, number, type_name in (
        ("audio_stream_header", 1, f".{_ACE}.AudioWithEmotionStreamHeader"),
        ("audio_with_emotion", 2, f".{_PACKAGE}.LightAudioWithEmotion"),
        ("end_of_audio", 3, f".{_ACE}.AudioWithEmotionStream.EndOfAudio"),
    ):
        stream.field.add(name=name, number=number, type=field.TYPE_MESSAGE, label=field.LABEL_OPTIONAL,
                         type_name=type_name, oneof_index=0)  # fmt: skip
    return proto


def _light_class() -> type[message.Message]:
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName("facecast/server/light_request.proto")
    except KeyError:
        pool.Add(_light_file())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.LightAudioWithEmotionStream"))


LightRequest = _light_class()
"""The light request type: ``stream_part`` is ``audio_stream_header`` (NVIDIA's header), ``audio_with_emotion``
(``audio_buffer`` and ``emotions`` as a list of encoded ``EmotionWithTimeCode``) or ``end_of_audio``."""


def parse_request(data: bytes) -> message.Message:
    """One request's bytes as a :data:`LightRequest`; :class:`ProtocolError` when they are not a request."""
    try:
        return LightRequest.FromString(data)
    except message.DecodeError:
        raise ProtocolError(f"a message of {len(data)} bytes that is not an AudioWithEmotionStream") from None


def parse_emotion_keys(keys: Sequence[bytes]) -> list[tuple[float, np.ndarray]]:
    """Encoded ``EmotionWithTimeCode`` keys as ``[(seconds, 10-vector)]`` (count them before calling this)."""
    out = []
    for raw in keys:
        if len(raw) > MAX_KEY_BYTES:
            raise ProtocolError(f"a timed emotion of {len(raw)} bytes; at most {MAX_KEY_BYTES}")
        try:
            key = messages_pb2.EmotionWithTimeCode.FromString(raw)
        except message.DecodeError:
            raise ProtocolError("a timed emotion that is not an EmotionWithTimeCode") from None
        t = key.time_code
        if not math.isfinite(t) or t < 0:
            raise ProtocolError(f"emotion time_code must be finite and >= 0 s, got {t}")
        try:
            out.append((float(t), emotion_vector(dict(key.emotion))))
        except EmotionError as exc:
            raise ProtocolError(f"emotion at time_code {t:g} s: {exc}") from None
    return out


def add_controller(servicer, server: grpc.aio.Server) -> None:
    """Register ``ProcessAudioStream`` with raw-bytes requests (the servicer parses them with :func:`parse_request`)."""
    handlers = {
        "ProcessAudioStream": grpc.stream_stream_rpc_method_handler(
            servicer.ProcessAudioStream,
            request_deserializer=None,
            response_serializer=messages_pb2.A2F3DAnimationDataStream.SerializeToString,
        )
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(A2F_SERVICE, handlers),))
    if hasattr(server, "add_registered_method_handlers"):
        server.add_registered_method_handlers(A2F_SERVICE, handlers)
