"""Procedural teeth and gums for the preview: two arches of shaped teeth fitted to a character's helper teeth.

The MakeHuman helper teeth are a low-poly strip (68 vertices each) that the ARKit shapes and the jaw move; they
stay the character's teeth for posing and export. For rendering they are replaced by a row of sixteen shaped teeth
per jaw (incisors, canines, premolars, molars: rounded boxes of different widths, heights and depths, the canines
pointed) and a gum band, laid along a parabola fitted to the helper part and carried by its rigid motion each
frame. Everything here is made by code from the helper part's extent; no outside data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# per tooth from the middle to the back: width along the arch, crown height, depth (lips to tongue), pointedness
UPPER_TEETH = ((0.86, 1.0, 0.55, 0.0), (0.66, 0.85, 0.5, 0.0), (0.78, 0.95, 0.7, 1.0), (0.70, 0.75, 0.85, 0.3),
               (0.66, 0.7, 0.9, 0.3), (1.0, 0.6, 1.0, 0.2), (0.92, 0.55, 1.0, 0.2), (0.85, 0.5, 0.95, 0.2))  # fmt: skip
LOWER_TEETH = ((0.54, 0.8, 0.5, 0.0), (0.6, 0.8, 0.5, 0.0), (0.7, 0.9, 0.65, 1.0), (0.7, 0.7, 0.8, 0.3),
               (0.72, 0.65, 0.85, 0.3), (1.1, 0.55, 1.0, 0.2), (1.0, 0.5, 1.0, 0.2),
               (0.95, 0.5, 0.95, 0.2))  # fmt: skip
TOOTH = (0.93, 0.90, 0.82)
GUM = (0.74, 0.36, 0.38)


@dataclass
class Arch:
    """A jaw's rendered teeth: rest vertices [V, 3], triangles [F, 3], colours [V, 3], and whether a vertex is gum."""

    vertices: np.ndarray
    faces: np.ndarray
    colours: np.ndarray
    gum: np.ndarray


