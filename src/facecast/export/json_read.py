"""Read animation JSON (``facecast.animation/1``, see :mod:`facecast.export.json`) back into an Animation."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from facecast.animation import Animation
from facecast.constants import EMOTION_NAMES, SAMPLE_RATE
from facecast.export.json import FORMAT
from facecast.fileio import FileFormatError, read_json
from facecast.infer.engine import NetworkOutput

MAX_ANIMATION_JSON_BYTES = 256 * 1024 * 1024
"""An animation JSON larger than this is refused (counted while reading; FIFOs and devices are never read)."""


def _matrix(value: Any, rows: int, cols: int | None, what: str, source: str) -> np.ndarray:
    try:
        arr = np.asarray(value, np.float32)
    except (TypeError, ValueError):
        raise FileFormatError([f"{source}: {what} is not a table of numbers"]) from None
    want = (rows,) if cols is None else (rows, cols)
    if rows == 0 and arr.size == 0:
        arr = arr.reshape(want)
    if arr.shape != want:
        raise FileFormatError([f"{source}: {what} has shape {list(arr.shape)}, expected {list(want)}"])
    if not np.isfinite(arr).all():
        raise FileFormatError([f"{source}: {what} holds NaN or infinite values"])
    return arr


def _poses(doc: Mapping, key: str, n: int, source: str) -> tuple[tuple[str, ...], np.ndarray | None]:
    part = doc.get(key)
    if part is None:
        return (), None
    if not isinstance(part, Mapping) or not isinstance(part.get("names"), list):
        raise FileFormatError([f"{source}: '{key}' must be {{'names': [...], 'weights': [[...]]}}"])
    names = tuple(str(n) for n in part["names"])
    return names, _matrix(part.get("weights"), n, len(names), f"{key} weights", source)


def animation_from_dict(doc: Any, source: str = "animation") -> Animation:
    """An :class:`Animation` from a parsed ``facecast.animation/1`` document (``raw`` holds no network pose)."""
    if not isinstance(doc, Mapping) or doc.get("format") != FORMAT:
        raise FileFormatError([f'{source}: not a facecast animation (expected "format": "{FORMAT}")'])
    fps = doc.get("fps")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 1000:
        raise FileFormatError([f"{source}: fps must be a number between 0 and 1000, got {fps!r}"])
    times = np.asarray(doc.get("time") or [], np.float64)
    n = len(times)
    if times.ndim != 1 or not np.isfinite(times).all():
        raise FileFormatError([f"{source}: 'time' must be a list of seconds"])
    skin_names, skin = _poses(doc, "skin", n, source)
    tongue_names, tongue = _poses(doc, "tongue", n, source)
    jaw = np.tile(np.eye(4, dtype=np.float32), (n, 1, 1))
    if doc.get("jaw") is not None:
        jaw = _matrix(doc["jaw"], n, 16, "jaw", source).reshape(n, 4, 4).transpose(0, 2, 1).copy()
    eyes = np.zeros((n, 6), np.float32) if doc.get("eyes") is None else _matrix(doc["eyes"], n, 6, "eyes", source)
    emotion = np.zeros((n, len(EMOTION_NAMES)), np.float32)
    if isinstance(doc.get("emotion"), Mapping):
        emotion = _matrix(doc["emotion"].get("weights"), n, len(EMOTION_NAMES), "emotion weights", source)
    blink = np.zeros(n, np.float32) if doc.get("blink") is None else _matrix(doc["blink"], n, None, "blink", source)
    raw = NetworkOutput(
        frame_index=np.arange(n, dtype=np.int64),
        target_samples=np.rint(times * SAMPLE_RATE).astype(np.int64),
        result=np.zeros((n, 0), np.float32),
        emotion=np.zeros((n, 0), np.float32),
        num_shapes_skin=0,
        num_shapes_tongue=0,
        fps=float(fps),
    )
    return Animation(
        fps=float(fps),
        times=times,
        skin_names=skin_names,
        skin_weights=skin,
        tongue_names=tongue_names,
        tongue_weights=tongue,
        jaw=jaw,
        eyes=eyes,
        emotion=emotion,
        blink=blink,
        raw=raw,
        actor=str(doc.get("actor") or ""),
        random_weights=bool(doc.get("random_weights", False)),
    )


def read_animation_json(path: str | Path) -> Animation:
    """Read an animation JSON file; a malformed file raises FileFormatError naming it (as do a FIFO, a device or a
    directory in its place, and a file over :data:`MAX_ANIMATION_JSON_BYTES`)."""
    path = Path(path)
    return animation_from_dict(read_json(path, max_bytes=MAX_ANIMATION_JSON_BYTES), str(path))
