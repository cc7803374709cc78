"""``facecast serve``: run the ACE-compatible gRPC server (settings: defaults < ``--config`` TOML < flags)."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from facecast.cli.options import bounded
from facecast.constants import DEFAULT_FPS
from facecast.server.config import ServerConfig

# flag -> ServerConfig field, for the flags that map one to one
_FLAGS = {
    "grpc": "port",
    "host": "host",
    "model": "model",
    "identity": "identity",
    "fold": "fold",
    "noise_seed": "noise_seed",
    "device": "device",
    "backend": "backend",
    "threads": "threads",
    "precision": "precision",
    "fps": "fps",
    "max_streams": "max_streams",
    "max_batch": "max_batch",
    "frames_per_pass": "frames_per_pass",
    "context_frames": "context_frames",
    "batch_wait_ms": "batch_wait_ms",
    "max_pending_frames": "max_pending_frames",
    "max_message_bytes": "max_message_bytes",
    "max_clip_seconds": "max_clip_seconds",
    "idle_timeout": "idle_timeout_seconds",
    "max_stream_seconds": "max_stream_seconds",
    "min_audio_rate": "min_audio_rate",
    "audio_rate_window": "audio_rate_window_seconds",
    "max_emotion_keys_per_message": "max_emotion_keys_per_message",
    "max_emotion_keys_per_stream": "max_emotion_keys_per_stream",
    "tls_cert": "tls_cert",
    "tls_key": "tls_key",
    "tls_client_ca": "tls_client_ca",
    "token": "token",
    "token_file": "token_file",
}


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``serve`` subcommand to the ``facecast`` CLI."""
    p = subparsers.add_parser("serve", help="serve ACE Audio2Face-3D gRPC (A2FControllerService) on a model")
    p.add_argument("--grpc", type=int, metavar="PORT", help="gRPC port (default 52000; 0 picks a free port)")
    p.add_argument("--host", help="interface to bind (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("-m", "--model", help="model folder, v2.3 or v3.0 (default: the built-in model)")
    p.add_argument("--identity", metavar="NAME", help="identity of a v3.0 multi-identity model (e.g. James)")
    p.add_argument(
        "--fold",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="v3.0 models: the graph with its constant noise folded in (default: where torch is installed)",
    )
    p.add_argument("--noise-seed", type=bounded(int, 0, 2**63 - 1), metavar="N",
                   help="v3.0 models: the seed of the diffusion noise (default 0)")  # fmt: skip
    p.add_argument("--config", metavar="FILE", help="TOML file with ServerConfig settings (flags override it)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "tensorrt"])
    p.add_argument("--backend", choices=["onnxruntime", "torch"])
    p.add_argument("--threads", type=int, help="inference threads (default: all cores)")
    p.add_argument(
        "--frames-per-pass",
        type=int,
        metavar="K",
        help="frames per encoder pass, for models with a chunk network (default 6; 1 = lowest latency)",
    )
    p.add_argument(
        "--context-frames",
        type=int,
        metavar="C",
        help="frames of earlier audio each encoder pass also hears (default: as the model was trained for; 0 = none)",
    )
    p.add_argument("--precision", choices=["fp32", "int8", "fp16"],
                   help="fp32 (default, exact), int8 (faster on CPU) or fp16 (v3.0 models on a GPU)")  # fmt: skip
    p.add_argument("--fps", type=float, help="output frames per second (default 30)")
    p.add_argument("--max-streams", type=int, help="concurrent streams before RESOURCE_EXHAUSTED (default 10)")
    p.add_argument(
        "--max-batch", type=int, help="most frames per inference call (default 32 windows, or 64 frames with chunks)"
    )
    p.add_argument("--batch-wait-ms", type=float, help="how long to gather a batch (default 5)")
    p.add_argument("--max-pending-frames", type=int, help="per-stream backlog before reading pauses (default 60)")
    p.add_argument("--max-message-bytes", type=int, help="largest gRPC message (default 4 MiB)")
    p.add_argument("--max-clip-seconds", type=float, help="longest audio per stream (default 300)")
    p.add_argument("--idle-timeout", type=float, metavar="SECONDS", help="end silent streams after (default 30)")
    p.add_argument("--max-stream-seconds", type=float, help="longest wall time of one stream (default 600)")
    p.add_argument(
        "--min-audio-rate",
        type=float,
        metavar="FRACTION",
        help="least audio a stream must send, as a fraction of real time over each window (default 0.5; 0 = off)",
    )
    p.add_argument("--audio-rate-window", type=float, metavar="SECONDS", help="window of --min-audio-rate (default 20)")
    p.add_argument("--max-emotion-keys-per-message", type=int, help="timed emotions in one message (default 1000)")
    p.add_argument("--max-emotion-keys-per-stream", type=int, help="timed emotions in one stream (default 10000)")
    p.add_argument("--tls-cert", metavar="PEM", help="server certificate; with --tls-key enables TLS")
    p.add_argument("--tls-key", metavar="PEM", help="server private key")
    p.add_argument("--tls-client-ca", metavar="PEM", help="require client certificates signed by this CA (mTLS)")
    p.add_argument("--token", help="require 'authorization: Bearer TOKEN' metadata")
    p.add_argument("--token-file", metavar="FILE", help="read the bearer token from a file")
    add_http_arguments(p)
    p.set_defaults(func=cmd_serve)
    return p


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """Defaults, then the ``--config`` file, then the flags that were given."""
    base = ServerConfig.from_toml(args.config) if getattr(args, "config", None) else ServerConfig()
    return base.replace(**{field: getattr(args, flag, None) for flag, field in _FLAGS.items()})


def cmd_serve(args: argparse.Namespace) -> int:
    from facecast.server.app import serve

    config = config_from_args(args)
    server = serve(config)
    if server.model.random_weights:
        print("facecast: NOTE: serving a model with RANDOM weights; its motion is meaningless", file=sys.stderr)
    extras = [f"max {config.max_streams} streams"]
    if config.tls_cert:
        extras.append("mTLS" if config.tls_client_ca else "TLS")
    if config.token or config.token_file:
        extras.append("bearer token")
    print(f"facecast: serving ACE Audio2Face-3D gRPC on {server.address} ({', '.join(extras)})", file=sys.stderr)

    viewer = start_http(args, server.model)
    if viewer is not None:
        print(f"facecast: live viewer on {viewer.url}", file=sys.stderr)
    previous = signal.signal(signal.SIGTERM, lambda *_: server.stop())
    try:
        server.wait()
    except KeyboardInterrupt:
        print("facecast: stopping", file=sys.stderr)
    finally:
        if viewer is not None:
            viewer.stop()
        server.stop()
        signal.signal(signal.SIGTERM, previous)
    return 0


def add_http_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--http PORT``, ``--http-host`` and ``--http-folder`` (the browser viewer) to a parser."""
    parser.add_argument("--http", type=int, metavar="PORT", help="also serve the browser viewer on PORT (0: any)")
    parser.add_argument("--http-host", default="127.0.0.1", help="interface for the viewer (default: 127.0.0.1)")
    parser.add_argument(
        "--http-folder", metavar="DIR", help="folder whose animation JSON and audio files the viewer may open"
    )


def start_http(args: argparse.Namespace, model):
    """Start the viewer when ``--http`` was given; returns the running server (call ``.stop()``) or None."""
    if getattr(args, "http", None) is None:
        return None
    from facecast.web.server import serve_http

    folder = getattr(args, "http_folder", None)
    if folder is not None and not Path(folder).is_dir():
        raise ValueError(f"--http-folder {folder}: not a folder")
    fps = getattr(args, "fps", None) or DEFAULT_FPS
    server = serve_http(model, getattr(args, "http_host", "127.0.0.1"), args.http, folder, fps=fps)
    print(f"facecast: browser viewer on {server.url}", file=sys.stderr)
    return server
