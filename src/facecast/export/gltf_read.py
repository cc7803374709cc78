"""Read a glTF 2.0 file (``.glb`` or ``.gltf``) into a :class:`~facecast.export.glb.GltfScene` of plain arrays.

Handles interleaved and strided buffer views, sparse and bufferless accessors, normalized integer attributes,
``KHR_mesh_quantization`` (integer positions and targets, dequantized by the node transforms, which are kept),
``EXT_meshopt_compression`` (decoded with the ``meshopt`` package: ``pip install meshopt``), data URIs and
external ``.bin`` files next to a ``.gltf``. Primitives of one mesh are merged into one triangle mesh; points
and lines are skipped; textures and images are ignored (a material keeps its base colour). Skins (joints,
inverse bind matrices, JOINTS_0/WEIGHTS_0) are kept. Animations are not read.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np

from facecast.export.glb import GltfMesh, GltfNode, GltfScene, GltfSkin, matrix_to_quat, unpack_glb

_COMPONENTS = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_NORMALIZE = {np.int8: 127.0, np.uint8: 255.0, np.int16: 32767.0, np.uint16: 65535.0}
SUPPORTED_EXTENSIONS = {
    "KHR_mesh_quantization", "EXT_meshopt_compression", "KHR_texture_basisu", "KHR_texture_transform",
    "KHR_materials_emissive_strength", "KHR_materials_unlit", "KHR_materials_specular", "KHR_materials_ior",
    "KHR_materials_transmission", "KHR_materials_clearcoat", "KHR_materials_sheen", "KHR_materials_volume",
    "KHR_texture_webp", "EXT_texture_webp", "KHR_lights_punctual", "KHR_materials_variants",
}  # fmt: skip
MAX_FILE_BYTES = 1 << 30


class _Reader:
    def __init__(self, doc: dict, buffers: list[bytes], source: str) -> None:
        self.doc, self.buffers, self.source = doc, buffers, source
        self._views: dict[int, bytes] = {}

    def fail(self, what: str) -> ValueError:
        return ValueError(f"{self.source}: {what}")

    def view(self, index: int) -> bytes:
        if index not in self._views:
            view = self.doc["bufferViews"][index]
            ext = (view.get("extensions") or {}).get("EXT_meshopt_compression")
            if ext is not None:
                self._views[index] = self._meshopt(ext)
            else:
                data = self.buffers[view["buffer"]]
                start = view.get("byteOffset", 0)
                if start + view["byteLength"] > len(data):
                    raise self.fail(f"bufferView {index} runs past the end of buffer {view['buffer']}")
                self._views[index] = data[start : start + view["byteLength"]]
        return self._views[index]

    def _meshopt(self, ext: dict) -> bytes:
        try:
            import meshopt
        except ImportError:
            raise self.fail(
                'is meshopt-compressed (EXT_meshopt_compression): pip install "facecast[retarget]"'
            ) from None
        data = self.buffers[ext["buffer"]]
        start = ext.get("byteOffset", 0)
        blob = data[start : start + ext["byteLength"]]
        out = meshopt.decode_gltf_buffer(blob, ext["count"], ext["byteStride"], ext["mode"], ext.get("filter", "NONE"))
        if out.dtype != np.uint8 and ext["mode"] != "ATTRIBUTES":  # index streams come back as integers
            out = out.astype({2: np.uint16, 4: np.uint32}[ext["byteStride"]])
        return np.ascontiguousarray(out).tobytes()

    def accessor(self, index: int) -> np.ndarray:
        """[count, width] float64 (normalized integers scaled to [-1, 1] or [0, 1])."""
        acc = self.doc["accessors"][index]
        dtype, width, count = np.dtype(_COMPONENTS[acc["componentType"]]), _WIDTH[acc["type"]], acc["count"]
        if "bufferView" in acc:
            data = self.view(acc["bufferView"])
            stride = self.doc["bufferViews"][acc["bufferView"]].get("byteStride") or dtype.itemsize * width
            start, row = acc.get("byteOffset", 0), dtype.itemsize * width
            if count and start + (count - 1) * stride + row > len(data):
                raise self.fail(f"accessor {index} runs past the end of its bufferView")
            raw = np.frombuffer(data, np.uint8, count=max(0, (count - 1) * stride + row) if count else 0, offset=start)
            rows = np.lib.stride_tricks.as_strided(raw, (count, row), (stride, 1)) if count else raw.reshape(0, row)
            out = np.ascontiguousarray(rows).view(dtype).reshape(count, width).astype(np.float64)
        else:
            out = np.zeros((count, width))
        sparse = acc.get("sparse")
        if sparse is not None:
            ind, val = sparse["indices"], sparse["values"]
            idx = np.frombuffer(self.view(ind["bufferView"]), _COMPONENTS[ind["componentType"]], sparse["count"],
                                ind.get("byteOffset", 0)).astype(np.int64)  # fmt: skip
            vals = np.frombuffer(self.view(val["bufferView"]), dtype, sparse["count"] * width, val.get("byteOffset", 0))
            if idx.size and (idx.min() < 0 or idx.max() >= count):
                raise self.fail(f"accessor {index} has sparse indices outside 0..{count - 1}")
            out[idx] = vals.reshape(-1, width)
        if acc.get("normalized") and dtype.type in _NORMALIZE:
            out = np.maximum(out / _NORMALIZE[dtype.type], -1.0)
        return out

    def mesh(self, index: int) -> GltfMesh:
        m = self.doc["meshes"][index]
        names = list((m.get("extras") or {}).get("targetNames") or [])
        verts, faces, normals, joints, weights, targets, tnormals = [], [], [], [], [], [], []
        color = None
        offset = 0
        for prim in m.get("primitives", []):
            mode = prim.get("mode", 4)
            if mode not in (4, 5, 6) or "POSITION" not in prim["attributes"]:
                continue
            attrs = prim["attributes"]
            v = self.accessor(attrs["POSITION"])
            idx = self.accessor(prim["indices"])[:, 0].astype(np.int64) if "indices" in prim else np.arange(len(v))
            faces.append(_triangles(idx, mode) + offset)
            verts.append(v)
            normals.append(self.accessor(attrs["NORMAL"]) if "NORMAL" in attrs else None)
            joints.append(self.accessor(attrs["JOINTS_0"]) if "JOINTS_0" in attrs else None)
            weights.append(self.accessor(attrs["WEIGHTS_0"]) if "WEIGHTS_0" in attrs else None)
            prim_targets = prim.get("targets") or []
            targets.append(
                [self.accessor(t["POSITION"]) if "POSITION" in t else np.zeros_like(v) for t in prim_targets]
            )
            tnormals.append([self.accessor(t["NORMAL"]) if "NORMAL" in t else np.zeros_like(v) for t in prim_targets])
            if color is None and "material" in prim:
                pbr = self.doc["materials"][prim["material"]].get("pbrMetallicRoughness", {})
                color = tuple(pbr.get("baseColorFactor", (1.0, 1.0, 1.0, 1.0)))
            offset += len(v)
        name = m.get("name") or f"mesh_{index}"
        if not verts:
            return GltfMesh(name, np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64))
        counts = {len(t) for t in targets}
        if len(counts) != 1:
            raise self.fail(f"mesh {name!r}: primitives have different numbers of morph targets")
        n_targets = counts.pop()
        names = (names + [f"target_{k}" for k in range(len(names), n_targets)])[:n_targets]

        def cat(parts: list) -> np.ndarray | None:
            return None if any(p is None for p in parts) else np.concatenate(parts).astype(np.float32)

        def stack(per_prim: list[list[np.ndarray]]) -> np.ndarray:
            return np.stack([np.concatenate([t[k] for t in per_prim]) for k in range(n_targets)]).astype(np.float32)

        stacked = stack(targets) if n_targets else None
        normal_deltas = stack(tnormals) if n_targets else None
        if normal_deltas is not None and not np.any(normal_deltas):
            normal_deltas = None
        return GltfMesh(
            name=name,
            vertices=np.concatenate(verts).astype(np.float32),
            faces=np.concatenate(faces),
            normals=cat(normals),
            target_names=names,
            targets=stacked,
            target_normals=normal_deltas,
            color=color,
            joints=None if cat(joints) is None else cat(joints).astype(np.uint16),
            joint_weights=cat(weights),
        )

    def node(self, index: int) -> GltfNode:
        n = self.doc["nodes"][index]
        node = GltfNode(n.get("name") or f"node_{index}", mesh=n.get("mesh"), skin=n.get("skin"),
                        children=list(n.get("children", [])))  # fmt: skip
        if "matrix" in n:
            m = np.asarray(n["matrix"], np.float64).reshape(4, 4).T
            scale = np.linalg.norm(m[:3, :3], axis=0)
            if np.linalg.det(m[:3, :3]) < 0:
                scale[0] = -scale[0]
            node.translation = m[:3, 3].copy()
            node.rotation = matrix_to_quat(m[:3, :3] / np.where(scale == 0, 1.0, scale)[None, :])
            node.scale = scale
        else:
            node.translation = np.asarray(n.get("translation", (0, 0, 0)), np.float64)
            node.rotation = np.asarray(n.get("rotation", (0, 0, 0, 1)), np.float64)
            node.scale = np.asarray(n.get("scale", (1, 1, 1)), np.float64)
        return node

    def skin(self, index: int) -> GltfSkin:
        s = self.doc["skins"][index]
        ibm = None
        if "inverseBindMatrices" in s:
            ibm = self.accessor(s["inverseBindMatrices"]).reshape(-1, 4, 4).transpose(0, 2, 1)
        return GltfSkin(list(s["joints"]), ibm, s.get("skeleton"), s.get("name", ""))


def _triangles(idx: np.ndarray, mode: int) -> np.ndarray:
    if mode == 4:
        return idx[: len(idx) // 3 * 3].reshape(-1, 3)
    if mode == 5:  # strip: flip every other triangle to keep the winding
        tris = np.stack([idx[:-2], idx[1:-1], idx[2:]], axis=1)
        tris[1::2] = tris[1::2][:, [1, 0, 2]]
        return tris
    return np.stack([np.full(len(idx) - 2, idx[0]), idx[1:-1], idx[2:]], axis=1)  # fan


def _load(path: Path) -> tuple[dict, list[bytes]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file is missing")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    data = path.read_bytes()
    if data[:4] == b"glTF":
        doc, binary = unpack_glb(data, str(path))
    else:
        try:
            doc, binary = json.loads(data), b""
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: neither a GLB nor glTF JSON ({exc})") from None
    if not isinstance(doc, dict) or not str(doc.get("asset", {}).get("version", "")).startswith("2"):
        raise ValueError(f"{path}: not a glTF 2.0 file")
    missing = set(doc.get("extensionsRequired", [])) - SUPPORTED_EXTENSIONS
    if missing:
        raise ValueError(f"{path}: needs glTF extensions facecast cannot read: {', '.join(sorted(missing))}")
    buffers = []
    for i, buf in enumerate(doc.get("buffers", [])):
        uri = buf.get("uri")
        if uri is None:
            buffers.append(binary if i == 0 else b"")
        elif uri.startswith("data:"):
            buffers.append(base64.b64decode(uri.split(",", 1)[1]))
        else:
            target = (path.parent / uri).resolve()
            if path.parent.resolve() not in target.parents or not target.is_file():
                raise ValueError(f"{path}: buffer {uri!r} is not a file next to the glTF")
            buffers.append(target.read_bytes())
    return doc, buffers


def read_gltf(path: str | Path) -> GltfScene:
    """The nodes, meshes (decoded to float32 with their morph targets and names) and skins of a glTF file."""
    path = Path(path)
    doc, buffers = _load(path)
    reader = _Reader(doc, buffers, str(path))
    try:
        meshes = [reader.mesh(i) for i in range(len(doc.get("meshes", [])))]
        nodes = [reader.node(i) for i in range(len(doc.get("nodes", [])))]
        skins = [reader.skin(i) for i in range(len(doc.get("skins", [])))]
    except (KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"{path}: malformed glTF ({exc.__class__.__name__}: {exc})") from None
    scenes = doc.get("scenes") or []
    if scenes:
        roots = list(scenes[doc.get("scene", 0)].get("nodes", []))
    else:
        children = {c for n in nodes for c in n.children}
        roots = [i for i in range(len(nodes)) if i not in children]
    return _drop_empty_meshes(GltfScene(nodes, meshes, roots, skins=skins, extras={"source": path.name}))


def _drop_empty_meshes(scene: GltfScene) -> GltfScene:
    """Remove meshes without triangles (points, lines) and the node references to them."""
    keep = [i for i, m in enumerate(scene.meshes) if len(m.vertices) and len(m.faces)]
    remap = {old: new for new, old in enumerate(keep)}
    for node in scene.nodes:
        if node.mesh is not None:
            node.mesh = remap.get(node.mesh)
            if node.mesh is None:
                node.skin = None
    scene.meshes = [scene.meshes[i] for i in keep]
    return scene
