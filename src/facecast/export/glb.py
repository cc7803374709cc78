"""A small glTF 2.0 scene model and its binary (GLB) encoder: meshes with morph targets, a node tree, animations.

Written by hand with ``struct`` and JSON (no glTF library needed at run time). What the encoder guarantees:
every bufferView is 4-byte aligned and lies inside the one binary buffer; POSITION accessors (base and morph
targets) and animation sampler inputs carry ``min``/``max``; morph target names go to ``mesh.extras.targetNames``
(read by three.js and Blender); morph targets that move few vertices are stored as sparse accessors, targets that
move nothing share one zero accessor; animation samplers are ``LINEAR`` over one shared time accessor.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facecast.fileio import atomic_write

GLB_MAGIC = 0x46546C67
CHUNK_JSON = 0x4E4F534A
CHUNK_BIN = 0x004E4942
ARRAY_BUFFER = 34962
ELEMENT_ARRAY_BUFFER = 34963
FLOAT, UNSIGNED_SHORT, UNSIGNED_INT = 5126, 5123, 5125
TRIANGLES = 4


@dataclass
class GltfMesh:
    """One triangle mesh (a single primitive): vertices [V, 3], faces [F, 3], optional normals and morph targets.

    ``targets`` are position deltas [T, V, 3] named by ``target_names``; ``target_normals`` (optional) the
    matching normal deltas. ``color`` is an RGBA base colour for a plain PBR material. ``joints`` [V, 4] and
    ``joint_weights`` [V, 4] are the skinning attributes of a skinned mesh.
    """

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray | None = None
    target_names: list[str] = field(default_factory=list)
    targets: np.ndarray | None = None
    target_normals: np.ndarray | None = None
    color: tuple[float, float, float, float] | None = None
    joints: np.ndarray | None = None
    joint_weights: np.ndarray | None = None
    face_groups: np.ndarray | None = None
    """[F] group of each face: the mesh is written as one primitive per group (sharing its vertices and targets),
    group g with material ``group_colors[g]``; None: one primitive with ``color``."""
    group_colors: list[tuple[str, tuple[float, float, float, float]]] = field(default_factory=list)
    """(material name, RGBA) of each face group"""

    @property
    def num_targets(self) -> int:
        return 0 if self.targets is None else len(self.targets)


@dataclass
class GltfNode:
    """A node: rest translation, rotation (quaternion x, y, z, w) and scale, an optional mesh (and skin) and
    children."""

    name: str
    mesh: int | None = None
    skin: int | None = None
    children: list[int] = field(default_factory=list)
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    rotation: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 0.0, 1.0]))
    scale: np.ndarray = field(default_factory=lambda: np.ones(3))

    def matrix(self) -> np.ndarray:
        """The local 4x4 transform T @ R @ S (column vectors)."""
        return trs_matrix(self.translation, self.rotation, self.scale)


@dataclass
class GltfSkin:
    """A skin: its joint nodes, their inverse bind matrices [J, 4, 4] (column vectors) and the skeleton root."""

    joints: list[int]
    inverse_bind: np.ndarray | None = None
    skeleton: int | None = None
    name: str = ""


@dataclass
class GltfAnimation:
    """Per-node tracks sampled at ``times`` [N] seconds: morph ``weights`` [N, T], ``translation`` [N, 3],
    ``rotation`` [N, 4] (x, y, z, w) and ``scale`` [N, 3], each keyed by node index."""

    name: str
    times: np.ndarray
    weights: dict[int, np.ndarray] = field(default_factory=dict)
    translation: dict[int, np.ndarray] = field(default_factory=dict)
    rotation: dict[int, np.ndarray] = field(default_factory=dict)
    scale: dict[int, np.ndarray] = field(default_factory=dict)


@dataclass
class GltfScene:
    """Nodes, meshes, the scene's root nodes and animations, plus free-form ``extras`` for ``asset.extras``."""

    nodes: list[GltfNode]
    meshes: list[GltfMesh]
    roots: list[int]
    animations: list[GltfAnimation] = field(default_factory=list)
    extras: dict = field(default_factory=dict)
    skins: list[GltfSkin] = field(default_factory=list)
    source: Any = field(default=None, repr=False, compare=False)
    """The checked reader of the file the scene was read from (its whole document), when it came from one."""

    def parents(self) -> dict[int, int]:
        """child node -> parent node."""
        return {c: i for i, node in enumerate(self.nodes) for c in node.children}

    def world_matrix(self, index: int, local: dict[int, np.ndarray] | None = None) -> np.ndarray:
        """The node's 4x4 world transform; ``local`` overrides some nodes' local matrices (an animated pose)."""
        parents = self.parents()
        out = np.eye(4)
        while True:
            m = local[index] if local is not None and index in local else self.nodes[index].matrix()
            out = m @ out
            if index not in parents:
                return out
            index = parents[index]

    def find(self, name: str) -> int:
        """The index of the first node called ``name``."""
        for i, node in enumerate(self.nodes):
            if node.name == name:
                return i
        raise KeyError(f"no node named {name!r}")


