"""Read an animation back from the files facecast writes: JSON (``facecast.animation/1``) or NPZ.

The raw network pose is not in the JSON, so the loaded :class:`~facecast.animation.Animation` carries an empty
``raw`` (no network values); everything the writers and retargeting use (fps, times, weights and names, jaw,
eyes, emotion, blink) is restored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..animation import Animation
from ..constants import EMOTION_NAMES, SAMPLE_RATE
from ..engine import NetworkOutput
from ..fileio import FileFormatError, read_json, read_npz
from .json import FORMAT


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
    doc = read_json(path)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise FileFormatError([f'{path}: not a facecast animation (expected "format": "{FORMAT}")'])
    try:
        fps, times = float(doc["fps"]), np.asarray(doc["time"], np.float64)
        n = len(times)
        skin, tongue = doc.get("skin"), doc.get("tongue")
        emotion = doc.get("emotion") or {}
        emo = np.zeros((n, len(EMOTION_NAMES)), np.float32)
        if emotion.get("weights") is not None:
            emo = _array(emotion["weights"], (len(EMOTION_NAMES),), n, "emotion", path)
        jaw = _array(doc["jaw"], (16,), n, "jaw", path).reshape(n, 4, 4).transpose(0, 2, 1)
        return Animation(
            fps=fps,
            times=times,
            skin_names=tuple(skin["names"]) if skin else (),
            skin_weights=_array(skin["weights"], (len(skin["names"]),), n, "skin weights", path) if skin else None,
            tongue_names=tuple(tongue["names"]) if tongue else (),
            tongue_weights=_array(tongue["weights"], (len(tongue["names"]),), n, "tongue weights", path)
            if tongue
            else None,
            jaw=np.ascontiguousarray(jaw),
            eyes=_array(doc["eyes"], (6,), n, "eyes", path),
            emotion=emo,
            blink=_array(doc["blink"], (), n, "blink", path) if doc.get("blink") is not None else np.zeros(n),
            raw=_empty_raw(times, fps, emo),
            actor=str(doc.get("actor", "")),
            random_weights=bool(doc.get("random_weights", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, FileFormatError):
            raise
        raise FileFormatError([f"{path}: malformed facecast animation ({exc.__class__.__name__}: {exc})"]) from None


def _from_npz(path: Path) -> Animation:
    a = read_npz(path)
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
    except (KeyError, ValueError) as exc:
        raise FileFormatError([f"{path}: not a facecast animation npz ({exc.__class__.__name__}: {exc})"]) from None


def load_animation(path: str | Path) -> Animation:
    """An animation written by facecast as ``.json`` or ``.npz``; a bad file raises FileFormatError."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return _from_json(path)
    if path.suffix.lower() == ".npz":
        return _from_npz(path)
    raise FileFormatError([f"{path}: expected a facecast animation .json or .npz"])
