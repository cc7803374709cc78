"""``facecast animate``: audio files in, animation files out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facecast.cli.options import add_batching_arguments, face_param_overrides, progress
from facecast.constants import DEFAULT_FPS


def cmd_animate(args: argparse.Namespace) -> int:
    from facecast.audio import load_audio
    from facecast.emotion import EmotionTrack
    from facecast.export import write
    from facecast.export.raw import write_raw_json
    from facecast.model import AnimationOptions, load_model

    inputs = [Path(p) for p in args.audio]
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    emotion = EmotionTrack.parse(args.emotion) if args.emotion else None
    options = AnimationOptions(fps=args.fps, emotion=emotion, face_params=face_param_overrides(args.face_param),
                               blinks=not args.no_blinks)  # fmt: skip
    clips = [(path, load_audio(path)) for path in inputs]  # fail fast on a bad input, before loading the model
    model = load_model(args.model, device=args.device, backend=args.backend, batch_size=args.batch_size,
                       precision=args.precision, frames_per_pass=args.frames_per_pass,
                       context_frames=args.context_frames)  # fmt: skip
    model.face_params(options)  # validate overrides before any work
    if model.random_weights:
        print(
            "facecast: NOTE: using the built-in Claire-layout model with RANDOM weights; the motion is "
            "meaningless (pass -m PATH to use a real model)",
            file=sys.stderr,
        )
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    for path, audio in progress(clips, len(clips), "animating"):
        anim = model.animate(audio, auto_emotion=args.auto_emotion, options=options)
        written = write(anim, out_dir / path.stem, [f for f in formats if f != "pose"])
        if "pose" in formats:
            written.append(write_raw_json(out_dir / f"{path.stem}.pose.json", anim.raw))
        if not args.quiet:
            for target in written:
                print(f"wrote {target} ({len(anim)} frames at {args.fps:g} fps)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``animate``."""
    p = subparsers.add_parser("animate", help="animate audio files with a model pack")
    p.add_argument("audio", nargs="+", help="audio files (wav, flac, ogg, mp3)")
    p.add_argument("-m", "--model", help="model folder (NVIDIA's or facecast's); default: the built-in model")
    p.add_argument("-o", "--output", default="out", help="output folder (default: out)")
    p.add_argument("--fps", type=float, default=DEFAULT_FPS, help="frames per second (default: 30)")
    p.add_argument(
        "--emotion",
        action="append",
        default=[],
        metavar="NAME=WEIGHT[@TIME]",
        help="explicit emotion keyframe, repeatable (e.g. joy=0.8, anger=1@2.5)",
    )
    p.add_argument(
        "--auto-emotion",
        metavar="A2E_ONNX",
        help="drive emotion from the audio with an Audio2Emotion ONNX (file or folder); "
        "--emotion then sets the preferred emotion",
    )
    p.add_argument(
        "--face-param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a model_config.json face parameter (snake_case or NIM camelCase), repeatable",
    )
    p.add_argument("--no-blinks", action="store_true", help="no generated blinks (the SDK's behaviour)")
    p.add_argument(
        "--formats",
        default="json,csv,npz",
        help="comma-separated outputs: json (ARKit weights), csv (Live Link Face), npz (all arrays), "
        "pose (raw network pose JSON); default json,csv,npz",
    )
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "tensorrt"])
    p.add_argument("--backend", default="onnxruntime", choices=["onnxruntime", "torch"])
    p.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "int8"],
        help="int8: statically quantised network, built once into the cache (faster on CPU)",
    )
    add_batching_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=cmd_animate)