# ----------------------------------------------------------------------------------------------------
# quaternions


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Unit quaternions (..., 4) as x, y, z, w -> rotation matrices (..., 3, 3)."""
    q = np.asarray(q, np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    x, y, z, w = np.moveaxis(q, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def matrix_to_quat(r: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> unit quaternions (..., 4) as x, y, z, w, with w >= 0 and no sign flips
    between consecutive rows of a sequence (so LINEAR/slerp sampling takes the short way)."""
    from scipy.spatial.transform import Rotation

    r = np.asarray(r, np.float64)
    q = Rotation.from_matrix(r.reshape(-1, 3, 3)).as_quat()
    q *= np.where(q[:, 3:] < 0, -1.0, 1.0)
    for i in range(1, len(q)):  # keep neighbours in the same hemisphere
        if np.dot(q[i], q[i - 1]) < 0:
            q[i] = -q[i]
    return q.reshape(r.shape[:-2] + (4,))


def trs_matrix(translation, rotation, scale) -> np.ndarray:
    """4x4 T @ R @ S from a translation, an (x, y, z, w) quaternion and a scale."""
    m = np.eye(4)
    m[:3, :3] = quat_to_matrix(rotation) * np.asarray(scale, np.float64)[None, :]
    m[:3, 3] = translation
    return m


