"""Write a user's glTF head back whole, with an animation added: the retargeting output that keeps their file.

Everything of the source document stays as it was, at the same index: scenes, nodes, meshes (every attribute,
so UVs, colours, tangents, skin weights), materials, textures, samplers, images, skins, cameras, lights, other
animations, extras and extensions. What changes, and why:

* the buffers become the one GLB binary chunk: every source buffer (the GLB chunk, external ``.bin`` files,
  data URIs) is copied in once and each buffer view is moved with it, so views keep their bytes and strides;
* ``EXT_meshopt_compression`` views are stored decompressed (the extension and its fallback buffers are
  dropped), so the output needs no meshopt decoder;
* images stored as separate files next to a ``.gltf`` are embedded (a GLB travels alone); data URIs stay; an
  image that is not a file inside the source's folder keeps its link, and a note says so;
* an animated node given by ``matrix`` is rewritten as the same translation, rotation and scale (glTF does not
  allow animating a matrix node);
* one animation is appended, with its accessors and views after the source's, and ``asset.extras`` notes it.

The source was checked by :mod:`facecast.export.gltf_read` (buffers, views, accessors, node graph) before any of
this runs; the parts facecast does not read (materials, images) are copied, not interpreted, except image URIs,
which are resolved inside the file's folder only.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from facecast.export.glb import FLOAT, GltfAnimation, GltfScene, pack_glb
from facecast.export.gltf_fields import GltfError, kind_of
from facecast.fileio import atomic_write

__all__ = ["MESHOPT", "encode_kept_glb", "write_kept_glb"]

MESHOPT = "EXT_meshopt_compression"
MAX_OUTPUT_BYTES = 2 << 30
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".ktx2": "image/ktx2",
               ".webp": "image/webp"}  # fmt: skip
_TRACKS = (("weights", "SCALAR"), ("translation", "VEC3"), ("rotation", "VEC4"), ("scale", "VEC3"))


class _Binary:
    """The output BIN chunk: appended blocks, each placed at the same offset modulo 4 as its source."""

    def __init__(self, source: str) -> None:
        self.data = bytearray()
        self.source = source

    def put(self, block: bytes, like: int = 0) -> int:
        self.data.extend(b"\0" * ((like - len(self.data)) % 4))
        offset = len(self.data)
        if offset + len(block) > MAX_OUTPUT_BYTES:
            raise GltfError(f"{self.source}: the output would hold more than {MAX_OUTPUT_BYTES} bytes")
        self.data.extend(block)
        return offset


def _move_views(reader: Any, doc: dict, out: _Binary) -> None:
    """Copy the source buffers into ``out`` and point every buffer view at its new place."""
    base: dict[int, int] = {}
    for i, spec in enumerate(reader.view_specs):
        view = doc["bufferViews"][i]
        extensions = dict(view.get("extensions") or {})
        if spec["meshopt"] is not None:
            offset = out.put(reader.view(i))  # decompressed (charged to the reader's decode budget)
            extensions.pop(MESHOPT, None)
        else:
            buffer = spec["buffer"]
            if buffer not in base:
                base[buffer] = out.put(reader.buffers[buffer])
            offset = base[buffer] + spec["offset"]
        view.update(buffer=0, byteOffset=offset, byteLength=spec["length"])
        if extensions:
            view["extensions"] = extensions
        else:
            view.pop("extensions", None)


def _embed_images(reader: Any, doc: dict, out: _Binary, notes: list[str]) -> None:
    """Images given as files next to the source become buffer views of the output. An image that is not a
    readable file inside the source's folder (or not an object with a string URI) is left as it was, noted."""
    images = doc.get("images")
    if not isinstance(images, list):
        return
    for i, image in enumerate(images):
        uri = image.get("uri") if isinstance(image, dict) else None
        if not isinstance(uri, str) or uri[:5].lower() == "data:":
            continue
        mime = image.get("mimeType") or IMAGE_TYPES.get(Path(uri.split("?")[0]).suffix.lower())
        try:
            if not isinstance(mime, str):
                raise GltfError(f"images[{i}] ({uri!r}) has no mimeType and an unknown file type")
            data = reader._external(uri, f"images[{i}]", MAX_OUTPUT_BYTES - len(out.data))
        except GltfError as exc:
            notes.append(f"{str(exc).removeprefix(reader.source + ': ')}: left as a link, not embedded")
            continue
        view = len(doc["bufferViews"])
        doc["bufferViews"].append({"buffer": 0, "byteOffset": out.put(data), "byteLength": len(data)})
        images[i] = {**{k: v for k, v in image.items() if k != "uri"}, "bufferView": view, "mimeType": mime}


