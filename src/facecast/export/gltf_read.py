"""Read a glTF 2.0 file (``.glb`` or ``.gltf``) into a :class:`~facecast.export.glb.GltfScene` of plain arrays.

Handles interleaved and strided buffer views, sparse and bufferless accessors, normalized integer attributes,
``KHR_mesh_quantization`` (integer positions and targets, dequantized by the node transforms, which are kept),
``EXT_meshopt_compression`` (decoded with the ``meshopt`` package: ``pip install meshopt``), data URIs and
external ``.bin`` files next to a ``.gltf``. Primitives of one mesh are merged into one triangle mesh; points
and lines are skipped; textures and images are ignored (a material keeps its base colour). Skins (joints,
inverse bind matrices, JOINTS_0/WEIGHTS_0) are kept. Animations are not read.

Heads come from users, so the file is treated as hostile: every member that is used (the JSON type of each
top-level array, every index, accessor, buffer view, stride, count and offset, buffer URIs, the node graph) is
checked before any byte is read, and a bad one ends in one :class:`GltfError` naming the file and the field.
Decoded data is capped at :data:`MAX_DECODED_BYTES`, so a small file cannot ask for a huge allocation.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from urllib.parse import unquote

import numpy as np

from facecast.export.glb import GltfMesh, GltfNode, GltfScene, GltfSkin, matrix_to_quat, unpack_glb
from facecast.export.gltf_fields import CheckedJson, GltfError, is_int, kind_of, show

__all__ = ["MAX_DECODED_BYTES", "MAX_FILE_BYTES", "GltfError", "read_gltf"]

_COMPONENTS = {5120: "<i1", 5121: "<u1", 5122: "<i2", 5123: "<u2", 5125: "<u4", 5126: "<f4"}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_NORMALIZE = {5120: 127.0, 5121: 255.0, 5122: 32767.0, 5123: 65535.0}
_INDEX_COMPONENTS = (5121, 5123, 5125)
_MESHOPT_MODES = ("ATTRIBUTES", "TRIANGLES", "INDICES")
_MESHOPT_FILTERS = ("NONE", "OCTAHEDRAL", "QUATERNION", "EXPONENTIAL", "COLOR")
_TOP_ARRAYS = ("scenes", "nodes", "meshes", "accessors", "bufferViews", "buffers", "materials", "skins")
SUPPORTED_EXTENSIONS = {
    "KHR_mesh_quantization", "EXT_meshopt_compression", "KHR_texture_basisu", "KHR_texture_transform",
    "KHR_materials_emissive_strength", "KHR_materials_unlit", "KHR_materials_specular", "KHR_materials_ior",
    "KHR_materials_transmission", "KHR_materials_clearcoat", "KHR_materials_sheen", "KHR_materials_volume",
    "KHR_texture_webp", "EXT_texture_webp", "KHR_lights_punctual", "KHR_materials_variants",
}  # fmt: skip
MAX_FILE_BYTES = 1 << 30
"""The largest head file, and the most bytes its buffers (embedded, data URIs and external files) may hold."""
MAX_DECODED_BYTES = 512 << 20
"""The most decoded data (as float32: vertices, targets, normals, skin attributes, indices; meshopt views as
their decompressed bytes) one file may produce."""
MAX_STRIDE = 252


class _Reader(CheckedJson):
    """Validates a parsed glTF document, then decodes the parts facecast uses."""

    def __init__(self, doc: dict, binary: bytes, path: Path) -> None:
        self.doc, self.path, self.source = doc, path, str(path)
        self.budget = MAX_DECODED_BYTES
        self._views: dict[int, bytes] = {}
        self._accessors: dict[int, np.ndarray] = {}
        self._check_asset()
        self.top = {key: self.items(key) for key in _TOP_ARRAYS}
        self.buffers = self._load_buffers(binary)
        self.view_specs = [self._check_view(i, v) for i, v in enumerate(self.top["bufferViews"])]
        self.acc_specs = [self._check_accessor(i, a) for i, a in enumerate(self.top["accessors"])]
        self.children, self.parent = self._check_node_graph()

    def charge(self, nbytes: int, where: str) -> None:
        if nbytes > self.budget:
            raise self.fail(f"{where} needs {nbytes} more bytes of decoded data; a head may decode to at most "
                            f"{MAX_DECODED_BYTES} bytes")  # fmt: skip
        self.budget -= nbytes

    # ------------------------------------------------------------------------------------------------
    # the document, buffers, views, accessors and node graph

    def _check_asset(self) -> None:
        asset = self.doc.get("asset")
        if not isinstance(asset, dict):
            raise self.fail(f"asset is {kind_of(asset)}; it must be an object (not a glTF 2.0 file)")
        version = asset.get("version")
        if not isinstance(version, str) or not version.startswith("2"):
            raise self.fail(f"asset.version is {show(version)}; not a glTF 2.0 file")
        required = self.doc.get("extensionsRequired", [])
        if not isinstance(required, list) or not all(isinstance(e, str) for e in required):
            raise self.fail("extensionsRequired must be an array of strings")
        missing = set(required) - SUPPORTED_EXTENSIONS
        if missing:
            raise self.fail(f"needs glTF extensions facecast cannot read: {', '.join(sorted(missing))}")

    def _load_buffers(self, binary: bytes) -> list[bytes]:
        out, total = [], 0
        for i, buf in enumerate(self.top["buffers"]):
            where = f"buffers[{i}]"
            length = self.integer(buf, "byteLength", where)
            uri = buf.get("uri")
            if uri is None:
                data = binary if i == 0 else b""
            elif not isinstance(uri, str):
                raise self.fail(f"{where}.uri is {kind_of(uri)}; it must be a string")
            elif uri[:5].lower() == "data:":
                data = self._data_uri(uri, where)
            else:
                data = self._external(uri, where, MAX_FILE_BYTES - total)
            data = data if length is None else data[:length]
            total += len(data)
            if total > MAX_FILE_BYTES:
                raise self.fail(f"{where}: the buffers hold more than {MAX_FILE_BYTES} bytes")
            out.append(data)
        return out

    def _data_uri(self, uri: str, where: str) -> bytes:
        header, comma, payload = uri[5:].partition(",")
        if not comma:
            raise self.fail(f"{where}.uri is a data URI without a comma (data:[<type>];base64,<data>)")
        if not header.lower().endswith(";base64"):
            raise self.fail(f"{where}.uri is a data URI that is not base64")
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise self.fail(f"{where}.uri is a data URI with invalid base64") from None

    def _external(self, uri: str, where: str, limit: int) -> bytes:
        folder = self.path.parent.resolve()
        for name in dict.fromkeys((uri, unquote(uri))):
            if not name or "\0" in name:
                continue
            try:
                target = (folder / name).resolve()
                if folder not in target.parents or not target.is_file():
                    continue
                if target.stat().st_size > limit:
                    raise self.fail(f"{where}.uri {show(uri)} is larger than {limit} bytes")
                return target.read_bytes()
            except (OSError, RuntimeError, ValueError):  # unreadable, a symlink loop, an impossible name
                continue
        raise self.fail(f"{where}.uri {show(uri)} is not a file in the glTF's folder")

    def _check_view(self, i: int, view: dict) -> dict:
        """A buffer view's checked numbers: its length (decompressed for meshopt) and stride."""
        where = f"bufferViews[{i}]"
        buffer = self.index(view, "buffer", where, "buffers", required=True)
        offset = self.integer(view, "byteOffset", where, default=0)
        length = self.integer(view, "byteLength", where, required=True)
        stride = view.get("byteStride", 0)
        if not is_int(stride) or (stride and (stride < 4 or stride > MAX_STRIDE or stride % 4)):
            raise self.fail(f"{where}.byteStride is {show(stride)}; it must be 4 to {MAX_STRIDE} in steps of 4 "
                            "(or absent)")  # fmt: skip
        extensions = self.obj(view, "extensions", where) or {}
        meshopt = self.obj(extensions, "EXT_meshopt_compression", f"{where}.extensions")
        if meshopt is not None:
            meshopt = self._check_meshopt(meshopt, f"{where}.extensions.EXT_meshopt_compression", length)
        elif offset + length > len(self.buffers[buffer]):
            raise self.fail(f"{where} (bytes {offset} to {offset + length}) runs past the end of buffers[{buffer}] "
                            f"({len(self.buffers[buffer])} bytes)")  # fmt: skip
        return {"buffer": buffer, "offset": offset, "length": length, "stride": stride, "meshopt": meshopt}

    def _check_meshopt(self, ext: dict, where: str, view_length: int) -> dict:
        buffer = self.index(ext, "buffer", where, "buffers", required=True)
        offset = self.integer(ext, "byteOffset", where, default=0)
        length = self.integer(ext, "byteLength", where, required=True)
        count = self.integer(ext, "count", where, required=True)
        stride = self.integer(ext, "byteStride", where, required=True, lo=1)
        mode, filt = ext.get("mode"), ext.get("filter", "NONE")
        if mode not in _MESHOPT_MODES:
            raise self.fail(f"{where}.mode is {show(mode)}; it must be one of {', '.join(_MESHOPT_MODES)}")
        if filt not in _MESHOPT_FILTERS or (filt != "NONE" and mode != "ATTRIBUTES"):
            raise self.fail(f"{where}.filter is {show(filt)}; not a filter for mode {mode}")
        if mode == "ATTRIBUTES" and (stride > 256 or stride % 4):
            raise self.fail(f"{where}.byteStride is {stride}; ATTRIBUTES rows are 4 to 256 bytes in steps of 4")
        if mode != "ATTRIBUTES" and stride not in (2, 4):
            raise self.fail(f"{where}.byteStride is {stride}; {mode} are 2 or 4 bytes each")
        if mode == "TRIANGLES" and count % 3:
            raise self.fail(f"{where}.count is {count}; TRIANGLES need indices in threes")
        if count * stride != view_length:
            raise self.fail(f"{where}: count {count} x byteStride {stride} is not the view's byteLength {view_length}")
        if count * stride > MAX_DECODED_BYTES:
            raise self.fail(f"{where}: {count * stride} decompressed bytes is more than {MAX_DECODED_BYTES}")
        if offset + length > len(self.buffers[buffer]):
            raise self.fail(f"{where} (bytes {offset} to {offset + length}) runs past the end of buffers[{buffer}] "
                            f"({len(self.buffers[buffer])} bytes)")  # fmt: skip
        return {"buffer": buffer, "offset": offset, "length": length, "count": count, "stride": stride,
                "mode": mode, "filter": filt}  # fmt: skip

    def _check_accessor(self, i: int, acc: dict) -> dict:
        where = f"accessors[{i}]"
        component, kind = acc.get("componentType"), acc.get("type")
        if not is_int(component) or component not in _COMPONENTS:
            raise self.fail(f"{where}.componentType is {show(component)}; it must be one of {sorted(_COMPONENTS)}")
        if not isinstance(kind, str) or kind not in _WIDTH:
            raise self.fail(f"{where}.type is {show(kind)}; it must be one of {', '.join(_WIDTH)}")
        dtype, width = np.dtype(_COMPONENTS[component]), _WIDTH[kind]
        if kind in ("MAT2", "MAT3") and dtype.itemsize < 4:
            raise self.fail(f"{where}: {kind} of {dtype.itemsize}-byte components (padded columns) is not supported")
        count = self.integer(acc, "count", where, required=True)
        normalized = acc.get("normalized", False)
        if not isinstance(normalized, bool) or (normalized and component not in _NORMALIZE):
            raise self.fail(f"{where}.normalized is {show(normalized)}; only 8/16-bit integers can be normalized")
        elem = dtype.itemsize * width
        if count * width * 4 > MAX_DECODED_BYTES:
            raise self.fail(f"{where}.count is {count}: {count * width * 4} bytes of decoded data is more than "
                            f"facecast reads from a head ({MAX_DECODED_BYTES})")  # fmt: skip
        view = self.index(acc, "bufferView", where, "bufferViews")
        offset = self.integer(acc, "byteOffset", where, default=0)
        stride = elem
        if view is not None:
            spec = self.view_specs[view]
            stride = spec["stride"] or elem
            if stride < elem:
                raise self.fail(f"bufferViews[{view}].byteStride is {stride}, less than the {elem}-byte elements "
                                f"of {where}")  # fmt: skip
            if count and offset + (count - 1) * stride + elem > spec["length"]:
                raise self.fail(f"{where} (byteOffset {offset}, count {count}, stride {stride}) runs past the end "
                                f"of bufferViews[{view}] ({spec['length']} bytes)")  # fmt: skip
        elif offset:
            raise self.fail(f"{where}.byteOffset is {offset} but the accessor has no bufferView")
        out = {"dtype": dtype, "width": width, "count": count, "normalized": normalized, "component": component,
               "view": view, "offset": offset, "stride": stride, "elem": elem, "sparse": None}  # fmt: skip
        sparse = self.obj(acc, "sparse", where)
        if sparse is not None:
            out["sparse"] = self._check_sparse(sparse, f"{where}.sparse", count, elem)
        return out

    def _check_sparse(self, sparse: dict, where: str, count: int, elem: int) -> dict:
        n = self.integer(sparse, "count", where, required=True, lo=1)
        if n > count:
            raise self.fail(f"{where}.count is {n}, more than the accessor's {count} elements")
        out = {"count": n}
        for part in ("indices", "values"):
            spec = self.obj(sparse, part, where)
            if spec is None:
                raise self.fail(f"{where}.{part} is missing")
            at = f"{where}.{part}"
            view = self.index(spec, "bufferView", at, "bufferViews", required=True)
            offset = self.integer(spec, "byteOffset", at, default=0)
            size = elem
            if part == "indices":
                component = spec.get("componentType")
                if not is_int(component) or component not in _INDEX_COMPONENTS:
                    raise self.fail(f"{at}.componentType is {show(component)}; it must be one of {_INDEX_COMPONENTS}")
                out["component"] = component
                size = np.dtype(_COMPONENTS[component]).itemsize
            if offset + n * size > self.view_specs[view]["length"]:
                raise self.fail(f"{at} (byteOffset {offset}, {n} x {size} bytes) runs past the end of "
                                f"bufferViews[{view}] ({self.view_specs[view]['length']} bytes)")  # fmt: skip
            out[part] = (view, offset)
        return out

    def _check_node_graph(self) -> tuple[list[list[int]], dict[int, int]]:
        """Children lists (indices in range, unique), each node with at most one parent, no cycles."""
        nodes = self.top["nodes"]
        children, parent = [], {}
        for i, node in enumerate(nodes):
            kids = self.index_list(node, "children", f"nodes[{i}]", "nodes")
            for c in kids:
                if c == i:
                    raise self.fail(f"nodes[{i}].children lists the node itself")
                if c in parent:
                    raise self.fail(f"nodes[{c}] is a child of both nodes[{parent[c]}] and nodes[{i}]")
                parent[c] = i
            children.append(kids)
        seen: set[int] = set()
        stack = [i for i in range(len(nodes)) if i not in parent]
        while stack:  # iterative: every node reached once, whatever the file says
            i = stack.pop()
            if i not in seen:
                seen.add(i)
                stack.extend(c for c in children[i] if c not in seen)
        if len(seen) != len(nodes):
            first = min(set(range(len(nodes))) - seen)
            raise self.fail(f"nodes[{first}] is in a cycle of children (a node cannot be its own ancestor)")
        return children, parent

    # ------------------------------------------------------------------------------------------------
    # decoding

    def view(self, index: int) -> bytes:
        if index not in self._views:
            spec = self.view_specs[index]
            ext = spec["meshopt"]
            if ext is not None:
                self._views[index] = self._meshopt(ext, f"bufferViews[{index}].extensions.EXT_meshopt_compression")
            else:
                data = self.buffers[spec["buffer"]][spec["offset"] : spec["offset"] + spec["length"]]
                if len(data) != spec["length"]:
                    raise self.fail(f"bufferViews[{index}] runs past the end of its buffer")
                self._views[index] = data
        return self._views[index]

    def _meshopt(self, ext: dict, where: str) -> bytes:
        try:
            import meshopt
        except ImportError:
            raise self.fail(
                'is meshopt-compressed (EXT_meshopt_compression): pip install "facecast[retarget]"'
            ) from None
        self.charge(ext["count"] * ext["stride"], where)
        blob = self.buffers[ext["buffer"]][ext["offset"] : ext["offset"] + ext["length"]]
        try:
            out = meshopt.decode_gltf_buffer(blob, ext["count"], ext["stride"], ext["mode"], ext["filter"])
        except (ValueError, RuntimeError) as exc:
            raise self.fail(f"{where}: cannot decompress ({exc})") from None
        data = np.ascontiguousarray(out).tobytes()
        if len(data) != ext["count"] * ext["stride"]:
            raise self.fail(f"{where}: decompressed to {len(data)} bytes, not {ext['count'] * ext['stride']}")
        return data

    def _rows(self, view: int, offset: int, count: int, elem: int, stride: int) -> np.ndarray:
        """[count, elem] bytes of a checked accessor: plain slices and reshapes, no pointer arithmetic."""
        data = np.frombuffer(self.view(view), np.uint8)
        end = offset + (count - 1) * stride + elem if count else offset
        if end > len(data):  # checked already; kept so no read can leave the view
            raise self.fail(f"bufferViews[{view}] is shorter than its accessors need")
        if count == 0:
            return np.zeros((0, elem), np.uint8)
        if stride == elem:
            return data[offset:end].reshape(count, elem)
        rows = np.empty((count, elem), np.uint8)
        last = offset + (count - 1) * stride
        rows[:-1] = data[offset:last].reshape(count - 1, stride)[:, :elem]
        rows[-1] = data[last:end]
        return rows

    def accessor(self, index: int, where: str, kinds: tuple[str, ...] | None = None,
                 components: tuple[int, ...] | None = None, count: int | None = None) -> np.ndarray:  # fmt: skip
        """[count, width] float64 (normalized integers scaled to [-1, 1] or [0, 1]) of a checked accessor."""
        spec = self.acc_specs[index]
        acc_type = self.top["accessors"][index]["type"]
        if kinds is not None and acc_type not in kinds:
            raise self.fail(f"{where} is accessors[{index}] of type {acc_type}; it must be {' or '.join(kinds)}")
        if components is not None and spec["component"] not in components:
            raise self.fail(f"{where} is accessors[{index}] of componentType {spec['component']}; it must be one "
                            f"of {components}")  # fmt: skip
        if components is not None and spec["component"] != 5126 and spec["normalized"]:
            raise self.fail(f"{where} is accessors[{index}], which is normalized; it must hold plain integers")
        if count is not None and spec["count"] != count:
            raise self.fail(f"{where} is accessors[{index}] with {spec['count']} elements; it must have {count}")
        self.charge(spec["count"] * spec["width"] * 4, f"accessors[{index}]")
        if index not in self._accessors:
            with np.errstate(invalid="ignore"):  # casting NaN payloads warns; they are refused after decoding
                self._accessors[index] = self._decode(index, spec)
        return self._accessors[index]

    def _decode(self, index: int, spec: dict) -> np.ndarray:
        dtype, width, count = spec["dtype"], spec["width"], spec["count"]
        if spec["view"] is not None:
            rows = self._rows(spec["view"], spec["offset"], count, spec["elem"], spec["stride"])
            out = np.ascontiguousarray(rows).view(dtype).reshape(count, width).astype(np.float64)
        else:
            out = np.zeros((count, width))
        sparse = spec["sparse"]
        if sparse is not None:
            n = sparse["count"]
            ind_view, ind_offset = sparse["indices"]
            ind_type = np.dtype(_COMPONENTS[sparse["component"]])
            raw = self.view(ind_view)[ind_offset : ind_offset + n * ind_type.itemsize]
            idx = np.frombuffer(raw, ind_type).astype(np.int64)
            if len(idx) != n or (idx.size and idx.max() >= count):
                raise self.fail(f"accessors[{index}].sparse.indices point outside 0..{count - 1}")
            val_view, val_offset = sparse["values"]
            raw = self.view(val_view)[val_offset : val_offset + n * spec["elem"]]
            vals = np.frombuffer(raw, dtype)
            if vals.size != n * width:
                raise self.fail(f"accessors[{index}].sparse.values run past the end of bufferViews[{val_view}]")
            out[idx] = vals.reshape(n, width)
        if spec["normalized"]:
            out = np.maximum(out / _NORMALIZE[spec["component"]], -1.0)
        if not np.isfinite(out).all():
            raise self.fail(f"accessors[{index}] holds NaN or infinite values")
        out.setflags(write=False)
        return out

    # ------------------------------------------------------------------------------------------------
    # meshes, nodes, skins, scenes

    def mesh(self, index: int) -> GltfMesh:
        m, where = self.top["meshes"][index], f"meshes[{index}]"
        extras = m.get("extras")
        names = extras.get("targetNames", []) if isinstance(extras, dict) else []
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise self.fail(f"{where}.extras.targetNames must be an array of strings")
        name = self.text(m, "name", where) or f"mesh_{index}"
        verts, faces, normals, joints, weights, targets, tnormals = [], [], [], [], [], [], []
        color = None
        offset = 0
        for p, prim in enumerate(self.objects(m, "primitives", where)):
            at = f"{where}.primitives[{p}]"
            mode = self.integer(prim, "mode", at, default=4)
            if mode > 6:
                raise self.fail(f"{at}.mode is {mode}; it must be 0 to 6")
            attrs = self.obj(prim, "attributes", at) or {}
            for key in ("POSITION", "NORMAL", "JOINTS_0", "WEIGHTS_0"):
                self.index(attrs, key, f"{at}.attributes", "accessors")
            prim_targets = self.objects(prim, "targets", at)
            for t, target in enumerate(prim_targets):
                for key in ("POSITION", "NORMAL"):
                    self.index(target, key, f"{at}.targets[{t}]", "accessors")
            indices = self.index(prim, "indices", at, "accessors")
            material = self.index(prim, "material", at, "materials")
            if mode not in (4, 5, 6) or "POSITION" not in attrs:
                continue
            v = self.accessor(attrs["POSITION"], f"{at}.attributes.POSITION", ("VEC3",))
            n = len(v)
            if indices is not None:
                idx = self.accessor(indices, f"{at}.indices", ("SCALAR",), _INDEX_COMPONENTS)[:, 0].astype(np.int64)
                if idx.size and idx.max() >= n:
                    raise self.fail(f"{at}.indices (accessors[{indices}]) point past its {n} vertices")
            else:
                idx = np.arange(n)
            faces.append(_triangles(idx, mode) + offset)
            verts.append(v)
            for key, out, comps in (("NORMAL", normals, None), ("JOINTS_0", joints, (5121, 5123)),
                                    ("WEIGHTS_0", weights, None)):  # fmt: skip
                kind = "VEC3" if key == "NORMAL" else "VEC4"
                out.append(self.accessor(attrs[key], f"{at}.attributes.{key}", (kind,), comps, count=n)
                           if key in attrs else None)  # fmt: skip
            per_target, per_normal = [], []
            for t, target in enumerate(prim_targets):
                for key, out in (("POSITION", per_target), ("NORMAL", per_normal)):
                    if key in target:
                        out.append(self.accessor(target[key], f"{at}.targets[{t}].{key}", ("VEC3",), count=n))
                    else:
                        self.charge(n * 12, f"{at}.targets[{t}]")
                        out.append(np.zeros((n, 3)))
            targets.append(per_target)
            tnormals.append(per_normal)
            if color is None and material is not None:
                color = self._color(material)
            offset += n
        if not verts:
            return GltfMesh(name, np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64))
        counts = {len(t) for t in targets}
        if len(counts) != 1:
            raise self.fail(f"{where} ({name!r}): primitives have different numbers of morph targets")
        n_targets = counts.pop()
        names = (list(names) + [f"target_{k}" for k in range(len(names), n_targets)])[:n_targets]

        def cat(parts: list) -> np.ndarray | None:
            return None if any(p is None for p in parts) else np.concatenate(parts).astype(np.float32)

        def stack(per_prim: list[list[np.ndarray]]) -> np.ndarray:
            return np.stack([np.concatenate([t[k] for t in per_prim]) for k in range(n_targets)]).astype(np.float32)

        stacked = stack(targets) if n_targets else None
        normal_deltas = stack(tnormals) if n_targets else None
        if normal_deltas is not None and not np.any(normal_deltas):
            normal_deltas = None
        vertices = np.concatenate(verts).astype(np.float32)
        if not np.isfinite(vertices).all() or (stacked is not None and not np.isfinite(stacked).all()):
            raise self.fail(f"{where} ({name!r}): vertices or morph targets overflow float32")
        joint_rows = cat(joints)
        return GltfMesh(
            name=name,
            vertices=vertices,
            faces=np.concatenate(faces),
            normals=cat(normals),
            target_names=names,
            targets=stacked,
            target_normals=normal_deltas,
            color=color,
            joints=None if joint_rows is None else joint_rows.astype(np.uint16),
            joint_weights=cat(weights),
        )

    def _color(self, material: int) -> tuple[float, float, float, float]:
        where = f"materials[{material}]"
        pbr = self.obj(self.top["materials"][material], "pbrMetallicRoughness", where) or {}
        rgba = self.numbers(pbr, "baseColorFactor", f"{where}.pbrMetallicRoughness", 4, (1.0, 1.0, 1.0, 1.0))
        return tuple(float(c) for c in np.clip(rgba, 0.0, 1.0))

    def node(self, index: int) -> GltfNode:
        n, where = self.top["nodes"][index], f"nodes[{index}]"
        node = GltfNode(self.text(n, "name", where) or f"node_{index}", mesh=self.index(n, "mesh", where, "meshes"),
                        skin=self.index(n, "skin", where, "skins"), children=list(self.children[index]))  # fmt: skip
        if "matrix" in n:
            m = self.numbers(n, "matrix", where, 16, ()).reshape(4, 4).T
            with np.errstate(all="ignore"):
                scale = np.linalg.norm(m[:3, :3], axis=0)
                if np.linalg.det(m[:3, :3]) < 0:
                    scale[0] = -scale[0]
                try:
                    rotation = matrix_to_quat(m[:3, :3] / np.where(scale == 0, 1.0, scale)[None, :])
                except ValueError:
                    rotation = np.full(4, np.nan)
            if not (np.isfinite(scale).all() and np.isfinite(rotation).all()):
                raise self.fail(f"{where}.matrix is not a translation, rotation and scale")
            node.translation, node.rotation, node.scale = m[:3, 3].copy(), rotation, scale
        else:
            node.translation = self.numbers(n, "translation", where, 3, (0.0, 0.0, 0.0))
            node.rotation = self.numbers(n, "rotation", where, 4, (0.0, 0.0, 0.0, 1.0))
            node.scale = self.numbers(n, "scale", where, 3, (1.0, 1.0, 1.0))
            if not 1e-6 < np.linalg.norm(node.rotation) < 1e6:
                raise self.fail(f"{where}.rotation is {show(n['rotation'])}; it must be a unit quaternion")
        return node

    def skin(self, index: int) -> GltfSkin:
        s, where = self.top["skins"][index], f"skins[{index}]"
        joints = self.index_list(s, "joints", where, "nodes")
        if not joints:
            raise self.fail(f"{where}.joints is empty")
        skeleton = self.index(s, "skeleton", where, "nodes")
        ibm = None
        if "inverseBindMatrices" in s:
            acc = self.index(s, "inverseBindMatrices", where, "accessors")
            ibm = self.accessor(acc, f"{where}.inverseBindMatrices", ("MAT4",))
            if len(ibm) < len(joints):
                raise self.fail(f"{where}.inverseBindMatrices has {len(ibm)} matrices for {len(joints)} joints")
            ibm = ibm[: len(joints)].reshape(-1, 4, 4).transpose(0, 2, 1)
        return GltfSkin(joints, ibm, skeleton, self.text(s, "name", where) or "")

    def roots(self) -> list[int]:
        scenes = self.top["scenes"]
        if "scene" in self.doc:
            if not scenes:
                raise self.fail(f"scene is {show(self.doc['scene'])}, but the file has no scenes")
            chosen = self.doc["scene"]
            if not is_int(chosen) or not 0 <= chosen < len(scenes):
                raise self.fail(f"scene is {show(chosen)}, but the file has {len(scenes)} scenes")
        else:
            chosen = 0 if scenes else None
        if chosen is None:
            return [i for i in range(len(self.top["nodes"])) if i not in self.parent]
        where = f"scenes[{chosen}]"
        roots = self.index_list(scenes[chosen], "nodes", where, "nodes")
        for k, i in enumerate(roots):
            if i in self.parent:
                raise self.fail(f"{where}.nodes[{k}] is nodes[{i}], a child of nodes[{self.parent[i]}], not a root")
        return roots

    def scene(self) -> GltfScene:
        meshes = [self.mesh(i) for i in range(len(self.top["meshes"]))]
        nodes = [self.node(i) for i in range(len(self.top["nodes"]))]
        skins = [self.skin(i) for i in range(len(self.top["skins"]))]
        for i, node in enumerate(nodes):  # a skinned mesh's joint indices must name joints of its node's skin
            mesh = meshes[node.mesh] if node.mesh is not None else None
            if mesh is None or node.skin is None or mesh.joints is None or mesh.joint_weights is None:
                continue
            used = mesh.joints[mesh.joint_weights > 0]
            if used.size and int(used.max()) >= len(skins[node.skin].joints):
                raise self.fail(f"meshes[{node.mesh}] JOINTS_0 name joint {int(used.max())}, but nodes[{i}].skin "
                                f"(skins[{node.skin}]) has {len(skins[node.skin].joints)} joints")  # fmt: skip
        return GltfScene(nodes, meshes, self.roots(), skins=skins, extras={"source": self.path.name})