def decompose_rigid(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rigid 4x4 transforms [N, 4, 4] -> (translations [N, 3], quaternions [N, 4]); any scale or shear in the
    3x3 part is projected away (nearest rotation)."""
    m = np.asarray(m, np.float64)
    u, _, vt = np.linalg.svd(m[:, :3, :3])
    d = np.sign(np.linalg.det(u @ vt))
    u[:, :, 2] *= d[:, None]
    return m[:, :3, 3].copy(), matrix_to_quat(u @ vt)


# ----------------------------------------------------------------------------------------------------
# encoder

MaterialTable = Callable[["str | None", "tuple[float, float, float, float] | None"], int]


class _Encoder:
    def __init__(self) -> None:
        self.bin = bytearray()
        self.views: list[dict] = []
        self.accessors: list[dict] = []
        self._zeros: dict[int, int] = {}

    def view(self, data: bytes, target: int | None = None) -> int:
        self.bin.extend(b"\0" * (-len(self.bin) % 4))
        entry = {"buffer": 0, "byteOffset": len(self.bin), "byteLength": len(data)}
        if target is not None:
            entry["target"] = target
        self.bin.extend(data)
        self.views.append(entry)
        return len(self.views) - 1

    def accessor(self, array: np.ndarray, kind: str, target: int | None = None, bounds: bool = False) -> int:
        array = np.ascontiguousarray(array)
        component = {np.dtype(np.float32): FLOAT, np.dtype(np.uint16): UNSIGNED_SHORT,
                     np.dtype(np.uint32): UNSIGNED_INT}[array.dtype]  # fmt: skip
        width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}[kind]
        entry = {"bufferView": self.view(array.tobytes(), target), "componentType": component,
                 "count": int(array.size // width), "type": kind}  # fmt: skip
        if bounds:
            flat = array.reshape(-1, width)
            entry["min"] = flat.min(axis=0).tolist()
            entry["max"] = flat.max(axis=0).tolist()
        self.accessors.append(entry)
        return len(self.accessors) - 1

    def target(self, deltas: np.ndarray, sparse: bool, bounds: bool) -> int:
        """A morph target attribute: shared zeros, sparse (when that is smaller) or dense."""
        deltas = np.ascontiguousarray(deltas, np.float32)
        moved = np.flatnonzero(np.any(deltas != 0, axis=1))
        if moved.size == 0:
            if len(deltas) not in self._zeros:
                self._zeros[len(deltas)] = self.accessor(deltas, "VEC3", ARRAY_BUFFER, bounds=True)
            return self._zeros[len(deltas)]
        if not sparse or moved.size * 16 >= deltas.size * 4 * 0.75:
            return self.accessor(deltas, "VEC3", ARRAY_BUFFER, bounds=bounds)
        small = len(deltas) < 65536
        indices = moved.astype(np.uint16 if small else np.uint32)
        entry = {
            "componentType": FLOAT,
            "count": len(deltas),
            "type": "VEC3",
            "sparse": {
                "count": int(moved.size),
                "indices": {"bufferView": self.view(indices.tobytes()),
                            "componentType": UNSIGNED_SHORT if small else UNSIGNED_INT},
                "values": {"bufferView": self.view(deltas[moved].tobytes())},
            },
        }  # fmt: skip
        if bounds:  # the bounds of the full (zero-filled) array
            entry["min"] = np.minimum(deltas[moved].min(axis=0), 0.0).tolist()
            entry["max"] = np.maximum(deltas[moved].max(axis=0), 0.0).tolist()
        self.accessors.append(entry)
        return len(self.accessors) - 1


def _mesh_json(enc: _Encoder, mesh: GltfMesh, material: MaterialTable, sparse: bool) -> dict:
    verts = np.asarray(mesh.vertices, np.float32)
    faces = np.asarray(mesh.faces, np.int64)
    if faces.size and (faces.min() < 0 or faces.max() >= len(verts)):
        raise ValueError(f"mesh {mesh.name!r}: faces index outside its {len(verts)} vertices")
    attributes = {"POSITION": enc.accessor(verts, "VEC3", ARRAY_BUFFER, bounds=True)}
    if mesh.normals is not None:
        attributes["NORMAL"] = enc.accessor(np.asarray(mesh.normals, np.float32), "VEC3", ARRAY_BUFFER)
    if mesh.joints is not None and mesh.joint_weights is not None:
        attributes["JOINTS_0"] = enc.accessor(np.asarray(mesh.joints, np.uint16), "VEC4", ARRAY_BUFFER)
        attributes["WEIGHTS_0"] = enc.accessor(np.asarray(mesh.joint_weights, np.float32), "VEC4", ARRAY_BUFFER)
    index_type = np.uint16 if len(verts) < 65536 else np.uint32
    if mesh.face_groups is None:
        groups = [(material(None, mesh.color), faces)]
    else:
        assigned = np.asarray(mesh.face_groups, np.int64)
        if assigned.shape != (len(faces),) or assigned.min() < 0 or assigned.max() >= len(mesh.group_colors):
            raise ValueError(f"mesh {mesh.name!r}: face_groups must give each face one of its group_colors")
        groups = [(material(name, color), faces[assigned == g]) for g, (name, color) in enumerate(mesh.group_colors)
                  if np.any(assigned == g)]  # fmt: skip
    primitives = [{"attributes": attributes, "mode": TRIANGLES, "material": mat,
                   "indices": enc.accessor(part.astype(index_type).reshape(-1), "SCALAR", ELEMENT_ARRAY_BUFFER)}
                  for mat, part in groups]  # fmt: skip
    out: dict = {"name": mesh.name, "primitives": primitives}
    if mesh.num_targets:
        if len(mesh.target_names) != mesh.num_targets:
            raise ValueError(f"mesh {mesh.name!r}: {mesh.num_targets} targets but {len(mesh.target_names)} names")
        targets = []
        for t in range(mesh.num_targets):
            entry = {"POSITION": enc.target(mesh.targets[t], sparse, bounds=True)}
            if mesh.target_normals is not None and mesh.normals is not None:
                entry["NORMAL"] = enc.target(mesh.target_normals[t], sparse, bounds=False)
            targets.append(entry)
        for primitive in primitives:  # the primitives share the vertices, so the targets too
            primitive["targets"] = targets
        out["weights"] = [0.0] * mesh.num_targets
        out["extras"] = {"targetNames": list(mesh.target_names)}
    return out


def _node_json(node: GltfNode) -> dict:
    out: dict = {"name": node.name}
    if node.mesh is not None:
        out["mesh"] = node.mesh
    if node.skin is not None:
        out["skin"] = node.skin
    if node.children:
        out["children"] = list(node.children)
    if np.any(np.asarray(node.translation) != 0):
        out["translation"] = [float(v) for v in node.translation]
    if np.any(np.asarray(node.rotation) != [0, 0, 0, 1]):
        out["rotation"] = [float(v) for v in node.rotation]
    if np.any(np.asarray(node.scale) != 1):
        out["scale"] = [float(v) for v in node.scale]
    return out


def _skin_json(enc: _Encoder, skin: GltfSkin) -> dict:
    out: dict = {"joints": list(skin.joints)}
    if skin.name:
        out["name"] = skin.name
    if skin.skeleton is not None:
        out["skeleton"] = skin.skeleton
    if skin.inverse_bind is not None:  # glTF stores matrices column-major
        ibm = np.asarray(skin.inverse_bind, np.float32).transpose(0, 2, 1)
        out["inverseBindMatrices"] = enc.accessor(ibm.reshape(-1), "MAT4")
    return out


def _animation_json(enc: _Encoder, scene: GltfScene, anim: GltfAnimation) -> dict:
    times = np.asarray(anim.times, np.float32)
    if times.ndim != 1 or len(times) == 0 or np.any(np.diff(times) <= 0):
        raise ValueError(f"animation {anim.name!r}: times must be a non-empty, strictly increasing [N] array")
    time_accessor = enc.accessor(times, "SCALAR", bounds=True)
    samplers, channels = [], []
    tracks = [("weights", anim.weights, "SCALAR"), ("translation", anim.translation, "VEC3"),
              ("rotation", anim.rotation, "VEC4"), ("scale", anim.scale, "VEC3")]  # fmt: skip
    for path, track, kind in tracks:
        for node, values in track.items():
            values = np.asarray(values, np.float32)
            if len(values) != len(times):
                raise ValueError(
                    f"animation {anim.name!r}: node {node} {path} has {len(values)} rows, not {len(times)}"
                )
            if path == "weights":
                mesh = scene.nodes[node].mesh
                if mesh is None or values.shape[1] != scene.meshes[mesh].num_targets:
                    raise ValueError(f"animation {anim.name!r}: node {node} weights do not match its morph targets")
            samplers.append({"input": time_accessor, "output": enc.accessor(values, kind), "interpolation": "LINEAR"})
            channels.append({"sampler": len(samplers) - 1, "target": {"node": node, "path": path}})
    return {"name": anim.name, "samplers": samplers, "channels": channels}


def encode_glb(scene: GltfScene, sparse: bool = True, generator: str = "facecast") -> bytes:
    """The scene as GLB bytes (JSON chunk + one binary chunk)."""
    enc = _Encoder()
    materials: list[dict] = []
    known: dict[tuple, int] = {}

    def material(name: str | None, color: tuple | None) -> int:
        """The index of a plain PBR material of this colour and name (``material_<i>`` when unnamed)."""
        rgba = tuple(float(c) for c in (color or (0.8, 0.8, 0.8, 1.0)))
        if (name, rgba) not in known:
            known[name, rgba] = len(materials)
            pbr = {"baseColorFactor": list(rgba), "metallicFactor": 0.0, "roughnessFactor": 0.6}
            materials.append({"name": name or f"material_{len(materials)}", "pbrMetallicRoughness": pbr})
        return known[name, rgba]

    meshes = [_mesh_json(enc, mesh, material, sparse) for mesh in scene.meshes]
    doc: dict = {
        "asset": {"version": "2.0", "generator": generator},
        "scene": 0,
        "scenes": [{"nodes": list(scene.roots)}],
        "nodes": [_node_json(n) for n in scene.nodes],
        "meshes": meshes,
        "materials": materials,
    }
    if scene.extras:
        doc["asset"]["extras"] = scene.extras
    if scene.skins:
        doc["skins"] = [_skin_json(enc, skin) for skin in scene.skins]
    animations = [_animation_json(enc, scene, a) for a in scene.animations]
    if animations:
        doc["animations"] = animations
    enc.bin.extend(b"\0" * (-len(enc.bin) % 4))
    doc["buffers"] = [{"byteLength": len(enc.bin)}]
    doc["bufferViews"] = enc.views
    doc["accessors"] = enc.accessors
    return pack_glb(doc, bytes(enc.bin))


def pack_glb(doc: dict, binary: bytes) -> bytes:
    """The GLB container: 12-byte header, a space-padded JSON chunk and a zero-padded BIN chunk."""
    text = json.dumps(doc, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    binary = binary + b"\0" * (-len(binary) % 4)
    total = 12 + 8 + len(text) + (8 + len(binary) if binary else 0)
    out = struct.pack("<III", GLB_MAGIC, 2, total) + struct.pack("<II", len(text), CHUNK_JSON) + text
    if binary:
        out += struct.pack("<II", len(binary), CHUNK_BIN) + binary
    return out


def unpack_glb(data: bytes, source: str = "GLB") -> tuple[dict, bytes]:
    """(JSON document, BIN chunk bytes) of a GLB; raises ValueError naming ``source`` when it is malformed."""
    if len(data) < 20:
        raise ValueError(f"{source}: too short for a GLB file")
    magic, version, total = struct.unpack_from("<III", data)
    if magic != GLB_MAGIC or version != 2:
        raise ValueError(f"{source}: not a glTF 2.0 binary (magic {magic:#x}, version {version})")
    if total > len(data):
        raise ValueError(f"{source}: truncated ({len(data)} of {total} bytes)")
    offset, doc, binary = 12, None, b""
    while offset + 8 <= total:
        length, kind = struct.unpack_from("<II", data, offset)
        chunk = data[offset + 8 : offset + 8 + length]
        if len(chunk) != length:
            raise ValueError(f"{source}: chunk at byte {offset} runs past the end of the file")
        if kind == CHUNK_JSON and doc is None:
            try:
                doc = json.loads(chunk)
            except (ValueError, RecursionError) as exc:  # bad JSON or UTF-8, a vast integer, deep nesting
                raise ValueError(f"{source}: JSON chunk is not valid JSON ({exc.__class__.__name__}: {exc})") from None
        elif kind == CHUNK_BIN and not binary:
            binary = bytes(chunk)
        offset += 8 + length
    if not isinstance(doc, dict):
        raise ValueError(f"{source}: no JSON chunk")
    return doc, binary


def write_glb(scene: GltfScene, path: str | Path, sparse: bool = True) -> Path:
    """Encode ``scene`` and write it atomically; returns the path."""
    path = Path(path)
    data = encode_glb(scene, sparse=sparse)
    atomic_write(path, lambda fh: fh.write(data))
    return path
