"""Mesh geometry helpers for building a character: cropping, normals, and landmarks found from shape and motion.

Every landmark is found by code from the mesh and its targets, never from a hand-written vertex list:

* lip pairs: vertices that touch (or nearly) with the mouth closed and separate when ``jawOpen`` opens it;
* eyelid pairs: vertices far apart with the eyes open that meet when ``eyeBlink*`` closes them;
* jaw keypoints: extreme points of the lower-teeth part;
* frontal mask: skin vertices whose normal faces the camera (+z) on the front half of the head.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def crop_faces(vertices: np.ndarray, faces: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep the faces whose vertices all satisfy ``keep`` ([V] bool); return (old vertex ids, reindexed faces)."""
    faces = faces[keep[faces].all(axis=1)]
    used = np.unique(faces)
    remap = np.full(len(vertices), -1, np.int64)
    remap[used] = np.arange(len(used))
    return used, remap[faces]


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals of a [V, 3] mesh."""
    a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    fn = np.cross(b - a, c - a)
    idx = faces.reshape(-1)
    out = np.stack([np.bincount(idx, np.repeat(fn[:, axis], 3), minlength=len(vertices)) for axis in range(3)], axis=1)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def edge_set(faces: np.ndarray) -> set[tuple[int, int]]:
    """Undirected mesh edges as (low, high) vertex pairs."""
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = np.sort(e, axis=1)
    return set(map(tuple, np.unique(e, axis=0).tolist()))


def neck_cut_height(vertices: np.ndarray, chin_y: float, slice_height: float, widen: float = 1.6) -> float:
    """Height of the cut between head and body: a little above where the neck widens into the shoulders.

    Scanning down from the chin in slices, the neck is the narrowest slice; the shoulders start at the first
    slice below it more than ``widen`` times as wide. The cut sits one third of the way from there to the chin.
    """
    y = vertices[:, 1]
    widths: list[tuple[float, float]] = []
    top = chin_y
    while top - slice_height > y.min():
        sel = (y <= top) & (y > top - slice_height)
        if sel.any():
            widths.append((top, float(np.ptp(vertices[sel, 0]))))
        top -= slice_height
    narrowest = np.inf
    for top, width in widths:
        narrowest = min(narrowest, width)
        if width > widen * narrowest:
            return float(top + (chin_y - top) / 3.0)
    raise ValueError("no shoulders found below the chin: cannot place the neck cut")


def closing_pairs(
    open_pose: np.ndarray,
    closed_pose: np.ndarray,
    candidates: np.ndarray,
    edges: set[tuple[int, int]],
    max_closed: float,
    min_separation: float,
    spacing: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of non-adjacent vertices within ``max_closed`` in ``closed_pose`` that ``open_pose`` moves apart
    by more than ``min_separation``.

    Among all such pairs the frontmost (largest z in the closed pose) are taken first, one per ``spacing`` of
    x, so the result follows the visible contact line (the lip line, the lid margins). Returns (upper, lower)
    vertex ids sorted by x, "upper" being the vertex that is higher in the open pose.
    """
    cand = np.flatnonzero(candidates)
    if cand.size < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    tree = cKDTree(closed_pose[cand])
    raw = tree.query_pairs(max_closed, output_type="ndarray")
    if raw.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    a, b = cand[raw[:, 0]], cand[raw[:, 1]]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    adjacent = np.array([(int(i), int(j)) in edges for i, j in zip(lo, hi, strict=True)])
    d_open = np.linalg.norm(open_pose[a] - open_pose[b], axis=1)
    apart = d_open - np.linalg.norm(closed_pose[a] - closed_pose[b], axis=1) > min_separation
    ok = ~adjacent & apart
    a, b = a[ok], b[ok]
    upper = np.where(open_pose[a, 1] >= open_pose[b, 1], a, b)
    lower = np.where(open_pose[a, 1] >= open_pose[b, 1], b, a)
    front = 0.5 * (closed_pose[upper, 2] + closed_pose[lower, 2])
    xs = 0.5 * (closed_pose[upper, 0] + closed_pose[lower, 0])
    taken_x: list[float] = []
    used: set[int] = set()
    picked: list[int] = []
    for i in np.argsort(-front, kind="stable"):
        if int(upper[i]) in used or int(lower[i]) in used:
            continue
        if any(abs(xs[i] - x) < spacing for x in taken_x):
            continue
        picked.append(int(i))
        taken_x.append(float(xs[i]))
        used.update((int(upper[i]), int(lower[i])))
    picked_arr = np.array(sorted(picked, key=lambda i: xs[i]), np.int64)
    return upper[picked_arr].astype(np.int64), lower[picked_arr].astype(np.int64)


