"""The mesh the preview draws: the character's parts, dressed for the camera, and posed from the parts each frame.

The character itself (its parts, shapes and landmarks) is what the solver and the exports use and is left as
it is. For the picture it is dressed, by code and with no outside data:

* the neck is clipped by a smooth plane a little above the crop's jagged boundary: triangles crossing it are cut,
  and every new vertex is a fixed blend of two skin vertices, so the ARKit shapes move it exactly as they move
  the surface it lies on (``skin_map``, a sparse [Vr, Vs] matrix);
* the helper teeth are replaced by shaped teeth and gums (:mod:`facecast.characters.teeth`) that follow the
  helper teeth's rigid motion;
* per-vertex paint: skin tones with redder cheeks, nose and ears, the lips, the inner mouth, and the distance to
  the upper and lower lid margins (the shader draws lash lines from it); eyebrows and skin grain are painted by the
  shader from each point's rest position, so they move with the skin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from facecast.characters.character import EYE_PARTS, Character
from facecast.characters.geometry import rigid_transforms
from facecast.characters.teeth import build_arch

SKIN = (0.86, 0.64, 0.53)
LIPS = (0.74, 0.38, 0.39)
MOUTH = (0.30, 0.10, 0.11)
BLUSH = (0.86, 0.50, 0.46)
TONGUE = (0.66, 0.27, 0.31)
EYE_WHITE = (0.94, 0.92, 0.89)

# material ids (the shader's switch): skin, inner mouth, teeth, gum, tongue, eye
MAT_SKIN, MAT_MOUTH, MAT_TEETH, MAT_GUM, MAT_TONGUE, MAT_EYE = range(6)
NECK_MARGIN_CM = 0.35
"""The clip plane sits this far above the highest vertex of the crop's boundary."""


@dataclass
class Dressed:
    """The render mesh: rest vertices, triangles and per-vertex attributes, and how to pose it from the parts."""

    rest: np.ndarray  # [V, 3]
    faces: np.ndarray  # [F, 3]
    colour: np.ndarray  # [V, 3]
    material: np.ndarray  # [V] float (ids above)
    lash: np.ndarray  # [V, 2]: distance (cm) to the upper and lower lid margins, large away from the eyes
    eye_dir: np.ndarray  # [V, 3] eye-local rest direction (zero off the eyes)
    skin_map: sp.csr_matrix  # [V_skin_render, V_skin]
    slices: dict[str, slice]  # where each dressed piece lies in the render mesh
    teeth_rest: dict[str, np.ndarray]  # helper part name -> its rest vertices (for the rigid fit)
    clip_y: float  # the neck plane (rest y, cm)

    def pose(self, parts: Mapping[str, np.ndarray]) -> np.ndarray:
        """[V, 3] render-mesh vertices of one frame from the posed character parts ({part: [Vp, 3]})."""
        out = np.empty((len(self.rest), 3), np.float32)
        out[self.slices["skin"]] = self.skin_map @ np.asarray(parts["skin"], np.float32)
        for name in ("tongue", *EYE_PARTS):
            out[self.slices[name]] = parts[name]
        for name, rest in self.teeth_rest.items():
            m = rigid_transforms(rest, np.asarray(parts[name], np.float64)[None])[0].astype(np.float32)
            out[self.slices[name]] = self.rest[self.slices[name]] @ m[:3, :3].T + m[:3, 3]
        return out


def clip_below(vertices: np.ndarray, faces: np.ndarray, y: float) -> tuple[sp.csr_matrix, np.ndarray]:
    """Cut a mesh by the plane ``y``, keeping what is above: (blend matrix [V', V], faces [F', 3]).

    Kept vertices map to themselves; a crossing edge gets one new vertex on the plane (a blend of its two
    ends), shared by both triangles on that edge. A triangle with one vertex below becomes two triangles, with
    two below one, with three below none.
    """
    above = vertices[:, 1] >= y
    keep_ids = np.flatnonzero(above)
    index = np.full(len(vertices), -1, np.int64)
    index[keep_ids] = np.arange(len(keep_ids))
    rows, cols, vals = list(range(len(keep_ids))), keep_ids.tolist(), [1.0] * len(keep_ids)
    edge_vertex: dict[tuple[int, int], int] = {}

    def cut(a: int, b: int) -> int:
        key = (min(a, b), max(a, b))
        if key not in edge_vertex:
            ya, yb = vertices[a, 1], vertices[b, 1]
            t = float((y - ya) / (yb - ya))
            edge_vertex[key] = len(keep_ids) + len(edge_vertex)
            rows.extend([edge_vertex[key]] * 2)
            cols.extend([a, b])
            vals.extend([1.0 - t, t])
        return edge_vertex[key]

    out = []
    inside = above[faces]
    out.append(index[faces[inside.all(axis=1)]])
    for f in faces[inside.any(axis=1) & ~inside.all(axis=1)]:
        up = [above[v] for v in f]
        k = up.index(False) if sum(up) == 2 else up.index(True)  # the odd one out
        a, b, c = f[k], f[(k + 1) % 3], f[(k + 2) % 3]  # winding kept
        if sum(up) == 2:  # a below: quad b, c, cut(c, a), cut(a, b)
            ab, ca = cut(a, b), cut(c, a)
            out.append(np.array([[index[b], index[c], ca], [index[b], ca, ab]]))
        else:  # only a above
            out.append(np.array([[index[a], cut(a, b), cut(c, a)]]))
    n = len(keep_ids) + len(edge_vertex)
    matrix = sp.csr_matrix((np.asarray(vals, np.float32), (rows, cols)), shape=(n, len(vertices)))
    return matrix, np.concatenate(out).astype(np.int64)


