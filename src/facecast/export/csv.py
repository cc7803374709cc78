"""ARKit curves as CSV, byte for byte in the layout of a take exported by Epic's Live Link Face iOS app.

Layout (checked against a real Live Link Face capture in a public repository, see ``docs/unreal.md``):

* header ``Timecode,BlendShapeCount,`` then the 52 ARKit blendshapes in the app's column order and
  capitalisation (:data:`CSV_BLENDSHAPES`: ``...JawForward,JawRight,JawLeft,JawOpen,...,MouthPucker,MouthRight,
  MouthLeft,...``, which differs from Unreal's ``EARFaceBlendShape`` packet order), then ``HeadYaw, HeadPitch,
  HeadRoll, LeftEyeYaw, LeftEyePitch, LeftEyeRoll, RightEyeYaw, RightEyePitch, RightEyeRoll``;
* one row per frame: ``HH:MM:SS:FF.mmm`` (``FF`` frames at the animation's fps, ``mmm`` the sub-frame in
  thousandths of a frame), ``61``, then 61 values with 10 decimals; ``,`` separators, ``\n`` line ends, a final
  newline.

Rotations are radians. The head is static (0). Eye yaw and pitch come from the Audio2Face eye rotations:
pitch = x (positive looks down), yaw = -y (negative looks to the character's left, as in the app's captures),
roll 0. The ``eyeLook*`` columns are filled from the same rotations (:func:`eye_look_weights`) where the
animation's own weights are smaller, so readers that only take the 52 weights still see the gaze.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from facecast.animation import Animation
from facecast.constants import ARKIT_NAMES
from facecast.fileio import atomic_write

ROTATION_COLUMNS = (
    "HeadYaw", "HeadPitch", "HeadRoll",
    "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
    "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)  # fmt: skip


def live_link_name(name: str) -> str:
    """Apple camelCase -> Live Link Face capitalisation (eyeBlinkLeft -> EyeBlinkLeft)."""
    return name[:1].upper() + name[1:]


CSV_BLENDSHAPES: tuple[str, ...] = (
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft", "EyeSquintLeft",
    "EyeWideLeft", "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight", "EyeLookOutRight", "EyeLookUpRight",
    "EyeSquintRight", "EyeWideRight", "JawForward", "JawRight", "JawLeft", "JawOpen", "MouthClose", "MouthFunnel",
    "MouthPucker", "MouthRight", "MouthLeft", "MouthSmileLeft", "MouthSmileRight", "MouthFrownLeft",
    "MouthFrownRight", "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft", "MouthStretchRight",
    "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper", "MouthPressLeft", "MouthPressRight",
    "MouthLowerDownLeft", "MouthLowerDownRight", "MouthUpperUpLeft", "MouthUpperUpRight", "BrowDownLeft",
    "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft", "BrowOuterUpRight", "CheekPuff", "CheekSquintLeft",
    "CheekSquintRight", "NoseSneerLeft", "NoseSneerRight", "TongueOut",
)  # fmt: skip
"""The 52 blendshape columns of a Live Link Face CSV, in the app's order."""

HEADER = ("Timecode", "BlendShapeCount", *CSV_BLENDSHAPES, *ROTATION_COLUMNS)
DECIMALS = 10
EYE_LOOK_FULL_DEGREES = 30.0
"""An eye turned this far (in one direction) gives its ``eyeLook*`` weight 1 (facecast's convention)."""


def timecode(frame: int, fps: float) -> str:
    """SMPTE-like timecode ``HH:MM:SS:FF.mmm`` for a frame index at ``fps`` (sub-frame part in thousandths)."""
    seconds = frame / fps
    whole = int(math.floor(seconds + 1e-9))
    frames = (seconds - whole) * fps
    ff = int(math.floor(frames + 1e-6))
    sub = int(round((frames - ff) * 1000)) % 1000
    h, rem = divmod(whole, 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}:{ff:02d}.{sub:03d}"


