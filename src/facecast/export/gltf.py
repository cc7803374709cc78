"""Animation as GLB: the character's parts with ARKit (+ tongue) morph targets and a morph, jaw and eye animation.

Scene (units: the character's centimetres, scaled to metres by the root node; y up, the face looks down +z)::

    facecast_head (scale 0.01)
      skin, upper_teeth                          meshes with the 52 ARKit targets
      jaw            at the jaw pivot             animated rotation + translation (the rigid jaw transform)
        lower_teeth, tongue (offset by -pivot)   tongue also has the 16 tongue targets
      eye_right, eye_left  at the eye pivots      animated rotation (x then y, degrees -> quaternions)
        eye_right_mesh, eye_left_mesh (offset by -pivot)

Each mesh carries the ARKit targets in Apple camelCase (``mesh.extras.targetNames``, as three.js and Blender read
them); the tongue mesh has the 52 ARKit then the 16 tongue targets. One animation ("facecast") holds a LINEAR
morph-weight channel per mesh node at exact frame times (k / fps), the jaw node's TRS and the eye nodes'
rotations. Eyeballs stay rigid when the character poses them by rotation (``eye_look_rotations``): their
``eyeLook*`` motion is folded into the eye nodes' rotation and the eye meshes get no targets.

Posing the file at frame i reproduces :func:`facecast.characters.apply_weights` exactly: morphs first, then the
jaw transform ``M @ [x, y, z, 1]`` on the lower teeth and tongue, then the eye rotations about their pivots. The
jaw transform is the rigid motion the frame's ARKit jaw shapes give the lower teeth (:func:`character_jaw`), so
teeth and tongue open with the lips; the jaw node carries it, and the lower teeth and tongue keep their jaw
morphs (``JAW_SHAPES``) at 0 in the animation (the targets stay in the file: driving it by ARKit weights alone
still opens the jaw). The
jaw pivot (the rest translation of the jaw node) is an estimated hinge behind and above the lower teeth; any
pivot gives the same motion, this one makes rotating the jaw node by hand look right.

Eyeballs are three primitives sharing their vertices: sclera, iris and pupil (:data:`EYE_ZONES`, by the angle
from the gaze axis), each with its own material, so the gaze shows. Audio is not embedded: glTF has no audio.
Play the animation next to the clip's wav (frame 0 is t = 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from facecast.animation import Animation
from facecast.characters.character import JAW_PARTS, JAW_SHAPE_INDICES, jaw_from_weights
from facecast.constants import ARKIT_NAMES, TONGUE_NAMES
from facecast.export.csv import arkit_matrix, frame_times
from facecast.export.glb import GltfAnimation, GltfMesh, GltfNode, GltfScene, decompose_rigid, write_glb

CM_TO_M = 0.01
ANIMATION_NAME = "facecast"
COLORS = {
    "skin": (0.87, 0.66, 0.55, 1.0),
    "tongue": (0.86, 0.45, 0.48, 1.0),
    "upper_teeth": (0.95, 0.93, 0.86, 1.0),
    "lower_teeth": (0.95, 0.93, 0.86, 1.0),
    "eye_right": (0.96, 0.95, 0.93, 1.0),
    "eye_left": (0.96, 0.95, 0.93, 1.0),
}
EYE_PARTS = ("eye_right", "eye_left")
EYE_ZONES = (("sclera", (0.96, 0.95, 0.93, 1.0), 180.0), ("iris", (0.30, 0.20, 0.11, 1.0), 24.0),
             ("pupil", (0.02, 0.02, 0.02, 1.0), 11.0))  # fmt: skip
"""(material name, RGBA, the largest angle in degrees from the gaze axis) of the eye's zones, outermost first."""
NO_AUDIO_NOTE = "audio is not embedded (glTF has no audio); play the source clip alongside, frame 0 is t = 0"


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals ([V, 3]); isolated vertices get +z."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    out = np.zeros_like(v)
    for k in range(3):
        np.add.at(out, f[:, k], fn)
    length = np.linalg.norm(out, axis=1, keepdims=True)
    out = np.where(length > 1e-12, out / np.maximum(length, 1e-12), [0.0, 0.0, 1.0])
    return out.astype(np.float32)


