"""From network output to an :class:`Animation`: face post-processing, blinks and the blendshape solve.

One :class:`FacePipeline` per model holds what never changes (bases, solver factorisations); everything that
belongs to one stream (smoothing filters, saccade clock, temporal solver state, blink clock) lives in a
:class:`PipelineState`, so offline clips and any number of concurrent streams share one pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from facecast.animation import Animation
from facecast.constants import JAW_RESULT_SIZE
from facecast.face.blendshapes import BlendshapeConfig, BlendshapeSolver, SolverState
from facecast.face.blinks import BlinkParams, generate_blinks
from facecast.face.postprocess import FaceModelData, FaceParams, FacePostProcessor, FaceStreamState
from facecast.face.quiet import QuietHoldState, hold_quiet
from facecast.infer.engine import NetworkOutput
from facecast.pack import BlendshapeSet, ModelPack


@dataclass
class SolveOptions:
    """Per-call blendshape output options (NIM BlendShapeParameters): multipliers/offsets by pose name."""

    multipliers: dict[str, float] = field(default_factory=dict)
    offsets: dict[str, float] = field(default_factory=dict)
    clamp: bool = False


@dataclass
class PipelineState:
    """Everything one stream carries from frame to frame."""

    face: FaceStreamState = field(default_factory=FaceStreamState)
    skin_solver: SolverState | None = None
    tongue_solver: SolverState | None = None
    frames_done: int = 0
    quiet: QuietHoldState = field(default_factory=QuietHoldState)


class _Solver:
    """A blendshape solver with its pose names and the config's multipliers/offsets."""

    def __init__(self, bs: BlendshapeSet) -> None:
        self.names = tuple(bs.names)
        config = BlendshapeConfig.from_json(bs.config, len(bs.names)) if bs.config else BlendshapeConfig()
        self.solver = BlendshapeSolver(bs.neutral, bs.deltas, bs.names, bs.frontal_mask, config)
        per_pose = config.per_pose(len(self.names))
        self.multipliers = np.asarray(per_pose["multipliers"], np.float64)
        self.offsets = np.asarray(per_pose["offsets"], np.float64)
        self.clamp = config.clamp

    def solve(self, geometry: np.ndarray, state: SolverState, options: SolveOptions | None) -> np.ndarray:
        """Weights [N, P] for target geometry [N, V, 3]."""
        return self._finish(self.solver.solve_raw(geometry.reshape(len(geometry), -1, 3), state), options)

    def solve_rows(
        self, rows: list[np.ndarray], maps: list[np.ndarray], offset: np.ndarray, state: SolverState,
        options: SolveOptions | None,
    ) -> np.ndarray:  # fmt: skip
        """Weights [N, P] for targets ``sum(rows[i] @ basis[i]) + offset``, given their maps
        (:meth:`BlendshapeSolver.linear_rhs`): the same solve without building the vertices."""
        b = offset + sum(r.astype(np.float64) @ g for r, g in zip(rows, maps, strict=True))
        return self._finish(self.solver.solve_rhs_raw(b, state), options)

    def _finish(self, raw: np.ndarray, options: SolveOptions | None) -> np.ndarray:
        weights = np.zeros((len(raw), len(self.names)))
        weights[:, self.solver.active_index] = raw
        mult, off = self.multipliers.copy(), self.offsets.copy()
        clamp = self.clamp
        if options is not None:
            for table, values in ((mult, options.multipliers), (off, options.offsets)):
                for name, value in values.items():
                    if name not in self.names:
                        continue
                    table[self.names.index(name)] = float(value)
            clamp = clamp or options.clamp
        out = weights * mult + off
        if clamp:
            np.clip(out, 0.0, 1.0, out=out)
        return out.astype(np.float32)


@dataclass
class _RowMaps:
    """The solvers' right-hand sides as linear maps of the post-processor's rows, for one processor."""

    skin_upper: np.ndarray
    skin_lower: np.ndarray
    skin_both: np.ndarray
    """``skin_upper + skin_lower``: the map when both face regions are smoothed alike."""
    skin_offset: np.ndarray
    tongue: np.ndarray
    tongue_offset: np.ndarray

    @classmethod
    def build(cls, proc: FacePostProcessor, skin: _Solver, tongue: _Solver) -> _RowMaps:
        basis = proc.skin_basis
        w_upper, w_lower = proc.skin_region_weights
        upper, offset = skin.solver.linear_rhs(basis * w_upper, proc.skin_neutral)
        lower, _ = skin.solver.linear_rhs(basis * w_lower, np.zeros_like(proc.skin_neutral))
        strength = np.float32(proc.params.tongue_strength)
        tongue_map, tongue_offset = tongue.solver.linear_rhs(proc.tongue_basis * strength, proc.tongue_offset)
        return cls(upper, lower, upper + lower, offset, tongue_map, tongue_offset)


