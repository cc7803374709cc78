"""Zip the facecast Blender extension (``make blender-addon``): ``build/facecast-<version>.zip`` with
blender_manifest.toml at the archive's root, as Blender 4.2+ installs extensions (Install from Disk)."""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "facecast_blender"


def build(out_dir: Path) -> Path:
    """Write the zip into ``out_dir``; returns its path."""
    version = re.search(r'^version = "([^"]+)"', (SOURCE / "blender_manifest.toml").read_text(), re.M).group(1)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"facecast-{version}.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(SOURCE.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                archive.write(path, path.relative_to(SOURCE).as_posix())
    return target


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("build")))
