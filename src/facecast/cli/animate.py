"""``facecast animate``: audio files in, animation files out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facecast.cli.options import FPS, add_batching_arguments, face_param_overrides, progress
from facecast.constants import DEFAULT_FPS

FORMAT_PACKAGES = {"mp4": "av", "usd": "pxr"}
"""Output formats that need an optional package (checked before any work)."""


def check_formats(spec: str) -> list[str]:
    """The ``--formats`` list: at least one, each known, its optional package installed; before any work."""
    import importlib.util

    from facecast.export import WRITERS

    formats = [f.strip().lower() for f in spec.split(",") if f.strip()]
    known = [*WRITERS, "pose"]
    if not formats:
        raise ValueError(f"--formats names no format; choose from {', '.join(known)}")
    unknown = sorted({f for f in formats if f not in known})
    if unknown:
        raise ValueError(f"unknown output format {', '.join(unknown)}; choose from {', '.join(known)}")
    for name in dict.fromkeys(formats):
        package = FORMAT_PACKAGES.get(name)
        if package and importlib.util.find_spec(package) is None:
            raise ModuleNotFoundError(f"--formats {name} needs {package}", name=package)
    return list(dict.fromkeys(formats))


def check_unique_stems(inputs: list[Path]) -> None:
    """Refuse inputs whose outputs would overwrite each other (the same file stem), naming both."""
    seen: dict[str, Path] = {}
    for path in inputs:
        other = seen.setdefault(path.stem, path)
        if other is not path:
            raise ValueError(f"{other} and {path} would both be written as {path.stem}.*; rename one, or animate "
                             "them into separate output folders")  # fmt: skip


def cmd_animate(args: argparse.Namespace) -> int:
    from facecast.audio import load_audio
    from facecast.emotion import EmotionTrack
    from facecast.export import WRITERS, write
    from facecast.export.raw import write_raw_json
    from facecast.fileio import output_folder, writing
    from facecast.model import AnimationOptions, load_model

    inputs = [Path(p) for p in args.audio]
    formats = check_formats(args.formats)
    check_unique_stems(inputs)
    emotion = EmotionTrack.parse(args.emotion) if args.emotion else None
    options = AnimationOptions(fps=args.fps, emotion=emotion, face_params=face_param_overrides(args.face_param),
                               blinks=not args.no_blinks)  # fmt: skip
    clips = [(path, load_audio(path)) for path in inputs]  # fail fast on a bad input, before loading the model
    out_dir = output_folder(args.output)  # a file there, a read-only or full disk: one line (exit 2)
    model = load_model(args.model, device=args.device, backend=args.backend, batch_size=args.batch_size,
                       precision=args.precision, frames_per_pass=args.frames_per_pass,
                       context_frames=args.context_frames, fold=args.fold, noise_seed=args.noise_seed,
                       constant_noise=not args.fresh_noise)  # fmt: skip
    model.face_params(options)  # validate overrides before any work
    if model.random_weights:
        print(
            "facecast: NOTE: using the built-in Claire-layout model with RANDOM weights; the motion is "
            "meaningless (pass -m PATH to use a real model)",
            file=sys.stderr,
        )
    for path, audio in progress(clips, len(clips), "animating"):
        anim = model.animate(audio, auto_emotion=args.auto_emotion, options=options)
        written = []
        for fmt in formats:  # each file named when the disk fills up while it is written
            target = out_dir / (f"{path.stem}.pose.json" if fmt == "pose" else path.stem + WRITERS[fmt][0])
            with writing(target):
                if fmt == "pose":
                    written.append(write_raw_json(target, anim.raw))
                elif fmt == "mp4":  # the preview options, and the sound at the input's own sample rate
                    from facecast.export.video import write_mp4

                    written.append(write_mp4(anim, target, size=args.preview_size, views=args.preview_views,
                                             background=args.preview_background, audio=path))  # fmt: skip
                else:
                    written += write(anim, out_dir / path.stem, [fmt])
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
    p.add_argument("--fps", type=FPS, default=DEFAULT_FPS, help="frames per second, 1 to 240 (default: 30)")
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
        help="comma-separated outputs: json (ARKit weights), csv (Live Link Face), npz (all arrays), gltf (GLB "
        "head), usd, mp4 (preview video), metahuman (MetaHuman curve table CSV), pose (raw network pose JSON); "
        "default json,csv,npz",
    )
    from facecast.characters.camera import colour_option, views_option
    from facecast.cli.options import bounded

    p.add_argument("--preview-size", type=bounded(int, 16, 4096), default=384, metavar="PIXELS",
                   help="mp4: each view's width and height, 16 to 4096 (default 384)")  # fmt: skip
    p.add_argument("--preview-views", type=views_option, default="both", metavar="VIEWS",
                   help="mp4: front, three-quarter, profile, both (front and three-quarter) or all")  # fmt: skip
    p.add_argument("--preview-background", type=colour_option, default="dark", metavar="COLOUR",
                   help="mp4: #rrggbb, r,g,b (0-255) or dark, black, white, grey, green, blue")  # fmt: skip
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "tensorrt"])
    p.add_argument("--backend", default="onnxruntime", choices=["onnxruntime", "torch"])
    p.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "int8", "fp16"],
        help="int8: quantised network, built once into the cache and measured (faster on CPU); fp16: v3.0 models "
        "on a GPU",
    )
    add_batching_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("--identity", metavar="NAME", help="identity of a v3.0 multi-identity model (e.g. James)")

    def animate_as(args: argparse.Namespace) -> int:  # --identity reaches load_model (issue 21)
        from facecast.models.diffusion import identity_scope

        with identity_scope(args.identity):
            return cmd_animate(args)

    p.set_defaults(func=animate_as)
