"""Writers for animation results, by format name (``facecast animate --formats``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from facecast.animation import Animation
from facecast.export.csv import write_csv
from facecast.export.gltf import write_gltf
from facecast.export.json import write_json
from facecast.export.metahuman import write_metahuman_csv
from facecast.export.npz import write_npz_animation
from facecast.export.usd import write_usd
from facecast.export.video import write_mp4

Writer = Callable[[Animation, Path], Path]

WRITERS: dict[str, tuple[str, Writer]] = {
    "json": (".json", write_json),
    "csv": (".csv", write_csv),
    "npz": (".npz", write_npz_animation),
    "gltf": (".glb", write_gltf),
    "usd": (".usdc", write_usd),
    "mp4": (".mp4", write_mp4),
    "metahuman": ("_metahuman.csv", write_metahuman_csv),
}
"""format name -> (file suffix, writer)."""

DEFAULT_FORMATS = ("json", "csv")


def write(anim: Animation, stem: Path, formats: list[str] | tuple[str, ...] = DEFAULT_FORMATS) -> list[Path]:
    """Write ``anim`` as ``stem + suffix`` for each format; returns the paths."""
    unknown = [f for f in formats if f not in WRITERS]
    if unknown:
        raise ValueError(f"unknown output format {', '.join(unknown)}; choose from {', '.join(WRITERS)}")
    paths = []
    for name in formats:
        suffix, writer = WRITERS[name]
        paths.append(writer(anim, Path(str(stem) + suffix)))
    return paths
