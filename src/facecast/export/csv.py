"""ARKit curves as CSV in the Live Link Face take layout.

Columns: ``Timecode`` (HH:MM:SS:FF.mmm at the animation's fps), ``BlendShapeCount`` (61), the 52 ARKit
blendshapes in Live Link Face's order and capitalisation (EyeBlinkLeft ... TongueOut), then HeadYaw, HeadPitch,
HeadRoll (0: facecast animates a static head) and LeftEyeYaw, LeftEyePitch, LeftEyeRoll, RightEyeYaw,
RightEyePitch, RightEyeRoll in radians, from the Audio2Face eye rotations.
"""

from __future__ import annotations

import csv
import io
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


HEADER = ("Timecode", "BlendShapeCount", *(live_link_name(n) for n in ARKIT_NAMES), *ROTATION_COLUMNS)


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


def write_csv(anim: Animation, path: str | Path) -> Path:
    """Write the Live Link Face CSV (atomically)."""
    path = Path(path)
    weights = arkit_matrix(anim)
    eyes = np.radians(np.asarray(anim.eyes, np.float64))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(HEADER)
    for i in range(len(anim)):
        # A2F eyes: (right x=pitch, right y=yaw, 0, left x, left y, 0)
        rot = (0.0, 0.0, 0.0, eyes[i, 4], eyes[i, 3], 0.0, eyes[i, 1], eyes[i, 0], 0.0)
        writer.writerow([timecode(i, anim.fps), len(ARKIT_NAMES) + 9, *(f"{w:.6f}" for w in weights[i]),
                         *(f"{r:.6f}" for r in rot)])  # fmt: skip
    atomic_write(path, lambda fh: fh.write(buf.getvalue().encode()))
    return path
