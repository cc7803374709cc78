"""Arguments and parsing shared by several commands."""

from __future__ import annotations

import argparse
import sys

from facecast.constants import DEFAULT_FPS


def progress(iterable, total: int, desc: str):
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit="clip")
    return iterable


def face_param_overrides(specs: list[str]) -> dict[str, float]:
    params = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--face-param expects NAME=VALUE, got {spec!r}")
        try:
            params[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--face-param {name.strip()}: {value!r} is not a number") from None
    return params


def add_batching_arguments(p: argparse.ArgumentParser) -> None:
    """``--batch-size``, ``--frames-per-pass`` and ``--context-frames``, shared by ``animate`` and ``batch``."""
    p.add_argument("--batch-size", type=int, help="frames per inference call (default: 32, or 128 with chunks)")
    p.add_argument(
        "--frames-per-pass",
        type=int,
        metavar="K",
        help="frames animated from one encoder pass, for models with a chunk network (default: the "
        "most the model was trained for; 1 = the lowest latency)",
    )
    p.add_argument(
        "--context-frames",
        type=int,
        metavar="C",
        help="frames of earlier audio each encoder pass also hears (default: as many as the chunk network was "
        "trained for; 0 = none: with --frames-per-pass 1, one window per frame as in NVIDIA's SDK)",
    )


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--model", help="model folder (NVIDIA's or facecast's); default: the built-in model")
    p.add_argument("--fps", type=float, default=DEFAULT_FPS, help="frames per second (default: 30)")
    p.add_argument(
        "--emotion",
        action="append",
        default=[],
        metavar="NAME=WEIGHT[@TIME]",
        help="explicit emotion keyframe, repeatable (e.g. joy=0.8)",
    )


def animate_for_command(args: argparse.Namespace, audio):
    from facecast.model import load_model

    model = load_model(args.model)
    if model.random_weights:
        print("facecast: NOTE: the built-in model has RANDOM weights; the motion is meaningless", file=sys.stderr)
    return model.animate(audio, fps=args.fps, emotion=args.emotion or None)
