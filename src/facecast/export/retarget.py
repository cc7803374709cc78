"""Put a facecast animation on your own head: read its mesh and morph targets, write it back animated as GLB.

    from facecast.export.retarget import retarget
    report = retarget("clip.json", "my_head.glb", "my_head_talking.glb")
    print(report.summary())

Heads: glTF/GLB (including ``EXT_meshopt_compression`` + ``KHR_mesh_quantization`` files such as three.js's
facecap.glb; skins are kept) or a Wavefront OBJ plus a folder of per-shape OBJ files with the same vertex order
(each file's stem names its shape). Morph target names are matched with
:func:`facecast.arkit_names.normalize_arkit_name`, so ``jawOpen``, ``JawOpen``, ``jaw_open``, ``eyeBlink_L`` and
``blendShape1.eyeBlinkLeft`` all find their curve. A glTF head comes back whole (:mod:`facecast.export.gltf_keep`:
meshes, UVs, materials, textures and images, skins, other nodes and animations, extensions; meshopt views are
stored decompressed) with one LINEAR animation added: the morph weights of every mesh node in its own target
order, the A2F eye rotations on the nodes that look like eyes, and the jaw rotation on a node that looks like a
jaw. OBJ heads are written as a new GLB. Curves the head has no target for are reported and skipped.

Conventions: the head is taken to follow glTF's axes (y up, the face looks down +z, +x on the character's left).
Eyes: the top-most nodes whose names contain "eye" (not lashes, brows or lids); of two, the one at larger world x
is the left eye whatever its name says (facecap names its eye nodes from the viewer's side). Each turns about its
own origin, x then y, as the animation's eye degrees say. Jaw: only the rotation part of the jaw transform is
applied, about the jaw node's origin (the translation belongs to the default character's geometry); by default
only when the head has no ``jawOpen`` target, which would otherwise open the mouth twice.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facecast.animation import Animation
from facecast.arkit_names import name_tokens, normalize_arkit_name
from facecast.export.csv import frame_times
from facecast.export.glb import GltfAnimation, GltfMesh, GltfNode, GltfScene, matrix_to_quat, quat_to_matrix, write_glb
from facecast.export.gltf import NO_AUDIO_NOTE, eye_quaternions, vertex_normals
from facecast.export.gltf_keep import write_kept_glb
from facecast.export.gltf_read import read_gltf

__all__ = ["RetargetReport", "normalize_arkit_name", "read_head", "read_obj_mesh", "retarget"]

OBJ_SUFFIXES = (".obj",)
GLTF_SUFFIXES = (".glb", ".gltf")
NEUTRAL_STEMS = ("neutral", "base", "head", "default", "basis", "rest")
SHAPE_FOLDERS = ("{stem}_shapes", "{stem}_blendshapes", "{stem}_targets", "shapes", "blendshapes", "targets")
EYE_WORDS = {"eye", "eyes", "eyeball", "eyeballs"}
NOT_EYE_WORDS = {"lash", "lashes", "brow", "brows", "lid", "lids", "blink", "look", "squint", "wide", "socket",
                 "occlusion", "shadow", "wet", "target", "aim", "highlight", "lens", "tear"}  # fmt: skip
JAW_WORDS = {"jaw", "mandible", "chin"}
LEFT_WORDS, RIGHT_WORDS = {"l", "left", "lf", "lft"}, {"r", "right", "rt", "rgt"}


@dataclass
class RetargetReport:
    """What :func:`retarget` wrote and what it could not map."""

    path: Path
    frames: int
    fps: float
    matched: dict[str, str] = field(default_factory=dict)
    """head target name -> animation curve that drives it"""
    missing: list[str] = field(default_factory=list)
    """animation curves the head has no target for (skipped)"""
    unmatched_targets: list[str] = field(default_factory=list)
    """head targets no curve drives (left at weight 0)"""
    jaw_node: str | None = None
    """the node the jaw rotation drives (None: none rotated)"""
    jaw_found: str | None = None
    """the node that looks like a jaw, rotated or not"""
    jaw_note: str = ""
    """why the jaw node was or was not rotated"""
    eye_nodes: dict[str, str] = field(default_factory=dict)
    """"right"/"left" -> node name"""
    kept: dict[str, int] = field(default_factory=dict)
    """what of the source file was kept (counts of images, materials, textures, skins, animations)"""
    notes: list[str] = field(default_factory=list)
    """what of the source could not be kept as it was (an image link that could not be embedded)"""

    def summary(self) -> str:
        lines = [f"wrote {self.path} ({self.frames} frames at {self.fps:g} fps): "
                 f"{len(self.matched)} morph targets driven"]  # fmt: skip
        if self.missing:
            lines.append(f"  the head lacks {len(self.missing)} curves (skipped): {', '.join(self.missing)}")
        if self.unmatched_targets:
            lines.append(f"  {len(self.unmatched_targets)} head targets have no curve: "
                         f"{', '.join(self.unmatched_targets)}")  # fmt: skip
        eyes = ", ".join(f"{side} -> {node}" for side, node in self.eye_nodes.items()) or "no eye nodes found"
        lines.append(f"  eyes: {eyes}")
        lines.append(f"  jaw: {self.jaw_note}")
        if self.kept:
            lines.append("  kept from the head: " + ", ".join(f"{n} {k}" for k, n in self.kept.items()))
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------
# reading heads


def read_obj_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(vertices [V, 3] float32, triangles [F, 3]) of a Wavefront OBJ (polygons fan-split, negative indices ok)."""
    path = Path(path)
    verts: list[list[float]] = []
    faces: list[tuple[int, int, int]] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for number, line in enumerate(fh, 1):
                parts = line.split()
                if not parts:
                    continue
                if parts[0] == "v":
                    verts.append([float(x) for x in parts[1:4]])
                elif parts[0] == "f":
                    ids = [int(tok.split("/", 1)[0]) for tok in parts[1:]]
                    ids = [i - 1 if i > 0 else len(verts) + i for i in ids]
                    if len(ids) < 3 or min(ids) < 0 or max(ids) >= len(verts):
                        raise ValueError(f"{path}:{number}: bad face {line.strip()!r}")
                    faces.extend((ids[0], ids[k], ids[k + 1]) for k in range(1, len(ids) - 1))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file is missing") from None
    except (ValueError, IndexError) as exc:
        raise ValueError(f"{path}: not a readable OBJ ({exc})") from None
    if not verts:
        raise ValueError(f"{path}: OBJ has no vertices")
    return np.asarray(verts, np.float32), np.asarray(faces, np.int64).reshape(-1, 3)


