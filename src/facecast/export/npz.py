"""Animation as NPZ: every array, including the raw network pose and (when computed) geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facecast.animation import Animation
from facecast.fileio import write_npz


def write_npz_animation(anim: Animation, path: str | Path) -> Path:
    """Write all arrays of the animation (atomically)."""
    arrays: dict[str, np.ndarray] = {
        "fps": np.float64(anim.fps),
        "time": anim.times,
        "jaw": anim.jaw,
        "eyes": anim.eyes,
        "emotion": anim.emotion,
        "blink": anim.blink,
        "raw_result": anim.raw.result,
        "raw_emotion": anim.raw.emotion,
    }
    if anim.skin_weights is not None:
        arrays["skin_weights"] = anim.skin_weights
        arrays["skin_names"] = np.array(anim.skin_names)
    if anim.tongue_weights is not None:
        arrays["tongue_weights"] = anim.tongue_weights
        arrays["tongue_names"] = np.array(anim.tongue_names)
    if anim.skin_geometry is not None:
        arrays["skin_geometry"] = anim.skin_geometry
    if anim.tongue_geometry is not None:
        arrays["tongue_geometry"] = anim.tongue_geometry
    write_npz(Path(path), arrays)
    return Path(path)
