"""From network output to an :class:`Animation`: face post-processing, blinks and the blendshape solve.

One :class:`FacePipeline` per model holds what never changes (bases, solver factorisations); everything that
belongs to one stream (smoothing filters, saccade clock, temporal solver state, blink clock) lives in a
:class:`PipelineState`, so offline clips and any number of concurrent streams share one pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .animation import Animation
from .blendshapes import BlendshapeConfig, BlendshapeSolver, SolverState
from .blinks import BlinkParams, generate_blinks
from .engine import NetworkOutput
from .face import FaceModelData, FaceParams, FacePostProcessor, FaceStreamState
from .pack import BlendshapeSet, ModelPack


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
        raw = self.solver.solve_raw(geometry.reshape(len(geometry), -1, 3), state)
        weights = np.zeros((len(geometry), len(self.names)))
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


class FacePipeline:
    """Face post-processing and blendshape solve for one model pack."""

    def __init__(self, pack: ModelPack) -> None:
        self.pack = pack
        self.model_data = FaceModelData.from_mapping(pack.model_data)
        self.default_params = FaceParams.from_model_config(pack.model_config).validate()
        self.skin = _Solver(pack.skin_blendshapes) if pack.skin_blendshapes is not None else None
        self.tongue = _Solver(pack.tongue_blendshapes) if pack.tongue_blendshapes is not None else None
        self._processors: dict[tuple, FacePostProcessor] = {}

    def face_params(self, overrides: Mapping[str, float] | None = None) -> FaceParams:
        """The model's parameters with per-call overrides (snake_case or the NIM's camelCase), validated."""
        params = self.default_params.with_overrides(dict(overrides)) if overrides else self.default_params
        return params.validate()

    def processor(self, fps: float, params: FaceParams) -> FacePostProcessor:
        key = (float(fps), params)
        proc = self._processors.get(key)
        if proc is None:
            if len(self._processors) > 16:
                self._processors.clear()
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
        """Turn consecutive network frames into animation frames, continuing ``state``."""
        params = params or self.default_params
        proc = self.processor(raw.fps, params)
        n = len(raw)
        start = int(raw.frame_index[0]) if n else state.frames_done
        blink = (
            generate_blinks(n, raw.fps, blinks, start_frame=start) if blinks is not None else np.zeros(n, np.float32)
        )
        blink_offset = np.clip(blink + np.float32(params.blink_offset), 0.0, 1.0).astype(np.float32)
        pose = proc.process(raw.result, blink_offset, state.face)
        skin_w = self.skin.solve(pose.skin, state.skin_solver, solve) if self.skin and n else None
        tongue_w = self.tongue.solve(pose.tongue, state.tongue_solver, solve) if self.tongue and n else None
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
            jaw=pose.jaw,
            eyes=pose.eyes,
            emotion=raw.explicit_emotion,
            blink=blink_offset,
            raw=raw,
            skin_geometry=pose.skin if geometry or self.skin is None else None,
            tongue_geometry=pose.tongue if geometry or self.tongue is None else None,
            actor=self.pack.actor,
        )
