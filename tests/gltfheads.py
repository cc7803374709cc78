"""Small glTF heads for the hostile-input tests: valid ones made by code, and the mutations that break them."""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import random
import signal
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from facecast.export.glb import GltfMesh, GltfNode, GltfScene, GltfSkin, encode_glb, pack_glb, unpack_glb

TARGET_NAMES = ["jawOpen", "eyeBlink_L", "mouthSmile_R"]


def small_scene() -> GltfScene:
    """A 4 x 4 grid face with three morph targets (one sparse), normals and a skin, eyes and a jaw."""
    x, y = np.meshgrid(np.linspace(-1, 1, 4), np.linspace(-1, 1, 4))
    verts = np.stack([x.ravel(), y.ravel(), 0.2 * np.cos(x.ravel())], 1).astype(np.float32)
    faces = np.array([(j * 4 + i, j * 4 + i + 1, (j + 1) * 4 + i) for j in range(3) for i in range(3)], np.int64)
    targets = np.zeros((3, 16, 3), np.float32)
    targets[0, :, 1] = -0.1 * np.arange(16) / 16  # dense
    targets[1, 2] = [0.0, -0.05, 0.0]  # sparse
    targets[2, 5:7] = [0.02, 0.01, 0.0]
    normals = np.tile(np.array([0.0, 0.0, 1.0], np.float32), (16, 1))
    joints = np.zeros((16, 4), np.uint16)
    joints[verts[:, 1] > 0, 0] = 1
    weights = np.zeros((16, 4), np.float32)
    weights[:, 0] = 1.0
    face = GltfMesh("face", verts, faces, normals, list(TARGET_NAMES), targets, joints=joints, joint_weights=weights)
    eye = GltfMesh("eyeball", verts * 0.1, faces)
    nodes = [
        GltfNode("Head", children=[1, 2, 4, 5], scale=np.full(3, 0.5)),
        GltfNode("face_mesh", mesh=0, skin=0),
        GltfNode("Eye_L", children=[3], translation=np.array([0.3, 0.2, 0.1])),
        GltfNode("eye_mesh", mesh=1),
        GltfNode("Eye_R", translation=np.array([-0.3, 0.2, 0.1])),
        GltfNode("jaw_bone", translation=np.array([0.0, -0.2, -0.5])),
    ]
    skin = GltfSkin([0, 2], np.stack([np.eye(4), np.eye(4)]), 0, "rig")
    return GltfScene(nodes, [face, eye], [0], skins=[skin])


def head_parts() -> tuple[dict, bytes]:
    """(JSON document, BIN chunk) of :func:`small_scene` as facecast writes it."""
    return unpack_glb(encode_glb(small_scene()))


def interleaved_parts() -> tuple[dict, bytes, np.ndarray]:
    """A hand-made head whose POSITION and NORMAL share one 24-byte-stride view, indices in a second view and
    a bufferless (all-zero) target with sparse values: (document, buffer, the expected vertices)."""
    verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], np.float32)
    normals = np.tile(np.array([0, 0, 1], np.float32), (4, 1))
    interleaved = np.concatenate([verts, normals], axis=1).astype(np.float32).tobytes()
    indices = np.array([0, 1, 2, 2, 1, 3], np.uint16).tobytes()
    sparse_idx = np.array([3], np.uint16).tobytes() + b"\0\0"
    sparse_val = np.array([0.0, 0.0, 0.5], np.float32).tobytes()
    binary = interleaved + indices + sparse_idx + sparse_val
    o1, o2, o3 = len(interleaved), len(interleaved) + len(indices), len(interleaved) + len(indices) + 4
    doc = {
        "asset": {"version": "2.0"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"name": "Head", "children": [1]}, {"name": "face", "mesh": 0}],
        "meshes": [{"name": "face", "extras": {"targetNames": ["jawOpen"]}, "primitives": [{
            "attributes": {"POSITION": 0, "NORMAL": 1}, "indices": 2, "targets": [{"POSITION": 3}]}]}],
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": 4, "type": "VEC3"},
            {"bufferView": 0, "byteOffset": 12, "componentType": 5126, "count": 4, "type": "VEC3"},
            {"bufferView": 1, "componentType": 5123, "count": 6, "type": "SCALAR"},
            {"componentType": 5126, "count": 4, "type": "VEC3", "sparse": {
                "count": 1, "indices": {"bufferView": 2, "componentType": 5123}, "values": {"bufferView": 3}}},
        ],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": len(interleaved), "byteStride": 24},
            {"buffer": 0, "byteOffset": o1, "byteLength": len(indices)},
            {"buffer": 0, "byteOffset": o2, "byteLength": 4},
            {"buffer": 0, "byteOffset": o3, "byteLength": len(sparse_val)},
        ],
        "buffers": [{"byteLength": len(binary)}],
    }  # fmt: skip
    return doc, binary, verts


