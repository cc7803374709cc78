"""Face post-processing and blendshape solve for the v3.0 diffusion model: the v2.3 animators on direct deltas.

The network gives vertex deltas (no PCA), so the skin animator's rows are the deltas themselves plus the
eye-close and lip-open coefficients: ``[skin deltas * skin_strength | eyelid | lip-open]``, smoothed by the same
two cascaded filters per face region, then ``d = deltas + eyelid * eye_close + lip * lip_open``, the face mask
weights and the neutral (spec 5.5); the tongue is ``neutral + tongue_strength * delta + offsets``; jaw and eyes
are v2.3's unchanged (:class:`~facecast.face.postprocess.FacePostProcessor`). Each identity has its own model data,
parameters and blendshapes (``bs_skin_<Id>`` / ``bs_tongue_<Id>``).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from facecast.face.pipeline import FacePipeline, PipelineState, SolveOptions
from facecast.face.postprocess import (  # the v2.3 kernels
    F32,
    FaceModelData,
    FaceParams,
    FacePose,
    FacePostProcessor,
    FaceStreamState,
    _blink_offsets,
    _check_state,
    _frames,
    _smooth2,
)
from facecast.pack_v3 import DiffusionInfo, IdentityData


def face_model_data(data: dict[str, np.ndarray]) -> FaceModelData:
    """A v3 identity's model data in the animators' form: a one-row zero basis stands in for the PCA."""
    skin = np.asarray(data["neutral_skin"], np.float32).reshape(-1, 3)
    tongue = np.asarray(data["neutral_tongue"], np.float32).reshape(-1, 3)
    return FaceModelData(
        shapes_matrix_skin=np.zeros((1, len(skin), 3), np.float32),
        shapes_mean_skin=skin,
        lip_open_pose_delta=np.asarray(data["lip_open_pose_delta"], np.float32).reshape(-1, 3),
        eye_close_pose_delta=np.asarray(data["eye_close_pose_delta"], np.float32).reshape(-1, 3),
        shapes_matrix_tongue=np.zeros((1, len(tongue), 3), np.float32),
        shapes_mean_tongue=tongue,
        neutral_jaw=np.asarray(data["neutral_jaw"], np.float32).reshape(-1, 3),
        saccade_rot_matrix=np.asarray(data["saccade_rot_matrix"], np.float32),
    )


class DeltaPostProcessor(FacePostProcessor):
    """:class:`FacePostProcessor` for rows of direct deltas ``[skin 3Vs | tongue 3Vt | jaw 15 | eyes 4]``."""

    @property
    def result_size(self) -> int:
        d = self.data
        return 3 * len(d.shapes_mean_skin) + 3 * len(d.shapes_mean_tongue) + 15 + 4

    def skin(self, deltas, blink_offset=None, state: FaceStreamState | None = None) -> np.ndarray:
        """Skin deltas [N, 3Vs] -> vertices [N, Vs, 3]: strength, eyelid and lip-open rows, smoothing, mask."""
        p, d = self._params, self.data
        width = 3 * len(d.shapes_mean_skin)
        x = _frames(deltas, width, "skin deltas")
        n = len(x)
        st = self.state if state is None else state
        blink = _blink_offsets(p.blink_offset if blink_offset is None else blink_offset, n)
        rows = np.empty((n, width + 2), F32)
        rows[:, :width] = x * F32(p.skin_strength)
        rows[:, width] = F32(-p.eyelid_open_offset) + blink * F32(p.blink_strength)
        rows[:, width + 1] = F32(p.lip_open_offset)
        _check_state(st, width + 2)
        lower, st.lower = _smooth2(rows, self._alpha_lower, st.lower)
        if self._alpha_upper == self._alpha_lower:
            st.upper = st.lower
            upper = lower
        else:
            upper, st.upper = _smooth2(rows, self._alpha_upper, st.upper)
        eye, lip = d.eye_close_pose_delta.reshape(-1), d.lip_open_pose_delta.reshape(-1)

        def deltas_of(r: np.ndarray) -> np.ndarray:
            return r[:, :width] + r[:, width : width + 1] * eye + r[:, width + 1 :] * lip

        d_upper = deltas_of(upper)
        out = d_upper * self._w_upper + (d_upper if lower is upper else deltas_of(lower)) * self._w_lower
        out += self._skin_neutral
        return out.reshape(n, len(d.shapes_mean_skin), 3)

    def tongue(self, deltas) -> np.ndarray:
        """Tongue deltas [N, 3Vt] -> vertices: neutral + tongue_strength * delta + (0, height, depth)."""
        x = _frames(deltas, 3 * len(self.data.shapes_mean_tongue), "tongue deltas")
        out = x * F32(self._params.tongue_strength) + self._tongue_base
        return out.reshape(len(x), len(self.data.shapes_mean_tongue), 3)

    def process(self, result, blink_offset=None, state: FaceStreamState | None = None) -> FacePose:
        r = _frames(result, self.result_size, "network result")
        s, t = 3 * len(self.data.shapes_mean_skin), 3 * len(self.data.shapes_mean_tongue)
        return FacePose(
            skin=self.skin(r[:, :s], blink_offset, state),
            tongue=self.tongue(r[:, s : s + t]),
            jaw=self.jaw(r[:, s + t : s + t + 15]),
            eyes=self.eyes(r[:, s + t + 15 :], state),
        )


class DiffusionFacePipeline(FacePipeline):
    """:class:`FacePipeline` for one identity of a v3.0 model (always solved from the vertices)."""

    def __init__(self, info: DiffusionInfo, identity: IdentityData, root=None) -> None:
        pack = SimpleNamespace(
            model_data=face_model_data(identity.model_data).__dict__,
            model_config=identity.model_config,
            skin_blendshapes=identity.skin_blendshapes,
            tongue_blendshapes=identity.tongue_blendshapes,
            actor=identity.name,
            root=root,
        )
        super().__init__(pack)  # type: ignore[arg-type]
        self.info = info

    def processor(self, fps: float, params: FaceParams) -> FacePostProcessor:
        key = (float(fps), params)
        proc = self._processors.get(key)
        if proc is None:
            if len(self._processors) > 16:
                self._processors.clear()
            proc = self._processors[key] = DeltaPostProcessor(self.model_data, params, fps)
        return proc

    def skin_move(self, delta: np.ndarray) -> float:
        """The largest skin vertex move of a change of the network's skin deltas."""
        d = np.asarray(delta, np.float32)[: self.info.skin_size].reshape(-1, 3)
        return float(np.sqrt(np.einsum("ij,ij->i", d, d).max(initial=0.0)))

    def _solve_from_rows(self, proc, result, blink_offset, state: PipelineState, solve: SolveOptions | None):
        """No PCA rows to solve from: build the vertices, then solve (as with ``geometry=True``)."""
        pose = proc.process(result, blink_offset, state.face)
        skin_w = self.skin.solve(pose.skin, state.skin_solver, solve)
        tongue_w = self.tongue.solve(pose.tongue, state.tongue_solver, solve)
        return skin_w, tongue_w, pose.jaw, pose.eyes