def _box(segments_u: int = 10, segments_v: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """A unit superellipsoid (boxy, rounded corners): vertices [V, 3] in [-1, 1]^3 and outward triangles."""
    u = np.linspace(-np.pi, np.pi, segments_u, endpoint=False)
    v = np.linspace(-np.pi / 2, np.pi / 2, segments_v)
    uu, vv = np.meshgrid(u, v)

    def sp(x: np.ndarray, e: float = 0.45) -> np.ndarray:
        return np.sign(x) * np.abs(x) ** e

    pts = np.stack([sp(np.cos(vv)) * sp(np.cos(uu)), sp(np.sin(vv)), sp(np.cos(vv)) * sp(np.sin(uu))], -1)
    pts = pts.reshape(-1, 3)
    faces = []
    for j in range(segments_v - 1):
        for i in range(segments_u):
            a, b = j * segments_u + i, j * segments_u + (i + 1) % segments_u
            c, d = a + segments_u, b + segments_u
            faces += [(a, c, b), (b, c, d)]
    return pts, np.asarray(faces, np.int64)


def _outward(points: np.ndarray, faces: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """``faces`` wound so that each normal points away from ``centre`` (a convex piece)."""
    a, b, c = points[faces[:, 0]], points[faces[:, 1]], points[faces[:, 2]]
    inward = np.einsum("ij,ij->i", np.cross(b - a, c - a), (a + b + c) / 3 - centre) < 0
    out = faces.copy()
    out[inward] = out[inward][:, ::-1]
    return out


def _fit_arch(helper: np.ndarray) -> tuple[float, float, float]:
    """(front z, curvature a, half width): the arch z = front - a x^2 through the helper teeth's outer edge."""
    half = float(np.abs(helper[:, 0]).max())
    front = float(helper[:, 2].max())
    back = float(helper[np.abs(helper[:, 0]) > 0.8 * half, 2].min())
    return front, (front - back) / max(half**2, 1e-6), half


def _arch_points(front: float, a: float, half: float, widths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres (x, z) and unit tangents of teeth of the given widths laid from the middle outward on the arch."""
    xs = np.linspace(0.0, half * 1.05, 400)
    zs = front - a * xs**2
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(xs), np.diff(zs)))])
    ends = np.cumsum(widths) * arc[-1] / widths.sum()
    mids = ends - widths * arc[-1] / widths.sum() / 2
    x = np.interp(mids, arc, xs)
    z = front - a * x**2
    t = np.stack([np.ones_like(x), -2 * a * x], 1)
    return np.stack([x, z], 1), t / np.linalg.norm(t, axis=1, keepdims=True)


def build_arch(helper: np.ndarray, upper: bool) -> Arch:
    """Teeth and gum for one jaw from its helper teeth's rest vertices (centimetres, y up, z front)."""
    table = np.asarray(UPPER_TEETH if upper else LOWER_TEETH)
    front, a, half = _fit_arch(helper)
    front -= 0.3  # the helper's outer edge is the crowns' front surface: centres sit behind it
    half -= 0.6  # the molars sit inside the cheeks, behind the mouth corners
    centres, tangents = _arch_points(front, a, half, table[:, 0])
    mid = helper[helper[:, 2] > front - 0.5]
    # occlusal level: upper incisor edges a little below the lowest front helper vertex' middle
    bite = float(np.percentile(mid[:, 1], 15 if upper else 85)) if len(mid) else float(helper[:, 1].mean())
    bite -= 0.2 if upper else 0.0  # the upper edges show a little below the upper lip
    sign = -1.0 if upper else 1.0  # crowns grow down from the upper gum, up from the lower
    unit, tris = _box()
    verts, faces, colours, gum = [], [], [], []
    base = 0
    for side in (-1.0, 1.0):
        for k, (width, height, depth, point) in enumerate(table):
            cx, cz = centres[k]
            tx, tz = tangents[k]
            nx, nz = -tz * side, tx  # outward normal of the arch on this side (x mirrored)
            p = unit.copy()
            tip = (p[:, 1] * sign + 1) / 2  # 0 at the gum, 1 at the biting edge
            w = 0.5 * width * 0.92 * (1 - 0.15 * (1 - tip)) * (1 - point * 0.55 * tip**3 * (np.abs(p[:, 0])))
            d = 0.5 * depth * (1 - (0.35 if k < 3 else 0.1) * tip)  # incisors thin toward the edge
            drop = 0.08 * (k >= 5)  # molars sit a little higher than the front teeth
            y = bite - sign * (height / 2 + drop) + p[:, 1] * height / 2
            y = y + sign * point * 0.12 * (1 - np.abs(p[:, 0])) * tip  # canine cusp
            x = side * cx + p[:, 0] * w * tx * side + p[:, 2] * d * nx
            z = cz + p[:, 0] * w * tz * 1.0 + p[:, 2] * d * nz
            tooth = np.stack([x, y, z], 1)
            verts.append(tooth)
            faces.append(_outward(tooth, tris, tooth.mean(axis=0)) + base)
            shade = 1.0 - 0.05 * k
            colours.append(np.tile(np.asarray(TOOTH) * shade, (len(p), 1)))
            gum.append(np.zeros(len(p), bool))
            base += len(p)
    # the gum: a rounded band along the arch at the crowns' roots
    gv, gf = _gum_band(front, a, half, bite - sign * (1.05 if upper else 0.95), sign)
    verts.append(gv)
    faces.append(np.concatenate([gf, gf[:, ::-1]]) + base)  # two-sided: seen from in front and behind
    colours.append(np.tile(np.asarray(GUM), (len(gv), 1)))
    gum.append(np.ones(len(gv), bool))
    colour = np.concatenate(colours).astype(np.float32)
    return Arch(np.concatenate(verts).astype(np.float32), np.concatenate(faces), colour, np.concatenate(gum))


def _gum_band(front: float, a: float, half: float, y: float, sign: float, steps: int = 33, ring: int = 8):
    """A tube of elliptic cross-section along the whole arch (both sides), centred at height ``y``."""
    x = np.linspace(-half * 1.02, half * 1.02, steps)
    z = front - a * x**2
    t = np.stack([np.ones_like(x), np.zeros_like(x), -2 * a * x], 1)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    n = np.stack([-t[:, 2], np.zeros_like(x), t[:, 0]], 1)  # outward in the xz plane
    ang = np.linspace(0, 2 * np.pi, ring, endpoint=False)
    up = np.array([0.0, 1.0, 0.0])
    pts = (np.stack([x, np.full_like(x, y), z], 1)[:, None]
           + 0.45 * np.cos(ang)[None, :, None] * n[:, None] + 0.35 * np.sin(ang)[None, :, None] * up)  # fmt: skip
    pts = pts.reshape(-1, 3)
    faces = []
    for s in range(steps - 1):
        for r in range(ring):
            a0, a1 = s * ring + r, s * ring + (r + 1) % ring
            b0, b1 = a0 + ring, a1 + ring
            faces += [(a0, a1, b0), (a1, b1, b0)]
    return pts, np.asarray(faces, np.int64)
