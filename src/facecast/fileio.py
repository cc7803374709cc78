"""Safe reading and atomic writing of the files facecast handles.

Readers never unpickle and report one clear error naming the file; writers write to a temporary name in the
same folder and rename, so a failure never leaves a half-written file.

Every reader opens through :func:`open_regular`: only regular files are read (a FIFO, a device, a socket or a
directory is refused by name before it is opened, so nothing blocks and nothing endless is read), sizes are
counted as bytes arrive rather than trusted from ``stat``, and ``.npz`` members are checked from their ``.npy``
headers before a byte of array data is decompressed.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import stat
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

MAX_JSON_BYTES = 16 * 1024 * 1024
MAX_NPZ_BYTES = 8 * 1024**3
"""Default cap on the uncompressed size of all members of one ``.npz`` (callers that know the format pass less)."""
MAX_PROBLEMS = 20
"""A FileFormatError's message shows at most this many problems (the rest are counted)."""
MAX_PROBLEM_CHARS = 400
"""... each cut to this many characters, on one line."""

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISLNK, "a symbolic link"),
)


def _clip(problem: str) -> str:
    one_line = " ".join(str(problem).splitlines())
    if len(one_line) <= MAX_PROBLEM_CHARS:
        return one_line
    suffix = f"... ({len(one_line)} characters)"
    return one_line[: MAX_PROBLEM_CHARS - len(suffix)] + suffix


class FileFormatError(ValueError):
    """A file facecast reads is missing, unreadable or malformed.

    ``problems`` keeps every problem found; the message shows the first :data:`MAX_PROBLEMS`, one line each, cut
    to :data:`MAX_PROBLEM_CHARS` characters (a hostile file cannot make the message endless)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        shown = [_clip(p) for p in self.problems[:MAX_PROBLEMS]]
        if len(self.problems) > MAX_PROBLEMS:
            shown.append(f"... and {len(self.problems) - MAX_PROBLEMS} more problems")
        super().__init__("\n".join(shown))


def brief(items: Any, limit: int = 5) -> str:
    """``a, b, c, ... (N in all)``: a list for a message, cut to ``limit`` items."""
    items = list(items)
    text = ", ".join(repr(i) if not isinstance(i, str) else i for i in items[:limit])
    return text + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def file_kind(mode: int) -> str:
    """What a ``st_mode`` is, in words (``a FIFO (named pipe)``, ``a character device``, ...)."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def _os_problem(path: Path | str, exc: OSError) -> FileFormatError:
    if isinstance(exc, FileNotFoundError):
        return FileFormatError([f"{path}: file is missing"])
    if exc.errno == errno.ELOOP:
        return FileFormatError([f"{path}: is a symbolic link (loop, or not followed here)"])
    return FileFormatError([f"{path}: cannot read ({exc.strerror or exc})"])


def check_regular(path: Path | str, *, follow: bool = True) -> os.stat_result:
    """``stat`` of ``path`` if it is a regular file, else FileFormatError naming what it is (nothing is opened).

    With ``follow=False`` a symbolic link is refused rather than followed."""
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        raise (_os_problem(path, exc) if isinstance(exc, OSError) else FileFormatError([f"{path}: bad name"])) from None
    if not stat.S_ISREG(st.st_mode):
        raise FileFormatError([f"{path}: is {file_kind(st.st_mode)}, not a regular file; facecast reads only files"])
    return st


