"""espeak-ng through its C library (ctypes), with sample-exact phoneme events.

``espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, ..., PHONEME_EVENTS | PHONEME_IPA)`` makes the synth callback
receive, next to the PCM, a PHONEME event (IPA name, output sample index) at the start of every phone; a phone
lasts until the next event. Pauses arrive as events with an empty name, language switches as ``(en)``.
The library comes from the system (``apt-get install espeak-ng``) or from the pip wheel ``espeakng-loader``.
One engine per process: espeak-ng keeps global state, so processes (not threads) run it in parallel.

Determinism: espeak-ng carries state from one utterance to the next (pitch flutter position) and draws noise
from libc's ``rand()``, which other libraries in the process advance too, so the same text could come out
different depending on what ran before. Where ``os.fork`` exists, each utterance is therefore synthesised in a
child forked from a freshly initialised engine (which never speaks itself) after ``srand(seed)``: the output
depends only on the text, the settings and the seed.

Fork safety: forking a process that runs other threads (gRPC pollers, BLAS and torch pools) can deadlock the
child on a lock some thread held at the fork. The engine therefore lives in a helper process of its own
(:mod:`facecast.synth.espeak_helper`), started on first use, which runs one thread only and forks there; this
process talks to it over pipes, with a time limit on every answer.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from facecast.synth.phonemes import tidy_phones

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_PHONEME_EVENTS = 0x0001
_PHONEME_IPA = 0x0002
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_PARAM = {"rate": 1, "volume": 2, "pitch": 3, "range": 4, "wordgap": 7}

INSTALL_HINT = "install it with `apt-get install espeak-ng` (or `pip install espeakng-loader`)"


class EspeakUnavailable(RuntimeError):
    """libespeak-ng cannot be found or initialised."""


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


def find_library() -> tuple[str, str | None]:
    """(library path, data folder or None for the library's default) of a loadable libespeak-ng.

    ``FACECAST_ESPEAK_LIB`` (and ``FACECAST_ESPEAK_DATA``) override the search.
    """
    override = os.environ.get("FACECAST_ESPEAK_LIB")
    names = (
        [override] if override else [ctypes.util.find_library("espeak-ng"), "libespeak-ng.so.1", "libespeak-ng.dylib"]
    )
    for name in names:
        if not name:
            continue
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return name, os.environ.get("FACECAST_ESPEAK_DATA") if override else None
    if override:
        raise EspeakUnavailable(f"espeak-ng: FACECAST_ESPEAK_LIB={override} cannot be loaded; {INSTALL_HINT}")
    try:
        import espeakng_loader  # type: ignore[import-not-found]
    except ImportError:
        raise EspeakUnavailable(f"espeak-ng: libespeak-ng was not found; {INSTALL_HINT}") from None
    return str(espeakng_loader.get_library_path()), str(espeakng_loader.get_data_path())


class Espeak:
    """One initialised libespeak-ng in this process (use :func:`engine`)."""

    def __init__(self, library: str, data: str | None) -> None:
        try:
            self._lib = ctypes.CDLL(library)
        except OSError as exc:
            raise EspeakUnavailable(f"espeak-ng: cannot load {library} ({exc}); {INSTALL_HINT}") from None
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        path = data.encode() if data else None
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, path, _PHONEME_EVENTS | _PHONEME_IPA)
        if rate <= 0:
            raise EspeakUnavailable(f"espeak-ng: espeak_Initialize failed for {library}; {INSTALL_HINT}")
        self.sample_rate = int(rate)
        self._pcm: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._callback = _CALLBACK(self._on_audio)  # keep a reference for the library's lifetime
        lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav, num_samples, events) -> int:
        if num_samples > 0:
            self._pcm.append(np.ctypeslib.as_array(wav, (num_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EVENT_PHONEME:
                self._events.append((int(ev.sample), ev.id.string.decode("utf-8", errors="replace")))
            i += 1
        return 0

    def synth(
        self, text: str, voice: str, rate: int = 175, pitch: int = 50, pitch_range: int = 50, word_gap: int = 0
    ) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """int16 PCM at :attr:`sample_rate` and the phoneme events (start sample, IPA phone) of ``text``."""
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r} (see `espeak-ng --voices`)")
        for name, value in (("rate", rate), ("pitch", pitch), ("range", pitch_range), ("wordgap", word_gap)):
            self._lib.espeak_SetParameter(_PARAM[name], int(value), 0)
        self._pcm, self._events = [], []
        data = text.encode("utf-8") + b"\0"
        buf = ctypes.create_string_buffer(data)
        status = self._lib.espeak_Synth(buf, len(data), 0, 0, 0, _CHARS_UTF8, None, None)
        self._lib.espeak_Synchronize()
        if status != 0:
            raise RuntimeError(f"espeak-ng: espeak_Synth failed with status {status} for voice {voice!r}")
        pcm = np.concatenate(self._pcm) if self._pcm else np.zeros(0, np.int16)
        return pcm, list(self._events)


_ENGINE: Espeak | None = None
_HEADER = 16
ANSWER_TIMEOUT = 120.0
"""Seconds the helper may take over one utterance before it is stopped (a long sentence takes well under 1 s)."""


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _encode_answer(pcm: np.ndarray, events: list[tuple[int, str]]) -> bytes:
    header = b"OK" + len(pcm).to_bytes(8, "little") + b"\0" * (_HEADER - 10)
    return header + pcm.astype("<i2").tobytes() + json.dumps(events).encode()


def _decode_answer(data: bytes) -> tuple[np.ndarray, list[tuple[int, str]]]:
    if data[:2] == b"OK":
        n = int.from_bytes(data[2:10], "little")
        pcm = np.frombuffer(data[_HEADER : _HEADER + 2 * n], "<i2").astype(np.int16)
        events = [(int(s), str(p)) for s, p in json.loads(data[_HEADER + 2 * n :].decode())]
        return pcm, events
    message = data[_HEADER:].decode(errors="replace") if data[:2] == b"ER" else "the synthesis process died"
    if message.startswith("ValueError: "):
        raise ValueError(message.removeprefix("ValueError: "))
    raise RuntimeError(f"espeak-ng: {message}")


def synth_in_child(eng: Espeak, text: str, voice: str, settings: tuple[int, int, int, int], seed: int) -> bytes:
    """The encoded answer of :meth:`Espeak.synth` run in a forked child, so that ``eng`` never changes.

    Call this only in a process that runs one thread (the helper): see the module docstring.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: speak, send the answer, exit without cleanup
        code = 0
        try:
            os.close(read_fd)
            try:
                ctypes.CDLL(None).srand(ctypes.c_uint(seed & 0xFFFFFFFF))  # espeak's noise uses libc rand()
                answer = _encode_answer(*eng.synth(text, voice, *settings))
            except Exception as exc:  # noqa: BLE001 - reported to the parent
                answer = b"ER" + b"\0" * (_HEADER - 2) + f"{type(exc).__name__}: {exc}".encode()
            _write_all(write_fd, answer)
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    try:
        return _read_all(read_fd)
    finally:
        os.close(read_fd)
        os.waitpid(pid, 0)


def send_frame(fd: int, payload: bytes) -> None:
    """One length-prefixed message on a pipe (the helper's protocol)."""
    _write_all(fd, len(payload).to_bytes(8, "little") + payload)


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes | None:
    """``size`` bytes from ``fd``; None at end of file; TimeoutError past ``deadline`` (monotonic seconds)."""
    chunks, got = [], 0
    while got < size:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(size - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def receive_frame(fd: int, deadline: float | None = None) -> bytes | None:
    """The next length-prefixed message, or None when the other side has closed the pipe."""
    head = _read_exact(fd, 8, deadline)
    return None if head is None else _read_exact(fd, int.from_bytes(head, "little"), deadline)


class _HelperGone(RuntimeError):
    """The helper process exited (or was stopped) before it answered."""


class EspeakHelper:
    """The client side of one helper process (:mod:`facecast.synth.espeak_helper`); thread-safe."""

    def __init__(self, timeout: float = ANSWER_TIMEOUT) -> None:
        source_root = str(Path(__file__).resolve().parents[2])  # so the helper imports this same facecast
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (source_root, os.environ.get("PYTHONPATH")) if p)
        self.timeout = timeout
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "facecast.synth.espeak_helper"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        try:
            hello = json.loads(self._receive(self.timeout).decode())
        except (_HelperGone, ValueError) as exc:
            self.close()
            raise EspeakUnavailable(f"espeak-ng: the helper process did not start ({exc})") from None
        if "error" in hello:
            self.close()
            raise EspeakUnavailable(hello["error"])
        self.sample_rate = int(hello["sample_rate"])

    @property
    def pid(self) -> int:
        return self._proc.pid

    def alive(self) -> bool:
        return self._proc.poll() is None

    def _receive(self, timeout: float) -> bytes:
        try:
            frame = receive_frame(self._proc.stdout.fileno(), time.monotonic() + timeout)
        except TimeoutError:
            self.close(kill=True)
            raise RuntimeError(f"espeak-ng did not answer within {timeout:g} s; its helper was stopped") from None
        if frame is None:
            self.close()
            raise _HelperGone("the espeak-ng helper process exited")
        return frame

    def speak(
        self, text: str, voice: str, settings: tuple[int, int, int, int], seed: int
    ) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """int16 PCM and phoneme events of ``text`` spoken by a fresh copy of the helper's engine."""
        request = json.dumps({"text": text, "voice": voice, "settings": list(settings), "seed": int(seed)})
        with self._lock:
            if not self.alive():
                raise _HelperGone("the espeak-ng helper process is not running")
            try:
                send_frame(self._proc.stdin.fileno(), request.encode())
            except OSError:
                self.close()
                raise _HelperGone("the espeak-ng helper process exited") from None
            return _decode_answer(self._receive(self.timeout))

    def close(self, kill: bool = False) -> None:
        """Stop the helper: it ends by itself once its stdin closes; ``kill`` stops it at once."""
        if kill and self._proc.poll() is None:
            self._proc.kill()
        for pipe in (self._proc.stdin, self._proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        try:
            self._proc.wait(timeout=5)  # closing stdin ends the helper's loop
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


_HELPER: EspeakHelper | None = None
_HELPER_PID = 0
_HELPER_LOCK = threading.Lock()


def helper() -> EspeakHelper:
    """This process's espeak-ng helper, started on first use (and again if it has exited)."""
    global _HELPER, _HELPER_PID
    with _HELPER_LOCK:
        if _HELPER is None or _HELPER_PID != os.getpid() or not _HELPER.alive():
            if _HELPER is not None and _HELPER_PID == os.getpid():
                _HELPER.close()
            _HELPER, _HELPER_PID = EspeakHelper(), os.getpid()
        return _HELPER


@atexit.register
def _stop_helper() -> None:
    if _HELPER is not None and _HELPER_PID == os.getpid():
        _HELPER.close()


def _speak_in_helper(
    text: str, voice: str, settings: tuple[int, int, int, int], seed: int
) -> tuple[np.ndarray, int, list[tuple[int, str]]]:
    for attempt in range(2):  # a helper that has died is started again once
        current = helper()
        try:
            pcm, events = current.speak(text, voice, settings, seed)
            return pcm, current.sample_rate, events
        except _HelperGone:
            if attempt:
                raise RuntimeError("espeak-ng: the helper process exited twice while speaking") from None
    raise AssertionError("unreachable")


def engine() -> Espeak:
    """This process's espeak-ng engine, created on first use; raises :class:`EspeakUnavailable`."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = Espeak(*find_library())
    return _ENGINE


def synthesize_espeak(
    text: str,
    voice: str,
    rate: int = 175,
    pitch: int = 50,
    pitch_range: int = 50,
    word_gap: int = 0,
    seed: int = 0,
) -> tuple[np.ndarray, int, list[tuple[str, float, float]]]:
    """(float32 audio, sample rate, IPA phones with exact start/end seconds) from espeak-ng.

    ``seed`` seeds libc's ``rand()``, which espeak-ng's noise sources use (with fork; see the module docstring).
    Raises RuntimeError when the helper process does not answer within :data:`ANSWER_TIMEOUT`.
    """
    settings = (rate, pitch, pitch_range, word_gap)
    if hasattr(os, "fork"):
        pcm, sr, events = _speak_in_helper(text, voice, settings, seed)
    else:  # no fork (Windows): the output may differ by a few samples with what was spoken before
        eng = engine()
        pcm, events = eng.synth(text, voice, *settings)
        sr = eng.sample_rate
    n = len(pcm)
    starts = [min(s, n) for s, _ in events]
    ends = [*starts[1:], n]
    segments = [(phone, starts[k] / sr, ends[k] / sr) for k, (_, phone) in enumerate(events)]
    return (pcm.astype(np.float32) / 32768.0), sr, tidy_phones(segments, n / sr)
