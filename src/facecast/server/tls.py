"""Checking the server's TLS files before gRPC sees them, so that a bad one is one clear line naming the file.

gRPC only says "Failed to bind to address" (and logs a few lines of its own) when a certificate or key is not
usable. Python's ``ssl`` module reads the same PEM files, so it tells which file is wrong and why first.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from facecast.fileio import read_bytes
from facecast.server.config import ConfigError, ServerConfig

MAX_PEM_BYTES = 1 << 20
"""Largest certificate, key or CA bundle file read."""


@dataclass(frozen=True)
class TlsFiles:
    """The checked PEM bytes: what the server hands gRPC."""

    cert: bytes
    key: bytes
    client_ca: bytes | None


def check_tls_files(cfg: ServerConfig) -> TlsFiles | None:
    """Read and check ``tls_cert``, ``tls_key`` and ``tls_client_ca``; ``None`` when TLS is off.

    Raises :class:`ConfigError` naming the file: not a PEM certificate, not a PEM private key, an encrypted key
    (gRPC takes none), or a key that does not match the certificate.
    """
    if cfg.tls_cert is None or cfg.tls_key is None:
        return None
    cert = _read(cfg.tls_cert, "tls_cert")
    key = _read(cfg.tls_key, "tls_key")
    ca = _read(cfg.tls_client_ca, "tls_client_ca") if cfg.tls_client_ca else None
    _check_certificates(cert, "tls_cert", cfg.tls_cert)
    if ca is not None:
        _check_certificates(ca, "tls_client_ca", cfg.tls_client_ca)
    _check_key(key, cfg)
    return TlsFiles(cert, key, ca)


def _read(path: str, name: str) -> bytes:
    try:
        return read_bytes(path, MAX_PEM_BYTES)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _check_certificates(data: bytes, name: str, path: str) -> None:
    text = data.decode("ascii", errors="replace")
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ConfigError(f"{name} {path}: not a PEM certificate (no '-----BEGIN CERTIFICATE-----' block)")
    try:
        ssl.create_default_context().load_verify_locations(cadata=text)
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"{name} {path}: not a valid PEM certificate ({_reason(exc)})") from None


def _check_key(key: bytes, cfg: ServerConfig) -> None:
    text = key.decode("ascii", errors="replace")
    if "PRIVATE KEY-----" not in text:
        raise ConfigError(f"tls_key {cfg.tls_key}: not a PEM private key (no '-----BEGIN ... PRIVATE KEY-----' block)")
    if "ENCRYPTED" in text:
        raise ConfigError(f"tls_key {cfg.tls_key}: the key is encrypted; gRPC needs an unencrypted key")
    try:  # the files were just read as regular files; ssl reads them again by name
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cfg.tls_cert, cfg.tls_key, password=b"")
    except (ssl.SSLError, ValueError, OSError) as exc:
        if "mismatch" in str(exc).lower():
            message = f"tls_key {cfg.tls_key}: does not match the certificate tls_cert {cfg.tls_cert}"
            raise ConfigError(message) from None
        raise ConfigError(f"tls_key {cfg.tls_key}: not a usable PEM private key ({_reason(exc)})") from None


def _reason(exc: Exception) -> str:
    return getattr(exc, "reason", None) or str(exc) or type(exc).__name__