def boundary_edges(faces: np.ndarray) -> np.ndarray:
    """Edges used by one triangle only ([E, 2])."""
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    uniq, count = np.unique(e, axis=0, return_counts=True)
    return uniq[count == 1]


def _blob(points: np.ndarray, centre: tuple[float, float, float], radius: float) -> np.ndarray:
    return np.exp(-np.sum((points - np.asarray(centre)) ** 2, axis=1) / (2 * radius**2))


def _grain(points: np.ndarray, seed: int = 23) -> np.ndarray:
    """Smooth pseudo-random mottling in [0, 1] at a few scales (sums of random plane waves; deterministic)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(len(points))
    for scale, weight in ((0.5, 0.5), (1.3, 0.3), (3.0, 0.2)):
        for _ in range(6):
            k = rng.normal(size=3) * scale
            out += weight * np.cos(points @ k + rng.uniform(0, 2 * np.pi)) / 6
    return np.clip(0.5 + out, 0.0, 1.0).astype(np.float32)


def _skin_paint(char: Character, rest: np.ndarray, matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Colours and materials of the dressed skin: tones, blush, lips and the inner mouth."""
    regions = {k: matrix @ v.astype(np.float32) for k, v in char.skin_regions.items()}
    n = len(rest)
    lips = regions.get("lips", np.zeros(n, np.float32))[:, None]
    mouth = regions.get("mouth", np.zeros(n, np.float32))[:, None]
    x = np.abs(rest[:, 0])
    mirrored = np.stack([x, rest[:, 1], rest[:, 2]], 1)
    top = float(rest[:, 1].max())
    spots = (((4.2, -3.0, 1.5), 1.6, 0.55), ((0.0, -2.8, 4.0), 1.0, 0.5), ((7.5, -1.0, -4.5), 1.6, 0.45),
             ((0.0, 1.0, 3.0), 2.0, 0.2))  # cheeks, nose, ears, forehead  # fmt: skip
    blush = sum(k * _blob(mirrored, c, r) for c, r, k in spots)
    blush = np.clip(blush, 0, 1)[:, None]
    tone = np.asarray(SKIN) * (1 - 0.35 * blush) + np.asarray(BLUSH) * 0.35 * blush
    tone = tone * (1.0 - 0.06 * np.clip((rest[:, 1:2] - (top - 6.0)) / 6.0, 0, 1))  # a slightly darker crown
    tone = tone * (0.94 + 0.12 * _grain(rest))[:, None]
    colour = tone * (1 - lips) + np.asarray(LIPS) * lips
    colour = colour * (1 - mouth) + np.asarray(MOUTH) * mouth
    material = np.where(mouth[:, 0] > 0.5, MAT_MOUTH, MAT_SKIN).astype(np.float32)
    return colour.astype(np.float32), material


