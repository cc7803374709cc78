"""Animation caches: per-frame vertex positions [F, V, 3] in ``.npy``, ``.pc2`` or Maya ``.xml`` + ``.mc`` files.

- ``.npy``: a float array [F, V, 3] (loaded without pickle, memory-mapped for header checks).
- ``.pc2`` (Blender / 3ds Max point cache): header ``'POINTCACHE2\\0'``, i32 version, i32 points, f32 start
  frame, f32 sample rate, i32 samples, then little-endian float32 xyz per point per sample.
- Maya ``.xml`` + ``.mc`` "OneFile" caches in the 32-bit IFF layout (``FOR4`` blocks, big-endian), one
  ``MYCH`` block per frame holding a ``FVCA`` (float) or ``DVCA`` (double) position array. Other Maya cache flavours
  (one file per frame, 64-bit ``FOR8``) are refused with a message asking for ``.npy`` or ``.pc2``.
"""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from facecast.fileio import atomic_write

CACHE_SUFFIXES = (".npy", ".pc2", ".xml")
PC2_HEADER = struct.Struct("<12siiffi")
PC2_MAGIC = b"POINTCACHE2\0"


class CacheError(ValueError):
    """An animation cache is missing, unreadable or in an unsupported format."""


def cache_shape(path: Path) -> tuple[int, int]:
    """(frames, vertices) of a cache, read from its header where the format allows."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        arr = _load_npy(path, mmap=True)
        return int(arr.shape[0]), int(arr.shape[1])
    if suffix == ".pc2":
        _, points, frames = _pc2_header(path)
        return frames, points
    data = read_cache(path)
    return int(data.shape[0]), int(data.shape[1])


def read_cache(path: Path) -> np.ndarray:
    """The whole cache as float32 [F, V, 3]."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.asarray(_load_npy(path, mmap=False), dtype=np.float32)
    if suffix == ".pc2":
        return read_pc2(path)
    if suffix in (".xml", ".mc"):
        return read_maya_cache(path.with_suffix(".xml"))
    raise CacheError(f"{path}: unsupported animation cache format {suffix!r}; convert it to .npy or .pc2")


def _load_npy(path: Path, mmap: bool) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise CacheError(f"{path}: file is missing") from None
    except ValueError as exc:
        raise CacheError(f"{path}: not a readable .npy array ({exc})") from None
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype.kind != "f":
        raise CacheError(f"{path}: expected a float [frames, vertices, 3] array, got {arr.dtype} {arr.shape}")
    return arr


def _pc2_header(path: Path) -> tuple[int, int, int]:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(PC2_HEADER.size)
    except FileNotFoundError:
        raise CacheError(f"{path}: file is missing") from None
    if len(raw) < PC2_HEADER.size:
        raise CacheError(f"{path}: too short for a .pc2 header")
    magic, version, points, _start, _rate, frames = PC2_HEADER.unpack(raw)
    if magic != PC2_MAGIC:
        raise CacheError(f"{path}: not a .pc2 point cache (bad signature)")
    if points < 1 or frames < 0:
        raise CacheError(f"{path}: .pc2 header holds {points} points and {frames} frames")
    return version, points, frames


def read_pc2(path: Path) -> np.ndarray:
    """A ``.pc2`` point cache as float32 [F, V, 3]."""
    path = Path(path)
    _, points, frames = _pc2_header(path)
    expected = PC2_HEADER.size + frames * points * 12
    size = path.stat().st_size
    if size < expected:
        raise CacheError(f"{path}: header announces {frames} frames x {points} points but the file is truncated")
    data = np.fromfile(path, dtype="<f4", count=frames * points * 3, offset=PC2_HEADER.size)
    return data.reshape(frames, points, 3).astype(np.float32)


def write_pc2(path: Path, frames: np.ndarray, sample_rate: float = 1.0, start_frame: float = 0.0) -> None:
    """Write [F, V, 3] positions as a ``.pc2`` point cache (atomically)."""
    frames = np.asarray(frames, dtype="<f4")
    if frames.ndim != 3 or frames.shape[2] != 3:
        raise ValueError(f"point cache frames must be [F, V, 3], got {frames.shape}")
    header = PC2_HEADER.pack(PC2_MAGIC, 1, frames.shape[1], start_frame, sample_rate, frames.shape[0])
    atomic_write(Path(path), lambda fh: (fh.write(header), fh.write(frames.tobytes())))


