"""Blendshape solve: geometry → blendshape (e.g. ARKit) weights, as the Audio2Face-3D SDK does it.

For each frame the SDK minimises a regularised least-squares fit of the pose deltas to the target
geometry on the ``frontalMask`` vertices, with weights bounded to [0, 1] (spec §6)::

    A = DᵀD + L1²·¼·s·𝟙𝟙ᵀ + L2·10·s·I + T·100·s·I + S·10·s·MᵀM
    b = Dᵀ(target − neutral) + T·s·w_prev
    w = argmin ½wᵀAw − bᵀw  subject to  0 ≤ w ≤ 1

over the active poses, where ``s = (‖bbox(neutral)‖ / templateBBSize)²`` and ``M`` has one (+1, −1) row
per symmetry pair. Cancel pairs re-solve with the smaller weight of each pair capped at 1e-10. The
output is ``w·multiplier + offset`` (inactive poses give 0 before that), optionally clamped to [0, 1].
Everything that does not change per frame is precomputed; each frame then costs one small matrix-vector
product plus an exact box-QP solve (:mod:`facecast.face.bvls`), warm-started from the previous frame.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from facecast.face.bvls import LOWER, UPPER, BoxQP

CANCEL_UPPER_BOUND = 1e-10
"""Upper bound the SDK gives the smaller weight of each cancel pair on the second solve."""

_CHUNK_VALUES = 1 << 20  # target values gathered per matmul chunk (8 MiB as float64)

_JSON_KEYS = {
    "strength_l1": "strengthL1regularization",
    "strength_l2": "strengthL2regularization",
    "strength_temporal": "strengthTemporalSmoothing",
    "strength_symmetry": "strengthSymmetry",
    "template_bb_size": "templateBBSize",
}


def _as_tuple(values: ArrayLike | None, kind: type) -> tuple[Any, ...] | None:
    """A per-pose sequence as a tuple of ``kind`` (None stays None)."""
    if values is None:
        return None
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"per-pose values must be one-dimensional, got shape {arr.shape}")
    return tuple(kind(v) for v in arr.tolist())


def _check_pair_ids(ids: tuple[int, ...], key: str) -> None:
    """Each pair id other than -1 must occur exactly twice (the SDK's ValidatePairs)."""
    values, counts = np.unique(np.asarray(ids, dtype=np.int64), return_counts=True)
    for value, count in zip(values.tolist(), counts.tolist(), strict=True):
        if value < -1:
            raise ValueError(f"{key}: pair id {value} is invalid (use -1 for no pair)")
        if value != -1 and count != 2:
            raise ValueError(f"{key}: pair id {value} occurs {count} time(s); a pair needs exactly 2 poses")


@dataclass
class BlendshapeConfig:
    """Blendshape solver settings (``bs_*_config.json`` → ``blendshape_params``, plus NIM clamping).

    Per-pose fields left as None mean the SDK's defaults: all poses active, no cancel or symmetry pairs,
    multiplier 1 and offset 0.
    """

    strength_l1: float = 1.0
    strength_l2: float = 3.5
    strength_temporal: float = 0.0
    strength_symmetry: float = 100.0
    active: tuple[bool, ...] | None = None
    cancel_pairs: tuple[int, ...] | None = None
    symmetry_pairs: tuple[int, ...] | None = None
    multipliers: tuple[float, ...] | None = None
    offsets: tuple[float, ...] | None = None
    template_bb_size: float = 54.7
    clamp: bool = False
    tolerance: float = 1e-10

    def __post_init__(self) -> None:
        self.active = _as_tuple(self.active, bool)
        self.cancel_pairs = _as_tuple(self.cancel_pairs, int)
        self.symmetry_pairs = _as_tuple(self.symmetry_pairs, int)
        self.multipliers = _as_tuple(self.multipliers, float)
        self.offsets = _as_tuple(self.offsets, float)
        for name in ("strength_l1", "strength_l2", "strength_temporal", "strength_symmetry"):
            value = float(getattr(self, name))
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
            setattr(self, name, value)
        self.template_bb_size = float(self.template_bb_size)
        if not np.isfinite(self.template_bb_size) or self.template_bb_size <= 0:
            raise ValueError(f"template_bb_size must be > 0, got {self.template_bb_size}")
        self.tolerance = float(self.tolerance)
        if not self.tolerance > 0:
            raise ValueError(f"tolerance must be > 0, got {self.tolerance}")
        self.clamp = bool(self.clamp)
        for key, ids in (("cancel_pairs", self.cancel_pairs), ("symmetry_pairs", self.symmetry_pairs)):
            if ids is not None:
                _check_pair_ids(ids, key)

    @property
    def num_poses(self) -> int | None:
        """Number of poses the per-pose fields describe (None when none is set)."""
        for values in (self.active, self.cancel_pairs, self.symmetry_pairs, self.multipliers, self.offsets):
            if values is not None:
                return len(values)
        return None

    def per_pose(self, num_poses: int) -> dict[str, NDArray[Any]]:
        """The per-pose fields as arrays of length ``num_poses``, with defaults filled in."""
        defaults: dict[str, tuple[Any, type]] = {
            "active": (True, bool),
            "cancel_pairs": (-1, np.int64),
            "symmetry_pairs": (-1, np.int64),
            "multipliers": (1.0, np.float64),
            "offsets": (0.0, np.float64),
        }
        out: dict[str, NDArray[Any]] = {}
        for name, (fill, dtype) in defaults.items():
            values = getattr(self, name)
            if values is None:
                out[name] = np.full(num_poses, fill, dtype=dtype)
            elif len(values) != num_poses:
                got = len(values)
                raise ValueError(f"config.{name} has {got} entries, expected one per pose ({num_poses})")
            else:
                out[name] = np.asarray(values, dtype=dtype)
        if not out["active"].any():
            raise ValueError("config.active: at least one pose must be active")
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], num_poses: int, *, clamp: bool = False) -> BlendshapeConfig:
        """Read a parsed ``bs_*_config.json`` (the whole document or its ``blendshape_params``).

        Missing strengths and ``templateBBSize`` take the SDK defaults; missing per-pose arrays mean
        the per-pose defaults. Wrong lengths or a ``numPoses`` other than ``num_poses`` raise ValueError.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"blendshape config must be a JSON object, got {type(data).__name__}")
        params = data.get("blendshape_params", data)
        if not isinstance(params, Mapping):
            raise ValueError("blendshape_params must be a JSON object")
        declared = params.get("numPoses")
        if declared is not None and int(declared) != num_poses:
            raise ValueError(f"numPoses is {declared} but the blendshape data has {num_poses} poses")
        kwargs: dict[str, Any] = {"clamp": clamp}
        for field_name, key in _JSON_KEYS.items():
            if key in params:
                kwargs[field_name] = float(params[key])
        if "tolerance" in params:
            kwargs["tolerance"] = float(params["tolerance"])
        arrays = {
            "active": "bsSolveActivePoses",
            "cancel_pairs": "bsSolveCancelPoses",
            "symmetry_pairs": "bsSolveSymmetryPoses",
            "multipliers": "bsWeightMultipliers",
            "offsets": "bsWeightOffsets",
        }
        for field_name, key in arrays.items():
            if key not in params:
                continue
            values = params[key]
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
                raise ValueError(f"{key} must be a list with one entry per pose")
            if len(values) != num_poses:
                raise ValueError(f"{key} has {len(values)} entries, expected numPoses = {num_poses}")
            kwargs[field_name] = values
        config = cls(**kwargs)
        config.per_pose(num_poses)
        return config

    def to_json(self, num_poses: int | None = None) -> dict[str, Any]:
        """The config as a ``bs_*_config.json`` document (``clamp`` and ``tolerance`` are not stored)."""
        n = self.num_poses if num_poses is None else num_poses
        if n is None:
            raise ValueError("num_poses is needed when no per-pose field is set")
        arrays = self.per_pose(n)
        params: dict[str, Any] = {key: getattr(self, name) for name, key in _JSON_KEYS.items()}
        params.update(
            numPoses=n,
            bsSolveActivePoses=[int(v) for v in arrays["active"]],
            bsSolveCancelPoses=arrays["cancel_pairs"].tolist(),
            bsSolveSymmetryPoses=arrays["symmetry_pairs"].tolist(),
            bsWeightMultipliers=arrays["multipliers"].tolist(),
            bsWeightOffsets=arrays["offsets"].tolist(),
        )
        return {"blendshape_params": params}


def _active_pairs(ids: NDArray[np.int64]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Pairs (first, second) of positions in ``ids`` sharing an id; ids seen other than twice are dropped."""
    first: list[int] = []
    second: list[int] = []
    for value in np.unique(ids[ids >= 0]).tolist():
        where = np.flatnonzero(ids == value)
        if where.size == 2:
            first.append(int(where[0]))
            second.append(int(where[1]))
    return np.asarray(first, dtype=np.intp), np.asarray(second, dtype=np.intp)


