"""The ``Character``: a head split into parts, with ARKit and tongue blendshapes and the landmarks A2F needs.

Conventions: centimetres, y up, z toward the viewer (the face looks down +z), +x on the character's left.
Eye order follows the SDK: index 0 is the right eye, 1 the left eye. Parts: ``skin`` (head and neck),
``tongue``, ``upper_teeth``, ``lower_teeth``, ``eye_right``, ``eye_left``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facecast.characters.geometry import rigid_transforms
from facecast.constants import ARKIT_NAMES, TONGUE_NAMES
from facecast.fileio import FileFormatError, read_npz, write_npz
from facecast.pack import BlendshapeSet

PART_NAMES = ("skin", "tongue", "upper_teeth", "lower_teeth", "eye_right", "eye_left")
EYE_PARTS = ("eye_right", "eye_left")
JAW_PARTS = ("lower_teeth", "tongue")
"""Parts the jaw transform carries (the SDK's tongue is in the jaw-stabilised frame)."""
JAW_SHAPES = ("jawForward", "jawLeft", "jawRight", "jawOpen")
"""ARKit shapes whose deltas on the jaw parts are the jaw's own motion: where a jaw transform is given it carries
those parts instead, so these shapes' deltas are left out of them (applying both moves the jaw twice)."""
JAW_SHAPE_INDICES = [ARKIT_NAMES.index(n) for n in JAW_SHAPES]
"""Their columns in ARKit order."""

_LANDMARKS = (
    "lip_upper",
    "lip_lower",
    "eyelid_upper",
    "eyelid_lower",
    "jaw_keypoints",
    "frontal_mask",
)


@dataclass
class Part:
    """One rigid-topology piece of the head: neutral vertices [V, 3] and triangles [F, 3]."""

    vertices: np.ndarray
    faces: np.ndarray


@dataclass
class Character:
    """A head with parts, blendshape deltas and landmarks; see the module docstring for units and axes.

    ``arkit_deltas[part]`` is [52, V, 3] in ARKIT_NAMES order for every part (zero where a shape does not move
    it: jaw shapes move the lower teeth and tongue, ``eyeLook*`` the eyes, ``tongueOut`` the tongue). The eyes
    are posed by rotation instead: ``eye_look_rotations`` [52, 2, 2] holds, per shape and eye (right, left), the
    (x, y) rotation in degrees fitted to that shape's eyeball deltas, because a linear delta of a turning
    eyeball stretches it (by about 10 % for ``eyeLookIn``).
    ``tongue_deltas`` is [16, Vt, 3] in TONGUE_NAMES order. Landmark arrays hold vertex ids: lip and eyelid
    pairs and the frontal mask index ``skin``, ``jaw_keypoints`` (5) index ``lower_teeth``.
    """

    name: str
    parts: dict[str, Part]
    arkit_deltas: dict[str, np.ndarray]
    tongue_deltas: np.ndarray
    lip_upper: np.ndarray
    lip_lower: np.ndarray
    eyelid_upper: np.ndarray
    eyelid_lower: np.ndarray
    jaw_keypoints: np.ndarray
    eye_pivots: np.ndarray  # [2, 3]: right, left
    frontal_mask: np.ndarray
    lip_open_pose_delta: np.ndarray  # [Vs, 3]
    eye_close_pose_delta: np.ndarray  # [Vs, 3]
    eye_look_rotations: np.ndarray  # [52, 2, 2] degrees: shape, eye (right, left), (x, y)
    skin_regions: dict[str, np.ndarray] = field(default_factory=dict)  # per-skin-vertex weights (lips, mouth)
    info: dict[str, str] = field(default_factory=dict)

    @property
    def skin(self) -> Part:
        return self.parts["skin"]

    @property
    def neutral_jaw(self) -> np.ndarray:
        """The 5 jaw keypoints at rest ([5, 3]), as ``model_data.npz`` stores them."""
        return self.parts["lower_teeth"].vertices[self.jaw_keypoints]

    def lip_dist_vertex_list(self) -> dict[str, list[int]]:
        """The lip pairs as NVIDIA's ``lip_dist_vertex_list.json`` ({"upper": [...], "lower": [...]})."""
        return {"upper": self.lip_upper.tolist(), "lower": self.lip_lower.tolist()}

    def eye_dist_vertex_list(self) -> dict[str, list[int]]:
        """The eyelid pairs as NVIDIA's ``eye_dist_vertex_list.json`` ({"upper": [...], "lower": [...]})."""
        return {"upper": self.eyelid_upper.tolist(), "lower": self.eyelid_lower.tolist()}

    def summary(self) -> dict:
        """Sizes of the parts and landmarks."""
        return {
            "name": self.name,
            "parts": {n: {"vertices": len(p.vertices), "triangles": len(p.faces)} for n, p in self.parts.items()},
            "lip_pairs": len(self.lip_upper),
            "eyelid_pairs": len(self.eyelid_upper),
            "frontal_mask": len(self.frontal_mask),
        }

    # ------------------------------------------------------------------------------------------------
    # npz round trip

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {
            "name": np.array(self.name),
            "part_names": np.array(list(self.parts), dtype="S"),
            "tongue_deltas": self.tongue_deltas.astype(np.float32),
            "eye_pivots": self.eye_pivots.astype(np.float32),
            "lip_open_pose_delta": self.lip_open_pose_delta.astype(np.float32),
            "eye_close_pose_delta": self.eye_close_pose_delta.astype(np.float32),
            "eye_look_rotations": self.eye_look_rotations.astype(np.float32),
            "info_keys": np.array(list(self.info), dtype="S"),
            "info_values": np.array(list(self.info.values()), dtype="S"),
            "region_names": np.array(list(self.skin_regions), dtype="S"),
        }
        for key in _LANDMARKS:
            arrays[key] = getattr(self, key).astype(np.int32)
        for name, part in self.parts.items():
            arrays[f"{name}.vertices"] = part.vertices.astype(np.float32)
            arrays[f"{name}.faces"] = part.faces.astype(np.int32)
            arrays[f"{name}.arkit"] = self.arkit_deltas[name].astype(np.float32)
        for name, weights in self.skin_regions.items():
            arrays[f"region.{name}"] = weights.astype(np.float32)
        return arrays

    def save(self, path: Path) -> None:
        """Write the character to an ``.npz`` atomically."""
        write_npz(Path(path), self.to_arrays())

    @classmethod
    def load(cls, path: Path) -> Character:
        """Read a character written by :meth:`save` (no pickle); a malformed file raises FileFormatError."""
        a = read_npz(Path(path))
        try:
            names = [n.decode() for n in a["part_names"].tolist()]
            parts = {n: Part(a[f"{n}.vertices"], a[f"{n}.faces"].astype(np.int64)) for n in names}
            char = cls(
                name=str(a["name"]),
                parts=parts,
                arkit_deltas={n: a[f"{n}.arkit"] for n in names},
                tongue_deltas=a["tongue_deltas"],
                eye_pivots=a["eye_pivots"],
                lip_open_pose_delta=a["lip_open_pose_delta"],
                eye_close_pose_delta=a["eye_close_pose_delta"],
                eye_look_rotations=a["eye_look_rotations"],
                skin_regions={r.decode(): a[f"region.{r.decode()}"] for r in a["region_names"].tolist()},
                info={k.decode(): v.decode() for k, v in zip(a["info_keys"], a["info_values"], strict=True)},
                **{key: a[key].astype(np.int64) for key in _LANDMARKS},
            )
        except KeyError as exc:
            raise FileFormatError([f"{path}: not a facecast character (array {exc} is missing)"]) from None
        char.validate(str(path))
        return char

    def validate(self, source: str = "character") -> None:
        """Check shapes and index ranges; raise FileFormatError listing every problem."""
        problems: list[str] = []
        if tuple(self.parts) != PART_NAMES:
            problems.append(f"{source}: parts are {list(self.parts)}, expected {list(PART_NAMES)}")
            raise FileFormatError(problems)
        for name, part in self.parts.items():
            nv = len(part.vertices)
            if part.faces.size and (part.faces.min() < 0 or part.faces.max() >= nv):
                problems.append(f"{source}: {name} faces index outside its {nv} vertices")
            if self.arkit_deltas[name].shape != (len(ARKIT_NAMES), nv, 3):
                problems.append(f"{source}: {name} ARKit deltas have shape {self.arkit_deltas[name].shape}")
        vs, vt = len(self.skin.vertices), len(self.parts["tongue"].vertices)
        if self.tongue_deltas.shape != (len(TONGUE_NAMES), vt, 3):
            problems.append(f"{source}: tongue deltas have shape {self.tongue_deltas.shape}")
        for key in ("lip_upper", "lip_lower", "eyelid_upper", "eyelid_lower", "frontal_mask"):
            ids = getattr(self, key)
            if ids.size and (ids.min() < 0 or ids.max() >= vs):
                problems.append(f"{source}: {key} indexes outside the {vs} skin vertices")
        if len(self.jaw_keypoints) != 5:
            problems.append(f"{source}: expected 5 jaw keypoints, got {len(self.jaw_keypoints)}")
        if self.eye_pivots.shape != (2, 3):
            problems.append(f"{source}: eye_pivots must be [2, 3]")
        if self.eye_look_rotations.shape != (len(ARKIT_NAMES), 2, 2):
            problems.append(f"{source}: eye_look_rotations must be [52, 2, 2]")
        if problems:
            raise FileFormatError(problems)


# ----------------------------------------------------------------------------------------------------
# posing


def _rotation_xy(x_deg: np.ndarray, y_deg: np.ndarray) -> np.ndarray:
    """R = Ry(y) @ Rx(x) per frame ([N, 3, 3]); +x looks down, +y looks to the character's left."""
    ax, ay = np.radians(x_deg), np.radians(y_deg)
    cx, sx, cy, sy = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay)
    zero, one = np.zeros_like(ax), np.ones_like(ax)
    rx = np.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).reshape(-1, 3, 3)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(-1, 3, 3)
    return ry @ rx


