"""Helpers for tests with hostile files: FIFOs, devices, symbolic links and zip bombs, run so a hang fails fast."""

from __future__ import annotations

import io
import os
import resource
import shutil
import stat
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

PACK_FILES = ("bs_skin.npz", "bs_skin_config.json", "bs_tongue.npz", "bs_tongue_config.json", "implicit_emo_db.npz",
              "model.json", "model_config.json", "model_data.npz", "network.onnx", "network_info.json",
              "trt_info.json")  # fmt: skip
"""Every file of the packs ``make_pack`` writes (tests check this against a real one)."""
PACK_NPZ = tuple(f for f in PACK_FILES if f.endswith(".npz"))
MiB = 1 << 20
GiB = 1 << 30


def link_or_copy(src: str, dst: str) -> object:
    """``copytree``'s copy function: the network graph is hard-linked (fast), everything else copied."""
    if src.endswith(".onnx"):
        try:
            return os.link(src, dst)
        except OSError:
            pass
    return shutil.copy2(src, dst)


def copy_pack(src: Path, dst: Path) -> Path:
    """A writable copy of a pack with no symbolic link in it."""
    shutil.copytree(src, dst, copy_function=link_or_copy)
    return dst


def fails_fast(fn: Callable[[], object], timeout: float = 30.0, fifos: tuple[Path, ...] = ()) -> object:
    """Run ``fn`` in a thread; return what it returns or raise what it raises, or fail the test when it is still
    running after ``timeout`` seconds (after opening each FIFO in ``fifos`` for writing, which unblocks a reader)."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        for fifo in fifos:
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        thread.join(5)
        pytest.fail(f"still running after {timeout} s: a hostile file made it hang")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


def run_limited(code: str, *, timeout: float = 120.0, memory: int = 3 * GiB) -> subprocess.CompletedProcess:
    """``python -c code`` with its address space capped at ``memory`` bytes: a test of a defence that failed must
    not take the machine's memory with it."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    paths = [str(Path(__file__).parent), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, preexec_fn=limit, env=env
    )


READERS_SCRIPT = """
import sys
from facecast.audio import load_audio, stream_audio
from facecast.fileio import read_json, read_npz
for name, reader in [("read_json", read_json), ("read_npz", read_npz), ("load_audio", load_audio),
                     ("stream_audio", lambda p: list(stream_audio(p)))]:
    try:
        reader(sys.argv[1])
        print(name, "ACCEPTED")
    except Exception as exc:
        print(name, type(exc).__name__, " ".join(str(exc).split()))
"""


def readers_on(path: Path, timeout: float = 60.0) -> dict[str, str]:
    """What each reader (JSON, npz, audio, streamed audio) says of ``path``, asked in a child process with capped
    memory and a timeout (a reader that hangs or reads forever fails the test, not the run)."""
    proc = run_limited(READERS_SCRIPT.replace("sys.argv[1]", repr(str(path))), timeout=timeout, memory=2 * GiB)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return dict(line.split(" ", 1) for line in proc.stdout.strip().splitlines())


LOAD_SCRIPT = """
import resource, time
from facecast.pack import PackError, load_pack
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.monotonic()
try:
    load_pack(PACK)
    print("ACCEPTED")
except PackError as exc:
    print("REFUSED", " ".join(str(exc).split()))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before, time.monotonic() - start)
"""


def load_pack_in_child(pack: Path, memory: int = 2 * GiB, timeout: float = 120.0) -> tuple[str, int, float]:
    """``load_pack`` in a child process with capped memory: (``REFUSED message`` or ``ACCEPTED``, how much its
    peak resident size grew in KiB, seconds taken). For files that, undefended, read forever or inflate."""
    proc = run_limited(LOAD_SCRIPT.replace("PACK", repr(str(pack))), timeout=timeout, memory=memory)
    assert proc.returncode == 0, proc.stderr[-2000:]
    said, numbers = proc.stdout.strip().rsplit("\n", 1)
    grown, seconds = numbers.split()
    return said, int(grown), float(seconds)


def make_fifo(path: Path) -> Path:
    if path.exists() or path.is_symlink():
        path.unlink()
    os.mkfifo(path)
    return path


def make_char_device(path: Path) -> Path:
    """A character device node like ``/dev/zero`` at ``path``; skips the test where nodes cannot be made."""
    if path.exists() or path.is_symlink():
        path.unlink()
    try:
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 5))
    except (OSError, AttributeError) as exc:
        pytest.skip(f"cannot make a device node here: {exc}")
    return path


def make_socket(path: Path) -> Path:
    import socket

    if path.exists() or path.is_symlink():
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
    except OSError as exc:  # path too long for AF_UNIX
        pytest.skip(f"cannot bind a socket here: {exc}")
    finally:
        sock.close()
    return path


def replace_with_link(path: Path, target: str | Path) -> Path:
    if path.exists() or path.is_symlink():
        path.unlink()
    path.symlink_to(target)
    return path


# ------------------------------------------------------------------------------------------------------------
# zip bombs, written by hand: a deflated member of gigabytes of zeros costs about 1 KB per MiB


def npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


@lru_cache(maxsize=8)
def deflated_zeros(header: bytes, mib: int) -> tuple[bytes, int, int]:
    """(raw deflate stream, crc32, size) of ``header`` followed by ``mib`` MiB of zeros, built in about a second
    for 3 GiB: after a full flush each MiB of zeros deflates to the same bytes."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(MiB)
    head = comp.compress(header) + comp.flush(zlib.Z_FULL_FLUSH)
    block = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(header)
    for _ in range(mib):
        crc = zlib.crc32(zeros, crc)
    return head + block * mib + comp.flush(), crc, len(header) + mib * MiB


def write_zip(path: Path, members: list[tuple[str, bytes, int, int, int]]) -> Path:
    """A zip of ``(name, data, crc32, uncompressed size, method)`` members (method 0 stored, 8 deflated)."""
    out, central = bytearray(), bytearray()
    for name, data, crc, size, method in members:
        raw = name.encode()
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(data), size, len(raw), 0)
        out += raw + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, crc, len(data), size,
                               len(raw), 0, 0, 0, 0, 0, offset) + raw  # fmt: skip
    out += central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(out), 0)
    path.write_bytes(bytes(out))
    return path


def stored(name: str, array: np.ndarray) -> tuple[str, bytes, int, int, int]:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asanyarray(array), allow_pickle=False)
    data = buf.getvalue()
    return f"{name}.npy", data, zlib.crc32(data), len(data), 0


def zeros_member(name: str, shape: tuple[int, ...], descr: str = "<f4") -> tuple[str, bytes, int, int, int]:
    """A deflated member declaring ``shape`` and holding that many bytes of zeros (a whole number of MiB)."""
    nbytes = int(np.prod(shape)) * np.dtype(descr).itemsize
    assert nbytes % MiB == 0, "bomb members hold whole MiB"
    data, crc, size = deflated_zeros(npy_header(shape, descr), nbytes // MiB)
    return f"{name}.npy", data, crc, size, 8


def npz_with(path: Path, *extra: tuple[str, bytes, int, int, int], drop: tuple[str, ...] = ()) -> Path:
    """Rewrite the ``.npz`` at ``path`` (its arrays stored) with ``extra`` members added (``drop``: left out)."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files if k not in drop}
    return write_zip(path, [stored(k, v) for k, v in arrays.items()] + list(extra))


def peak_rss_bytes() -> int:
    """This process's peak resident size so far (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
