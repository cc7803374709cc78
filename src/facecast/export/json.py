"""Animation as JSON, schema ``facecast.animation/1``.

``{"format": "facecast.animation/1", "fps", "num_frames", "actor", "random_weights",
"time": [N] seconds (exact frame times k / fps),
"skin": {"names": [52], "weights": [N][52]}, "tongue": {"names": [16], "weights": [N][16]},
"jaw": [N][16] column-major 4x4, "eyes": [N][6] degrees (right x, right y, 0, left x, left y, 0),
"emotion": {"names": [10], "weights": [N][10]}, "blink": [N]}``. Missing parts (a model without tongue
blendshapes) are ``null``. Values are rounded to 6 decimals.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from facecast.animation import Animation
from facecast.constants import EMOTION_NAMES
from facecast.export.csv import frame_times
from facecast.fileio import atomic_write

FORMAT = "facecast.animation/1"


def _rows(array: np.ndarray | None) -> list | None:
    return None if array is None else np.round(np.asarray(array, np.float64), 6).tolist()


def animation_dict(anim: Animation) -> dict:
    """The JSON document of an :class:`Animation`."""
    return {
        "format": FORMAT,
        "fps": anim.fps,
        "num_frames": len(anim),
        "actor": anim.actor,
        "random_weights": anim.random_weights,
        "time": _rows(frame_times(anim)),
        "skin": None
        if anim.skin_weights is None
        else {"names": list(anim.skin_names), "weights": _rows(anim.skin_weights)},
        "tongue": None
        if anim.tongue_weights is None
        else {"names": list(anim.tongue_names), "weights": _rows(anim.tongue_weights)},
        "jaw": _rows(anim.jaw_column_major),
        "eyes": _rows(anim.eyes),
        "emotion": {"names": list(EMOTION_NAMES), "weights": _rows(anim.emotion)},
        "blink": _rows(anim.blink),
    }


def write_json(anim: Animation, path: str | Path) -> Path:
    """Write the animation as JSON (atomically)."""
    path = Path(path)
    atomic_write(path, lambda fh: fh.write(json.dumps(animation_dict(anim)).encode()))
    return path