def _drop_meshopt(doc: dict) -> None:
    for key in ("extensionsUsed", "extensionsRequired"):
        if not isinstance(doc.get(key), list):
            continue  # absent (or not glTF: left as it was)
        names = [name for name in doc[key] if name != MESHOPT]
        if names:
            doc[key] = names
        else:
            doc.pop(key, None)


def _accessor(doc: dict, out: _Binary, values: np.ndarray, kind: str, bounds: bool = False) -> int:
    values = np.ascontiguousarray(values, np.float32)
    width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[kind]
    views, accessors = doc.setdefault("bufferViews", []), doc.setdefault("accessors", [])
    views.append({"buffer": 0, "byteOffset": out.put(values.tobytes()), "byteLength": values.nbytes})
    entry = {"bufferView": len(views) - 1, "componentType": FLOAT, "count": values.size // width, "type": kind}
    if bounds:
        flat = values.reshape(-1, width)
        entry["min"], entry["max"] = flat.min(axis=0).tolist(), flat.max(axis=0).tolist()
    accessors.append(entry)
    return len(accessors) - 1


def _add_animation(doc: dict, scene: GltfScene, out: _Binary, track: GltfAnimation, notes: list[str]) -> None:
    if not any(getattr(track, path) for path, _ in _TRACKS):
        return
    times = np.asarray(track.times, np.float32)
    if times.ndim != 1 or len(times) == 0 or np.any(np.diff(times) <= 0):
        raise ValueError(f"animation {track.name!r}: times must be a non-empty, strictly increasing [N] array")
    time_accessor = _accessor(doc, out, times, "SCALAR", bounds=True)
    samplers, channels = [], []
    for path, kind in _TRACKS:
        for node, values in getattr(track, path).items():
            values = np.asarray(values, np.float32)
            if len(values) != len(times):
                raise ValueError(f"animation {track.name!r}: node {node} {path} has {len(values)} rows")
            if path != "weights":
                _trs_node(doc["nodes"][node], scene, node)
            samplers.append({"input": time_accessor, "output": _accessor(doc, out, values, kind),
                             "interpolation": "LINEAR"})  # fmt: skip
            channels.append({"sampler": len(samplers) - 1, "target": {"node": node, "path": path}})
    animations = doc.setdefault("animations", [])
    if not isinstance(animations, list):
        notes.append(f"animations was {kind_of(animations)}, not an array: replaced by facecast's")
        animations = doc["animations"] = []
    animations.append({"name": track.name, "samplers": samplers, "channels": channels})


def _trs_node(node: dict, scene: GltfScene, index: int) -> None:
    """An animated node keeps its rest pose as translation, rotation and scale (not a matrix)."""
    if "matrix" not in node:
        return
    del node["matrix"]
    rest = scene.nodes[index]
    node["translation"] = [float(v) for v in rest.translation]
    node["rotation"] = [float(v) for v in rest.rotation]
    node["scale"] = [float(v) for v in rest.scale]


def encode_kept_glb(
    reader: Any, scene: GltfScene, track: GltfAnimation, extras: dict | None = None
) -> tuple[bytes, list[str]]:
    """(GLB bytes, notes): the source document of ``reader`` (a checked :mod:`gltf_read` reader) with ``track``
    appended; the notes say what could not be kept as the module docstring says."""
    doc = copy.deepcopy(reader.doc)
    out = _Binary(reader.source)
    notes: list[str] = []
    _move_views(reader, doc, out)
    _embed_images(reader, doc, out, notes)
    _drop_meshopt(doc)
    _add_animation(doc, scene, out, track, notes)
    if extras:
        asset = doc["asset"]
        old = asset.get("extras")
        asset["extras"] = {**old, **extras} if isinstance(old, dict) else {**extras}
    doc["buffers"] = [{"byteLength": len(out.data) + (-len(out.data) % 4)}]
    return pack_glb(doc, bytes(out.data)), notes


def write_kept_glb(
    reader: Any, scene: GltfScene, track: GltfAnimation, path: str | Path, extras: dict | None = None
) -> list[str]:
    """:func:`encode_kept_glb` written atomically to ``path``; returns its notes."""
    data, notes = encode_kept_glb(reader, scene, track, extras)
    atomic_write(Path(path), lambda fh: fh.write(data))
    return notes
