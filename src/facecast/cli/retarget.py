"""``facecast retarget``: put an animation (or a freshly animated audio clip) on your own head, as GLB."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facecast.cli.options import FPS
from facecast.constants import DEFAULT_FPS

ANIMATION_SUFFIXES = (".json", ".npz")


def cmd_retarget(args: argparse.Namespace) -> int:
    """Load or compute the animation, retarget it onto ``--head`` and print what was mapped."""
    from facecast.export.load import load_animation
    from facecast.export.retarget import read_head, retarget
    from facecast.fileio import output_file, writing

    source = Path(args.input)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: file is missing")
    output_file(args.output)  # a folder, a read-only or full place: one line before any work
    head = read_head(args.head, shapes=args.shapes)  # fail fast on a bad head, before animating
    if source.suffix.lower() in ANIMATION_SUFFIXES:
        anim = load_animation(source)
    else:
        from facecast.audio import load_audio
        from facecast.model import load_model

        audio = load_audio(source)
        model = load_model(args.model, device=args.device)
        if model.random_weights:
            print("facecast: NOTE: the built-in model has RANDOM weights; the motion is meaningless", file=sys.stderr)
        anim = model.animate(audio, fps=args.fps, blinks=not args.no_blinks)
    jaw = {"auto": None, "on": True, "off": False}[args.jaw]
    with writing(args.output):  # a disk filling up while writing: one line naming the file
        report = retarget(anim, head, args.output, jaw=jaw, eyes=not args.no_eyes)
    if not args.quiet:
        print(report.summary())
    return 0


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``retarget`` subcommand to the ``facecast`` CLI."""
    p = subparsers.add_parser(
        "retarget",
        help="write an animation onto your own head (GLB/glTF, or OBJ + per-shape OBJs) as an animated GLB",
    )
    p.add_argument("input", help="facecast animation (.json or .npz) or an audio file to animate first")
    p.add_argument("--head", required=True, help="head: .glb/.gltf with morph targets, .obj, or a folder of OBJs")
    p.add_argument("--shapes", help="folder of per-shape OBJ files for an .obj head (default: found next to it)")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="output .glb (a glTF head is kept whole: textures, "
        "materials, UVs, skins, its own animations; the animation is added)",
    )
    p.add_argument("-m", "--model", help="model folder for audio input (default: the built-in model)")
    p.add_argument(
        "--fps", type=FPS, default=DEFAULT_FPS, help="frames per second for audio input, 1 to 240 (default 30)"
    )
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "tensorrt"])
    p.add_argument("--no-blinks", action="store_true", help="no generated blinks (audio input)")
    p.add_argument(
        "--jaw",
        default="auto",
        choices=["auto", "on", "off"],
        help="rotate a node named jaw/mandible/chin (auto: only when the head has no jawOpen target; the summary "
        "says which node was found and whether it was rotated)",
    )
    p.add_argument("--no-eyes", action="store_true", help="do not rotate eye nodes")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=cmd_retarget)
    return p