def meshopt_parts() -> tuple[dict, bytes]:
    """:func:`head_parts` with the first mesh's POSITION and index views EXT_meshopt_compression-compressed (as
    facecap.glb stores its data: a fallback buffer without bytes); needs the ``meshopt`` package."""
    import meshopt

    doc, binary = head_parts()
    doc["buffers"].append({"byteLength": len(binary), "extensions": {"EXT_meshopt_compression": {"fallback": True}}})
    prim = doc["meshes"][0]["primitives"][0]
    blob = bytearray(binary)
    for accessor, mode, stride in (
        (prim["attributes"]["POSITION"], "ATTRIBUTES", 12),
        (prim["indices"], "TRIANGLES", 2),
    ):
        view = doc["bufferViews"][doc["accessors"][accessor]["bufferView"]]
        raw = binary[view["byteOffset"] : view["byteOffset"] + view["byteLength"]]
        data = np.frombuffer(raw, np.float32).reshape(-1, 3) if mode == "ATTRIBUTES" else np.frombuffer(raw, np.uint16)
        packed = meshopt.encode_gltf_buffer(data, mode)
        blob.extend(b"\0" * (-len(blob) % 4))
        view["buffer"] = 1
        ext = {"buffer": 0, "byteOffset": len(blob), "byteLength": len(packed), "byteStride": stride,
               "count": view["byteLength"] // stride, "mode": mode}  # fmt: skip
        view["extensions"] = {"EXT_meshopt_compression": ext}
        blob.extend(packed)
    doc["buffers"][0]["byteLength"] = len(blob)
    doc["extensionsUsed"] = doc["extensionsRequired"] = ["EXT_meshopt_compression"]
    return doc, bytes(blob)


def write_glb_head(path: Path, doc: dict, binary: bytes) -> Path:
    path.write_bytes(pack_glb(doc, binary))
    return path


def write_gltf_head(path: Path, doc: dict, binary: bytes) -> Path:
    """A ``.gltf`` with the buffer as a base64 data URI."""
    doc = copy.deepcopy(doc)
    doc["buffers"][0]["uri"] = "data:application/octet-stream;base64," + base64.b64encode(binary).decode()
    path.write_text(json.dumps(doc))
    return path


def position_view(doc: dict) -> int:
    return doc["accessors"][doc["meshes"][0]["primitives"][0]["attributes"]["POSITION"]]["bufferView"]


# ----------------------------------------------------------------------------------------------------
# mutations (for the fuzzer): each takes (rng, doc, binary) and returns a new (doc, binary) or raw file bytes

HOSTILE_INTS = [-1, -4, -(10**6), 0, 1, 2, 3, 4, 7, 12, 16, 251, 252, 253, 256, 65535, 2**31, 2**32 + 1, 2**53,
                10**12, 10**30]  # fmt: skip
FIELDS = ["byteStride", "byteOffset", "byteLength", "count", "componentType", "type", "bufferView", "buffer",
          "children", "mesh", "skin", "scene", "nodes", "uri", "sparse", "indices", "POSITION", "NORMAL",
          "JOINTS_0", "WEIGHTS_0", "targets", "mode", "matrix", "rotation", "scale", "translation", "joints",
          "inverseBindMatrices", "skeleton", "asset", "version", "normalized", "material", "primitives",
          "attributes", "extensions", "extras", "targetNames", "name", "values"]  # fmt: skip


def hostile_value(rng: random.Random, size: int = 10) -> object:
    """A random JSON value biased towards what breaks readers: edge integers, indices just out of range, wrong
    types, NaN-like numbers, odd URIs."""
    pick = rng.randrange(14)
    if pick < 4:
        return rng.choice(HOSTILE_INTS)
    if pick < 6:
        return rng.randrange(-2, size + 3)  # an index near the valid range
    if pick == 6:
        return rng.choice([True, False, None, 1.5, 5126.0, -0.0, float("inf"), float("nan")])
    if pick == 7:
        return rng.choice(["x", "", "VEC3", "MAT2", "SCALAR", "ATTRIBUTES", "2.0", "1.0"])
    if pick == 8:
        return rng.choice(["data:", "data:application/octet-stream;base64", "data:;base64,@@@",
                           "data:text/plain,abc", "../outside.bin", "/etc/passwd", "nul\0.bin", "x" * 300,
                           "%2e%2e/outside.bin", "http://example.com/a.bin", ".", "missing.bin"])  # fmt: skip
    if pick == 9:
        return [rng.choice(HOSTILE_INTS + list(range(size))) for _ in range(rng.randrange(5))]
    if pick == 10:
        return {}
    if pick == 11:
        return [rng.uniform(-2, 2) for _ in range(rng.choice([3, 4, 16, 2]))]
    if pick == 12:
        return {"bufferView": rng.randrange(-1, size), "count": rng.choice(HOSTILE_INTS)}
    return rng.choice(HOSTILE_INTS) * rng.choice([1, -1])


def _containers(value: object, out: list) -> None:
    """Every dict and list inside ``value`` (iterative)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, (dict, list)):
            out.append(item)
            stack.extend(item.values() if isinstance(item, dict) else item)


def mutate(rng: random.Random, doc: dict, binary: bytes, steps: int) -> tuple[dict, bytes]:
    """Apply ``steps`` random structural mutations to a copy of a head."""
    doc, binary = copy.deepcopy(doc), bytearray(binary)
    for _ in range(steps):
        kind = rng.randrange(9)
        containers: list = []
        _containers(doc, containers)
        target = rng.choice(containers)
        if kind <= 2 and isinstance(target, dict) and target:  # replace a member's value
            key = rng.choice(sorted(target))
            nodes = doc.get("nodes")
            target[key] = hostile_value(rng, (len(nodes) if isinstance(nodes, list) else 4) + 2)
        elif kind == 3 and isinstance(target, dict):  # set a known field anywhere
            target[rng.choice(FIELDS)] = hostile_value(rng, 8)
        elif kind == 4 and isinstance(target, dict) and target:  # delete a member
            del target[rng.choice(sorted(target))]
        elif kind == 5 and isinstance(target, list) and target:  # replace or drop an array item
            i = rng.randrange(len(target))
            if rng.random() < 0.5:
                target[i] = hostile_value(rng, len(target) + 2)
            else:
                del target[i]
        elif kind == 6 and binary:  # random bytes in the binary chunk
            for _ in range(rng.randrange(1, 32)):
                binary[rng.randrange(len(binary))] = rng.randrange(256)
        elif kind == 7 and isinstance(doc.get("nodes"), list) and doc["nodes"]:  # graph damage
            nodes = [n for n in doc["nodes"] if isinstance(n, dict)]
            if nodes:
                n = rng.choice(nodes)
                n["children"] = [rng.randrange(len(doc["nodes"])) for _ in range(rng.randrange(1, 4))]
        elif kind == 8 and isinstance(doc.get("bufferViews"), list) and doc["bufferViews"]:  # stride and sizes
            view = rng.choice(doc["bufferViews"])
            if isinstance(view, dict):
                view[rng.choice(["byteStride", "byteOffset", "byteLength"])] = rng.choice(HOSTILE_INTS)
    return doc, bytes(binary)


def glb_bytes(doc: dict, binary: bytes) -> bytes:
    return pack_glb(doc, binary)


def damage_container(rng: random.Random, data: bytes) -> bytes:
    """Container-level damage: truncation, a lying length field, random bytes anywhere."""
    data = bytearray(data)
    pick = rng.randrange(3)
    if pick == 0:
        return bytes(data[: rng.randrange(len(data))])
    if pick == 1:
        at = rng.choice([8, 12, 12 + 8 + struct.unpack_from("<I", data, 12)[0]])
        if at + 4 <= len(data):
            struct.pack_into("<I", data, at, rng.choice([0, 1, 7, 2**31, 2**32 - 1, len(data) + 4]))
        return bytes(data)
    for _ in range(rng.randrange(1, 16)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


class Hang(Exception):
    """A case ran past its time bound."""


@contextlib.contextmanager
def time_bound(seconds: float) -> Iterator[None]:
    """Raise :class:`Hang` in the block after ``seconds`` (SIGALRM); restores pytest-timeout's own alarm."""

    def on_alarm(signum, frame):
        raise Hang(f"no answer in {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer > 0:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - start), 0.001))


# ----------------------------------------------------------------------------------------------------
# a textured head (UVs, a PNG base-colour texture, a second material, an animation of its own)


def tiny_png(width: int = 4, height: int = 4, seed: int = 0) -> bytes:
    """A valid RGBA PNG of random pixels (signature, IHDR, one IDAT, IEND, with CRCs)."""
    import zlib

    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 4), dtype=np.uint8)
    raw = b"".join(b"\0" + pixels[y].tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _append(doc: dict, binary: bytearray, data: bytes, **view: object) -> int:
    binary.extend(b"\0" * (-len(binary) % 4))
    doc["bufferViews"].append({"buffer": 0, "byteOffset": len(binary), "byteLength": len(data), **view})
    binary.extend(data)
    return len(doc["bufferViews"]) - 1


def textured_parts() -> tuple[dict, bytes]:
    """:func:`small_scene` as GLB parts plus TEXCOORD_0 on both meshes, a PNG texture on the face's material,
    a plain second material on the eye, a named sampler and an "idle" animation of the Head node's scale."""
    doc, blob = head_parts()
    binary = bytearray(blob)
    for m, mesh in enumerate(doc["meshes"]):
        prim = mesh["primitives"][0]
        count = doc["accessors"][prim["attributes"]["POSITION"]]["count"]
        uv = np.stack([np.linspace(0, 1, count), np.linspace(1, 0, count) ** 2], 1).astype(np.float32)
        view = _append(doc, binary, uv.tobytes(), target=34962)
        doc["accessors"].append({"bufferView": view, "componentType": 5126, "count": count, "type": "VEC2"})
        prim["attributes"]["TEXCOORD_0"] = len(doc["accessors"]) - 1
        prim["material"] = m
    image = _append(doc, binary, tiny_png())
    doc["images"] = [{"bufferView": image, "mimeType": "image/png", "name": "skin_albedo"}]
    doc["samplers"] = [{"magFilter": 9729, "minFilter": 9987, "wrapS": 33648, "wrapT": 10497}]
    doc["textures"] = [{"sampler": 0, "source": 0, "name": "skin_tex"}]
    doc["materials"] = [
        {"name": "skin", "pbrMetallicRoughness": {"baseColorTexture": {"index": 0, "texCoord": 0},
         "baseColorFactor": [1.0, 0.9, 0.8, 1.0], "metallicFactor": 0.0}, "doubleSided": True},
        {"name": "eye_white", "pbrMetallicRoughness": {"baseColorFactor": [0.95, 0.95, 0.95, 1.0]}},
    ]  # fmt: skip
    times = np.array([0.0, 1.0], np.float32)
    scales = np.array([[0.5, 0.5, 0.5], [0.55, 0.5, 0.5]], np.float32)
    t = _append(doc, binary, times.tobytes())
    s = _append(doc, binary, scales.tobytes())
    doc["accessors"].append({"bufferView": t, "componentType": 5126, "count": 2, "type": "SCALAR", "min": [0.0],
                             "max": [1.0]})  # fmt: skip
    doc["accessors"].append({"bufferView": s, "componentType": 5126, "count": 2, "type": "VEC3"})
    n = len(doc["accessors"])
    doc["animations"] = [{"name": "idle", "samplers": [{"input": n - 2, "output": n - 1}],
                          "channels": [{"sampler": 0, "target": {"node": 0, "path": "scale"}}]}]  # fmt: skip
    binary.extend(b"\0" * (-len(binary) % 4))
    doc["buffers"] = [{"byteLength": len(binary)}]
    return doc, bytes(binary)


def write_gltf_files(folder: Path, doc: dict, binary: bytes) -> Path:
    """A ``.gltf`` with its buffer in ``head.bin`` and every embedded image moved to its own file (images/)."""
    doc = copy.deepcopy(doc)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(doc.get("images", [])):
        view = doc["bufferViews"][image.pop("bufferView")]
        name = f"images/tex {i}.png"  # a space: the URI is percent-encoded
        (folder / name).write_bytes(binary[view["byteOffset"] : view["byteOffset"] + view["byteLength"]])
        image["uri"] = name.replace(" ", "%20")
        image.pop("mimeType", None)
    (folder / "head.bin").write_bytes(binary)
    doc["buffers"][0]["uri"] = "head.bin"
    path = folder / "head.gltf"
    path.write_text(json.dumps(doc))
    return path
