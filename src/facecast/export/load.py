"""Read an animation back from the files facecast writes: JSON (``facecast.animation/1``) or NPZ.

The raw network pose is not in the JSON, so the loaded :class:`~facecast.animation.Animation` carries an empty
``raw`` (no network values); everything the writers and retargeting use (fps, times, weights and names, jaw,
eyes, emotion, blink) is restored.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from facecast.animation import Animation
from facecast.constants import EMOTION_NAMES, SAMPLE_RATE
from facecast.export.json_read import read_animation_json
from facecast.fileio import FileFormatError, NpyHeader, read_npz
from facecast.infer.engine import NetworkOutput

MAX_ANIMATION_NPZ_BYTES = 4 * 1024**3
"""An animation ``.npz`` whose arrays inflate to more than this is refused from its headers."""
_PER_FRAME = ("time", "jaw", "eyes", "emotion", "blink", "raw_result", "raw_emotion", "skin_weights",
              "tongue_weights", "skin_geometry", "tongue_geometry")  # fmt: skip
_OTHER_BYTES = 1 << 20


def _check_headers(path: Path) -> Callable[[dict[str, NpyHeader]], list[str]]:
    """Before loading: every per-frame array has one row per frame of ``time``; anything else is small."""

    def check(headers: dict[str, NpyHeader]) -> list[str]:
        time = headers.get("time")
        if time is None or len(time.shape) != 1:
            return [f"{path}: not a facecast animation npz (no 1-D 'time' array)"]
        problems = []
        for name, header in headers.items():
            if name in _PER_FRAME and (not header.shape or header.shape[0] != time.shape[0]):
                problems.append(f"{path}: {name} has shape {header.shape}, expected {time.shape[0]} frames first")
            elif name not in _PER_FRAME and header.nbytes > _OTHER_BYTES:
                problems.append(f"{path}: {name} holds {header.nbytes} bytes, more than {_OTHER_BYTES}")
        return problems

    return check


def _empty_raw(times: np.ndarray, fps: float, emotion: np.ndarray) -> NetworkOutput:
    n = len(times)
    return NetworkOutput(
        frame_index=np.arange(n),
        target_samples=np.round(np.asarray(times, np.float64) * SAMPLE_RATE),
        result=np.zeros((n, 0), np.float32),
        emotion=np.concatenate([np.zeros((n, 16), np.float32), emotion.astype(np.float32)], axis=1),
        num_shapes_skin=0,
        num_shapes_tongue=0,
        fps=fps,
    )


def _array(value, shape_tail: tuple[int, ...], n: int, what: str, path: Path) -> np.ndarray:
    arr = np.asarray(value, np.float32)
    if arr.shape != (n, *shape_tail):
        raise FileFormatError([f"{path}: {what} has shape {list(arr.shape)}, expected {[n, *shape_tail]}"])
    return arr


def _from_json(path: Path) -> Animation:
    return read_animation_json(path)


def _from_npz(path: Path) -> Animation:
    a = read_npz(path, max_bytes=MAX_ANIMATION_NPZ_BYTES, check=_check_headers(path))
    try:
        fps, times = float(a["fps"]), a["time"].astype(np.float64)
        n = len(times)
        emotion = a["emotion"].astype(np.float32) if "emotion" in a else np.zeros((n, len(EMOTION_NAMES)), np.float32)
        return Animation(
            fps=fps,
            times=times,
            skin_names=tuple(str(s) for s in a["skin_names"]) if "skin_names" in a else (),
            skin_weights=a.get("skin_weights"),
            tongue_names=tuple(str(s) for s in a["tongue_names"]) if "tongue_names" in a else (),
            tongue_weights=a.get("tongue_weights"),
            jaw=a["jaw"].reshape(n, 4, 4),
            eyes=a["eyes"].reshape(n, 6),
            emotion=emotion,
            blink=a["blink"] if "blink" in a else np.zeros(n, np.float32),
            raw=_empty_raw(times, fps, emotion),
            skin_geometry=a.get("skin_geometry"),
            tongue_geometry=a.get("tongue_geometry"),
        )
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise FileFormatError([f"{path}: not a facecast animation npz ({exc.__class__.__name__}: {exc})"]) from None


def load_animation(path: str | Path) -> Animation:
    """An animation written by facecast as ``.json`` or ``.npz``; a bad file raises FileFormatError."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return _from_json(path)
    if path.suffix.lower() == ".npz":
        return _from_npz(path)
    raise FileFormatError([f"{path}: expected a facecast animation .json or .npz"])