def target_normal_deltas(vertices: np.ndarray, faces: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-target normal deltas ([T, V, 3]): normals of the fully applied target minus the rest normals
    (zero where a target moves nothing nearby)."""
    base = vertex_normals(vertices, faces)
    out = np.zeros(targets.shape, np.float32)
    for t, delta in enumerate(targets):
        if np.any(delta != 0):
            d = vertex_normals(vertices + delta, faces) - base
            d[np.abs(d).max(axis=1) < 1e-4] = 0.0  # keep the sparse storage sparse
            out[t] = d
    return out


def estimate_jaw_pivot(lower_teeth: np.ndarray) -> np.ndarray:
    """A hinge point for the jaw node: centred in x, above the lower teeth by 3/4 of their height and behind
    them by their depth, roughly where the temporomandibular joint sits (about 3.5 cm below and 8 cm behind the
    eyes on the default head)."""
    lo, hi = lower_teeth.min(axis=0), lower_teeth.max(axis=0)
    depth, height = hi[2] - lo[2], hi[1] - lo[1]
    return np.array([(lo[0] + hi[0]) / 2, hi[1] + 0.75 * height, lo[2] - depth], np.float64)


def eye_zones(vertices: np.ndarray, faces: np.ndarray, pivot: np.ndarray) -> np.ndarray:
    """[F] zone of each face of an eyeball (0 sclera, 1 iris, 2 pupil, as :data:`EYE_ZONES`): by the angle between
    the gaze axis (+z, where the face looks) and the face centre seen from the eye's pivot; on a coarse eyeball the
    most frontal faces are the pupil and the next ones the iris."""
    centres = np.asarray(vertices, np.float64)[np.asarray(faces, np.int64)].mean(axis=1) - np.asarray(pivot)
    length = np.maximum(np.linalg.norm(centres, axis=1), 1e-12)
    angle = np.degrees(np.arccos(np.clip(centres[:, 2] / length, -1.0, 1.0)))
    zones = np.zeros(len(centres), np.int64)
    for z in (2, 1):  # the pupil, then the iris: each at least the most frontal faces left (coarse eyeballs)
        free = zones == 0
        if not free.any() or angle[free].min() >= 90.0:
            break
        zones[free & (angle <= max(EYE_ZONES[z][2], angle[free].min() + 1e-6))] = z
    return zones


def eye_angles(character: Any, arkit: np.ndarray, eyes: np.ndarray | None, eye: int) -> np.ndarray:
    """[N, 2] (x, y) degrees of one eye (0 right, 1 left): the A2F eye rotation plus, for characters that pose
    their eyeballs by rotation (``eye_look_rotations`` [52, 2, 2]), the rotation the ``eyeLook*`` weights add."""
    out = np.zeros((len(arkit), 2))
    if eyes is not None:
        out += np.asarray(eyes, np.float64)[:, 3 * eye : 3 * eye + 2]
    looks = getattr(character, "eye_look_rotations", None)
    if looks is not None:
        out += np.asarray(arkit, np.float64) @ np.asarray(looks, np.float64)[:, eye, :]
    return out


def eye_quaternions(angles: np.ndarray) -> np.ndarray:
    """[N, 4] (x, y, z, w) rotations from [N, 2] (x, y) degrees: R = Ry(y) @ Rx(x) (+x looks down, +y to the
    character's left), the convention of :func:`facecast.characters.apply_weights`."""
    a = np.asarray(angles, np.float64)
    hx, hy = np.radians(a[:, 0]) / 2, np.radians(a[:, 1]) / 2
    sx, cx, sy, cy = np.sin(hx), np.cos(hx), np.sin(hy), np.cos(hy)
    return np.stack([cy * sx, sy * cx, -sy * sx, cy * cx], axis=1)


def rigid_eyes(character: Any) -> bool:
    """Whether the character poses its eyeballs by rotation only (no morph targets on the eye meshes)."""
    return getattr(character, "eye_look_rotations", None) is not None


def jaw_tracks(jaw: np.ndarray, pivot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(translation [N, 3], rotation [N, 4]) of a jaw node resting at ``pivot`` whose children are offset by
    ``-pivot``: T(R p + t) R T(-p) = M, so every jaw-carried vertex moves by ``M @ [x, y, z, 1]``."""
    t, q = decompose_rigid(jaw)
    r = np.asarray(jaw, np.float64)[:, :3, :3]
    return (r @ pivot + t).astype(np.float64), q


def character_jaw(character: Any, anim: Animation) -> np.ndarray | None:
    """[N, 4, 4] the jaw motion a character export shows: the rigid motion the animation's ARKit jaw shapes give
    the character's lower teeth (:func:`facecast.characters.jaw_from_weights`), so teeth and tongue move with the
    lips those weights move; the animation's own A2F jaw transform for characters without lower teeth."""
    parts = getattr(character, "parts", {})
    if "lower_teeth" in parts and "lower_teeth" in getattr(character, "arkit_deltas", {}):
        return jaw_from_weights(character, arkit_matrix(anim))
    return None if anim.jaw is None else np.asarray(anim.jaw, np.float32).reshape(len(anim), 4, 4)


def tongue_matrix(anim: Animation) -> np.ndarray:
    """[N, 16] tongue weights in TONGUE_NAMES order (poses the animation lacks are 0)."""
    out = np.zeros((len(anim), len(TONGUE_NAMES)), np.float32)
    if anim.tongue_weights is not None:
        for j, name in enumerate(TONGUE_NAMES):
            if name in anim.tongue_names:
                out[:, j] = anim.tongue_weights[:, anim.tongue_names.index(name)]
    return out


def character_scene(character: Any, morph_normals: bool = True) -> GltfScene:
    """The node tree and meshes of a character (anything with ``parts``, ``arkit_deltas``, ``tongue_deltas``,
    ``eye_pivots``); parts it lacks are left out. No animation yet."""
    nodes = [GltfNode("facecast_head", scale=np.full(3, CM_TO_M))]
    meshes: list[GltfMesh] = []

    def add(parent: int, name: str, mesh: int | None = None, translation=None) -> int:
        nodes.append(GltfNode(name, mesh=mesh, translation=np.zeros(3) if translation is None else translation))
        nodes[parent].children.append(len(nodes) - 1)
        return len(nodes) - 1

    pivots = np.asarray(getattr(character, "eye_pivots", np.zeros((2, 3))), np.float64)

    def zoned(name: str, mesh: GltfMesh) -> GltfMesh:
        if name in EYE_PARTS:  # sclera, iris and pupil as three primitives of the eyeball
            mesh.face_groups = eye_zones(mesh.vertices, mesh.faces, pivots[EYE_PARTS.index(name)])
            mesh.group_colors = [(f"{zone}", color) for zone, color, _ in EYE_ZONES]
        return mesh

    def part_mesh(name: str) -> int:
        part = character.parts[name]
        verts = np.asarray(part.vertices, np.float32)
        faces = np.asarray(part.faces, np.int64)
        if name in EYE_PARTS and rigid_eyes(character):
            meshes.append(
                zoned(name, GltfMesh(name, verts, faces, vertex_normals(verts, faces), color=COLORS.get(name)))
            )
            return len(meshes) - 1
        targets = np.asarray(character.arkit_deltas[name], np.float32)
        names = list(ARKIT_NAMES)
        if name == "tongue" and getattr(character, "tongue_deltas", None) is not None:
            targets = np.concatenate([targets, np.asarray(character.tongue_deltas, np.float32)])
            names += list(TONGUE_NAMES)
        meshes.append(zoned(name, GltfMesh(
            name, verts, faces, vertex_normals(verts, faces), names, targets,
            target_normal_deltas(verts, faces, targets) if morph_normals else None, COLORS.get(name),
        )))  # fmt: skip
        return len(meshes) - 1

    parts = character.parts
    for name in parts:
        if name not in JAW_PARTS and name not in EYE_PARTS:
            add(0, name, part_mesh(name))
    jaw_parts = [p for p in JAW_PARTS if p in parts]
    if jaw_parts:
        base = parts["lower_teeth"].vertices if "lower_teeth" in parts else parts[jaw_parts[0]].vertices
        pivot = estimate_jaw_pivot(np.asarray(base, np.float64))
        jaw = add(0, "jaw", translation=pivot)
        for name in jaw_parts:
            add(jaw, name, part_mesh(name), -pivot)
    for e, name in enumerate(EYE_PARTS):
        if name in parts:
            node = add(0, name, translation=pivots[e])
            add(node, f"{name}_mesh", part_mesh(name), -pivots[e])
    return GltfScene(
        nodes, meshes, [0], extras={"units": "centimetres under a 0.01 root scale", "audio": NO_AUDIO_NOTE}
    )


def animate_scene(scene: GltfScene, anim: Animation, character: Any) -> GltfAnimation:
    """Add the animation's morph weights, jaw and eyes to the :func:`character_scene` of ``character``; returns
    the track set."""
    arkit = arkit_matrix(anim)
    tongue = tongue_matrix(anim)
    track = GltfAnimation(ANIMATION_NAME, frame_times(anim))
    for i, node in enumerate(scene.nodes):
        if node.mesh is not None and scene.meshes[node.mesh].num_targets:
            t = scene.meshes[node.mesh].num_targets
            track.weights[i] = np.concatenate([arkit, tongue], axis=1)[:, :t] if t > len(ARKIT_NAMES) else arkit
    names = [node.name for node in scene.nodes]
    motion = character_jaw(character, anim) if "jaw" in names else None
    if motion is not None:
        jaw = names.index("jaw")
        pivot = np.asarray(scene.nodes[jaw].translation, np.float64)
        track.translation[jaw], track.rotation[jaw] = jaw_tracks(motion, pivot)
        for i, node in enumerate(scene.nodes):  # the jaw node carries these parts: their jaw morphs stay at 0
            if node.name in JAW_PARTS and i in track.weights:
                track.weights[i] = track.weights[i].copy()
                track.weights[i][:, JAW_SHAPE_INDICES] = 0.0
    for e, name in enumerate(EYE_PARTS):
        if name in names:
            track.rotation[names.index(name)] = eye_quaternions(eye_angles(character, arkit, anim.eyes, e))
    scene.animations.append(track)
    return track


def write_gltf(
    anim: Animation, path: str | Path, character: Any = None, sparse: bool = True, morph_normals: bool = True
) -> Path:
    """Write ``anim`` on ``character`` (default: the built-in CC0 head) as a GLB, atomically; returns the path.

    ``sparse`` stores morph targets that move few vertices as sparse accessors (smaller files; every mainstream
    loader reads them); ``morph_normals`` adds normal deltas to the targets. Audio is not embedded.
    """
    if len(anim) == 0:
        raise ValueError("cannot write an empty animation as glTF")
    if character is None:
        from facecast.characters import build_default_character

        character = build_default_character()
    scene = character_scene(character, morph_normals=morph_normals)
    animate_scene(scene, anim, character)
    return write_glb(scene, path, sparse=sparse)