def _lid_margins(char: Character, rest: np.ndarray) -> np.ndarray:
    """[V, 2] distance (cm) from each dressed skin vertex to the upper and the lower lid margin.

    Each margin is the polyline through the character's eyelid landmarks (the pairs a blink closes) of one eye,
    sorted across the eye, sampled densely and extended a little past the eye corners.
    """
    out = np.full((len(rest), 2), 3.0, np.float32)
    skin = char.skin.vertices
    for k, ids in enumerate((char.eyelid_upper, char.eyelid_lower)):
        for e in range(2):
            pivot = char.eye_pivots[e]
            pts = skin[ids][np.sign(skin[ids][:, 0]) == np.sign(pivot[0])]
            if len(pts) < 2:
                continue
            pts = pts[np.argsort(pts[:, 0])]
            ends = [pts[0] + (pts[0] - pts[1]) * 0.25 / max(np.linalg.norm(pts[0] - pts[1]), 1e-6),
                    pts[-1] + (pts[-1] - pts[-2]) * 0.25 / max(np.linalg.norm(pts[-1] - pts[-2]), 1e-6)]  # fmt: skip
            line = np.concatenate([ends[:1], pts, ends[1:]])
            t = np.linspace(0, 1, 12)[:, None]
            dense = np.concatenate([a + (b - a) * t for a, b in zip(line[:-1], line[1:], strict=True)])
            dist = np.minimum(cKDTree(dense).query(rest, distance_upper_bound=3.0)[0], 3.0)
            if k == 0:  # the lid's rim under the upper margin, down to the eyeball: lashes and liner
                radius = float(np.median(np.linalg.norm(char.parts[EYE_PARTS[e]].vertices - pivot, axis=1)))
                below = rest[:, 1] < np.interp(rest[:, 0], line[:, 0], line[:, 1])
                rim = below & (np.linalg.norm(rest - pivot, axis=1) < radius + 0.35) & (rest[:, 1] > pivot[1])
                rim &= (rest[:, 0] > line[0, 0]) & (rest[:, 0] < line[-1, 0])
                dist[rim] = 0.0
            out[:, k] = np.minimum(out[:, k], dist)
    return out


def dress(char: Character) -> Dressed:
    """Build the render mesh of ``char`` (about 0.1 s)."""
    skin = char.parts["skin"]
    edges = boundary_edges(skin.faces)
    low = float(skin.vertices[np.unique(edges), 1].max()) if len(edges) else float(skin.vertices[:, 1].min())
    clip_y = low + NECK_MARGIN_CM if len(edges) else low - 1.0
    matrix, skin_faces = clip_below(skin.vertices.astype(np.float64), skin.faces, clip_y)
    skin_rest = (matrix @ skin.vertices.astype(np.float32)).astype(np.float32)
    skin_colour, skin_mat = _skin_paint(char, skin_rest, matrix)
    pieces: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = [
        ("skin", skin_rest, skin_faces, skin_colour, skin_mat)
    ]
    tongue = char.parts["tongue"]
    pieces.append(("tongue", tongue.vertices, tongue.faces, np.tile(TONGUE, (len(tongue.vertices), 1)),
                   np.full(len(tongue.vertices), MAT_TONGUE, np.float32)))  # fmt: skip
    teeth_rest = {}
    for name in ("upper_teeth", "lower_teeth"):
        arch = build_arch(char.parts[name].vertices.astype(np.float64), upper=name == "upper_teeth")
        teeth_rest[name] = char.parts[name].vertices.astype(np.float64)
        mat = np.where(arch.gum, MAT_GUM, MAT_TEETH).astype(np.float32)
        pieces.append((name, arch.vertices, arch.faces, arch.colours, mat))
    for name in EYE_PARTS:
        eye = char.parts[name]
        pieces.append((name, eye.vertices, eye.faces, np.tile(EYE_WHITE, (len(eye.vertices), 1)),
                       np.full(len(eye.vertices), MAT_EYE, np.float32)))  # fmt: skip
    slices, start = {}, 0
    for name, verts, *_ in pieces:
        slices[name] = slice(start, start + len(verts))
        start += len(verts)
    rest = np.concatenate([p[1] for p in pieces]).astype(np.float32)
    faces = np.concatenate([p[2] + slices[p[0]].start for p in pieces]).astype(np.int64)
    eye_dir = np.zeros_like(rest)
    for e, name in enumerate(EYE_PARTS):
        rel = rest[slices[name]] - char.eye_pivots[e]
        eye_dir[slices[name]] = rel / np.linalg.norm(rel, axis=1, keepdims=True)
    lash = np.full((len(rest), 2), 99.0, np.float32)
    lash[slices["skin"]] = _lid_margins(char, skin_rest)
    return Dressed(
        rest=rest,
        faces=faces,
        colour=np.concatenate([p[3] for p in pieces]).astype(np.float32),
        material=np.concatenate([p[4] for p in pieces]).astype(np.float32),
        lash=lash,
        eye_dir=eye_dir.astype(np.float32),
        skin_map=matrix.tocsr(),
        slices=slices,
        teeth_rest=teeth_rest,
        clip_y=clip_y,
    )
