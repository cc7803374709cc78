"""The NIM's spellings of facecast names, used only at the gRPC edge.

facecast keeps Apple's camelCase blendshape names ("jawOpen") and lowercase emotion names ("outofbreath"); the
Audio2Face-3D NIM speaks capitalised names ("JawOpen", "OutOfBreath").
"""

from __future__ import annotations

NIM_EMOTION_NAMES: dict[str, str] = {
    "amazement": "Amazement",
    "anger": "Anger",
    "cheekiness": "Cheekiness",
    "disgust": "Disgust",
    "fear": "Fear",
    "grief": "Grief",
    "joy": "Joy",
    "outofbreath": "OutOfBreath",
    "pain": "Pain",
    "sadness": "Sadness",
}
"""facecast emotion name -> NIM emotion name, in network order (:data:`~facecast.constants.EMOTION_NAMES`)."""


def nim_pose_name(name: str) -> str:
    """A facecast (camelCase) pose name in the NIM's capitalisation: "eyeBlinkLeft" -> "EyeBlinkLeft"."""
    return name[:1].upper() + name[1:]


def facecast_pose_name(name: str) -> str:
    """A NIM pose name in facecast's camelCase: "JawOpen" -> "jawOpen"."""
    return name[:1].lower() + name[1:]


def nim_emotions(vector) -> dict[str, float]:
    """A 10-vector in network order as ``{NIM name: weight}``."""
    return {nim: float(v) for nim, v in zip(NIM_EMOTION_NAMES.values(), vector, strict=True)}