def open_regular(path: Path | str, *, follow: bool = True) -> BinaryIO:
    """Open a regular file for reading in binary mode; anything else is refused with FileFormatError.

    The path is checked before it is opened (opening a FIFO blocks, opening a device can act on it) and the open
    descriptor again (the path may have been swapped in between). ``follow=False`` refuses a symbolic link as the
    last component (``O_NOFOLLOW``): callers that resolved the path themselves pass it."""
    check_regular(path, follow=follow)
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
    if not follow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise _os_problem(path, exc) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise FileFormatError([f"{path}: is {file_kind(mode)}, not a regular file; facecast reads only files"])
        if getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: Path | str, max_bytes: int, *, follow: bool = True) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` bytes (counted while reading, never from ``stat``)."""
    with open_regular(path, follow=follow) as fh:
        try:
            data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise _os_problem(path, exc) from None
    if len(data) > max_bytes:
        raise FileFormatError([f"{path}: file is larger than {max_bytes} bytes"])
    return data


def read_json(path: Path, *, max_bytes: int = MAX_JSON_BYTES, follow: bool = True) -> Any:
    """Parse a JSON file with one clear error naming the file (regular files of at most ``max_bytes`` only)."""
    data = read_bytes(path, max_bytes, follow=follow)
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise FileFormatError([f"{path}: not valid JSON ({exc})"]) from None
    except ValueError as exc:  # JSONDecodeError, and integers beyond Python's digit limit
        if "integer string conversion" in str(exc):
            raise FileFormatError([f"{path}: holds a number with more than {sys.get_int_max_str_digits()} "
                                   "digits"]) from None  # fmt: skip
        raise FileFormatError([f"{path}: not valid JSON ({exc})"]) from None
    except RecursionError:
        raise FileFormatError([f"{path}: not valid JSON (nested too deeply)"]) from None


@dataclass(frozen=True)
class NpyHeader:
    """One ``.npz`` member as its ``.npy`` header declares it (read before any array data)."""

    shape: tuple[int, ...]
    dtype: np.dtype
    nbytes: int


def _member_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> NpyHeader | str:
    """The member's header, or a problem (not an ``.npy`` array, pickled, or declaring more data than it holds)."""
    fmt = np.lib.format
    try:
        with zf.open(info) as member:
            version = fmt.read_magic(member)
            if version == (1, 0):
                shape, _, dtype = fmt.read_array_header_1_0(member)
            elif version == (2, 0):
                shape, _, dtype = fmt.read_array_header_2_0(member)
            else:
                return f"holds an .npy version {version[0]}.{version[1]} array, which facecast does not read"
            header_len = member.tell()
    except (ValueError, EOFError, OSError, zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
        return f"is not an .npy array ({exc.__class__.__name__}: {_clip(str(exc))[:120]})"
    if dtype.hasobject:
        return "pickled"
    if any(n < 0 for n in shape):
        return f"declares an impossible shape {shape}"
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > info.file_size - header_len:
        return f"declares shape {shape} ({nbytes} bytes) but holds {max(info.file_size - header_len, 0)} bytes of data"
    return NpyHeader(tuple(shape), dtype, nbytes)


def read_npz(
    path: Path,
    *,
    max_bytes: int = MAX_NPZ_BYTES,
    check: Callable[[dict[str, NpyHeader]], list[str]] | None = None,
    follow: bool = True,
) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` without pickle; object arrays are refused.

    Before anything is decompressed, every member's ``.npy`` header is read: members that are not arrays, hold
    pickled objects or declare more data than they hold are refused, as is a total above ``max_bytes``; then
    ``check`` (given every member's :class:`NpyHeader`) may return problems, which refuse the file too. So a
    small file that inflates to gigabytes is refused from its headers."""
    with open_regular(path, follow=follow) as fh:
        try:
            zf = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
            raise FileFormatError([f"{path}: not a valid .npz file ({exc.__class__.__name__}: {exc})"]) from None
        with zf:
            headers: dict[str, NpyHeader] = {}
            problems: list[str] = []
            total = 0
            for info in zf.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                header = _member_header(zf, info)
                if header == "pickled":
                    raise FileFormatError([f"{path}: holds pickled objects, which facecast never loads"])
                if isinstance(header, str):
                    problems.append(f"{path}: member {name!r} {header}")
                else:
                    headers[name] = header
                    total += header.nbytes
            if check is not None:
                problems.extend(check(headers))
            if total > max_bytes:
                problems.append(f"{path}: arrays total {total} bytes uncompressed, more than the {max_bytes} allowed")
            if problems:
                raise FileFormatError(problems)
            try:
                out = {}
                for info in zf.infolist():
                    name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                    with zf.open(info) as member:
                        out[name] = np.lib.format.read_array(member, allow_pickle=False)
                return out
            except Exception as exc:  # zipfile.BadZipFile (CRC), EOFError, OSError, zlib.error...
                raise FileFormatError(
                    [f"{path}: not a valid .npz file ({exc.__class__.__name__}: {_clip(str(exc))[:200]})"]
                ) from None


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
        with open_regular(src) as inp:
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


@contextmanager
def building_folder(target: Path) -> Iterator[Path]:
    """A new temporary folder beside ``target`` to fill; it replaces ``target`` when the block ends without error
    and is removed otherwise, so ``target`` is never seen half-built."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# --- Writing outputs: file-system errors in words, checked output locations, temporaries that clean up ---------

_REASONS = {
    errno.ENOSPC: "no space left on the file system",
    getattr(errno, "EDQUOT", -1): "disk quota exceeded",
    errno.EFBIG: "file too large (file system or file size limit)",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "is a folder, not a file",
    errno.EEXIST: "a file is in the way (a folder was needed)",
    errno.ENAMETOOLONG: "file name too long",
    errno.EIO: "input/output error",
}
FULL_ERRNOS = frozenset(e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EROFS) if e is not None)
"""Errors that stop every later write to the same place too (full, over quota, read-only)."""


