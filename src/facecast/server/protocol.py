"""The ACE Audio2Face-3D wire format: read the client's stream header and emotions, build the answers.

Messages come from NVIDIA's generated stubs (``nvidia-audio2face-3d`` and ``nvidia-ace``). Parsing turns the NIM's
names and conventions (capitalised pose and emotion names, camelCase face parameters) into facecast's and raises
:class:`ProtocolError` with a message fit to send back to the client.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from google.protobuf import any_pb2
from nvidia_ace import animation_pb2, audio_pb2, status_pb2
from nvidia_audio2face_3d import messages_pb2

from facecast.emotion import EmotionError, emotion_vector
from facecast.face.pipeline import FacePipeline, SolveOptions
from facecast.face.postprocess import FaceParams
from facecast.infer.a2e import A2EPostProcessParams
from facecast.server.names import facecast_pose_name, nim_emotions, nim_pose_name

MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 384_000


MAX_HEADER_ENTRIES = 1024
"""Most entries in one of the header's name -> value tables (face parameters, blendshape multipliers, ...)."""

MAX_STATUS_CHARS = 2000
"""Longest message sent back in a Status (longer ones are cut)."""


class ProtocolError(ValueError):
    """The client broke the protocol or sent an invalid value; the message is sent back in a Status."""


class LimitExceeded(ProtocolError):
    """A stream went past one of the server's limits (clip length, emotion keys); it ends with RESOURCE_EXHAUSTED."""


@dataclass(frozen=True)
class StreamSettings:
    """What one stream's header asks for, in facecast's terms."""

    sample_rate: int
    face_params: FaceParams
    solve: SolveOptions
    emotion_post: A2EPostProcessParams
    """Validated, but without an Audio2Emotion model it does not change the output."""


def parse_header(header: messages_pb2.AudioWithEmotionStreamHeader, pipeline: FacePipeline) -> StreamSettings:
    """Validate a stream header against the model's pipeline; raise :class:`ProtocolError` when it is invalid."""
    if not header.HasField("audio_header"):
        raise ProtocolError("audio_stream_header has no audio_header")
    for name, table in (
        ("face_params.float_params", header.face_params.float_params),
        ("face_params.integer_params", header.face_params.integer_params),
        ("face_params.float_array_params", header.face_params.float_array_params),
        ("blendshape_params.bs_weight_multipliers", header.blendshape_params.bs_weight_multipliers),
        ("blendshape_params.bs_weight_offsets", header.blendshape_params.bs_weight_offsets),
        ("emotion_params.beginning_emotion", header.emotion_params.beginning_emotion),
    ):
        if len(table) > MAX_HEADER_ENTRIES:
            raise ProtocolError(f"{name} has {len(table)} entries; at most {MAX_HEADER_ENTRIES}")
    sample_rate = _audio_header(header.audio_header)
    return StreamSettings(
        sample_rate=sample_rate,
        face_params=_face_params(header.face_params, pipeline),
        solve=_solve_options(header.blendshape_params, pipeline),
        emotion_post=_emotion_post(header),
    )


def _audio_header(audio: audio_pb2.AudioHeader) -> int:
    if audio.audio_format != audio_pb2.AudioHeader.AUDIO_FORMAT_PCM:
        raise ProtocolError(f"audio_format {audio.audio_format} is not supported: only AUDIO_FORMAT_PCM")
    if audio.channel_count != 1:
        raise ProtocolError(f"channel_count must be 1 (mono audio), got {audio.channel_count}")
    if audio.bits_per_sample != 16:
        raise ProtocolError(f"bits_per_sample must be 16 (signed 16-bit PCM), got {audio.bits_per_sample}")
    rate = audio.samples_per_second
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise ProtocolError(f"samples_per_second must be in [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}], got {rate}")
    return int(rate)


def _face_params(face: messages_pb2.FaceParameters, pipeline: FacePipeline) -> FaceParams:
    if len(face.float_array_params):
        names = sorted(face.float_array_params)
        raise ProtocolError(f"face_params.float_array_params is not supported (got {_brief(names)})")
    overrides: dict[str, float | int] = dict(face.float_params)
    for name, value in face.integer_params.items():
        if name in overrides:
            raise ProtocolError(f"face parameter {name!r} given in both float_params and integer_params")
        overrides[name] = int(value)
    try:
        return pipeline.face_params(overrides)
    except ValueError as exc:
        raise ProtocolError(f"face_params: {exc}") from None


def _solve_options(params: messages_pb2.BlendShapeParameters, pipeline: FacePipeline) -> SolveOptions:
    known = set(pipeline.skin.names if pipeline.skin else ()) | set(pipeline.tongue.names if pipeline.tongue else ())
    tables: list[dict[str, float]] = []
    for field, values in (("bs_weight_multipliers", params.bs_weight_multipliers),
                          ("bs_weight_offsets", params.bs_weight_offsets)):  # fmt: skip
        table = {}
        for name, value in values.items():
            pose = facecast_pose_name(name)
            if pose not in known:
                valid = ", ".join(nim_pose_name(n) for n in sorted(known))
                raise ProtocolError(f"blendshape_params.{field}: unknown blendshape {name!r}; valid names: {valid}")
            if not math.isfinite(value):
                raise ProtocolError(f"blendshape_params.{field}[{name!r}] must be finite, got {value}")
            table[pose] = float(value)
        tables.append(table)
    return SolveOptions(tables[0], tables[1], bool(params.enable_clamping_bs_weight))


