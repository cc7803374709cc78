"""Server settings: one validated dataclass, read from a TOML file and/or overridden by CLI flags."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facecast.infer.backends import DEVICES, PRECISIONS
from facecast.timing import check_context_frames, check_frames_per_pass, fps_fraction


class ConfigError(ValueError):
    """A server setting is missing, unknown or out of range; the message names it."""


@dataclass(frozen=True)
class ServerConfig:
    """Everything :func:`facecast.server.serve` needs. Paths may be relative to the working directory."""

    host: str = "127.0.0.1"
    """Interface to bind; the loopback interface unless told otherwise."""
    port: int = 52000
    """gRPC port (the NIM's bidirectional port); 0 picks a free one."""
    model: str | None = None
    """Model pack folder (v2.3 or v3.0); ``None`` is facecast's built-in default model."""
    identity: str | None = None
    """The identity a v3.0 multi-identity model animates (e.g. ``James``); ``None``: its first."""
    fold: bool | None = None
    """v3.0 models: run the graph with its constant noise folded in (``None``: where torch is installed)."""
    noise_seed: int = 0
    """v3.0 models: the seed of the diffusion noise (every stream starts its own generator from it)."""
    constant_noise: bool = True
    """v3.0 models: one noise draw for every window (the SDK's default); False draws a new one per window."""
    device: str = "auto"
    backend: str = "onnxruntime"
    threads: int | None = None
    """Inference threads (default: all cores)."""
    precision: str = "fp32"
    """``fp32`` (exact parity) or ``int8`` (statically quantised on first use, ONNX Runtime on CPU only)."""
    fps: float = 30.0
    """Output frame rate of every stream."""
    max_streams: int = 10
    """Concurrent ProcessAudioStream calls; more are refused with RESOURCE_EXHAUSTED."""
    max_batch: int | None = None
    """Most frames in one inference call (default: 32 windows, or 64 frames with chunks, which held 50 int8
    default-model streams more often than 32 or 128 in ``benchmarks/bench_server.py``)."""
    frames_per_pass: int | None = 6
    """Frames animated from one encoder pass (models with a chunk network; capped at what the model was trained
    for): frames are computed in blocks of this many, so a frame waits for the rest of its block (6 at 30 fps:
    up to 167 ms more) and costs far less. 1 gives the lowest latency; ``None`` the model's own default."""
    context_frames: int | None = None
    """Frames of earlier audio each encoder pass also hears (no added latency; more encoder work per block).
    ``None``: as many as the model's chunk network was trained for; 0: none."""
    batch_wait_ms: float = 5.0
    """How long the scheduler waits for more windows once one is ready."""
    max_pending_frames: int = 60
    """Per-stream frames ready but not yet sent before the server stops reading that client (backpressure)."""
    max_message_bytes: int = 4 * 1024 * 1024
    """Largest gRPC message accepted."""
    max_clip_seconds: float = 300.0
    """Longest audio a stream may send."""
    idle_timeout_seconds: float = 30.0
    """A stream that sends nothing for this long is ended with ``DEADLINE_EXCEEDED``."""
    max_stream_seconds: float = 600.0
    """Longest wall time of one stream, start to last frame (``DEADLINE_EXCEEDED`` after it): twice the longest
    clip streamed in real time, so that no client holds a slot for ever."""
    min_audio_rate: float = 0.5
    """Least audio a stream must send, as a fraction of real time, over every ``audio_rate_window_seconds`` while
    the server is reading (pauses for backpressure do not count); 0 turns the check off. A client trickling a few
    bytes now and then is ended with ``DEADLINE_EXCEEDED`` instead of holding its slot."""
    audio_rate_window_seconds: float = 20.0
    """The window of ``min_audio_rate``; the first window of a stream is its grace period."""
    max_emotion_keys_per_message: int = 1000
    """Most timed emotions in one ``audio_with_emotion`` message (more: ``RESOURCE_EXHAUSTED``), counted before
    they are parsed."""
    max_emotion_keys_per_stream: int = 10_000
    """Most timed emotions one stream may send in all (a key per frame of a 300 s clip at 30 fps fits)."""
    tls_cert: str | None = None
    """PEM server certificate (chain); with ``tls_key`` enables TLS."""
    tls_key: str | None = None
    tls_client_ca: str | None = None
    """PEM CA bundle: when set, clients must present a certificate it signed (mTLS)."""
    token: str | None = None
    """When set, every call except the health check needs metadata ``authorization: Bearer <token>``."""
    token_file: str | None = None
    """A file holding the token (keeps it off the command line)."""

    def validate(self) -> ServerConfig:
        """Check every value; return ``self`` or raise :class:`ConfigError`."""
        if not isinstance(self.host, str) or not self.host.strip():
            raise ConfigError(f"host must be a non-empty string, got {self.host!r}")
        _int(self.port, "port", 0, 65535)
        _int(self.noise_seed, "noise_seed", 0, 2**63 - 1)
        if not isinstance(self.constant_noise, bool) or not (self.fold is None or isinstance(self.fold, bool)):
            raise ConfigError("constant_noise must be true or false, and fold true, false or unset")
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.backend not in ("onnxruntime", "torch"):
            raise ConfigError(f"backend must be onnxruntime or torch, got {self.backend!r}")
        if self.threads is not None:
            _int(self.threads, "threads", 1, 1024)
        if self.precision not in PRECISIONS + ("fp16",):
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS + ('fp16',))}, got {self.precision!r}")
        if self.precision == "int8" and self.backend != "onnxruntime":
            raise ConfigError("precision int8 needs the onnxruntime backend")
        try:
            fps_fraction(_float(self.fps, "fps", 1.0, 240.0))
            if self.frames_per_pass is not None:
                check_frames_per_pass(self.frames_per_pass)
            if self.context_frames is not None:
                check_context_frames(self.context_frames)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        _int(self.max_streams, "max_streams", 1, 100_000)
        if self.max_batch is not None:
            _int(self.max_batch, "max_batch", 1, 4096)
        _float(self.batch_wait_ms, "batch_wait_ms", 0.0, 1000.0)
        _int(self.max_pending_frames, "max_pending_frames", 1, 1_000_000)
        _int(self.max_message_bytes, "max_message_bytes", 1024, 1 << 31)
        _float(self.max_clip_seconds, "max_clip_seconds", 0.001, 1e6)
        _float(self.idle_timeout_seconds, "idle_timeout_seconds", 0.001, 1e6)
        _float(self.max_stream_seconds, "max_stream_seconds", 0.001, 1e7)
        _float(self.min_audio_rate, "min_audio_rate", 0.0, 100.0)
        _float(self.audio_rate_window_seconds, "audio_rate_window_seconds", 0.1, 1e6)
        _int(self.max_emotion_keys_per_message, "max_emotion_keys_per_message", 0, 1_000_000)
        _int(self.max_emotion_keys_per_stream, "max_emotion_keys_per_stream", 0, 100_000_000)
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("tls_cert and tls_key must be given together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ConfigError("tls_client_ca (mTLS) needs tls_cert and tls_key too")
        for name in ("tls_cert", "tls_key", "tls_client_ca", "token_file"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{name} must be a file path, got {value!r}")
            if value is not None and not Path(value).is_file():
                raise ConfigError(f"{name}: {value} is not a readable file")
        if self.token is not None and self.token_file is not None:
            raise ConfigError("give token or token_file, not both")
        if self.token is not None and (not isinstance(self.token, str) or not self.token.strip()):
            raise ConfigError("token must be a non-empty string")
        if self.model is not None and not isinstance(self.model, str):
            raise ConfigError(f"model must be a path, got {self.model!r}")
        if self.identity is not None and (not isinstance(self.identity, str) or not self.identity.isprintable()):
            raise ConfigError(f"identity must be a name, got {self.identity!r:.60}")
        return self

    def replace(self, **changes: Any) -> ServerConfig:
        """A validated copy with ``changes``; ``None`` values are ignored (unset CLI flags)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None}).validate()

    def resolved_token(self) -> str | None:
        """The bearer token from ``token`` or ``token_file`` (stripped), or ``None`` when auth is off."""
        if self.token_file is not None:
            from facecast.fileio import read_bytes

            try:  # a regular file only, size capped (a FIFO or device is named, never read)
                token = read_bytes(self.token_file, 64 * 1024).decode("utf-8").strip()
            except (OSError, ValueError) as exc:
                raise ConfigError(f"token_file: {exc}") from None
            if not token:
                raise ConfigError(f"token_file {self.token_file} is empty")
            return token
        return self.token

    def public_dict(self) -> dict[str, Any]:
        """Settings safe to show a client: the token is never included, file paths are reduced to set/unset."""
        out = dataclasses.asdict(self)
        for key in ("token", "token_file"):
            out.pop(key)
        out["auth"] = "bearer-token" if (self.token or self.token_file) else "none"
        out["tls"] = "mtls" if self.tls_client_ca else ("tls" if self.tls_cert else "none")
        for key in ("tls_cert", "tls_key", "tls_client_ca"):
            out.pop(key)
        return out

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "<mapping>") -> ServerConfig:
        """Build from ``{field: value}`` (unknown keys are an error naming ``source``)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ConfigError(f"{source}: unknown setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(fields))}")
        try:
            return cls(**dict(values)).validate()
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> ServerConfig:
        """Read a TOML file: the settings at top level or in a ``[server]`` table."""
        path = Path(path)
        try:
            import tomllib
        except ImportError:  # Python 3.10
            import tomli as tomllib
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} cannot be read: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        if "server" in data:
            if not isinstance(data["server"], dict) or len(data) != 1:
                raise ConfigError(f"{path}: put every setting inside the [server] table or none of them")
            data = data["server"]
        return cls.from_mapping(data, str(path))


def _int(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be in [{lo}, {hi}], got {value}")
    return value


def _float(value: Any, name: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be in [{lo:g}, {hi:g}], got {value:g}")
    return float(value)