def _frames(values: np.ndarray | None, width: int | tuple[int, ...], what: str, n: int | None) -> np.ndarray | None:
    if values is None:
        return None
    shape = (width,) if isinstance(width, int) else width
    arr = np.asarray(values, np.float32)
    if arr.shape == shape:
        arr = arr[None]
    if arr.shape[1:] != shape or (n is not None and len(arr) != n):
        want = f"[{n if n is not None else 'N'}, {', '.join(map(str, shape))}]"
        raise ValueError(f"{what} must have shape {want}, got {list(arr.shape)}")
    return arr


def apply_weights(
    char: Character,
    arkit_weights: np.ndarray,
    tongue_weights: np.ndarray | None = None,
    jaw: np.ndarray | None = None,
    eyes: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Pose every part for N frames: returns {part: [N, V, 3] float32}.

    ``arkit_weights`` [N, 52] (ARKIT_NAMES order) drive all parts' ARKit deltas (the eyeballs through
    ``eye_look_rotations``); ``tongue_weights`` [N, 16] add the tongue poses; ``jaw`` [N, 4, 4] (row-major,
    ``M @ [x, y, z, 1]``, as :class:`facecast.face.postprocess.FacePose`)
    then moves the lower teeth and tongue, in place of
    the ``JAW_SHAPES`` deltas on those two parts (the A2F jaw already holds that motion); ``eyes``
    [N, 6] (right x, y, z, left x, y, z in degrees, z unused) adds to the eye rotation. Each eye turns about its
    pivot, x first (+ looks down) then y (+ looks to the character's left).
    """
    w = _frames(arkit_weights, len(ARKIT_NAMES), "arkit_weights", None)
    n = len(w)
    tw = _frames(tongue_weights, len(TONGUE_NAMES), "tongue_weights", n)
    jm = _frames(jaw, (4, 4), "jaw", n)
    ev = _frames(eyes, 6, "eyes", n)
    out: dict[str, np.ndarray] = {}
    for name, part in char.parts.items():
        nv = len(part.vertices)
        if name in EYE_PARTS:
            e = EYE_PARTS.index(name)
            angles = w @ char.eye_look_rotations[:, e, :].astype(np.float32)  # [N, 2]
            if ev is not None:
                angles = angles + ev[:, 3 * e : 3 * e + 2]
            rot = _rotation_xy(angles[:, 0], angles[:, 1]).astype(np.float32)
            pivot = char.eye_pivots[e].astype(np.float32)
            out[name] = np.einsum("nij,vj->nvi", rot, part.vertices - pivot) + pivot
            continue
        deltas = char.arkit_deltas[name].reshape(len(ARKIT_NAMES), nv * 3)
        wp = w
        if name in JAW_PARTS and jm is not None:
            wp = w.copy()
            wp[:, JAW_SHAPE_INDICES] = 0.0
        v = (wp @ deltas).reshape(n, nv, 3) + part.vertices[None]
        if name == "tongue" and tw is not None:
            v += (tw @ char.tongue_deltas.reshape(len(TONGUE_NAMES), nv * 3)).reshape(n, nv, 3)
        if name in JAW_PARTS and jm is not None:
            v = np.einsum("nij,nvj->nvi", jm[:, :3, :3], v) + jm[:, None, :3, 3]
        out[name] = v.astype(np.float32)
    return out


def jaw_from_weights(char: Character, arkit_weights: np.ndarray) -> np.ndarray:
    """[N, 4, 4] the rigid jaw motion that ARKit weights [N, 52] give the lower teeth (the rigid fit of the teeth
    their ``JAW_SHAPES`` move). The character exports carry the jaw this way, so teeth and tongue open with the
    lips the same weights open, whatever the model; the network's own jaw transform (``Animation.jaw``) belongs
    with its skin geometry (``facecast calibrate --jaw`` matches its amplitude to the solved jaw shapes)."""
    w = _frames(arkit_weights, len(ARKIT_NAMES), "arkit_weights", None)
    teeth = char.parts["lower_teeth"].vertices
    deltas = char.arkit_deltas["lower_teeth"].reshape(len(ARKIT_NAMES), -1)[JAW_SHAPE_INDICES]
    moved = (w[:, JAW_SHAPE_INDICES] @ deltas).reshape(len(w), len(teeth), 3) + teeth[None]
    return rigid_transforms(teeth, moved).astype(np.float32)


def character_model_data(char: Character) -> dict[str, np.ndarray]:
    """The geometry arrays of ``model_data.npz`` (spec 4.5) that come from the character, not from training."""
    return {
        "shapes_mean_skin": char.skin.vertices.astype(np.float32),
        "lip_open_pose_delta": char.lip_open_pose_delta.astype(np.float32),
        "eye_close_pose_delta": char.eye_close_pose_delta.astype(np.float32),
        "shapes_mean_tongue": char.parts["tongue"].vertices.astype(np.float32),
        "neutral_jaw": char.neutral_jaw.astype(np.float32),
    }


def lip_gap(char: Character, skin: np.ndarray) -> np.ndarray:
    """Mean vertical gap between the upper and lower lip pairs, per frame ([N] or scalar for [Vs, 3])."""
    s = np.asarray(skin)
    return (s[..., char.lip_upper, 1] - s[..., char.lip_lower, 1]).mean(axis=-1)


def eyelid_gap(char: Character, skin: np.ndarray) -> np.ndarray:
    """Mean vertical gap between the upper and lower eyelid pairs, per frame."""
    s = np.asarray(skin)
    return (s[..., char.eyelid_upper, 1] - s[..., char.eyelid_lower, 1]).mean(axis=-1)


def jaw_keypoint_positions(char: Character, posed_lower_teeth: np.ndarray) -> np.ndarray:
    """The 5 jaw keypoints of posed lower teeth ([N, Vt, 3] -> [N, 5, 3])."""
    return np.asarray(posed_lower_teeth)[..., char.jaw_keypoints, :]


# ----------------------------------------------------------------------------------------------------
# blendshape files

SKIN_SYMMETRY = {
    "eyeBlink": 0, "eyeWide": 1, "mouthSmile": 2, "mouthFrown": 3, "mouthDimple": 4, "mouthStretch": 5,
    "mouthPress": 6, "mouthLowerDown": 7, "mouthUpperUp": 8, "browOuterUp": 9, "browDown": 10,
    "cheekSquint": 11, "noseSneer": 12,
}  # fmt: skip
"""Symmetry pair ids of the NIM stylization config (spec 4.8), by name stem (Left/Right)."""

SKIN_CANCEL = (("jawLeft", "jawRight"), ("mouthLeft", "mouthRight"))
TONGUE_CANCEL = (
    ("tongueTipUp", "tongueTipDown"),
    ("tongueTipLeft", "tongueTipRight"),
    ("tongueRollUp", "tongueRollDown"),
    ("tongueRollLeft", "tongueRollRight"),
    ("tongueUp", "tongueDown"),
    ("tongueLeft", "tongueRight"),
    ("tongueIn", "tongueStretch"),
    ("tongueWide", "tongueNarrow"),
)


def _pair_ids(names: tuple[str, ...], pairs: list[tuple[str, str]]) -> list[int]:
    ids = [-1] * len(names)
    for k, (a, b) in enumerate(pairs):
        ids[names.index(a)] = ids[names.index(b)] = k
    return ids


def _bb_size(points: np.ndarray) -> float:
    return float(np.linalg.norm(points.max(axis=0) - points.min(axis=0)))


def skin_solver_config(char: Character) -> dict:
    """``bs_skin_config.json`` blendshape_params like NVIDIA's Mark (spec 4.8), sized for this head."""
    names = ARKIT_NAMES
    symmetry = [(f"{stem}Left", f"{stem}Right") for stem in sorted(SKIN_SYMMETRY, key=SKIN_SYMMETRY.get)]
    inactive = [n.startswith("eyeLook") or n == "tongueOut" for n in names]
    return {
        "strengthL1regularization": 0.5,
        "strengthL2regularization": 0.5,
        "strengthTemporalSmoothing": 0.3,
        "strengthSymmetry": 100.0,
        "numPoses": len(names),
        "bsSolveActivePoses": [0 if off else 1 for off in inactive],
        "bsSolveCancelPoses": _pair_ids(names, list(SKIN_CANCEL)),
        "bsSolveSymmetryPoses": _pair_ids(names, symmetry),
        "bsWeightMultipliers": [1.0] * len(names),
        "bsWeightOffsets": [0.0] * len(names),
        "templateBBSize": _bb_size(char.skin.vertices),
    }


def tongue_solver_config(char: Character) -> dict:
    """``bs_tongue_config.json`` blendshape_params like NVIDIA's Mark tongue (spec 4.8), opposite poses cancel."""
    names = TONGUE_NAMES
    return {
        "strengthL1regularization": 1.0,
        "strengthL2regularization": 3.5,
        "strengthTemporalSmoothing": 5.0,
        "strengthSymmetry": 100.0,
        "numPoses": len(names),
        "bsSolveActivePoses": [1] * len(names),
        "bsSolveCancelPoses": _pair_ids(names, list(TONGUE_CANCEL)),
        "bsSolveSymmetryPoses": [-1] * len(names),
        "bsWeightMultipliers": [1.0] * len(names),
        "bsWeightOffsets": [0.0] * len(names),
        "templateBBSize": _bb_size(char.parts["tongue"].vertices),
    }


def character_blendshape_sets(char: Character) -> tuple[BlendshapeSet, BlendshapeSet]:
    """(skin, tongue) blendshape sets, ready for ``bs_skin.npz`` / ``bs_tongue.npz`` and their configs."""
    skin = BlendshapeSet(
        names=list(ARKIT_NAMES),
        neutral=char.skin.vertices.astype(np.float32),
        deltas=char.arkit_deltas["skin"].astype(np.float32),
        config=skin_solver_config(char),
        frontal_mask=char.frontal_mask.astype(np.int32),
        rig_version=f"facecast-{char.name}",
    )
    tongue = BlendshapeSet(
        names=list(TONGUE_NAMES),
        neutral=char.parts["tongue"].vertices.astype(np.float32),
        deltas=char.tongue_deltas.astype(np.float32),
        config=tongue_solver_config(char),
        frontal_mask=None,
        rig_version=f"facecast-{char.name}",
    )
    return skin, tongue
