"""Audio that libsndfile cannot read, decoded with PyAV (FFmpeg): AAC and M4A, the sound of MP4, MOV, MKV and WebM
videos, and whatever else FFmpeg knows, as source-rate mono blocks (the caller resamples).

PyAV is optional (the ``preview`` extra installs it); without it such files are refused with the command that adds
it. Only the first audio stream is decoded; video streams are skipped without being decoded. Channels are
averaged, exactly as for files libsndfile reads.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

INSTALL_HINT = 'pip install "facecast[preview]"'
"""What adds PyAV."""


def container_kind(head: bytes) -> str | None:
    """The container a file's first bytes announce, when it is one that only FFmpeg reads here; else None."""
    if len(head) >= 12 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "MP4/M4A/MOV"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "Matroska/WebM"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return "AAC (ADTS)"
    if head[:5] == b"#!AMR":
        return "AMR"
    if head[:4] == b"\x30\x26\xb2\x75":
        return "ASF/WMA"
    return None


def available() -> bool:
    """Whether PyAV is installed."""
    return importlib.util.find_spec("av") is not None


def _channels(frame) -> np.ndarray:
    """A decoded frame as float32 [channels, samples]."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        data = data.reshape(channels, -1)
    else:  # interleaved: one row of samples * channels
        data = data.reshape(-1, channels).T
    kind = data.dtype.kind
    if kind == "f":
        return data.astype(np.float32, copy=False)
    if kind in "iu":  # integer PCM: scale to [-1, 1)
        info = np.iinfo(data.dtype)
        scale = float(-info.min) if kind == "i" else (info.max + 1) / 2.0
        offset = 0.0 if kind == "i" else scale
        return ((data.astype(np.float32) - offset) / scale).astype(np.float32)
    raise ValueError(f"unsupported sample format {frame.format.name}")


def decode_blocks(fh: BinaryIO, block_seconds: float = 10.0) -> Iterator[tuple[np.ndarray, int]]:
    """Decode the first audio stream of an open file: (mono float32 block, its sample rate), about
    ``block_seconds`` per block. Raises ``ValueError`` for a file with no audio stream, a sample rate that changes
    mid-stream, or anything FFmpeg cannot decode (its reason in the message)."""
    import av

    try:
        container = av.open(fh, mode="r")
    except Exception as exc:  # av's errors derive from several bases
        raise ValueError(_reason(exc)) from None
    with container:
        streams = [s for s in container.streams if s.type == "audio"]
        if not streams:
            raise ValueError("it holds no audio stream (a video without sound?)")
        stream = streams[0]
        rate_in = 0
        pending: list[np.ndarray] = []
        held = 0
        try:
            for packet in container.demux(stream):
                for frame in packet.decode():
                    if not rate_in:
                        rate_in = int(frame.sample_rate)
                        if rate_in <= 0:
                            raise ValueError(f"its sample rate is {rate_in}")
                    elif int(frame.sample_rate) != rate_in:
                        raise ValueError(f"its sample rate changes mid-stream ({rate_in} -> {frame.sample_rate} Hz)")
                    mono = _channels(frame).mean(axis=0, dtype=np.float32)
                    pending.append(mono)
                    held += len(mono)
                    if held >= block_seconds * rate_in:
                        yield _joined(pending), rate_in
                        pending, held = [], 0
        except ValueError:
            raise
        except Exception as exc:
            raise ValueError(_reason(exc)) from None
        if pending or not rate_in:
            yield _joined(pending), rate_in


def _joined(blocks: list[np.ndarray]) -> np.ndarray:
    return np.ascontiguousarray(np.concatenate(blocks) if blocks else np.zeros(0, np.float32), dtype=np.float32)


def _reason(exc: BaseException) -> str:
    """FFmpeg's reason, on one short line, without the file name it may repeat."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())[:200].rstrip(".")