def _iff_chunks(data: bytes, start: int, end: int, path: Path):
    """Yield (tag, payload start, payload end) of the FOR4-layout chunks in data[start:end]."""
    pos = start
    while pos + 8 <= end:
        tag = data[pos : pos + 4]
        (size,) = struct.unpack(">I", data[pos + 4 : pos + 8])
        body = pos + 8
        if body + size > end:
            raise CacheError(f"{path}: Maya cache chunk {tag!r} runs past the end of the file")
        yield tag, body, body + size
        pos = body + ((size + 3) & ~3)


def read_maya_cache(xml_path: Path) -> np.ndarray:
    """A Maya "OneFile" cache (``.xml`` description + ``.mc`` data) as float32 [F, V, 3]."""
    xml_path = Path(xml_path)
    mc_path = xml_path.with_suffix(".mc")
    try:
        root = ET.parse(xml_path).getroot()
    except FileNotFoundError:
        raise CacheError(f"{xml_path}: file is missing") from None
    except ET.ParseError as exc:
        raise CacheError(f"{xml_path}: not a valid Maya cache description ({exc})") from None
    kind = root.find("cacheType")
    if kind is not None and kind.get("Type", "OneFile") != "OneFile":
        raise CacheError(
            f"{xml_path}: Maya cache type {kind.get('Type')!r} is not supported; export 'one file' caches or "
            "convert them to .npy / .pc2"
        )
    try:
        data = mc_path.read_bytes()
    except FileNotFoundError:
        raise CacheError(f"{mc_path}: file is missing (needed by {xml_path.name})") from None
    if data[:4] == b"FOR8":
        raise CacheError(f"{mc_path}: 64-bit (FOR8) Maya caches are not supported; convert to .npy or .pc2")
    if data[:4] != b"FOR4":
        raise CacheError(f"{mc_path}: not a Maya cache (no FOR4 header)")
    frames: list[np.ndarray] = []
    for tag, lo, hi in _iff_chunks(data, 0, len(data), mc_path):
        if tag != b"FOR4" or data[lo : lo + 4] != b"MYCH":
            continue
        for sub, slo, shi in _iff_chunks(data, lo + 4, hi, mc_path):
            if sub == b"FVCA":
                frames.append(np.frombuffer(data[slo:shi], ">f4").reshape(-1, 3).astype(np.float32))
                break
            if sub == b"DVCA":
                frames.append(np.frombuffer(data[slo:shi], ">f8").reshape(-1, 3).astype(np.float32))
                break
    if not frames:
        raise CacheError(f"{mc_path}: no position data (FVCA/DVCA) found")
    if len({f.shape for f in frames}) != 1:
        raise CacheError(f"{mc_path}: frames hold different vertex counts")
    return np.stack(frames)


def write_maya_cache(xml_path: Path, frames: np.ndarray, fps: float = 30.0) -> None:
    """Write [F, V, 3] positions as a Maya OneFile cache (float32 ``FVCA``); used to make test fixtures."""
    xml_path = Path(xml_path)
    frames = np.asarray(frames, dtype=">f4")
    ticks = int(round(6000.0 / fps))

    def chunk(tag: bytes, payload: bytes) -> bytes:
        pad = (-len(payload)) % 4
        return tag + struct.pack(">I", len(payload)) + payload + b"\0" * pad

    header = chunk(b"FOR4", b"CACH" + chunk(b"VRSN", b"0.1\0") + chunk(b"STIM", struct.pack(">i", 0)))
    blocks = [header]
    for i, frame in enumerate(frames):
        body = b"MYCH" + chunk(b"TIME", struct.pack(">i", i * ticks))
        body += chunk(b"CHNM", b"meshShape\0") + chunk(b"SIZE", struct.pack(">I", frame.shape[0]))
        body += chunk(b"FVCA", frame.tobytes())
        blocks.append(chunk(b"FOR4", body))
    atomic_write(xml_path.with_suffix(".mc"), lambda fh: fh.write(b"".join(blocks)))
    end = (len(frames) - 1) * ticks
    text = (
        '<?xml version="1.0"?>\n<Autodesk_Cache_File>\n  <cacheType Type="OneFile" Format="mcc"/>\n'
        f'  <time Range="0-{end}"/>\n  <cacheTimePerFrame TimePerFrame="{ticks}"/>\n'
        '  <cacheVersion Version="2.0"/>\n  <Channels>\n'
        '    <channel0 ChannelName="meshShape" ChannelType="FloatVectorArray" ChannelInterpretation="positions"'
        f' SamplingType="Regular" SamplingRate="{ticks}" StartTime="0" EndTime="{end}"/>\n'
        "  </Channels>\n</Autodesk_Cache_File>\n"
    )
    atomic_write(xml_path, lambda fh: fh.write(text.encode()))