def _obj_head(neutral: Path, shape_files: list[Path]) -> GltfScene:
    verts, faces = read_obj_mesh(neutral)
    names, targets = [], []
    for f in sorted(shape_files, key=lambda p: p.stem):
        v, _ = read_obj_mesh(f)
        if v.shape != verts.shape:
            raise ValueError(f"{f}: {len(v)} vertices, but the neutral {neutral.name} has {len(verts)}")
        names.append(f.stem)
        targets.append(v - verts)
    mesh = GltfMesh(neutral.stem, verts, faces, vertex_normals(verts, faces), names,
                    np.stack(targets) if targets else None)  # fmt: skip
    return GltfScene([GltfNode(neutral.stem, mesh=0)], [mesh], [0], extras={"source": neutral.name})


def read_head(path: str | Path, shapes: str | Path | None = None) -> GltfScene:
    """A head as a :class:`~facecast.export.glb.GltfScene` (nodes, meshes with named morph targets, skins).

    ``path`` is a ``.glb``/``.gltf``, an ``.obj`` (its shapes from ``shapes`` or a folder next to it named
    ``<stem>_shapes``, ``<stem>_blendshapes``, ``shapes``, ``blendshapes`` or ``targets``), or a folder of OBJ
    files of which one is the neutral (named neutral, base, head, default, basis or rest).
    """
    path = Path(path)
    if path.is_dir():
        objs = sorted(p for p in path.iterdir() if p.suffix.lower() in OBJ_SUFFIXES)
        neutral = [p for p in objs if p.stem.lower() in NEUTRAL_STEMS]
        if not neutral:
            raise ValueError(f"{path}: no neutral OBJ (name it one of {', '.join(NEUTRAL_STEMS)}.obj)")
        return _obj_head(neutral[0], [p for p in objs if p != neutral[0]])
    suffix = path.suffix.lower()
    if suffix in GLTF_SUFFIXES:
        return read_gltf(path)
    if suffix in OBJ_SUFFIXES:
        folder = Path(shapes) if shapes is not None else None
        if folder is None:
            for pattern in SHAPE_FOLDERS:
                candidate = path.parent / pattern.format(stem=path.stem)
                if candidate.is_dir():
                    folder = candidate
                    break
        if folder is not None and not folder.is_dir():
            raise FileNotFoundError(f"{folder}: shape folder is missing")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in OBJ_SUFFIXES) if folder else []
        return _obj_head(path, files)
    raise ValueError(f"{path}: expected a .glb, .gltf or .obj head (or a folder of OBJ files)")


# ----------------------------------------------------------------------------------------------------
# finding eyes and jaw