class SolverState:
    """Per-stream state of a :class:`BlendshapeSolver`: the previous raw weights and warm-start data."""

    __slots__ = ("w_prev", "partition", "partition_cancel")

    def __init__(self, num_active: int) -> None:
        self.w_prev: NDArray[np.float64] = np.zeros(num_active)
        """Raw solve result of the previous frame over the active poses (before multipliers)."""
        self.partition: NDArray[np.int8] | None = None
        """Which weights were at a bound in the previous frame (warm start only; never changes results)."""
        self.partition_cancel: NDArray[np.int8] | None = None
        """The same for the cancel-pair second solve."""

    def reset(self) -> None:
        """Start a new stream: previous weights zero, no warm start."""
        self.w_prev = np.zeros_like(self.w_prev)
        self.partition = None
        self.partition_cancel = None


class BlendshapeSolver:
    """Solves blendshape weights for target geometry, exactly as the SDK's CPU (BVLS) solver defines them.

    ``neutral`` is [V, 3], ``deltas`` is [P, V, 3] (one delta per pose, in the order of ``names``),
    ``mask`` optionally lists the vertex indices used by the fit (``frontalMask``). One solver may serve
    many streams, each with its own :class:`SolverState`.
    """

    def __init__(
        self,
        neutral: ArrayLike,
        deltas: ArrayLike,
        names: Sequence[str],
        mask: ArrayLike | None = None,
        config: BlendshapeConfig | None = None,
    ) -> None:
        neutral_arr = np.asarray(neutral, dtype=np.float64)
        deltas_arr = np.asarray(deltas)
        if neutral_arr.ndim != 2 or neutral_arr.shape[1] != 3 or neutral_arr.shape[0] == 0:
            raise ValueError(f"neutral must have shape [V, 3], got {neutral_arr.shape}")
        num_vertices = neutral_arr.shape[0]
        if deltas_arr.ndim != 3 or deltas_arr.shape[1:] != (num_vertices, 3) or deltas_arr.shape[0] == 0:
            raise ValueError(f"deltas must have shape [P, {num_vertices}, 3], got {deltas_arr.shape}")
        self.names: tuple[str, ...] = tuple(names)
        if len(self.names) != deltas_arr.shape[0]:
            raise ValueError(f"{len(self.names)} names for {deltas_arr.shape[0]} delta poses")
        if mask is None:
            self.mask: NDArray[np.intp] | None = None
        else:
            mask_arr = np.asarray(mask).reshape(-1)
            if mask_arr.dtype.kind not in "iu":
                raise ValueError(f"mask must hold integer vertex indices, got dtype {mask_arr.dtype}")
            self.mask = mask_arr.astype(np.intp)
            if self.mask.size == 0:
                raise ValueError("mask is empty")
            if self.mask.min() < 0 or self.mask.max() >= num_vertices:
                raise ValueError(f"mask has vertex indices outside [0, {num_vertices})")
        self.config = BlendshapeConfig() if config is None else replace(config)
        """A copy of the settings, read once here: build a new solver to change them."""
        cfg = self.config
        per_pose = cfg.per_pose(len(self.names))
        self.num_vertices = num_vertices
        self.active_index: NDArray[np.intp] = np.flatnonzero(per_pose["active"])
        self._multipliers = per_pose["multipliers"]
        self._offsets = per_pose["offsets"]

        deltas_active = deltas_arr[self.active_index]
        neutral_used = neutral_arr
        if self.mask is not None:
            deltas_active = deltas_active[:, self.mask]
            neutral_used = neutral_arr[self.mask]
        self._d = np.ascontiguousarray(deltas_active.reshape(self.active_index.size, -1).T, dtype=np.float64)
        self._n0 = neutral_used.reshape(-1)
        self._coords = None if self.mask is None else (3 * self.mask[:, None] + np.arange(3)).reshape(-1)

        bbox = np.linalg.norm(neutral_arr.max(axis=0) - neutral_arr.min(axis=0))
        self.scale = float((bbox / cfg.template_bb_size) ** 2)
        s = self.scale
        k = self.active_index.size
        sym_first, sym_second = _active_pairs(per_pose["symmetry_pairs"][self.active_index])
        sym = np.zeros((sym_first.size, k))
        sym[np.arange(sym_first.size), sym_first] = 1.0
        sym[np.arange(sym_first.size), sym_second] = -1.0
        a = self._d.T @ self._d
        a += cfg.strength_l1**2 * 0.25 * s
        a[np.diag_indices(k)] += (cfg.strength_l2 * 10.0 + cfg.strength_temporal * 100.0) * s
        a += cfg.strength_symmetry * 10.0 * s * (sym.T @ sym)
        try:
            self._qp = BoxQP(a, tol=cfg.tolerance)
        except ValueError as err:
            raise ValueError(
                "the blendshape normal matrix is not positive definite (deltas are linearly dependent on "
                "the mask); raise strength_l2 or deactivate redundant poses"
            ) from err
        self._cancel_first, self._cancel_second = _active_pairs(per_pose["cancel_pairs"][self.active_index])
        self._temporal = cfg.strength_temporal * s
        self._h_temporal = self._temporal * self._qp.h
        self._lower = np.zeros(k)
        self._upper = np.ones(k)
        self.state = self.new_state()
        """The default state, used when :meth:`solve` gets none."""

    @property
    def num_poses(self) -> int:
        """Number of poses (output weights per frame)."""
        return len(self.names)

    @property
    def num_active(self) -> int:
        """Number of active poses (unknowns of the QP)."""
        return int(self.active_index.size)

    @property
    def normal_matrix(self) -> NDArray[np.float64]:
        """The precomputed matrix A over the active poses (a copy)."""
        return self._qp.a.copy()

    def new_state(self) -> SolverState:
        """A fresh per-stream state."""
        return SolverState(self.num_active)

    def reset(self) -> None:
        """Reset the default state (start of a new stream)."""
        self.state.reset()

    def solve(self, target: ArrayLike, state: SolverState | None = None) -> NDArray[np.float64]:
        """Weights [P] for a target [V, 3], or [N, P] for a sequence [N, V, 3] solved in order.

        ``state`` (default: the solver's own) carries the temporal smoothing between calls.
        """
        arr = np.asarray(target)
        single = arr.ndim == 2
        frames = arr[None] if single else arr
        if frames.ndim != 3 or frames.shape[1:] != (self.num_vertices, 3):
            v = self.num_vertices
            raise ValueError(f"target must have shape [{v}, 3] or [N, {v}, 3], got {arr.shape}")
        st = self.state if state is None else state
        if st.w_prev.shape != (self.num_active,):
            raise ValueError("state belongs to a solver with a different number of active poses")
        raw = self.solve_raw(frames, st)
        out = np.zeros((frames.shape[0], self.num_poses))
        out[:, self.active_index] = raw
        out *= self._multipliers
        out += self._offsets
        if self.config.clamp:
            np.clip(out, 0.0, 1.0, out=out)
        return out[0] if single else out

    def rhs(self, frames: NDArray[np.floating]) -> NDArray[np.float64]:
        """Data part of b, ``Dᵀ(target_masked − n0)``, for frames [N, V, 3] → [N, num_active]."""
        flat = frames.reshape(frames.shape[0], -1)
        gathered = flat if self._coords is None else np.take(flat, self._coords, axis=1)
        return (gathered - self._n0) @ self._d

    def linear_rhs(
        self, basis: NDArray[np.floating], offset: NDArray[np.floating]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """For targets that are linear in some rows, ``flat = rows @ basis + offset`` ([R, 3V], [3V]): the map
        (G [R, num_active], g [num_active]) with :meth:`rhs` = ``rows @ G + g``, so a caller can solve straight
        from the rows (:meth:`solve_rhs_raw`) without building the vertices."""
        basis = np.asarray(basis, np.float64).reshape(len(basis), -1)
        offset = np.asarray(offset, np.float64).reshape(-1)
        if basis.shape[1] != self.num_vertices * 3 or offset.shape[0] != self.num_vertices * 3:
            raise ValueError(f"basis and offset must have {self.num_vertices * 3} columns")
        if self._coords is not None:
            basis, offset = basis[:, self._coords], offset[self._coords]
        return basis @ self._d, (offset - self._n0) @ self._d

    def solve_raw(self, frames: NDArray[np.floating], state: SolverState) -> NDArray[np.float64]:
        """Raw QP solutions [N, num_active] (before multipliers/offsets), updating ``state``."""
        chunk = max(1, _CHUNK_VALUES // max(1, self._d.shape[0]))
        parts = [self.solve_rhs_raw(self.rhs(frames[lo : lo + chunk]), state) for lo in range(0, len(frames), chunk)]
        return np.concatenate(parts) if parts else np.empty((0, self.num_active))

    def solve_rhs_raw(self, b_all: NDArray[np.floating], state: SolverState) -> NDArray[np.float64]:
        """:meth:`solve_raw` from the data parts of b (:meth:`rhs`, [N, num_active]) instead of the targets."""
        b_all = np.asarray(b_all, np.float64)
        if not np.isfinite(b_all).all():
            raise ValueError("target contains non-finite values")
        raw = np.empty((b_all.shape[0], self.num_active))
        qp, lower, upper = self._qp, self._lower, self._upper
        temporal = self._temporal
        cancel = self._cancel_first.size > 0
        hb_all = qp.unconstrained(b_all)
        for i in range(b_all.shape[0]):
            b, hb = b_all[i], hb_all[i]
            if temporal:
                b = b + temporal * state.w_prev
                hb = hb + self._h_temporal @ state.w_prev
            x, part = qp.solve(b, lower, upper, state.partition, hb)
            state.partition = part
            if cancel:
                x = self._cancel_resolve(x, part, b, hb, state)
            state.w_prev = x
            raw[i] = x
        return raw

    def _cancel_resolve(
        self,
        x: NDArray[np.float64],
        part: NDArray[np.int8],
        b: NDArray[np.float64],
        hb: NDArray[np.float64],
        state: SolverState,
    ) -> NDArray[np.float64]:
        """Second solve with the smaller weight of each cancel pair capped (ties cap the second pose)."""
        first, second = self._cancel_first, self._cancel_second
        capped = np.where(x[first] >= x[second], second, first)
        upper = self._upper.copy()
        upper[capped] = CANCEL_UPPER_BOUND
        # Warm start: last frame's second-solve partition, this frame's first-solve one on the pairs.
        start = part.copy() if state.partition_cancel is None else state.partition_cancel.copy()
        start[first] = part[first]
        start[second] = part[second]
        # A capped weight that was positive keeps pushing up, so it most likely ends at its new cap.
        start[capped] = np.where(part[capped] == LOWER, LOWER, UPPER)
        x2, state.partition_cancel = self._qp.solve(b, self._lower, upper, start, hb)
        return x2