class OutputError(OSError):
    """An output could not be written; ``str()`` is one line naming the file and the reason in words."""

    def __init__(self, path: Path | str, reason: str, code: int = 0) -> None:
        super().__init__(code, reason, str(path))
        self.message = f"{path}: cannot write ({reason})"

    def __str__(self) -> str:
        return self.message


def describe_os_error(exc: OSError) -> str:
    """One line for an OSError: ``PATH: reason in words`` (an OutputError's own message as it is)."""
    if isinstance(exc, OutputError):
        return str(exc)
    reason = _REASONS.get(exc.errno or 0) or exc.strerror or str(exc) or exc.__class__.__name__
    return f"{exc.filename}: {reason}" if exc.filename else reason


def output_error(path: Path | str, exc: OSError) -> OutputError:
    """``exc`` as an :class:`OutputError` naming ``path`` (an OutputError is returned as it is)."""
    if isinstance(exc, OutputError):
        return exc
    reason = _REASONS.get(exc.errno or 0) or exc.strerror or str(exc) or exc.__class__.__name__
    other = exc.filename and Path(str(exc.filename)).name != Path(path).name and not _is_temporary(exc.filename)
    return OutputError(path, f"{reason}: {exc.filename}" if other else reason, exc.errno or 0)


def _is_temporary(name: Any) -> bool:
    return Path(str(name)).name.startswith(".")


@contextmanager
def writing(path: Path | str) -> Iterator[None]:
    """Turn any OSError raised inside the block into an :class:`OutputError` naming ``path``."""
    try:
        yield
    except OSError as exc:
        raise output_error(path, exc) from None


def _probe(folder: Path) -> None:
    """Create and remove a file in ``folder``: a read-only or full file system shows here, before any work."""
    fd, name = tempfile.mkstemp(prefix=".facecast-probe.", dir=folder)
    os.close(fd)
    os.remove(name)


def output_folder(path: Path | str) -> Path:
    """Create the output folder ``path`` (and its parents) and check that files can be written in it.

    An existing file there, a file among its parents, a read-only or full file system give one
    :class:`OutputError` naming the folder, before any work."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(path, "it exists and is not a folder", errno.EEXIST)
    try:
        path.mkdir(parents=True, exist_ok=True)
        _probe(path)
    except OSError as exc:
        raise output_error(path, exc) from None
    return path


def output_file(path: Path | str) -> Path:
    """Check that the single output file ``path`` can be written: not a folder, its parent a folder (created
    when missing) in which files can be written; raises :class:`OutputError` naming it, before any work."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(path, "is a folder; name the file to write", errno.EISDIR)
    if path.name in ("", ".", ".."):
        raise OutputError(path, "names no file", errno.EINVAL)
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise OutputError(path, f"{parent} is a file, not a folder", errno.ENOTDIR)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        _probe(parent)
    except OSError as exc:
        raise output_error(path, exc) from None
    return path


def _host_tag() -> str:
    import socket

    return "".join(c for c in socket.gethostname() if c.isalnum() or c == "-")[:32] or "host"


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` may still run (unknown counts as alive; never tested on Windows)."""
    if pid <= 0 or pid == os.getpid() or os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def remove_stale_temporaries(path: Path | str, suffix: str | None = None) -> list[Path]:
    """Remove the temporaries of ``path`` (see :func:`temporary_path`) left by processes of this host that no
    longer run (killed mid-write); a live writer's temporary is kept. Returns what was removed."""
    path = Path(path)
    suffix = suffix if suffix is not None else path.suffix
    prefix, end, host = f".{path.stem}.", f".tmp{suffix}", _host_tag()
    removed: list[Path] = []
    try:
        names = [n for n in os.listdir(path.parent) if n.startswith(prefix) and n.endswith(end)]
    except OSError:
        return removed
    for name in names:
        pid_s, _, tag = name[len(prefix) : len(name) - len(end)].partition(".")
        if not pid_s.isdigit() or (tag and tag != host) or _pid_alive(int(pid_s)):
            continue
        try:
            os.remove(path.parent / name)
            removed.append(path.parent / name)
        except OSError:
            pass
    return removed


def temporary_path(path: Path | str, suffix: str | None = None) -> Path:
    """The name a writer fills before renaming it to ``path``: ``.STEM.PID.HOST.tmpSUFFIX`` beside it.

    Stale temporaries of ``path`` from dead processes are removed first. The CLI turns SIGTERM into
    KeyboardInterrupt, so the writer's ``finally`` removes its own temporary on Ctrl-C and on SIGTERM."""
    path = Path(path)
    suffix = suffix if suffix is not None else path.suffix
    remove_stale_temporaries(path, suffix)
    return path.with_name(f".{path.stem}.{os.getpid()}.{_host_tag()}.tmp{suffix}")
