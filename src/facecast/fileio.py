"""Safe reading and atomic writing of the files facecast handles.

Readers never unpickle and report one clear error naming the file; writers write to a temporary name in the
same folder and rename, so a failure never leaves a half-written file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

MAX_JSON_BYTES = 16 * 1024 * 1024


class FileFormatError(ValueError):
    """A file facecast reads is missing, unreadable or malformed."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def read_json(path: Path) -> Any:
    """Parse a JSON file with one clear error naming the file."""
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise FileFormatError([f"{path}: JSON file is larger than {MAX_JSON_BYTES} bytes"])
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise FileFormatError([f"{path}: file is missing"]) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FileFormatError([f"{path}: not valid JSON ({exc})"]) from None
    except OSError as exc:
        raise FileFormatError([f"{path}: cannot read ({exc.strerror or exc})"]) from None


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` without pickle; object arrays are refused."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise FileFormatError([f"{path}: file is missing"]) from None
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise FileFormatError([f"{path}: holds pickled objects, which facecast never loads"]) from None
        raise FileFormatError([f"{path}: not a valid .npz file ({exc})"]) from None
    except Exception as exc:  # zipfile.BadZipFile, EOFError, OSError...
        raise FileFormatError([f"{path}: not a valid .npz file ({exc.__class__.__name__}: {exc})"]) from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def atomic_write(path: Path, write) -> None:
    """Call ``write(fh)`` on a temporary file beside ``path``, then rename it over ``path``.

    A failure leaves ``path`` as it was (absent or the previous version), never half-written. The file gets
    the usual permissions (0666 minus the umask), not the private mode of temporary files.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path: Path, obj: Any) -> None:
    """Write pretty JSON atomically."""
    atomic_write(Path(path), lambda fh: fh.write((json.dumps(obj, indent=4) + "\n").encode()))


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an uncompressed ``.npz`` atomically."""
    atomic_write(Path(path), lambda fh: np.savez(fh, **arrays))


def copy_file(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` atomically."""

    def write(fh) -> None:
        with open(src, "rb") as inp:
            while chunk := inp.read(1 << 22):
                fh.write(chunk)

    atomic_write(dst, write)


def cache_dir() -> Path:
    """``$FACECAST_CACHE``, else ``$XDG_CACHE_HOME/facecast``, else ``~/.cache/facecast``."""
    env = os.environ.get("FACECAST_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "facecast"