class FacePipeline:
    """Face post-processing and blendshape solve for one model pack."""

    def __init__(self, pack: ModelPack) -> None:
        self.pack = pack
        self.model_data = FaceModelData.from_mapping(pack.model_data)
        self.default_params = FaceParams.from_model_config(pack.model_config).validate()
        self.skin = _Solver(pack.skin_blendshapes) if pack.skin_blendshapes is not None else None
        self.tongue = _Solver(pack.tongue_blendshapes) if pack.tongue_blendshapes is not None else None
        self._processors: dict[tuple, FacePostProcessor] = {}
        self._row_maps: dict[tuple, _RowMaps] = {}
        self.rest_result: Callable[[np.ndarray], np.ndarray] | None = None
        """Emotion row [26] -> the network's result on silence (the quiet hold's rest pose); set by the model."""

    def skin_move(self, delta: np.ndarray) -> float:
        """The largest skin vertex move (model units) of a change of the network result (its skin coefficients)."""
        basis = self.model_data.shapes_matrix_skin  # [K, V, 3]
        coeffs = np.asarray(delta, np.float32)[: len(basis)]
        moved = np.tensordot(coeffs, basis, axes=1)  # [V, 3], no copy of the basis
        return float(np.sqrt(np.einsum("ij,ij->i", moved, moved).max(initial=0.0)))

    def face_params(self, overrides: Mapping[str, float] | FaceParams | None = None) -> FaceParams:
        """The model's parameters with per-call overrides (snake_case or the NIM's camelCase), validated; a
        complete :class:`FaceParams` is validated as it is."""
        if isinstance(overrides, FaceParams):
            return overrides.validate()
        params = self.default_params.with_overrides(dict(overrides)) if overrides else self.default_params
        return params.validate()

    def processor(self, fps: float, params: FaceParams) -> FacePostProcessor:
        key = (float(fps), params)
        proc = self._processors.get(key)
        if proc is None:
            if len(self._processors) > 16:
                self._processors.clear()
                self._row_maps.clear()
            proc = FacePostProcessor(self.model_data, params, fps)
            self._processors[key] = proc
        return proc

    def new_state(self) -> PipelineState:
        return PipelineState(
            skin_solver=self.skin.solver.new_state() if self.skin else None,
            tongue_solver=self.tongue.solver.new_state() if self.tongue else None,
        )

    def process(
        self,
        raw: NetworkOutput,
        state: PipelineState,
        params: FaceParams | None = None,
        blinks: BlinkParams | None = None,
        solve: SolveOptions | None = None,
        geometry: bool = False,
    ) -> Animation:
        """Turn consecutive network frames into animation frames, continuing ``state``.

        With ``params.quiet_hold`` > 0 and audio levels in ``raw``, the pose eases to rest and is held still in
        silences (:mod:`facecast.face.quiet`); ``Animation.raw`` keeps the network's own output."""
        params = params or self.default_params
        proc = self.processor(raw.fps, params)
        n = len(raw)
        start = int(raw.frame_index[0]) if n else state.frames_done
        blink = (
            generate_blinks(n, raw.fps, blinks, start_frame=start) if blinks is not None else np.zeros(n, np.float32)
        )
        blink_offset = np.clip(blink + np.float32(params.blink_offset), 0.0, 1.0).astype(np.float32)
        result = raw.result
        if params.quiet_hold > 0 and raw.levels is not None:
            rest = None if self.rest_result is None else (lambda i: self.rest_result(raw.emotion[i]))
            result = hold_quiet(result, raw.levels, state.quiet, raw.fps, params.quiet_hold, rest, self.skin_move)
        if geometry or not (self.skin and self.tongue and n):
            pose = proc.process(result, blink_offset, state.face)
            skin_w = self.skin.solve(pose.skin, state.skin_solver, solve) if self.skin and n else None
            tongue_w = self.tongue.solve(pose.tongue, state.tongue_solver, solve) if self.tongue and n else None
            jaw, eyes = pose.jaw, pose.eyes
        else:  # weights only: solve straight from the PCA rows, never building the vertices
            skin_w, tongue_w, jaw, eyes = self._solve_from_rows(proc, result, blink_offset, state, solve)
            pose = None
        if n == 0:
            skin_w = np.zeros((0, len(self.skin.names)), np.float32) if self.skin else None
            tongue_w = np.zeros((0, len(self.tongue.names)), np.float32) if self.tongue else None
        state.frames_done = start + n
        return Animation(
            fps=raw.fps,
            times=raw.times,
            skin_names=self.skin.names if self.skin else (),
            skin_weights=skin_w,
            tongue_names=self.tongue.names if self.tongue else (),
            tongue_weights=tongue_w,
            jaw=jaw,
            eyes=eyes,
            emotion=raw.explicit_emotion,
            blink=blink_offset,
            raw=raw,
            skin_geometry=pose.skin if pose is not None and (geometry or self.skin is None) else None,
            tongue_geometry=pose.tongue if pose is not None and (geometry or self.tongue is None) else None,
            actor=self.pack.actor,
        )

    def _solve_from_rows(
        self,
        proc: FacePostProcessor,
        result: np.ndarray,
        blink_offset: np.ndarray,
        state: PipelineState,
        solve: SolveOptions | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Skin and tongue weights, jaw and eyes for network rows, with the solves fed from the PCA rows."""
        key = (proc.fps, proc.params)
        maps = self._row_maps.get(key)
        if maps is None:
            maps = self._row_maps[key] = _RowMaps.build(proc, self.skin, self.tongue)
        ks, kt = self.model_data.num_skin_shapes, self.model_data.num_tongue_shapes
        jaw_end = ks + kt + JAW_RESULT_SIZE
        upper, lower = proc.skin_rows(result[:, :ks], blink_offset, state.face)
        rows, skin_maps = ([upper], [maps.skin_both]) if lower is upper else (
            [upper, lower], [maps.skin_upper, maps.skin_lower])  # fmt: skip
        skin_w = self.skin.solve_rows(rows, skin_maps, maps.skin_offset, state.skin_solver, solve)
        tongue_w = self.tongue.solve_rows([result[:, ks : ks + kt]], [maps.tongue], maps.tongue_offset,
                                          state.tongue_solver, solve)  # fmt: skip
        return skin_w, tongue_w, proc.jaw(result[:, ks + kt : jaw_end]), proc.eyes(result[:, jaw_end:], state.face)