_POST_FIELDS = (
    "emotion_contrast",
    "live_blend_coef",
    "enable_preferred_emotion",
    "preferred_emotion_strength",
    "emotion_strength",
    "max_emotions",
)


def _emotion_post(header: messages_pb2.AudioWithEmotionStreamHeader) -> A2EPostProcessParams:
    values: dict[str, object] = {}
    post = header.emotion_post_processing_params
    for name in _POST_FIELDS:
        if post.HasField(name):
            values[name] = getattr(post, name)
    emo = header.emotion_params
    if emo.HasField("live_transition_time"):
        values["live_transition_time"] = emo.live_transition_time
    try:
        if len(emo.beginning_emotion):
            values["beginning_emotion"] = tuple(emotion_vector(dict(emo.beginning_emotion)).tolist())
        return A2EPostProcessParams(**values)
    except EmotionError as exc:
        raise ProtocolError(f"emotion parameters: {exc}") from None


def header_message(
    sample_rate: int, pose_names: Sequence[str], start_time: float
) -> messages_pb2.A2F3DAnimationDataStream:
    """The first answer: the echoed audio's format and the blendshape names in output order."""
    return messages_pb2.A2F3DAnimationDataStream(
        animation_data_stream_header=messages_pb2.A2F3DAnimationDataStreamHeader(
            audio_header=audio_pb2.AudioHeader(
                audio_format=audio_pb2.AudioHeader.AUDIO_FORMAT_PCM,
                channel_count=1,
                samples_per_second=sample_rate,
                bits_per_sample=16,
            ),
            skel_animation_header=animation_pb2.SkelAnimationHeader(
                blend_shapes=[nim_pose_name(n) for n in pose_names]
            ),
            start_time_code_since_epoch=start_time,
        )
    )


EMOTION_AGGREGATE_TYPE_URL = "type.googleapis.com/nvidia_ace.emotion_aggregate.v1.EmotionAggregate"
"""The type of the ``emotion_aggregate`` metadata: the name NVIDIA's NIM and its sample clients (the
``nvidia_ace`` wheel of Audio2Face-3D-Samples: ``Any.Unpack`` into ``nvidia_ace.emotion_aggregate.v1``) use. The
PyPI ``nvidia-audio2face-3d`` stubs name the same message ``com.nvidia.ace.services.audio2face_3d.v1``; one type URL
cannot satisfy both ``Unpack`` calls, so facecast follows the NIM, and clients on the PyPI stubs parse the bytes
(:func:`read_emotion_aggregate`); the fields are the same."""


def read_emotion_aggregate(packed: any_pb2.Any) -> messages_pb2.EmotionAggregate:
    """The ``emotion_aggregate`` metadata of a frame, whichever packaging's type name it carries."""
    if not packed.type_url.endswith(".EmotionAggregate"):
        raise ProtocolError(f"emotion_aggregate holds {packed.type_url!r}, not an EmotionAggregate")
    aggregate = messages_pb2.EmotionAggregate()
    aggregate.ParseFromString(packed.value)
    return aggregate


def frame_message(
    time: float,
    weights: np.ndarray,
    audio_time: float,
    audio: bytes,
    input_emotion: np.ndarray,
    a2f_emotion: np.ndarray,
) -> messages_pb2.A2F3DAnimationDataStream:
    """One frame: its blendshape weights, the input audio of its span and the emotions that shaped it."""
    data = animation_pb2.AnimationData()
    data.skel_animation.blend_shape_weights.add(time_code=time, values=weights.tolist())
    data.audio.time_code = audio_time
    data.audio.audio_buffer = audio
    aggregate = messages_pb2.EmotionAggregate()
    aggregate.input_emotions.add(time_code=time, emotion=nim_emotions(input_emotion))
    aggregate.a2f_smoothed_output.add(time_code=time, emotion=nim_emotions(a2f_emotion))
    packed = data.metadata["emotion_aggregate"]
    packed.type_url = EMOTION_AGGREGATE_TYPE_URL  # as NVIDIA's NIM names it (see the constant)
    packed.value = aggregate.SerializeToString()
    return messages_pb2.A2F3DAnimationDataStream(animation_data=data)


def end_event() -> messages_pb2.A2F3DAnimationDataStream:
    return messages_pb2.A2F3DAnimationDataStream(
        event=messages_pb2.Event(event_type=messages_pb2.END_OF_A2F_AUDIO_PROCESSING)
    )


def status_message(ok: bool, message: str) -> messages_pb2.A2F3DAnimationDataStream:
    code = status_pb2.Status.SUCCESS if ok else status_pb2.Status.ERROR
    return messages_pb2.A2F3DAnimationDataStream(status=status_pb2.Status(code=code, message=brief_message(message)))


def brief_message(message: str) -> str:
    """``message`` cut to :data:`MAX_STATUS_CHARS` (a client's odd names can make error messages long)."""
    if len(message) <= MAX_STATUS_CHARS:
        return message
    return message[: MAX_STATUS_CHARS - 20] + f" ... ({len(message)} chars)"


def _brief(names: Sequence[str], most: int = 10) -> str:
    shown = ", ".join(repr(n) for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")
