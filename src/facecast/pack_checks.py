"""The checks a model pack's files pass before facecast uses them (see :mod:`facecast.pack`).

Three kinds: where a file may be (:func:`resolve_inside`: every file of a pack, fallbacks included, resolves
inside the pack folder), what each ``.npz`` member may declare before it is decompressed (:func:`npz_check`, from
the ``.npy`` headers: names, dtype kinds, shapes from ``network_info.json``, sizes), and what the values may be
once loaded (finite numbers, ranges, names). Every problem names its file and field.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np

from facecast.constants import EMOTION_NAMES
from facecast.fileio import FileFormatError, NpyHeader, brief

MODEL_JSON = "model.json"
MAX_VERTS = 1_000_000
MAX_SHAPES = 4096
MAX_POSES = 1024
MAX_IMPLICIT_EMOTION = 1024
MAX_ROWS = 1_000_000
"""Most rows of an array whose length the format leaves open (saccade frames, emotion frames, shots)."""
MAX_WINDOW = 160_000
UNKNOWN_ARRAY_BYTES = 1 << 20
"""An array the format does not name may hold at most this much (1 MiB) ..."""
UNKNOWN_TOTAL_BYTES = 4 << 20
"""... and all of them together at most this much (4 MiB)."""
PACK_NPZ_BYTES = 1 << 30
"""No ``.npz`` of a pack may inflate to more than this (1 GiB) in all (NVIDIA's largest is about 200 MB)."""
REQUIRED_MODEL_DATA = ("shapes_matrix_skin", "shapes_mean_skin", "lip_open_pose_delta", "eye_close_pose_delta",
                       "shapes_matrix_tongue", "shapes_mean_tongue", "neutral_jaw", "saccade_rot_matrix")  # fmt: skip
_KIND_WORDS = {"f": "floating point numbers", "iu": "integers", "SU": "strings"}


class PackError(FileFormatError):
    """A model pack is missing, unreadable or inconsistent; the message lists every problem found."""


def resolve_inside(root: Path, relative: Any, what: str) -> Path:
    """Resolve ``relative`` against the pack folder (symbolic links followed), refusing anything that lands outside."""
    if not isinstance(relative, str) or not relative:
        raise PackError([f"{root / MODEL_JSON}: {what} must be a non-empty relative path, got {relative!r}"])
    candidate = Path(relative)
    if candidate.is_absolute():
        raise PackError([f"{root / MODEL_JSON}: {what} is an absolute path ({relative}); packs use relative paths"])
    try:
        resolved = (root / candidate).resolve()
        inside = resolved.is_relative_to(root.resolve())
    except (OSError, RuntimeError, ValueError) as exc:  # a symbolic link loop, a NUL in the name
        raise PackError([f"{root / MODEL_JSON}: {what} ({relative}) cannot be resolved ({exc})"]) from None
    if not inside and what == relative:  # a file the format names itself (model.json, trt_info.json)
        raise PackError([f"{root / relative}: points outside the pack folder (to {resolved}); packs hold their files"])
    if not inside:
        raise PackError([f"{root / MODEL_JSON}: {what} ({relative}) points outside the pack folder"])
    return resolved


# ----------------------------------------------------------------------------------------------------
# .npz members, from their headers


@dataclass(frozen=True)
class Array:
    """What one ``.npz`` member may be: dtype kinds (``"f"``, ``"iu"``, ``"SU"``) and a shape whose ``None``
    entries are open (at most ``limit`` long)."""

    kinds: str
    shape: tuple[int | None, ...]
    limit: int = MAX_ROWS
    required: bool = True


def _shape_text(shape: tuple[int | None, ...]) -> str:
    parts = ["N" if d is None else str(d) for d in shape]
    return f"({parts[0]},)" if len(parts) == 1 else f"({', '.join(parts)})"


def _array_problem(spec: Array, header: NpyHeader) -> str | None:
    if header.dtype.kind not in spec.kinds:
        return f"has dtype {header.dtype}, expected {_KIND_WORDS.get(spec.kinds, spec.kinds)}"
    shape = header.shape
    if len(shape) != len(spec.shape) or any(w is not None and d != w for d, w in zip(shape, spec.shape, strict=True)):
        return f"has shape {shape}, expected {_shape_text(spec.shape)}"
    if any(w is None and d > spec.limit for d, w in zip(shape, spec.shape, strict=True)):
        return f"has shape {shape}: more than {spec.limit} entries where {_shape_text(spec.shape)} is expected"
    return None


def npz_check(
    path: Path, arrays: dict[str, Array], *, note: str = "", extra: Array | None = None, extra_what: str = ""
) -> Callable[[dict[str, NpyHeader]], list[str]]:
    """A ``check`` for :func:`facecast.fileio.read_npz`: the named ``arrays`` must be there as described; other
    members must match ``extra`` (a blendshape file's poses) or hold at most :data:`UNKNOWN_ARRAY_BYTES`."""

    def check(headers: dict[str, NpyHeader]) -> list[str]:
        problems = [f"{path}: array {n} is missing" for n, spec in arrays.items() if spec.required and n not in headers]
        unknown = 0
        for name, header in headers.items():
            spec = arrays.get(name)
            if spec is not None:
                problem = _array_problem(spec, header)
                if problem:
                    problems.append(f"{path}: {name} {problem}{note}")
            elif extra is not None and _array_problem(extra, header) is None:
                continue
            elif header.nbytes > UNKNOWN_ARRAY_BYTES:
                problems.append(
                    f"{path}: array {name!r} ({header.nbytes} bytes) is not {extra_what or 'part of this file'}; "
                    f"other arrays may hold at most {UNKNOWN_ARRAY_BYTES} bytes"
                )
            else:
                unknown += header.nbytes
        if unknown > UNKNOWN_TOTAL_BYTES:
            problems.append(f"{path}: arrays the format does not name hold {unknown} bytes, more than the "
                            f"{UNKNOWN_TOTAL_BYTES} allowed")  # fmt: skip
        return problems

    return check


def model_data_arrays(info: Any) -> dict[str, Array]:
    """``model_data.npz``: shapes from ``network_info.json`` (open when it could not be read)."""
    ks, vs, kt, vt = (
        (info.num_shapes_skin, info.num_verts_skin, info.num_shapes_tongue, info.num_verts_tongue)
        if info is not None
        else (None, None, None, None)
    )
    jaw = info.result_jaw_size // 3 if info is not None else None
    return {
        "shapes_matrix_skin": Array("f", (ks, vs, 3)),
        **{name: Array("f", (vs, 3)) for name in ("shapes_mean_skin", "lip_open_pose_delta", "eye_close_pose_delta")},
        "shapes_matrix_tongue": Array("f", (kt, vt, 3)),
        "shapes_mean_tongue": Array("f", (vt, 3)),
        "neutral_jaw": Array("f", (jaw, 3)),
        "saccade_rot_matrix": Array("f", (None, 2)),
    }


def emotion_db_arrays(info: Any) -> dict[str, Array]:
    """``implicit_emo_db.npz``: one row of ``implicit_emotion_len`` values per frame, shots by name."""
    length = info.implicit_emotion_len if info is not None else None
    return {
        "emo_db": Array("f", (None, length)),
        "emo_spec_names": Array("SU", (None,)),
        "emo_spec_start": Array("iu", (None,)),
        "emo_spec_size": Array("iu", (None,)),
    }


def blendshape_arrays(verts: int | None) -> tuple[dict[str, Array], Array]:
    """``bs_*.npz``: the named arrays, and what each pose array may be (``[V, 3]`` floats, V at most ``verts``)."""
    limit = verts if verts is not None else MAX_VERTS
    arrays = {
        "poseNames": Array("SU", (None,), MAX_POSES + 1),
        "neutral": Array("f", (None, 3), limit),
        "frontalMask": Array("iu", (None,), limit, required=False),
    }
    return arrays, Array("f", (None, 3), limit)


def blendshape_bytes(verts: int | None) -> int:
    """The most a blendshape file may inflate to: a neutral and :data:`MAX_POSES` poses of float64, plus the
    allowance for other arrays."""
    per_pose = 3 * 8 * (verts if verts is not None else MAX_VERTS)
    return min(PACK_NPZ_BYTES, (MAX_POSES + 2) * per_pose + UNKNOWN_TOTAL_BYTES)


# ----------------------------------------------------------------------------------------------------
# values


def _finite_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def network_info_problems(values: dict[str, Any], source: str) -> list[str]:
    """Ranges of ``network_info.json``'s values (types were checked as they were read)."""
    problems = []
    limits = {"num_shapes_skin": (0, MAX_SHAPES), "num_shapes_tongue": (0, MAX_SHAPES),
              "num_verts_skin": (1, MAX_VERTS), "num_verts_tongue": (0, MAX_VERTS),
              "implicit_emotion_len": (0, MAX_IMPLICIT_EMOTION), "buffer_len": (1, MAX_WINDOW)}  # fmt: skip
    for key, (lo, hi) in limits.items():
        value = values.get(key)
        if value is not None and not lo <= value <= hi:
            section = "audio_params" if key == "buffer_len" else "params"
            problems.append(f"{source}: {section}.{key} is {value}, expected {lo} to {hi}")
    emotions, default = values.get("explicit_emotions"), values.get("default_emotion")
    if emotions is not None and list(emotions) != list(EMOTION_NAMES):
        problems.append(
            f"{source}: params.explicit_emotions must name the {len(EMOTION_NAMES)} emotions "
            f"{', '.join(EMOTION_NAMES)} in that order, got {len(emotions)}: {brief(emotions)}"
        )
    if default is not None and not all(_finite_number(v) and 0 <= v <= 1 for v in default):
        problems.append(f"{source}: params.default_emotion must hold numbers from 0 to 1, got {brief(default)}")
    return problems


def _non_finite(path: Path, arrays: dict[str, np.ndarray]) -> list[str]:
    return [
        f"{path}: {name} holds NaN or infinite values"
        for name, array in arrays.items()
        if array.dtype.kind == "f" and not np.all(np.isfinite(array))
    ]


def model_data_problems(path: Path, data: dict[str, np.ndarray]) -> list[str]:
    """Values of a loaded ``model_data.npz`` (its member shapes and dtypes were checked from the headers)."""
    problems = _non_finite(path, data)
    sac = data.get("saccade_rot_matrix")
    if sac is not None and sac.shape[0] < 1:
        problems.append(f"{path}: saccade_rot_matrix has shape {sac.shape}, expected [N, 2] with N at least 1")
    return problems


def emotion_db_problems(path: Path, db: dict[str, np.ndarray]) -> list[str]:
    """Values of a loaded ``implicit_emo_db.npz``: finite rows, shots inside them."""
    problems = _non_finite(path, {"emo_db": db["emo_db"]})
    emo, start, size = db["emo_db"], db["emo_spec_start"], db["emo_spec_size"]
    n = len(db["emo_spec_names"])
    if len(start) != n or len(size) != n:
        problems.append(f"{path}: emo_spec_names, emo_spec_start and emo_spec_size differ in length")
    elif n:
        ends = start.astype(np.int64) + size.astype(np.int64)
        if start.min() < 0 or size.min() < 0 or ends.max() > emo.shape[0]:
            problems.append(f"{path}: a shot's frames run outside emo_db's {emo.shape[0]} rows")
    return problems


def pose_names(path: Path, raw: np.ndarray) -> tuple[list[str], list[str]]:
    """The names of ``poseNames`` (``neutral`` first) and the problems with them."""
    names = [n.decode(errors="replace") if isinstance(n, bytes) else str(n) for n in raw.reshape(-1).tolist()]
    problems = []
    if not names or names[0] != "neutral":
        problems.append(f"{path}: poseNames[0] must be 'neutral', got {brief(names[:1])}")
    seen: set[str] = set()
    twice = [n for n in names if n in seen or seen.add(n)]
    if twice:
        problems.append(f"{path}: poseNames lists {brief(sorted(set(twice)))} more than once")
    return names, problems


def poses(names: list[str]) -> str:
    """``pose 'a' is`` / ``poses 'a', 'b', ... (N in all) are``: the start of a message about some poses."""
    quoted = [repr(n) for n in names]
    return f"pose {quoted[0]} is" if len(names) == 1 else f"poses {brief(quoted)} are"


def blendshape_value_problems(path: Path, neutral: np.ndarray, deltas: dict[str, np.ndarray]) -> list[str]:
    """A blendshape file's neutral and pose deltas: floats, finite."""
    problems = _non_finite(path, {"neutral": neutral})
    if bad := [name for name, d in deltas.items() if d.dtype.kind != "f"]:
        problems.append(f"{path}: {poses(bad)} not made of floating point numbers ({deltas[bad[0]].dtype})")
    if bad := [name for name, d in deltas.items() if d.dtype.kind == "f" and not np.all(np.isfinite(d))]:
        problems.append(f"{path}: {poses(bad)} holding NaN or infinite values")
    return problems


_PER_POSE = {
    "bsSolveActivePoses": "0 or 1",
    "bsSolveCancelPoses": "pair ids (-1 for none)",
    "bsSolveSymmetryPoses": "pair ids (-1 for none)",
    "bsWeightMultipliers": "finite numbers",
    "bsWeightOffsets": "finite numbers",
}


def _per_pose_ok(key: str, value: Any) -> bool:
    if key == "bsSolveActivePoses":
        return isinstance(value, bool) or (isinstance(value, int) and value in (0, 1))
    if key in ("bsSolveCancelPoses", "bsSolveSymmetryPoses"):
        return isinstance(value, int) and not isinstance(value, bool) and value >= -1
    return _finite_number(value)


def blendshape_config_problems(config_path: Path, npz_name: str, config: dict, poses: int) -> list[str]:
    """``blendshape_params`` of a ``bs_*_config.json`` against a file of ``poses`` poses: lengths, types, values
    (the solver's own rules: strengths finite and >= 0, sizes > 0, each pair id on exactly two poses)."""
    problems = []
    num = config.get("numPoses")
    if num is not None and num != poses:
        problems.append(f"{config_path}: blendshape_params.numPoses is {num}, {npz_name} has {poses} poses")
    for key, words in _PER_POSE.items():
        if key not in config:
            continue
        values = config[key]
        if not isinstance(values, list):
            problems.append(f"{config_path}: blendshape_params.{key} must be a list")
        elif len(values) != poses:
            problems.append(f"{config_path}: blendshape_params.{key} has {len(values)} values for {poses} poses")
        elif bad := [i for i, v in enumerate(values) if not _per_pose_ok(key, v)]:
            shown = brief(f"[{i}] = {values[i]!r}" for i in bad)
            problems.append(f"{config_path}: blendshape_params.{key} must hold {words}; {shown}")
        elif key in ("bsSolveCancelPoses", "bsSolveSymmetryPoses"):
            ids, counts = np.unique(np.asarray([v for v in values if v != -1], np.int64), return_counts=True)
            if (counts != 2).any():
                odd = ids[counts != 2].tolist()
                problems.append(f"{config_path}: blendshape_params.{key}: pair ids {brief(odd)} are not on two poses")
    for key, value in config.items():
        if key.startswith("strength") and not (_finite_number(value) and value >= 0):
            problems.append(f"{config_path}: blendshape_params.{key} must be a finite number >= 0, got {value!r}")
        elif key in ("templateBBSize", "tolerance") and not (_finite_number(value) and value > 0):
            problems.append(f"{config_path}: blendshape_params.{key} must be a finite number > 0, got {value!r}")
    return problems
