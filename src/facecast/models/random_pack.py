"""Where facecast keeps its caches, and the model it uses when none is given.

Until facecast ships a trained default model, the default is a Claire-layout pack (4 transformer layers, 140 skin
and 10 tongue PCA shapes) with random weights, built once into the cache. Its motion is meaningless; the CLI says
so whenever it is used.
"""

from __future__ import annotations

import os
from pathlib import Path

from facecast.fileio import building_folder, cache_dir

RANDOM_MARKER = "RANDOM_WEIGHTS"
RANDOM_PACK_NAME = "random-claire-v1"


def is_random_pack(path: str | os.PathLike) -> bool:
    """True for packs made with random weights (they carry a marker file)."""
    path = Path(path)
    root = path if path.is_dir() else path.parent
    return (root / RANDOM_MARKER).exists()


def random_claire_pack() -> Path:
    """The random-weight Claire-layout pack, built on first use (needs torch)."""
    target = cache_dir() / RANDOM_PACK_NAME
    if (target / "model.json").exists() and (target / RANDOM_MARKER).exists():
        return target
    try:
        import torch  # noqa: F401
    except ImportError:
        raise RuntimeError(
            "no model given and the built-in random Claire-layout model must be built with torch: "
            'pip install torch==2.13.0 "facecast[train]", or pass -m PATH to a model folder'
        ) from None
    from facecast.models.testing import make_pack

    with building_folder(target) as tmp:
        make_pack(
            tmp,
            num_layers=4,
            num_shapes_skin=140,
            num_shapes_tongue=10,
            num_verts_skin=2000,
            num_verts_tongue=200,
            actor="random-claire",
            seed=2025,
        )
        (tmp / RANDOM_MARKER).write_text("This pack has random weights: its motion is meaningless.\n")
    return target