def _triangles(idx: np.ndarray, mode: int) -> np.ndarray:
    if mode == 4:
        return idx[: len(idx) // 3 * 3].reshape(-1, 3)
    if len(idx) < 3:
        return np.zeros((0, 3), np.int64)
    if mode == 5:  # strip: flip every other triangle to keep the winding
        tris = np.stack([idx[:-2], idx[1:-1], idx[2:]], axis=1)
        tris[1::2] = tris[1::2][:, [1, 0, 2]]
        return tris
    return np.stack([np.full(len(idx) - 2, idx[0]), idx[1:-1], idx[2:]], axis=1)  # fan


def _load(path: Path) -> tuple[dict, bytes]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file is missing")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise GltfError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    data = path.read_bytes()
    if data[:4] == b"glTF":
        try:
            doc, binary = unpack_glb(data, str(path))
        except ValueError as exc:
            raise GltfError(str(exc)) from None
    else:
        try:
            doc, binary = json.loads(data), b""
        except (ValueError, RecursionError) as exc:
            raise GltfError(f"{path}: neither a GLB nor glTF JSON ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(doc, dict):
        raise GltfError(f"{path}: not a glTF 2.0 file (its JSON is {kind_of(doc)}, not an object)")
    return doc, binary


def read_gltf(path: str | Path) -> GltfScene:
    """The nodes, meshes (decoded to float32 with their morph targets and names) and skins of a glTF file;
    ``scene.source`` keeps the checked document and its buffers for :mod:`facecast.export.gltf_keep`.

    Raises :class:`GltfError` (a ``ValueError``) naming the file and the field for anything malformed, and
    ``FileNotFoundError`` when the file is missing.
    """
    path = Path(path)
    doc, binary = _load(path)
    try:
        reader = _Reader(doc, binary, path)
        scene = reader.scene()
        for index in range(len(reader.view_specs)):  # every view decodes, used or not: retargeting keeps them all
            reader.view(index)
        scene.source = reader  # retargeting writes the whole document back
    except (KeyError, IndexError, TypeError, OverflowError) as exc:  # a safety net: the checks should come first
        raise GltfError(f"{path}: malformed glTF ({exc.__class__.__name__}: {exc})") from None
    return _drop_empty_meshes(scene)


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
