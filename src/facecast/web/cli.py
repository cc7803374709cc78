"""Command-line entry points of the viewer's package: ``facecast plot``, ``facecast livelink`` and the
``--http`` option of ``facecast serve`` (added by :func:`add_http_arguments`, started by :func:`start_http`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facecast.constants import DEFAULT_FPS
from facecast.plot import DEFAULT_CURVES

AUDIO_HELP = "audio file (wav, flac, ogg, mp3)"


def _model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--model", help="model folder (NVIDIA's or facecast's); default: the built-in model")
    p.add_argument("--fps", type=float, default=DEFAULT_FPS, help="frames per second (default: 30)")
    p.add_argument(
        "--emotion",
        action="append",
        default=[],
        metavar="NAME=WEIGHT[@TIME]",
        help="explicit emotion keyframe, repeatable (e.g. joy=0.8)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``plot`` and ``livelink`` to the ``facecast`` command line."""
    p = subparsers.add_parser("plot", help="plot the waveform and blendshape curves of a clip as a PNG")
    p.add_argument("input", metavar="AUDIO_OR_ANIMATION_JSON", help="an audio file to animate, or an animation JSON")
    p.add_argument(
        "--curves",
        default=",".join(DEFAULT_CURVES),
        help=f"comma-separated skin or tongue pose names (default: {','.join(DEFAULT_CURVES)})",
    )
    p.add_argument("-o", "--output", default="plot.png", help="PNG to write (default: plot.png)")
    p.add_argument("--size", default="1200x600", metavar="WxH", help="image size in pixels (default: 1200x600)")
    _model_arguments(p)
    p.set_defaults(func=cmd_plot)

    p = subparsers.add_parser("livelink", help="stream a clip's animation to Unreal Engine (Live Link Face, UDP)")
    p.add_argument("audio", help=AUDIO_HELP)
    p.add_argument("--host", default="127.0.0.1", help="Unreal's machine (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=11111, help="Live Link Face UDP port (default: 11111)")
    p.add_argument("--subject", default="facecast", help="Live Link subject name (default: facecast)")
    p.add_argument("--fast", action="store_true", help="send every frame at once instead of in real time")
    _model_arguments(p)
    p.set_defaults(func=cmd_livelink)


def _size(spec: str) -> tuple[int, int]:
    w, sep, h = spec.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or not (100 <= int(w) <= 10000 and 100 <= int(h) <= 10000):
        raise ValueError(f"--size expects WIDTHxHEIGHT between 100 and 10000 pixels, got {spec!r}")
    return int(w), int(h)


def _animate(args: argparse.Namespace, audio):
    from facecast.model import load_model

    model = load_model(args.model)
    if model.random_weights:
        print("facecast: NOTE: the built-in model has RANDOM weights; the motion is meaningless", file=sys.stderr)
    return model.animate(audio, fps=args.fps, emotion=args.emotion or None)


def cmd_plot(args: argparse.Namespace) -> int:
    from facecast.audio import load_audio
    from facecast.plot import plot_animation

    from ..export.json_read import read_animation_json
    from .app import AUDIO_SUFFIXES

    width, height = _size(args.size)
    source = Path(args.input)
    if source.suffix.lower() == ".json":
        anim = read_animation_json(source)
        audio_path = next((p for s in AUDIO_SUFFIXES if (p := source.with_suffix(s)).is_file()), None)
        audio = load_audio(audio_path) if audio_path else None
    else:
        audio = load_audio(source)
        anim = _animate(args, audio)
    curves = [c.strip() for c in args.curves.split(",")]
    path = plot_animation(anim, audio, curves, args.output, width=width, height=height, title=source.name)
    print(f"wrote {path} ({len(anim)} frames, curves {', '.join(c for c in curves if c)})")
    return 0


def cmd_livelink(args: argparse.Namespace) -> int:
    from facecast.audio import load_audio
    from facecast.livelink import LiveLinkSender

    audio = load_audio(args.audio)
    anim = _animate(args, audio)
    with LiveLinkSender(args.host, args.port, args.subject) as sender:
        print(
            f"facecast: sending {len(anim)} frames ({anim.duration:.1f} s) to Live Link subject "
            f"{args.subject!r} at {args.host}:{args.port}",
            file=sys.stderr,
        )
        sent = sender.send(anim, realtime=not args.fast)
    print(f"sent {sent} frames")
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
    from .server import serve_http

    folder = getattr(args, "http_folder", None)
    if folder is not None and not Path(folder).is_dir():
        raise ValueError(f"--http-folder {folder}: not a folder")
    fps = getattr(args, "fps", None) or DEFAULT_FPS
    server = serve_http(model, getattr(args, "http_host", "127.0.0.1"), args.http, folder, fps=fps)
    print(f"facecast: browser viewer on {server.url}", file=sys.stderr)
    return server
