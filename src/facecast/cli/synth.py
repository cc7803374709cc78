"""``facecast synth OUT_DIR``: a thin wrapper over :func:`facecast.synth.corpus.build_corpus`.

:func:`register` adds the subcommand to facecast's parser (parsing imports nothing heavy); ``python -m
facecast.cli.synth`` runs it standalone.
"""

from __future__ import annotations

import argparse
import sys

from facecast.cli.options import bounded


def _list_voices() -> int:
    from facecast.synth.tts import available_voices, backend_status

    for backend, reason in backend_status().items():
        print(f"{backend:<9} {'ok' if reason is None else reason}")
    voices = available_voices()
    print(f"\n{len(voices)} voices (use backend names or BACKEND:NAME with --voices):")
    for voice in voices:
        print(f"  {voice.backend}:{voice.name}  [{voice.language}]")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    if args.list_voices:
        return _list_voices()
    if not args.out_dir:
        raise ValueError("OUT_DIR is required (or use --list-voices)")
    from facecast.synth.corpus import build_corpus

    manifest = build_corpus(
        args.out_dir,
        minutes=args.minutes,
        seed=args.seed,
        voices=args.voices,
        languages=args.languages,
        emotions=args.emotions,
        workers=args.workers,
        augment=not args.no_augment,
        channel_share=args.channel_share,
        lip_press=tuple(args.lip_press),
        conversation_share=args.conversation_share,
        consonant_jaw=args.consonant_jaw,
    )
    shots = manifest["shots"]
    backends = sorted({s["voice"]["backend"] for s in shots})
    print(
        f"wrote {len(shots)} shots, {manifest['seconds'] / 60:.1f} min of audio to {args.out_dir} "
        f"(voices from {', '.join(backends)}; manifest corpus.json)"
    )
    missing = {b: r for b, r in manifest["backends"].items() if r is not None}
    for reason in missing.values():
        print(f"  not used: {reason}", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``synth`` to a facecast parser."""
    p = subparsers.add_parser(
        "synth",
        help="build a synthetic training corpus (TTS speech + procedural face) in NVIDIA's dataset layout",
    )
    p.add_argument("out_dir", nargs="?", metavar="OUT_DIR", help="corpus folder (created; an existing one resumes)")
    p.add_argument("--minutes", type=bounded(float, 0.01, 100_000), default=10.0,
                   help="minutes of audio to reach, 0.01 to 100000 (default 10)")  # fmt: skip
    p.add_argument("--seed", type=bounded(int, 0, 2**32 - 1), default=0,
                   help="random seed; the same seed gives the same corpus")  # fmt: skip
    p.add_argument(
        "--voices",
        nargs="+",
        metavar="VOICE",
        help="backends (espeak festival flite piper) and/or voices as BACKEND:NAME (default: all installed)",
    )
    p.add_argument("--languages", nargs="+", metavar="LANG", help="text languages (en de fr es it pt nl pl cmn)")
    p.add_argument("--emotions", nargs="+", metavar="EMOTION", help="shot emotions (default: neutral + the 10 A2F)")
    p.add_argument("--workers", type=bounded(int, 1, 256), default=2, help="parallel processes, 1 to 256 (default 2)")
    p.add_argument("--no-augment", action="store_true", help="keep the TTS audio clean (no noise, reverb or EQ)")
    p.add_argument("--channel-share", type=bounded(float, 0.0, 1.0), default=0.0, metavar="SHARE",
                   help="of the augmented shots, the share also sent through a phone line or speech codec "
                   "(G.711, GSM, AMR, Opus, MP3; drawn per shot, seeded), 0 to 1 (default 0)")  # fmt: skip
    p.add_argument("--lip-press", type=bounded(float, 0.0, 1.0), nargs=2, default=[0.35, 0.0],
                   metavar=("PRESS", "ROLL"),
                   help="the teacher's mouthPress and mouthRollUpper/Lower at full bilabial contact, 0 to 1 "
                   "(default 0.35 0: the lips touch; 0.5 0.08 presses them past rest)")  # fmt: skip
    p.add_argument("--conversation-share", type=bounded(float, 0.0, 1.0), default=0.0, metavar="SHARE",
                   help="the share of shots spoken conversationally: faster, with fillers, long pauses and often "
                   "a quieter second voice that goes on through them, 0 to 1 (default 0)")  # fmt: skip
    p.add_argument("--consonant-jaw", type=bounded(float, 0.1, 5.0), default=None, metavar="DOMINANCE",
                   help="how strongly the teacher's s, t, n, l, sh, th, f, v hold the jaw up between vowels, 0.1 to "
                   "5 (default: 0.6-0.7, the shipped model's teacher; 1.5 raises it as speech does)")  # fmt: skip
    p.add_argument("--list-voices", action="store_true", help="show the TTS backends and voices found, then exit")
    p.set_defaults(func=cmd_synth)
