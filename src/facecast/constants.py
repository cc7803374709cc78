"""The single source of truth for facecast's fixed numbers and names."""

from __future__ import annotations

SAMPLE_RATE = 16_000
"""Sample rate of every network input, in Hz."""

BUFFER_LEN = 8320
"""Samples in one network window (0.52 s)."""

BUFFER_OFS = 4160
"""Samples between a window's start and the frame time it is centred on."""

DEFAULT_FPS = 30.0
"""Default output frame rate."""

IMPLICIT_EMOTION_LEN = 16
"""Length of the learned implicit emotion vector."""

JAW_RESULT_SIZE = 15
"""Jaw output of the network: 5 keypoints x xyz deltas."""

EYES_RESULT_SIZE = 4
"""Eye output of the network: (right x, right y, left x, left y) rotations."""

EMOTION_NAMES: tuple[str, ...] = (
    "amazement",
    "anger",
    "cheekiness",
    "disgust",
    "fear",
    "grief",
    "joy",
    "outofbreath",
    "pain",
    "sadness",
)
"""The 10 explicit Audio2Face emotions, in network input order."""

ARKIT_NAMES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight",
    "jawForward", "jawLeft", "jawRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)  # fmt: skip
"""The 52 ARKit blendshapes in Audio2Face / NIM output order (Apple camelCase)."""

TONGUE_NAMES: tuple[str, ...] = (
    "tongueTipUp", "tongueTipDown", "tongueTipLeft", "tongueTipRight",
    "tongueRollUp", "tongueRollDown", "tongueRollLeft", "tongueRollRight",
    "tongueUp", "tongueDown", "tongueLeft", "tongueRight",
    "tongueIn", "tongueStretch", "tongueWide", "tongueNarrow",
)  # fmt: skip
"""The 16 Audio2Face tongue blendshapes, in output order (camelCase)."""

SACCADE_TABLE_FPS = 30.0
"""The eye saccade table is authored at 30 frames per second."""

MIN_FPS, MAX_FPS = 1.0, 240.0
"""The output frame rates facecast animates at (a pass's audio spans frames / fps seconds, so a far lower rate
would ask the encoder for hours of audio at once)."""

MAX_BATCH_SIZE = 4096
"""The most frames (or windows) one inference call may take (``batch_size``, ``--batch-size``)."""