def arkit_matrix(anim: Animation) -> np.ndarray:
    """[N, 52] weights in ARKit order (poses the model lacks are 0)."""
    out = np.zeros((len(anim), len(ARKIT_NAMES)), np.float32)
    if anim.skin_weights is not None:
        for j, name in enumerate(ARKIT_NAMES):
            if name in anim.skin_names:
                out[:, j] = anim.skin_weights[:, anim.skin_names.index(name)]
    return out


def frame_times(anim: Animation) -> np.ndarray:
    """[N] float64 key times at exact frame times k / fps (k = the nearest frame of each of ``anim.times``)."""
    fps = float(anim.fps)
    return np.round(np.asarray(anim.times, np.float64) * fps) / fps


def eye_look_weights(eyes: np.ndarray) -> dict[str, np.ndarray]:
    """The eight ``eyeLook*`` weights [N] implied by Audio2Face eye angles [N, 6] (degrees: right x, right y, 0,
    left x, left y, 0; +x looks down, +y to the character's left): each direction's angle divided by
    :data:`EYE_LOOK_FULL_DEGREES`, clipped to [0, 1]."""
    a = np.asarray(eyes, np.float64).reshape(-1, 6) / EYE_LOOK_FULL_DEGREES

    def part(v: np.ndarray) -> np.ndarray:
        return np.clip(v, 0.0, 1.0).astype(np.float32)

    out = {}
    for side, x, y in (("Right", a[:, 0], a[:, 1]), ("Left", a[:, 3], a[:, 4])):
        toward_left_in = side == "Right"  # the right eye turning to the character's left turns to the nose
        out[f"eyeLookDown{side}"], out[f"eyeLookUp{side}"] = part(x), part(-x)
        out[f"eyeLookIn{side}"] = part(y if toward_left_in else -y)
        out[f"eyeLookOut{side}"] = part(-y if toward_left_in else y)
    return out


def live_link_weights(anim: Animation) -> np.ndarray:
    """[N, 52] ARKit-order weights for Live Link: :func:`arkit_matrix` with each ``eyeLook*`` raised to the
    weight the eye rotation implies (:func:`eye_look_weights`)."""
    out = arkit_matrix(anim)
    if anim.eyes is not None:
        for name, values in eye_look_weights(anim.eyes).items():
            k = ARKIT_NAMES.index(name)
            out[:, k] = np.maximum(out[:, k], values)
    return out


def eye_rotations(anim: Animation) -> np.ndarray:
    """[N, 6] radians: left eye yaw, pitch, roll, right eye yaw, pitch, roll (Live Link Face's signs)."""
    out = np.zeros((len(anim), 6), np.float64)
    if anim.eyes is not None:
        e = np.radians(np.asarray(anim.eyes, np.float64)).reshape(len(anim), 6)
        out[:, 0], out[:, 1] = -e[:, 4], e[:, 3]
        out[:, 3], out[:, 4] = -e[:, 1], e[:, 0]
    return out


_CSV_COLUMNS = [ARKIT_NAMES.index(n[:1].lower() + n[1:]) for n in CSV_BLENDSHAPES]


def csv_text(anim: Animation) -> str:
    """The whole CSV (see the module docstring)."""
    weights = live_link_weights(anim)[:, _CSV_COLUMNS].astype(np.float64)
    values = np.concatenate([weights, np.zeros((len(anim), 3)), eye_rotations(anim)], axis=1)
    start = int(round(float(anim.times[0]) * float(anim.fps))) if len(anim) else 0
    count = len(HEADER) - 2
    lines = [",".join(HEADER)]
    for i in range(len(anim)):
        cells = ",".join(f"{v:.{DECIMALS}f}" for v in values[i]).replace("-0.0000000000", "0.0000000000")
        lines.append(f"{timecode(start + i, anim.fps)},{count},{cells}")
    return "\n".join(lines) + "\n"


def write_csv(anim: Animation, path: str | Path) -> Path:
    """Write the Live Link Face CSV (atomically)."""
    path = Path(path)
    text = csv_text(anim)
    atomic_write(path, lambda fh: fh.write(text.encode()))
    return path
