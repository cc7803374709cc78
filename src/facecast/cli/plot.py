"""``facecast plot``: the waveform and blendshape curves of a clip as a PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

from facecast.cli.options import add_model_arguments, animate_for_command
from facecast.export.plot import DEFAULT_CURVES


def _size(spec: str) -> tuple[int, int]:
    w, sep, h = spec.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or not (100 <= int(w) <= 10000 and 100 <= int(h) <= 10000):
        raise ValueError(f"--size expects WIDTHxHEIGHT between 100 and 10000 pixels, got {spec!r}")
    return int(w), int(h)


def cmd_plot(args: argparse.Namespace) -> int:
    from facecast.audio import load_audio
    from facecast.export.json_read import read_animation_json
    from facecast.export.plot import plot_animation
    from facecast.fileio import output_file
    from facecast.web.app import AUDIO_SUFFIXES

    width, height = _size(args.size)
    output_file(args.output)  # a folder, a read-only or full place: one line before any work
    source = Path(args.input)
    if source.suffix.lower() == ".json":
        anim = read_animation_json(source)
        audio_path = next((p for s in AUDIO_SUFFIXES if (p := source.with_suffix(s)).is_file()), None)
        audio = load_audio(audio_path) if audio_path else None
    else:
        audio = load_audio(source)
        anim = animate_for_command(args, audio)
    curves = [c.strip() for c in args.curves.split(",")]
    path = plot_animation(anim, audio, curves, args.output, width=width, height=height, title=source.name)
    print(f"wrote {path} ({len(anim)} frames, curves {', '.join(c for c in curves if c)})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``plot``."""
    p = subparsers.add_parser("plot", help="plot the waveform and blendshape curves of a clip as a PNG")
    p.add_argument("input", metavar="AUDIO_OR_ANIMATION_JSON", help="an audio file to animate, or an animation JSON")
    p.add_argument(
        "--curves",
        default=",".join(DEFAULT_CURVES),
        help=f"comma-separated skin or tongue pose names (default: {','.join(DEFAULT_CURVES)})",
    )
    p.add_argument("-o", "--output", default="plot.png", help="PNG to write (default: plot.png)")
    p.add_argument("--size", default="1200x600", metavar="WxH", help="image size in pixels (default: 1200x600)")
    add_model_arguments(p)
    p.set_defaults(func=cmd_plot)