def _side(name: str) -> str | None:
    tokens = name_tokens(name)
    if LEFT_WORDS & set(tokens):
        return "left"
    if RIGHT_WORDS & set(tokens):
        return "right"
    return None


def _is_index(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_node_graph(scene: GltfScene) -> None:
    """Raise ValueError unless the scene's nodes form a forest: children and roots are node indices, every
    node has at most one parent and none is its own ancestor (so walking up from any node ends)."""
    count, parents = len(scene.nodes), {}
    for i, node in enumerate(scene.nodes):
        for c in node.children:
            if not (_is_index(c) and 0 <= c < count):
                raise ValueError(f"node {i} ({node.name!r}): child {c!r} is not one of the {count} nodes")
            if c in parents:
                raise ValueError(f"node {c} is a child of both node {parents[c]} and node {i}")
            parents[int(c)] = i
        if node.mesh is not None and not (_is_index(node.mesh) and 0 <= node.mesh < len(scene.meshes)):
            raise ValueError(f"node {i} ({node.name!r}): mesh {node.mesh!r} is not one of the {len(scene.meshes)}")
    for r in scene.roots:
        if not (_is_index(r) and 0 <= r < count):
            raise ValueError(f"scene root {r!r} is not one of the {count} nodes")
    seen: set[int] = set()
    stack = [i for i in range(count) if i not in parents]
    while stack:
        i = stack.pop()
        if i not in seen:
            seen.add(i)
            stack.extend(int(c) for c in scene.nodes[i].children if int(c) not in seen)
    if len(seen) != count:
        raise ValueError(f"node {min(set(range(count)) - seen)} is in a cycle of children")


def _ancestors(index: int, parents: dict[int, int]) -> list[int]:
    """The node's parent, grandparent, ... (bounded, even on a cyclic graph)."""
    out: list[int] = []
    while index in parents and len(out) <= len(parents):
        index = parents[index]
        out.append(index)
    return out


def _depth(scene: GltfScene, index: int, parents: dict[int, int]) -> int:
    return len(_ancestors(index, parents))


def _top_most(scene: GltfScene, ids: list[int]) -> list[int]:
    """The candidates that have no candidate ancestor."""
    parents, chosen = scene.parents(), set(ids)
    return [i for i in ids if not chosen.intersection(_ancestors(i, parents))]


def find_eye_nodes(scene: GltfScene) -> dict[str, int]:
    """{"right": node, "left": node} for the nodes that look like eyes (see the module docstring)."""
    ids = [i for i, n in enumerate(scene.nodes)
           if EYE_WORDS & set(name_tokens(n.name)) and not NOT_EYE_WORDS & set(name_tokens(n.name))]  # fmt: skip
    top = _top_most(scene, ids)
    if len(top) == 2:
        x = [scene.world_matrix(i)[0, 3] for i in top]
        if abs(x[0] - x[1]) > 1e-9:
            left, right = (top[0], top[1]) if x[0] > x[1] else (top[1], top[0])
            return {"right": right, "left": left}
    out: dict[str, int] = {}
    for i in top:
        side = _side(scene.nodes[i].name)
        if side is not None and side not in out:
            out[side] = i
    return out


def find_jaw_node(scene: GltfScene) -> int | None:
    """The top-most node whose name says jaw (or mandible), or None."""
    ids = [i for i, n in enumerate(scene.nodes)
           if JAW_WORDS & set(name_tokens(n.name)) and normalize_arkit_name(n.name) is None]  # fmt: skip
    if not ids:
        return None
    parents = scene.parents()
    return min(_top_most(scene, ids), key=lambda i: _depth(scene, i, parents))


def _world_rotations(scene: GltfScene, node: int, rotations: np.ndarray) -> np.ndarray:
    """[N, 4] local quaternions of ``node`` that turn it by world-frame ``rotations`` [N, 3, 3] about its origin."""
    parents = scene.parents()
    parent = scene.world_matrix(parents[node]) if node in parents else np.eye(4)
    u, _, vt = np.linalg.svd(parent[:3, :3])
    p = u @ vt
    if np.linalg.det(p) < 0:
        p = -p
    rest = quat_to_matrix(scene.nodes[node].rotation)
    return matrix_to_quat(p.T[None] @ rotations @ p[None] @ rest[None])


# ----------------------------------------------------------------------------------------------------
# retargeting


def _curves(anim: Animation) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for names, weights in ((anim.skin_names, anim.skin_weights), (anim.tongue_names, anim.tongue_weights)):
        if weights is None:
            continue
        for k, name in enumerate(names):
            canonical = normalize_arkit_name(name) or name
            out.setdefault(canonical, np.asarray(weights[:, k], np.float32))
    return out


def _jaw(scene: GltfScene, animation: Animation, track: GltfAnimation, report: RetargetReport,
         jaw: bool | None, has_jaw_open: bool) -> None:  # fmt: skip
    """Rotate the jaw node when asked (``jaw`` None: only without a driven ``jawOpen`` target); say why."""
    found = find_jaw_node(scene)
    report.jaw_found = None if found is None else scene.nodes[found].name
    if found is None:
        report.jaw_note = f"no node named {'/'.join(sorted(JAW_WORDS))} found; nothing rotated"
        return
    name = report.jaw_found
    if animation.jaw is None:
        report.jaw_note = f"found node {name!r}; not rotated: the animation has no jaw transform"
        return
    if jaw is False:
        report.jaw_note = f"found node {name!r}; not rotated (--jaw off)"
        return
    if jaw is None and has_jaw_open:
        report.jaw_note = (f"found node {name!r}; not rotated: the head's jawOpen target already opens the mouth "
                           "(--jaw on rotates the node as well)")  # fmt: skip
        return
    rotations = np.asarray(animation.jaw, np.float64).reshape(len(animation), 4, 4)[:, :3, :3]
    track.rotation[found] = _world_rotations(scene, found, rotations)
    report.jaw_node = name
    why = "--jaw on" if jaw else "the head has no jawOpen target"
    report.jaw_note = f"found node {name!r}; rotated by the animation's jaw rotation ({why})"


def _kept_counts(doc: dict) -> dict[str, int]:
    keys = ("meshes", "materials", "textures", "images", "skins", "animations")
    return {key: len(doc[key]) for key in keys if isinstance(doc.get(key), list) and doc[key]}


def retarget(
    animation: Animation | str | Path,
    head: GltfScene | str | Path,
    out_path: str | Path,
    jaw: bool | None = None,
    eyes: bool = True,
    sparse: bool = True,
) -> RetargetReport:
    """Write ``animation`` (an Animation or a facecast ``.json``/``.npz``) onto ``head`` (a path for
    :func:`read_head`, or a scene) as a GLB at ``out_path``; returns the report of what was mapped.

    ``jaw``: rotate a jaw node (None: only when the head has no ``jawOpen`` target); ``eyes``: rotate the eye
    nodes; ``sparse``: store morph targets that move few vertices sparsely.
    """
    if not isinstance(animation, Animation):
        from facecast.export.load import load_animation

        animation = load_animation(animation)
    if len(animation) == 0:
        raise ValueError("cannot retarget an empty animation")
    if isinstance(head, GltfScene):  # the source document is read only: share it
        scene = copy.deepcopy(head, memo={id(head.source): head.source})
    else:
        scene = read_head(head)
    check_node_graph(scene)  # the eye, jaw and world-matrix walks climb parents
    curves = _curves(animation)
    report = RetargetReport(Path(out_path), len(animation), float(animation.fps))
    track = GltfAnimation("facecast", frame_times(animation))
    driven: set[str] = set()
    for i, node in enumerate(scene.nodes):
        if node.mesh is None or not scene.meshes[node.mesh].num_targets:
            continue
        mesh = scene.meshes[node.mesh]
        weights = np.zeros((len(animation), mesh.num_targets), np.float32)
        for k, target in enumerate(mesh.target_names):
            canonical = normalize_arkit_name(target)
            if canonical in curves:
                weights[:, k] = curves[canonical]
                report.matched[target] = canonical
                driven.add(canonical)
            elif target not in report.unmatched_targets:
                report.unmatched_targets.append(target)
        track.weights[i] = weights
    report.missing = [name for name in curves if name not in driven]

    if eyes and animation.eyes is not None:
        found = find_eye_nodes(scene)
        for e, side in enumerate(("right", "left")):
            node = found.get(side)
            if node is not None:
                angles = np.asarray(animation.eyes, np.float64)[:, 3 * e : 3 * e + 2]
                track.rotation[node] = _world_rotations(scene, node, quat_to_matrix(eye_quaternions(angles)))
                report.eye_nodes[side] = scene.nodes[node].name
    _jaw(scene, animation, track, report, jaw, "jawOpen" in driven)
    extras = {"retargeted_by": "facecast", "audio": NO_AUDIO_NOTE}
    if scene.source is not None:
        report.kept = _kept_counts(scene.source.doc)
        report.notes += write_kept_glb(scene.source, scene, track, out_path, extras)
    else:
        scene.animations.append(track)
        scene.extras = {**scene.extras, **extras}
        write_glb(scene, out_path, sparse=sparse)
    return report
