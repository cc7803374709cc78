"""The character as binary buffers for the browser: one merged mesh, per-vertex attributes and a morph texture.

``/character.json`` describes ``/character.bin`` (little-endian arrays, 4-byte aligned):

* ``position``, ``normal``, ``colour`` [V, 3] float32 (``parts`` gives each part's vertex and index range),
  ``eye_dir`` [V, 3] float32 (eye-local rest direction on the eyeballs, zero elsewhere: the iris is drawn from it);
* ``index`` [F * 3] uint32 triangles;
* ``morph`` float16 RGB texels of a ``width`` x ``height`` texture: texel ``(k * V + v) * 2`` holds the position
  delta of shape ``k`` at vertex ``v``, the next texel its normal delta. Shapes are the 52 ARKit poses then the
  16 tongue poses (``shape_names``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facecast.characters.character import EYE_PARTS, Character
from facecast.characters.geometry import vertex_normals
from facecast.characters.render import BACKGROUND, IRIS, IRIS_DEG, LIPS, MOUTH, PART_COLOURS, PUPIL, PUPIL_DEG, SKIN
from facecast.constants import ARKIT_NAMES, TONGUE_NAMES

FORMAT = "facecast.character/1"
TEXTURE_WIDTH = 2048
TEXELS_PER_VERTEX = 2

MATERIALS = {"iris": IRIS, "pupil": PUPIL, "iris_deg": IRIS_DEG, "pupil_deg": PUPIL_DEG, "background": BACKGROUND}
"""Eye and background colours for the shaders (the preview renderer's, so both look alike)."""


@dataclass
class CharacterPayload:
    """``meta`` (served as /character.json) and ``blob`` (/character.bin)."""

    meta: dict
    blob: bytes


def _colours(char: Character, name: str) -> np.ndarray:
    part = char.parts[name]
    if name != "skin":
        return np.tile(np.asarray(PART_COLOURS[name], np.float32), (len(part.vertices), 1))
    n = len(part.vertices)
    lips = char.skin_regions.get("lips", np.zeros(n, np.float32))[:, None]
    mouth = char.skin_regions.get("mouth", np.zeros(n, np.float32))[:, None]
    colour = np.asarray(SKIN) * (1 - lips) + np.asarray(LIPS) * lips
    return (colour * (1 - mouth) + np.asarray(MOUTH) * mouth).astype(np.float32)


def _part_morphs(char: Character, name: str) -> np.ndarray:
    """[K, V, 2, 3] position and normal deltas of one part for the 52 ARKit then 16 tongue shapes."""
    part = char.parts[name]
    v = len(part.vertices)
    deltas = np.zeros((len(ARKIT_NAMES) + len(TONGUE_NAMES), v, 3), np.float32)
    deltas[: len(ARKIT_NAMES)] = char.arkit_deltas[name]
    if name == "tongue":
        deltas[len(ARKIT_NAMES) :] = char.tongue_deltas
    out = np.zeros((len(deltas), v, 2, 3), np.float32)
    out[:, :, 0] = deltas
    base = part.vertices.astype(np.float64)
    rest = vertex_normals(base, part.faces)
    for k in np.flatnonzero(np.abs(deltas).reshape(len(deltas), -1).max(axis=1) > 0):
        out[k, :, 1] = vertex_normals(base + deltas[k], part.faces) - rest
    return out


def build_payload(char: Character) -> CharacterPayload:
    """Merge the character's parts into the buffers described in the module docstring."""
    names = list(char.parts)
    arrays: dict[str, list[np.ndarray]] = {k: [] for k in ("position", "normal", "colour", "eye_dir", "index")}
    morphs, parts_meta = [], []
    first_vertex = first_index = 0
    for name in names:
        part = char.parts[name]
        v, f = len(part.vertices), len(part.faces)
        arrays["position"].append(part.vertices.astype(np.float32))
        arrays["normal"].append(vertex_normals(part.vertices.astype(np.float64), part.faces).astype(np.float32))
        arrays["colour"].append(_colours(char, name))
        eye_dir = np.zeros((v, 3), np.float32)
        if name in EYE_PARTS:
            rel = part.vertices - char.eye_pivots[EYE_PARTS.index(name)]
            eye_dir = (rel / np.maximum(np.linalg.norm(rel, axis=1, keepdims=True), 1e-9)).astype(np.float32)
        arrays["eye_dir"].append(eye_dir)
        arrays["index"].append((part.faces + first_vertex).astype(np.uint32))
        morphs.append(_part_morphs(char, name))
        parts_meta.append(
            {
                "name": name,
                "first_vertex": first_vertex,
                "vertex_count": v,
                "first_index": first_index,
                "index_count": 3 * f,
            }
        )
        first_vertex += v
        first_index += 3 * f
    num_vertices = first_vertex
    morph = np.concatenate(morphs, axis=1)  # [K, V, 2, 3]
    texels = morph.shape[0] * num_vertices * TEXELS_PER_VERTEX
    height = -(-texels // TEXTURE_WIDTH)
    texture = np.zeros((TEXTURE_WIDTH * height, 3), np.float16)
    texture[:texels] = morph.reshape(-1, 3).astype(np.float16)

    chunks, buffers, offset = [], {}, 0
    merged = {k: np.concatenate(v) for k, v in arrays.items()}
    merged["morph"] = texture
    for key, arr in merged.items():
        data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        buffers[key] = {
            "offset": offset,
            "length": int(arr.size),
            "type": arr.dtype.name,
            "components": int(arr.shape[1]) if arr.ndim == 2 else 1,
        }
        pad = -len(data) % 4
        chunks.append(data + b"\0" * pad)
        offset += len(data) + pad
    skin = char.skin.vertices
    lo, hi = skin.min(axis=0), skin.max(axis=0)
    mouth = skin[np.concatenate([char.lip_upper, char.lip_lower])].mean(axis=0)
    meta = {
        "format": FORMAT,
        "name": char.name,
        "licence": char.info.get("licence", ""),
        "vertex_count": num_vertices,
        "index_count": int(merged["index"].size),
        "shape_names": list(ARKIT_NAMES) + list(TONGUE_NAMES),
        "parts": parts_meta,
        "eye_parts": list(EYE_PARTS),
        "eye_pivots": char.eye_pivots.astype(float).tolist(),
        "bounds": {"min": lo.astype(float).tolist(), "max": hi.astype(float).tolist()},
        "mouth": mouth.astype(float).tolist(),
        "texture": {"width": TEXTURE_WIDTH, "height": int(height), "texels_per_vertex": TEXELS_PER_VERTEX},
        "materials": MATERIALS,
        "buffers": buffers,
    }
    return CharacterPayload(meta, b"".join(chunks))
