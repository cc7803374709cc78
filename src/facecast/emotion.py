"""Emotion conditioning for Audio2Face-3D: explicit emotion keyframes and the implicit emotion database.

The network's 26-value emotion input is ``implicit[16] ++ explicit[10]``:

- the implicit vector is one learned row of ``implicit_emo_db.npz`` picked by (``source_shot``,
  ``source_frame``) and kept fixed for a whole stream (:class:`ImplicitEmotionDB`);
- the explicit vector holds the 10 :data:`~facecast.constants.EMOTION_NAMES` weights in [0, 1], all zeros
  meaning neutral, sampled per frame from keyframes (:class:`EmotionTrack`) that come from the user or from
  Audio2Emotion.

Audio2Emotion itself (the classifier and its post-processing) lives in :mod:`facecast.infer.a2e`; its public names
are also reachable from this module.
"""

from __future__ import annotations

import bisect
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facecast.constants import EMOTION_NAMES, IMPLICIT_EMOTION_LEN

__all__ = [
    "EmotionError",
    "EmotionTrack",
    "ImplicitEmotionDB",
    "emotion_vector",
    "normalize_emotion_name",
]

NUM_EMOTIONS = len(EMOTION_NAMES)


class EmotionError(ValueError):
    """A user error about emotions: unknown name, weight outside [0, 1], bad time, bad emotion file."""


_INDEX = {name: i for i, name in enumerate(EMOTION_NAMES)}


def normalize_emotion_name(name: str) -> str:
    """Canonical emotion name; case, ``_``, ``-`` and spaces are ignored ("OutOfBreath" -> "outofbreath")."""
    if not isinstance(name, str):
        raise EmotionError(f"emotion name must be a string, got {type(name).__name__}")
    key = name.strip().lower().replace("_", "").replace("-", "").replace(" ", "")
    if key not in _INDEX:
        raise EmotionError(f"unknown emotion {name!r}; valid emotions are: {', '.join(EMOTION_NAMES)}")
    return key


