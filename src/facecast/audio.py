"""Audio input and output: loading, downmixing, resampling and 16-bit PCM conversion.

Every array returned here is a contiguous 1-D ``float32`` array of samples in about [-1, 1].
"""

from __future__ import annotations

import math
import os
import secrets
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from numbers import Real
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from facecast import audio_av
from facecast.constants import SAMPLE_RATE
from facecast.fileio import FileFormatError, file_kind, open_regular

__all__ = [
    "AudioError",
    "duration_seconds",
    "float_to_pcm16",
    "float_to_pcm16_bytes",
    "load_audio",
    "pcm16_to_float",
    "resample",
    "save_wav",
    "to_mono",
]

_PCM16_SCALE_IN = 32768.0
_PCM16_SCALE_OUT = 32767.0


class AudioError(ValueError):
    """A user error about an audio input; the message names the file and says what is wrong."""


def _check_rate(rate: object, name: str) -> float:
    """Return ``rate`` as a float after checking it is a finite positive number."""
    if isinstance(rate, bool) or not isinstance(rate, Real):
        raise TypeError(f"{name} must be a number, got {type(rate).__name__}")
    value = float(rate)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {rate!r}")
    return value


def to_mono(x: np.ndarray) -> np.ndarray:
    """Downmix ``[n]`` or ``[n, channels]`` samples to a contiguous ``[n]`` float32 array by averaging."""
    arr = np.asarray(x)
    if arr.ndim == 1:
        return np.array(arr, dtype=np.float32, order="C")
    if arr.ndim != 2:
        raise ValueError(f"audio must have shape [n] or [n, channels], got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError("audio has zero channels")
    arr = arr.astype(np.float32, copy=False)
    if arr.shape[1] == 1:
        return np.array(arr[:, 0], dtype=np.float32, order="C")
    return np.ascontiguousarray(arr.mean(axis=1, dtype=np.float32))


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample mono audio from ``sr_in`` to ``sr_out`` Hz with soxr (high quality); returns float32.

    When the rates are equal this returns a float32 copy of ``x``.
    """
    rate_in = _check_rate(sr_in, "sr_in")
    rate_out = _check_rate(sr_out, "sr_out")
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"resample expects mono audio of shape [n], got shape {arr.shape}")
    if rate_in == rate_out:
        return np.array(arr, dtype=np.float32, order="C")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if arr.size == 0:
        return np.zeros(0, dtype=np.float32)
    out = soxr.resample(arr, rate_in, rate_out, quality="HQ")
    return np.ascontiguousarray(out, dtype=np.float32)


def duration_seconds(x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Duration in seconds of ``[n]`` or ``[n, channels]`` samples at ``sample_rate`` Hz."""
    rate = _check_rate(sample_rate, "sample_rate")
    return np.shape(x)[0] / rate


def _decode_reason(exc: BaseException) -> str:
    """A short reason from a soundfile error, without the file name libsndfile repeats."""
    reason = getattr(exc, "error_string", None) or str(exc) or type(exc).__name__
    return " ".join(str(reason).split()).rstrip(".")


def _checked_path(path: str | os.PathLike[str]) -> tuple[str, str]:
    """(file name, quoted name for messages) of an existing, non-empty regular file, else AudioError.

    A FIFO, a device, a socket or a directory is refused by what it is, before anything opens it (opening a FIFO
    blocks; a device such as ``/dev/zero`` reads forever)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    name = os.fspath(path)
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    where = f"'{name}'"
    try:
        st = os.stat(name)
    except FileNotFoundError:
        raise AudioError(f"Audio file {where} does not exist.") from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise AudioError(f"Audio file {where} cannot be accessed: {reason}.") from exc
    if stat.S_ISDIR(st.st_mode):
        raise AudioError(f"Audio path {where} is a directory, not a file.")
    if not stat.S_ISREG(st.st_mode):
        raise AudioError(f"Audio path {where} is {file_kind(st.st_mode)}, not a regular file; facecast reads files.")
    if st.st_size == 0:
        raise AudioError(f"Audio file {where} is empty (0 bytes).")
    return name, where


def _open(name: str, where: str) -> BinaryIO:
    """The checked file, opened as a regular file (so it cannot have been swapped for a FIFO since the check)."""
    try:
        return open_regular(name)
    except FileFormatError as exc:
        reason = str(exc).partition(": ")[2] or str(exc)
        raise AudioError(f"Audio file {where} cannot be read: {reason}.") from None


def _decode_error(where: str, exc: BaseException | str, noise: str = "") -> AudioError:
    reason = exc if isinstance(exc, str) else _decode_reason(exc)
    if "possibly a pipe" in reason:  # libsndfile's words for any MP3 its decoder gave up on
        reason = "the MP3 data cannot be decoded" + (f" ({noise})" if noise else "")
    return AudioError(
        f"Audio file {where} is corrupt, truncated or not in a supported format (wav, flac, ogg, mp3; m4a, aac and "
        f"video sound with PyAV); the decoder reported: {reason}."
    )


_DECODE_ERRORS = (sf.SoundFileError, RuntimeError, OSError, ValueError, TypeError, EOFError)

MAX_SAMPLE = 1000.0
"""The largest sample magnitude read (60 dB above full scale): float audio is expected within about [-1, 1], and
far larger values (1e30) overflow the encoder into NaN."""

MAX_LOAD_SECONDS = 4 * 3600
"""The longest clip :func:`load_audio` holds in memory (4 hours, about 0.9 GB at 16 kHz); longer files stream
(:func:`stream_audio`, ``Model.animate_file``)."""


def check_samples(x: np.ndarray, where: str = "audio") -> np.ndarray:
    """``x`` unchanged when every sample is finite and within :data:`MAX_SAMPLE`; else :class:`AudioError` naming
    ``where`` (e.g. "Audio file 'a.wav'")."""
    if x.size:
        peak = float(np.max(np.abs(x)))
        if not math.isfinite(peak):
            raise AudioError(f"{where} contains NaN or infinite samples.")
        if peak > MAX_SAMPLE:
            raise AudioError(f"{where} holds samples up to {peak:.3g}, far outside [-1, 1] (at most {MAX_SAMPLE:g} "
                             "is read); is it scaled as 16-bit integers, or corrupt?")  # fmt: skip
    return x


def _sniff(fh: BinaryIO) -> bytes:
    head = fh.read(16)
    fh.seek(0)
    return head


def _is_mp3(head: bytes) -> bool:
    return head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


def _needs_pyav(where: str, kind: str) -> AudioError:
    return AudioError(f"Audio file {where} is {kind}; decoding it needs PyAV: {audio_av.INSTALL_HINT}")


def load_audio(path: str | os.PathLike[str], sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read an audio file as mono float32 audio at ``sample_rate`` Hz: wav, flac, ogg or mp3 with libsndfile;
    m4a, aac and the sound of mp4/mov/mkv/webm videos with PyAV when it is installed.

    Channels are averaged and the audio is resampled with soxr when its rate differs. Raises :class:`AudioError`
    naming the file when it is missing, empty, unreadable, not audio, longer than :data:`MAX_LOAD_SECONDS`, or
    holds NaN, infinite or absurdly large samples (:data:`MAX_SAMPLE`).
    """
    _check_rate(sample_rate, "sample_rate")
    blocks = list(_source_blocks(path, 600.0, MAX_LOAD_SECONDS))
    mono = blocks[0][0] if len(blocks) == 1 else np.concatenate([block for block, _ in blocks])
    return resample(mono, blocks[0][1], sample_rate)


def stream_audio(
    path: str | os.PathLike[str], sample_rate: int = SAMPLE_RATE, block_seconds: float = 10.0
) -> Iterator[np.ndarray]:
    """Decode a file block by block as mono float32 at ``sample_rate`` Hz, in bounded memory.

    The same checks as :func:`load_audio` apply, per block (a NaN in hour 2 is reported when reached), with no
    limit on the length.
    """
    _check_rate(sample_rate, "sample_rate")
    stream, rate = None, None
    blocks = _source_blocks(path, block_seconds, None)
    for block, rate_in in blocks:
        if rate is None:
            rate = rate_in
            if rate_in != sample_rate:
                stream = soxr.ResampleStream(rate_in, sample_rate, 1, "float32", "HQ")
        out = block if stream is None else stream.resample_chunk(block)
        if len(out):
            yield np.ascontiguousarray(out, dtype=np.float32)
    if stream is not None:
        tail = stream.resample_chunk(np.zeros(0, np.float32), last=True)
        if len(tail):
            yield np.ascontiguousarray(tail, dtype=np.float32)


def _source_blocks(
    path: str | os.PathLike[str], block_seconds: float, max_seconds: float | None
) -> Iterator[tuple[np.ndarray, int]]:
    """(checked mono float32 block, its sample rate) of a file, by libsndfile or PyAV; at least one sample."""
    name, where = _checked_path(path)
    with _open(name, where) as fh:
        head = _sniff(fh)
        kind = audio_av.container_kind(head)
        if kind is not None:
            if not audio_av.available():
                raise _needs_pyav(where, kind)
            blocks = audio_av.decode_blocks(fh, block_seconds)
        else:
            blocks = _sndfile_blocks(fh, where, block_seconds, _is_mp3(head))
        frames = 0
        try:
            for block, rate_in in blocks:
                frames += len(block)
                if max_seconds is not None and frames > max_seconds * rate_in:
                    raise AudioError(f"Audio file {where} is longer than {max_seconds / 3600:g} hours; animate it "
                                     "as a stream (Model.animate_file) or cut it.")  # fmt: skip
                check_samples(block, f"Audio file {where}")
                if len(block):
                    yield block, rate_in
        except ValueError as exc:
            if isinstance(exc, AudioError):
                raise
            raise _decode_error(where, str(exc)) from None
        if frames == 0:
            raise AudioError(f"Audio file {where} contains no audio frames.")


def _sndfile_blocks(fh: BinaryIO, where: str, block_seconds: float, mp3: bool) -> Iterator[tuple[np.ndarray, int]]:
    """libsndfile's decode of an open file: (mono float32 block, its sample rate)."""
    with _quiet_native_stderr(mp3) as noise:
        try:
            handle = sf.SoundFile(fh)
        except _DECODE_ERRORS as exc:
            raise _decode_error(where, exc, noise()) from None
    with handle:
        if handle.channels < 1:
            raise AudioError(f"Audio file {where} has no audio channels.")
        rate_in = handle.samplerate
        block = max(1, int(block_seconds * rate_in))
        while True:
            with _quiet_native_stderr(mp3) as noise:
                try:
                    data = handle.read(block, dtype="float32", always_2d=True)
                except _DECODE_ERRORS as exc:
                    raise _decode_error(where, exc, noise()) from None
            yield (to_mono(data) if data.shape[0] else np.zeros(0, np.float32)), rate_in
            if data.shape[0] < block:
                break


_STDERR_LOCK = threading.Lock()


@contextmanager
def _quiet_native_stderr(active: bool) -> Iterator[Callable[[], str]]:
    """While ``active``, catch what native decoders (libmpg123) print on the process's stderr; yields a function
    giving the first line caught. Python's own writes meanwhile are replayed afterwards."""
    if not active:
        yield lambda: ""
        return
    with _STDERR_LOCK, tempfile.TemporaryFile() as caught:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(caught.fileno(), 2)
        try:
            yield lambda: _first_note(caught)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            others = [line for line in _lines(caught) if not _is_decoder_note(line)]
            if others:
                sys.stderr.write("\n".join(others) + "\n")


def _lines(fh) -> list[str]:
    fh.flush()
    fh.seek(0)
    return fh.read(64 * 1024).decode("utf-8", "replace").splitlines()


def _is_decoder_note(line: str) -> bool:
    return line.startswith(("Note:", "Warning:", "[", "Error:")) or "mpg123" in line


def _first_note(fh) -> str:
    notes = [line.split(":", 1)[1].strip() for line in _lines(fh) if _is_decoder_note(line) and ":" in line]
    return notes[0][:160].rstrip(".") if notes else ""


def pcm16_to_float(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """Convert little-endian signed 16-bit PCM (raw bytes or an int16 array) to float32 in [-1, 1)."""
    if isinstance(data, np.ndarray):
        if data.dtype.kind != "i" or data.dtype.itemsize != 2:
            raise TypeError(f"PCM16 array must have dtype int16, got {data.dtype}")
        ints = data.astype(np.int16, copy=False).reshape(-1)
    elif isinstance(data, (bytes, bytearray, memoryview)):
        raw = memoryview(data).cast("B")
        if raw.nbytes % 2:
            raise ValueError(f"PCM16 data must have an even number of bytes, got {raw.nbytes}")
        ints = np.frombuffer(raw, dtype="<i2")
    else:
        raise TypeError(f"PCM16 data must be bytes or an int16 array, got {type(data).__name__}")
    return (ints.astype(np.float32) / np.float32(_PCM16_SCALE_IN)).astype(np.float32)


def float_to_pcm16(x: np.ndarray) -> np.ndarray:
    """Convert float samples to int16: clip to [-1, 1], scale by 32767 and round to nearest."""
    arr = np.asarray(x, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError("audio contains NaN or infinite samples and cannot be converted to PCM16")
    return np.rint(np.clip(arr, -1.0, 1.0) * _PCM16_SCALE_OUT).astype(np.int16)


def float_to_pcm16_bytes(x: np.ndarray) -> bytes:
    """Convert float samples to little-endian signed 16-bit PCM bytes."""
    return float_to_pcm16(x).astype("<i2", copy=False).tobytes()


def save_wav(path: str | os.PathLike[str], x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write ``[n]`` or ``[n, channels]`` float samples as a 16-bit PCM wav file.

    The data goes to a temporary file in the same folder that then replaces ``path``,
    so a failure never leaves a half-written file behind.
    """
    rate = _check_rate(sample_rate, "sample_rate")
    if rate != int(rate):
        raise ValueError(f"sample_rate must be a whole number of Hz for wav, got {sample_rate!r}")
    arr = np.asarray(x)
    if arr.ndim not in (1, 2) or (arr.ndim == 2 and arr.shape[1] == 0):
        raise ValueError(f"audio must have shape [n] or [n, channels], got shape {arr.shape}")
    pcm = float_to_pcm16(arr)
    target = Path(os.fspath(path))
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "xb") as fh:
            sf.write(fh, pcm, int(rate), format="WAV", subtype="PCM_16")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


LEVEL_BEFORE_S = 0.03
LEVEL_AFTER_S = 0.06
"""A frame's level (the quiet hold's input) covers this much audio before and after its time (seconds)."""


def level_span(lookahead_samples: int, sample_rate: int = 16000) -> tuple[int, int]:
    """Samples before and after a frame's time that its level covers (after: at most the look-ahead)."""
    before = int(round(LEVEL_BEFORE_S * sample_rate))
    after = min(int(round(LEVEL_AFTER_S * sample_rate)), max(int(lookahead_samples), 0))
    return before, after


def frame_levels(
    audio: np.ndarray, targets: np.ndarray, origin: int = 0, span: tuple[int, int] = (480, 960)
) -> np.ndarray:
    """Level (dBFS, RMS) of the audio around each frame's centre sample ``targets`` (absolute sample numbers;
    ``audio[0]`` is sample ``origin``). Samples outside the held audio are left out; a frame with none, or
    with digital silence, reads -200 dB."""
    x = np.asarray(audio, np.float32).reshape(-1)
    t = np.asarray(targets, np.int64).reshape(-1) - int(origin)
    before, after = span
    offsets = np.arange(-before, after, dtype=np.int64)
    out = np.full(len(t), -200.0)
    if not len(x):
        return out
    for lo in range(0, len(t), 256):  # bounded memory for long clips; every row is summed alike
        idx = t[lo : lo + 256, None] + offsets
        inside = (idx >= 0) & (idx < len(x))
        squares = x[np.clip(idx, 0, len(x) - 1)].astype(np.float64)
        squares *= squares
        squares *= inside
        power = squares.sum(axis=1) / np.maximum(inside.sum(axis=1), 1)
        out[lo : lo + 256] = 10.0 * np.log10(np.maximum(power, 1e-20))
    return out
