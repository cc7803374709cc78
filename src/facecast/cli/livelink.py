"""``facecast livelink``: stream a clip's animation to Unreal Engine (Live Link Face, UDP)."""

from __future__ import annotations

import argparse
import sys

from facecast.cli.options import add_model_arguments, animate_for_command, bounded

AUDIO_HELP = "audio file (wav, flac, ogg, mp3)"


def cmd_livelink(args: argparse.Namespace) -> int:
    from facecast.audio import load_audio
    from facecast.export.livelink import LiveLinkSender

    audio = load_audio(args.audio)
    anim = animate_for_command(args, audio)
    with LiveLinkSender(args.host, args.port, args.subject) as sender:
        print(
            f"facecast: sending {len(anim)} frames ({anim.duration:.1f} s) to Live Link subject "
            f"{args.subject!r} at {args.host}:{args.port}",
            file=sys.stderr,
        )
        sent = sender.send(anim, realtime=not args.fast)
    print(f"sent {sent} frames")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``livelink``."""
    p = subparsers.add_parser("livelink", help="stream a clip's animation to Unreal Engine (Live Link Face, UDP)")
    p.add_argument("audio", help=AUDIO_HELP)
    p.add_argument("--host", default="127.0.0.1", help="Unreal's machine (default: 127.0.0.1)")
    p.add_argument("--port", type=bounded(int, 1, 65535), default=11111,
                   help="Live Link Face UDP port, 1 to 65535 (default: 11111)")  # fmt: skip
    p.add_argument("--subject", default="facecast", help="Live Link subject name (default: facecast)")
    p.add_argument("--fast", action="store_true", help="send every frame at once instead of in real time")
    add_model_arguments(p)
    p.set_defaults(func=cmd_livelink)