def _check_weight(value: Any, what: str) -> float:
    """``value`` as a float in [0, 1], else :class:`EmotionError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise EmotionError(f"{what} must be a number in [0, 1], got {value!r}")
    v = float(value)
    if not (0.0 <= v <= 1.0):  # also rejects NaN
        raise EmotionError(f"{what} must be in [0, 1], got {v}")
    return v


def _check_time(value: Any) -> float:
    """``value`` as a finite time >= 0 in seconds, else :class:`EmotionError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise EmotionError(f"keyframe time must be a number of seconds, got {value!r}")
    t = float(value)
    if not math.isfinite(t) or t < 0.0:
        raise EmotionError(f"keyframe time must be finite and >= 0 s, got {t}")
    return t


def emotion_vector(mapping: Mapping[str, float]) -> np.ndarray:
    """The explicit 10-vector (float32, network order) from ``{name: weight}``; unnamed emotions are 0.

    Names are case-insensitive and may use the NIM's capitalised spelling ("Joy", "OutOfBreath").
    """
    return _mapping_vector(mapping).astype(np.float32)


def _mapping_vector(mapping: Mapping[str, float]) -> np.ndarray:
    """``{name: weight}`` as a validated float64 10-vector."""
    if not isinstance(mapping, Mapping):
        raise EmotionError(f"expected a mapping of emotion name -> weight, got {type(mapping).__name__}")
    out = np.zeros(NUM_EMOTIONS, dtype=np.float64)
    seen: dict[str, str] = {}
    for name, weight in mapping.items():
        key = normalize_emotion_name(name)
        if key in seen:
            raise EmotionError(f"emotion {key!r} given twice (as {seen[key]!r} and {name!r})")
        seen[key] = name
        out[_INDEX[key]] = _check_weight(weight, f"weight of {name!r}")
    return out


def _as_vector(
    value: Mapping[str, float] | Sequence[float] | np.ndarray, what: str, dtype: type = np.float32
) -> np.ndarray:
    """A mapping or a length-10 sequence as a validated 10-vector of ``dtype``."""
    if isinstance(value, Mapping):
        return _mapping_vector(value).astype(dtype)
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != (NUM_EMOTIONS,):
        names = ", ".join(EMOTION_NAMES)
        raise EmotionError(f"{what} must have {NUM_EMOTIONS} values ({names}), got {arr.shape}")
    bad = ~((arr >= 0.0) & (arr <= 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise EmotionError(f"{what}: weight of {EMOTION_NAMES[i]!r} must be in [0, 1], got {arr[i]}")
    return arr.astype(dtype)


class EmotionTrack:
    """Explicit emotion keyframes over time (seconds -> 10-vector), sampled like the SDK emotion accumulator.

    Between keys the vector is linearly interpolated; before the first and after the last key it is held at
    that key; with no keys it is all zeros (neutral).
    """

    def __init__(self) -> None:
        self._times: list[float] = []
        self._values: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self._times)

    def __repr__(self) -> str:
        return f"EmotionTrack({len(self)} keys)"

    @property
    def times(self) -> np.ndarray:
        """Key times in seconds, ascending, shape [K]."""
        return np.asarray(self._times, dtype=np.float64)

    @property
    def values(self) -> np.ndarray:
        """Key vectors, shape [K, 10] float32."""
        if not self._values:
            return np.zeros((0, NUM_EMOTIONS), dtype=np.float32)
        return np.stack(self._values)

    def add(self, time: float, emotion: Mapping[str, float] | Sequence[float] | np.ndarray) -> EmotionTrack:
        """Set the key at ``time`` seconds (replacing any key at exactly that time); returns ``self``.

        ``emotion`` is a ``{name: weight}`` mapping (unnamed emotions 0) or 10 weights in network order.
        """
        t = _check_time(time)
        vec = _as_vector(emotion, f"emotion at t={t:g} s")
        i = bisect.bisect_left(self._times, t)
        if i < len(self._times) and self._times[i] == t:
            self._values[i] = vec
        else:
            self._times.insert(i, t)
            self._values.insert(i, vec)
        return self

    def sample(self, times: np.ndarray | Sequence[float] | float) -> np.ndarray:
        """Emotion vectors at ``times`` (seconds), shape [N, 10] float32 (a scalar time gives [1, 10])."""
        t = np.atleast_1d(np.asarray(times, dtype=np.float64))
        if t.ndim != 1:
            raise EmotionError(f"sample times must be 1-D, got shape {t.shape}")
        if np.isnan(t).any():
            raise EmotionError("sample times must not be NaN")
        out = np.zeros((t.shape[0], NUM_EMOTIONS), dtype=np.float32)
        if not self._times:
            return out
        key_t = self.times
        key_v = self.values.astype(np.float64)
        for j in range(NUM_EMOTIONS):
            # np.interp holds the end values outside the key range, which is the clamping we want.
            out[:, j] = np.interp(t, key_t, key_v[:, j])
        return out

    @classmethod
    def parse(cls, specs: Sequence[str]) -> EmotionTrack:
        """Build a track from CLI strings ``NAME=WEIGHT[@TIME]`` (e.g. ``joy=0.8``, ``anger=1@2.5``).

        A spec without ``@TIME`` applies at t=0. All names given for the same time form one key; emotions not
        named at a key's time are 0 there.
        """
        if isinstance(specs, str):
            raise EmotionError("EmotionTrack.parse expects a list of specs, not a single string")
        groups: dict[float, dict[str, float]] = {}
        for spec in specs:
            name, weight, time = _parse_spec(spec)
            group = groups.setdefault(time, {})
            if name in group:
                raise EmotionError(f"emotion {name!r} given twice at t={time:g} s (spec {spec!r})")
            group[name] = weight
        track = cls()
        for time, mapping in groups.items():
            track.add(time, mapping)
        return track


def _parse_spec(spec: str) -> tuple[str, float, float]:
    """``NAME=WEIGHT[@TIME]`` -> (canonical name, weight, time)."""
    form = "expected NAME=WEIGHT[@TIME], e.g. 'joy=0.8' or 'anger=1@2.5'"
    if not isinstance(spec, str):
        raise EmotionError(f"bad emotion spec {spec!r}: {form}")
    name, sep, rest = spec.partition("=")
    if not sep or not name.strip() or not rest.strip():
        raise EmotionError(f"bad emotion spec {spec!r}: {form}")
    weight_s, at, time_s = rest.partition("@")
    try:
        weight = float(weight_s)
    except ValueError:
        raise EmotionError(f"bad weight {weight_s.strip()!r} in emotion spec {spec!r}: {form}") from None
    time = 0.0
    if at:
        try:
            time = float(time_s)
        except ValueError:
            raise EmotionError(f"bad time {time_s.strip()!r} in emotion spec {spec!r}: {form}") from None
    key = normalize_emotion_name(name)
    try:
        return key, _check_weight(weight, f"weight of {key!r}"), _check_time(time)
    except EmotionError as err:
        raise EmotionError(f"{err} (spec {spec!r})") from None


class ImplicitEmotionDB:
    """The learned implicit emotion vectors of ``implicit_emo_db.npz``, one [16] row per training frame.

    Layout: ``emo_db`` [N, 16] float32 (all shots concatenated), ``emo_spec_names`` (bytes),
    ``emo_spec_start`` and ``emo_spec_size`` (int32); the vector of (shot, frame) is
    ``emo_db[start + frame]``.
    """

    ARRAYS = ("emo_db", "emo_spec_names", "emo_spec_start", "emo_spec_size")

    def __init__(
        self,
        emo_db: np.ndarray,
        names: Sequence[str],
        starts: np.ndarray,
        sizes: np.ndarray,
        source: str = "<arrays>",
    ) -> None:
        """Use :meth:`load` or :meth:`from_arrays`; this takes already validated arrays."""
        self._db = emo_db
        self._names = tuple(names)
        self._starts = starts
        self._sizes = sizes
        self._index = {n: i for i, n in enumerate(self._names)}
        self.source = source

    def __repr__(self) -> str:
        return f"ImplicitEmotionDB({len(self._names)} shots, {self.num_frames} frames, {self.source!r})"

    @property
    def shots(self) -> tuple[str, ...]:
        """Shot names in file order."""
        return self._names

    @property
    def num_frames(self) -> int:
        """Total rows of ``emo_db``."""
        return int(self._db.shape[0])

    def shot_size(self, shot: str) -> int:
        """Number of frames of ``shot``."""
        return int(self._sizes[self._shot_index(shot)])

    def _shot_index(self, shot: str) -> int:
        if shot not in self._index:
            known = ", ".join(repr(n) for n in self._names[:10])
            more = f" (and {len(self._names) - 10} more)" if len(self._names) > 10 else ""
            raise EmotionError(f"unknown shot {shot!r} in {self.source}; known shots: {known}{more}")
        return self._index[shot]

    def vector(self, shot: str, frame: int) -> np.ndarray:
        """The implicit emotion vector of (``shot``, ``frame``), shape [16] float32 (a copy)."""
        i = self._shot_index(shot)
        if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)):
            raise EmotionError(f"frame must be an integer, got {frame!r}")
        size = int(self._sizes[i])
        if not 0 <= int(frame) < size:
            where = f"shot {shot!r} in {self.source}"
            raise EmotionError(f"frame {frame} out of range for {where}: valid 0..{size - 1}")
        return self._db[int(self._starts[i]) + int(frame)].copy()

    @classmethod
    def from_arrays(
        cls,
        emo_db: np.ndarray,
        names: Sequence[str | bytes] | np.ndarray,
        starts: Sequence[int] | np.ndarray,
        sizes: Sequence[int] | np.ndarray,
        source: str = "<arrays>",
    ) -> ImplicitEmotionDB:
        """Validate arrays in the file layout and build the database."""
        db = np.asarray(emo_db)
        where = f"array 'emo_db' in {source}"
        if db.ndim != 2 or db.shape[1] != IMPLICIT_EMOTION_LEN:
            raise EmotionError(f"{where} must have shape [N, {IMPLICIT_EMOTION_LEN}], got {list(db.shape)}")
        if db.dtype.kind not in "fiu":
            raise EmotionError(f"{where} must be floating point, got dtype {db.dtype}")
        db = db.astype(np.float32)
        if not np.isfinite(db).all():
            raise EmotionError(f"{where} contains NaN or infinite values")
        name_list = _decode_names(names, source)
        st = _int_array(starts, "emo_spec_start", source)
        sz = _int_array(sizes, "emo_spec_size", source)
        if not (len(name_list) == st.shape[0] == sz.shape[0]):
            raise EmotionError(
                f"{source}: emo_spec_names, emo_spec_start and emo_spec_size must have the same length, got "
                f"{len(name_list)}, {st.shape[0]} and {sz.shape[0]}"
            )
        dup = sorted({n for n in name_list if name_list.count(n) > 1})
        if dup:
            raise EmotionError(f"array 'emo_spec_names' in {source} has duplicate shot names: {dup}")
        for name, s, n in zip(name_list, st, sz, strict=True):
            if s < 0 or n <= 0 or s + n > db.shape[0]:
                rows = db.shape[0]
                msg = f"{source}: shot {name!r} has start {s} and size {n}, outside 'emo_db' with {rows} rows"
                raise EmotionError(msg)
        return cls(db, name_list, st, sz, source=source)

    @classmethod
    def from_shots(cls, shots: Mapping[str, np.ndarray]) -> ImplicitEmotionDB:
        """Build a database from ``{shot name: [frames, 16] array}``, concatenated in mapping order."""
        blocks = [np.asarray(v, dtype=np.float32).reshape(-1, IMPLICIT_EMOTION_LEN) for v in shots.values()]
        sizes = np.array([b.shape[0] for b in blocks], dtype=np.int32)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32) if blocks else sizes
        db = np.concatenate(blocks) if blocks else np.zeros((0, IMPLICIT_EMOTION_LEN), np.float32)
        return cls.from_arrays(db, list(shots), starts, sizes)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ImplicitEmotionDB:
        """Load and validate an ``implicit_emo_db.npz`` (pickled object arrays are refused)."""
        p = Path(path)
        src = str(p)
        try:
            npz = np.load(p, allow_pickle=False)
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as err:
            raise EmotionError(f"cannot read implicit emotion database {src}: {err}") from err
        if not hasattr(npz, "files"):
            raise EmotionError(f"{src} is not an .npz archive (expected arrays {', '.join(cls.ARRAYS)})")
        with npz:
            missing = [a for a in cls.ARRAYS if a not in npz.files]
            if missing:
                raise EmotionError(f"{src} is missing array(s) {missing}; it has {sorted(npz.files)}")
            arrays: dict[str, np.ndarray] = {}
            for name in cls.ARRAYS:
                try:
                    arrays[name] = npz[name]
                except ValueError as err:  # object arrays need pickle, which we never allow
                    raise EmotionError(
                        f"array {name!r} in {src} is a pickled object array; refusing to load it ({err})"
                    ) from None
        return cls.from_arrays(
            arrays["emo_db"], arrays["emo_spec_names"], arrays["emo_spec_start"], arrays["emo_spec_size"], src
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the database in the ``implicit_emo_db.npz`` layout (atomically: temp file + rename)."""
        p = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=p.name + ".", suffix=".tmp", dir=p.parent if str(p.parent) else ".")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(
                    f,
                    emo_db=self._db.astype(np.float32),
                    emo_spec_names=np.array([n.encode("utf-8") for n in self._names], dtype=np.bytes_),
                    emo_spec_start=self._starts.astype(np.int32),
                    emo_spec_size=self._sizes.astype(np.int32),
                )
            os.replace(tmp, p)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


def _decode_names(names: Sequence[str | bytes] | np.ndarray, source: str) -> list[str]:
    """Shot names as str (bytes decoded as UTF-8)."""
    arr = np.asarray(names)
    where = f"array 'emo_spec_names' in {source}"
    if arr.ndim != 1:
        raise EmotionError(f"{where} must be 1-D, got shape {list(arr.shape)}")
    if arr.size and arr.dtype.kind not in "SUO":
        raise EmotionError(f"{where} must hold strings, got dtype {arr.dtype}")
    out = []
    for n in arr.tolist():
        if isinstance(n, bytes):
            try:
                n = n.decode("utf-8")
            except UnicodeDecodeError:
                raise EmotionError(f"{where} holds a name that is not UTF-8: {n!r}") from None
        if not isinstance(n, str) or not n:
            raise EmotionError(f"{where} holds an empty or non-string name: {n!r}")
        out.append(n)
    return out


def _int_array(values: Sequence[int] | np.ndarray, name: str, source: str) -> np.ndarray:
    """A 1-D integer array as int64."""
    arr = np.asarray(values)
    where = f"array {name!r} in {source}"
    if arr.ndim != 1:
        raise EmotionError(f"{where} must be 1-D, got shape {list(arr.shape)}")
    if arr.size and arr.dtype.kind not in "iu":
        raise EmotionError(f"{where} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)
