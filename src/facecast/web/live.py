"""The viewer's WebSocket protocol (``/ws``): live streams, server-paced file streams and uploads.

Client to server (JSON text unless noted):

* ``{"type": "start", "sample_rate": 48000, "emotion": {...}}`` opens a live stream; then **binary** messages
  are mono PCM16 (little-endian) chunks at that rate.
* ``{"type": "play", "file": "clip.wav", "emotion": {...}}`` streams an audio file of the folder in real time
  from the server (the browser plays ``/audio?file=clip.wav`` itself, started when ``ready`` arrives).
* ``{"type": "emotion", "emotion": {"joy": 0.8}}`` changes the emotion of the running stream (ramped).
* ``{"type": "stop"}`` ends the stream: the last frames come, then ``end``.
* ``{"type": "animate", "name": "x.mp3", "emotion": {...}}`` then one **binary** message with the file's bytes:
  the server animates it offline and answers ``{"type": "animation", "animation": {...}}`` (the JSON schema).

Server to client: ``ready`` (fps, look-ahead seconds, pose names), ``frames`` (``time`` in seconds from the
stream's start, ``skin`` [n][52], ``tongue`` [n][16] or null, ``eyes`` [n][6] degrees, ``emotion`` [n][10]),
``end``, ``animation`` and ``error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facecast.animation import Animation
from facecast.audio import load_audio, pcm16_to_float
from facecast.constants import EMOTION_NAMES, SAMPLE_RATE
from facecast.emotion import EmotionError, emotion_vector
from facecast.export.json import animation_dict
from facecast.web.app import AUDIO_SUFFIXES, RequestError, ViewerApp

if TYPE_CHECKING:
    from facecast.model import AnimationStream

log = logging.getLogger("facecast.web")

Send = Callable[[str], Awaitable[None]]
Run = Callable[..., Awaitable[Any]]

CHUNK_SECONDS = 0.02
"""Audio per push when the server paces a file."""
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
EMOTION_RAMP_SECONDS = 0.25
MAX_PENDING_SECONDS = 30
"""Most audio a stream may have queued before it is refused (the client sends faster than real time)."""


class LiveEmotion:
    """Explicit emotion that may change while a stream runs; a change ramps in over ``ramp`` seconds.

    Called with frame times (seconds), it returns [N, 10] rows, as the engine's explicit emotion accepts.
    """

    def __init__(self, vector: np.ndarray, ramp: float = EMOTION_RAMP_SECONDS) -> None:
        vector = np.asarray(vector, np.float32)
        self.ramp = float(ramp)
        self._state = (vector, vector, 0.0)  # (from, to, change time): replaced in one assignment

    def set(self, vector: np.ndarray, at: float) -> None:
        """Move to ``vector`` from stream time ``at`` on."""
        current = self(np.array([at], np.float64))[0]
        self._state = (current, np.asarray(vector, np.float32), float(at))

    def __call__(self, times: np.ndarray) -> np.ndarray:
        start, end, at = self._state
        t = np.asarray(times, np.float64).reshape(-1, 1)
        mix = np.clip((t - at) / self.ramp, 0.0, 1.0) if self.ramp > 0 else (t >= at).astype(np.float64)
        return (start + (end - start) * mix).astype(np.float32)


def frames_message(anim: Animation) -> dict:
    """The ``frames`` message of some animation frames (values rounded to 5 decimals)."""

    def rows(a: np.ndarray | None) -> list | None:
        return None if a is None else np.round(np.asarray(a, np.float64), 5).tolist()

    return {
        "type": "frames",
        "time": rows(anim.times),
        "skin": rows(anim.skin_weights),
        "tongue": rows(anim.tongue_weights),
        "eyes": rows(anim.eyes),
        "emotion": rows(anim.emotion),
    }


def _emotion(value: Any) -> np.ndarray:
    if value is None:
        return np.zeros(len(EMOTION_NAMES), np.float32)
    return emotion_vector(value)


class LiveSession:
    """One WebSocket connection: at most one stream (live or server-paced) at a time, plus uploads."""

    def __init__(self, app: ViewerApp, send: Send, run: Run) -> None:
        self.app = app
        self._send = send
        self._run = run
        self.stream: AnimationStream | None = None
        self.emotion: LiveEmotion | None = None
        self.frames_sent = 0
        self._upload: dict | None = None
        self._player: asyncio.Task | None = None
        self._pending: list[np.ndarray] = []
        self._pending_samples = 0
        self._pump: asyncio.Task | None = None

    async def send(self, message: dict) -> None:
        await self._send(json.dumps(message, separators=(",", ":")))

    async def error(self, message: str) -> None:
        await self.send({"type": "error", "message": message})

    # -- messages -------------------------------------------------------------------------------------

    async def on_message(self, message: str | bytes) -> None:
        """Handle one message; user errors are answered with an ``error`` message."""
        try:
            if isinstance(message, bytes):
                await self._on_binary(message)
            else:
                await self._on_text(message)
        except (RequestError, EmotionError, ValueError) as exc:
            await self.error(str(exc))

    async def _on_text(self, text: str) -> None:
        try:
            msg = json.loads(text)
        except json.JSONDecodeError:
            raise ValueError("messages must be JSON objects") from None
        if not isinstance(msg, dict):
            raise ValueError("messages must be JSON objects")
        kind = msg.get("type")
        if kind == "start":
            rate = msg.get("sample_rate", SAMPLE_RATE)
            if isinstance(rate, bool) or not isinstance(rate, int) or not 8000 <= rate <= 192000:
                raise ValueError(f"sample_rate must be a whole number of Hz in [8000, 192000], got {rate!r}")
            await self._open(rate, msg.get("emotion"), "client")
        elif kind == "play":
            path = self.app.resolve(str(msg.get("file") or ""))
            if path.suffix.lower() not in AUDIO_SUFFIXES:
                raise ValueError(f"{path.name!r} is not an audio file")
            audio = await self._run(load_audio, path)
            await self._open(SAMPLE_RATE, msg.get("emotion"), "server", audio=str(msg["file"]))
            self._player = asyncio.ensure_future(self._pace(audio))
        elif kind == "emotion":
            if self.emotion is None or self.stream is None:
                raise ValueError("no stream is running")
            at = self.stream.session.frames_emitted / self.app.fps
            self.emotion.set(_emotion(msg.get("emotion")), at)
        elif kind == "stop":
            await self.stop()
        elif kind == "animate":
            self._upload = {"name": str(msg.get("name") or "upload.wav"), "emotion": msg.get("emotion")}
            _emotion(self._upload["emotion"])  # validate now
        else:
            raise ValueError(f"unknown message type {kind!r}")

    async def _on_binary(self, data: bytes) -> None:
        if self._upload is not None:
            upload, self._upload = self._upload, None
            await self._animate_upload(upload, data)
        elif self.stream is not None and self._player is None:
            self._enqueue(pcm16_to_float(data))
        else:
            raise ValueError("binary data needs a started stream or an 'animate' message first")

    # -- streams --------------------------------------------------------------------------------------

    async def _open(self, sample_rate: int, emotion: Any, source: str, audio: str | None = None) -> None:
        await self.stop(quiet=True)
        self.emotion = LiveEmotion(_emotion(emotion))
        # live input: one window per frame, the lowest latency (a chunk model's blocks would add up to K-1 frames)
        # self.emotion is a callable of frame times: the stream follows its changes
        stream = self.app.model.animation_stream(fps=self.app.fps, emotion=self.emotion, sample_rate=sample_rate,
                                                 frames_per_pass=1)  # fmt: skip
        self.stream, self.frames_sent = stream, 0
        self._player = None
        await self.send(
            {
                "type": "ready",
                "source": source,
                "fps": self.app.fps,
                "sample_rate": sample_rate,
                "lookahead": stream.lookahead_seconds,
                "audio": audio,
                "skin_names": self._names("skin"),
                "tongue_names": self._names("tongue"),
                "emotion_names": list(EMOTION_NAMES),
            }
        )

    def _names(self, part: str) -> tuple[str, ...]:
        solver = getattr(self.app.model.pipeline, part, None)
        return tuple(solver.names) if solver is not None else ()

    def _locked(self, fn: Callable[..., Animation], *args: Any) -> Animation:
        with self.app.model_lock:
            return fn(*args)

    def _enqueue(self, samples: np.ndarray) -> None:
        """Queue audio for the stream; one pump pushes everything queued at once, so slow pushes batch up."""
        limit = MAX_PENDING_SECONDS * self.stream.session.sample_rate
        if self._pending_samples + len(samples) > limit:
            raise ValueError(f"audio arrives faster than it can be animated (over {MAX_PENDING_SECONDS} s behind)")
        self._pending.append(samples)
        self._pending_samples += len(samples)
        if self._pump is None or self._pump.done():
            self._pump = asyncio.ensure_future(self._drain(self.stream))

    async def _drain(self, stream: AnimationStream) -> None:
        while self._pending and self.stream is stream:
            samples = np.concatenate(self._pending)
            self._pending, self._pending_samples = [], 0
            try:
                anim = await self._run(self._locked, stream.push, samples)
            except Exception as exc:  # reported; the stream goes on with later audio
                log.warning("stream push failed: %s", exc)
                anim, message = None, f"stream failed: {exc}"
            else:
                message = None
            try:
                if message is not None:
                    await self.error(message)
                elif stream is self.stream and len(anim):
                    self.frames_sent += len(anim)
                    await self.send(frames_message(anim))
            except Exception:  # the connection is gone
                return

    async def _pace(self, audio: np.ndarray) -> None:
        """Queue a file in real time, one chunk every ``CHUNK_SECONDS``, then end the stream."""
        step = int(CHUNK_SECONDS * SAMPLE_RATE)
        started = time.perf_counter()
        try:
            for k, lo in enumerate(range(0, len(audio), step)):
                delay = started + k * CHUNK_SECONDS - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                self._enqueue(audio[lo : lo + step])
            self._player = None
            await self.stop()
        except asyncio.CancelledError:
            pass
        except ValueError as exc:
            self._player = None
            with contextlib.suppress(Exception):  # unless the connection is gone
                await self.error(str(exc))

    async def stop(self, quiet: bool = False) -> None:
        """End the running stream (its last frames, then ``end``); ``quiet`` drops them instead."""
        player, self._player = self._player, None
        if player is not None and player is not asyncio.current_task():
            player.cancel()
        if self.stream is None:
            return
        if quiet:
            self.stream, self._pending, self._pending_samples = None, [], 0
            return
        if self._pump is not None and not self._pump.done() and self._pump is not asyncio.current_task():
            await asyncio.shield(self._pump)  # the audio already queued still counts
        stream, self.stream = self.stream, None
        anim = await self._run(self._locked, stream.close)
        if len(anim):
            self.frames_sent += len(anim)
            await self.send(frames_message(anim))
        await self.send({"type": "end", "frames": self.frames_sent})

    # -- uploads --------------------------------------------------------------------------------------

    async def _animate_upload(self, upload: dict, data: bytes) -> None:
        if len(data) > MAX_UPLOAD_BYTES:
            raise ValueError(f"upload is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB")
        suffix = Path(upload["name"]).suffix.lower()
        if suffix not in AUDIO_SUFFIXES:
            raise ValueError(f"{upload['name']!r}: upload an audio file ({', '.join(AUDIO_SUFFIXES)})")
        doc = await self._run(self._animate_bytes, data, suffix, upload["emotion"])
        await self.send({"type": "animation", "name": upload["name"], "animation": doc})

    def _animate_bytes(self, data: bytes, suffix: str, emotion: Any) -> dict:
        fd, tmp = tempfile.mkstemp(suffix=suffix, prefix="facecast-upload-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            audio = load_audio(tmp)
        finally:
            os.remove(tmp)
        return animation_dict(self.app.animate(audio, emotion))

    async def close(self) -> None:
        """The connection is gone: stop quietly and end the session's tasks."""
        await self.stop(quiet=True)
        self._pending, self._pending_samples = [], 0
        tasks = [t for t in (self._pump, self._player) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