def jaw_keypoints(teeth: np.ndarray) -> np.ndarray:
    """Five lower-teeth vertex ids: front top, left back top, right back top, left back bottom, right back bottom.

    Chosen as extremes of the part in normalised coordinates, so they span all three axes (a well-posed rigid
    fit) and come in mirror pairs on a symmetric mesh.
    """
    c = teeth.mean(axis=0)
    u = (teeth - c) / np.maximum(np.ptp(teeth, axis=0), 1e-9)
    x, y, z = u[:, 0], u[:, 1], u[:, 2]
    scores = [z + y - 2.0 * np.abs(x), x - z + y, -x - z + y, x - z - y, -x - z - y]
    return np.array([int(np.argmax(s)) for s in scores], np.int64)


def frontal_mask(vertices: np.ndarray, normals: np.ndarray, pivot_z: float, min_y: float, max_y: float) -> np.ndarray:
    """Skin vertex ids whose normal faces +z, in front of the eye pivots' depth, between ``min_y`` and ``max_y``."""
    ok = (normals[:, 2] > 0.3) & (vertices[:, 2] > pivot_z - 1.0)
    ok &= (vertices[:, 1] > min_y) & (vertices[:, 1] < max_y)
    return np.flatnonzero(ok).astype(np.int64)


def occluded_from_front(vertices: np.ndarray, normals: np.ndarray, candidates: np.ndarray, gap: float) -> np.ndarray:
    """Of ``candidates`` ([V] bool), those with a forward-facing vertex in front of them by more than ``gap``.

    The test looks for any front-facing vertex within ``gap`` in x and y and more than ``gap`` further in z;
    inside the mouth region that picks out the inner mouth behind the lips.
    """
    front = np.flatnonzero(normals[:, 2] > 0.2)
    tree = cKDTree(vertices[front, :2])
    out = np.zeros(len(vertices), bool)
    for i in np.flatnonzero(candidates):
        near = front[tree.query_ball_point(vertices[i, :2], gap)]
        out[i] = bool(np.any(vertices[near, 2] > vertices[i, 2] + gap))
    return out


def kabsch(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rigid fit ``dst ≈ R @ src + t`` (no scaling, no reflection); batched over leading dims of ``src``.

    ``src`` [..., N, 3], ``dst`` [N, 3] or [..., N, 3] -> R [..., 3, 3], t [..., 3].
    """
    src = np.asarray(src, np.float64)
    dst = np.broadcast_to(np.asarray(dst, np.float64), src.shape)
    mu_s, mu_d = src.mean(axis=-2), dst.mean(axis=-2)
    h = np.swapaxes(src - mu_s[..., None, :], -1, -2) @ (dst - mu_d[..., None, :])
    u, _, vt = np.linalg.svd(h)
    v = np.swapaxes(vt, -1, -2)
    ut = np.swapaxes(u, -1, -2)
    sign = np.sign(np.linalg.det(v @ ut))
    sign[sign == 0] = 1.0
    fix = np.ones(src.shape[:-2] + (3,))
    fix[..., 2] = sign
    rot = (v * fix[..., None, :]) @ ut
    t = mu_d - (rot @ mu_s[..., None])[..., 0]
    return rot, t


def rigid_transforms(source: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Least-squares rigid fits (:func:`kabsch`) of ``source`` [V, 3] onto each of ``targets`` [N, V, 3]: [N, 4, 4]
    row-major matrices M with ``M @ [x, y, z, 1]`` ≈ target."""
    tgt = np.asarray(targets, np.float64)
    rot, t = kabsch(np.broadcast_to(np.asarray(source, np.float64), tgt.shape), tgt)
    out = np.zeros((len(tgt), 4, 4))
    out[:, :3, :3] = rot
    out[:, :3, 3] = t
    out[:, 3, 3] = 1.0
    return out
