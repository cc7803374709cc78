"""Arguments and parsing shared by several commands."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable

from facecast.constants import DEFAULT_FPS, MAX_BATCH_SIZE, MAX_FPS, MIN_FPS


def bounded(kind: type, lo: float, hi: float) -> Callable[[str], float]:
    """An argparse ``type`` reading ``kind`` (int or float) within [lo, hi]; anything else is a usage error (one
    line, exit 2), before any work."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'a whole number' if kind is int else 'a number'}, got "
                                             f"{text[:40]!r}") from None  # fmt: skip
        if isinstance(value, float) and not math.isfinite(value) or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be from {lo:g} to {hi:g}, got {text[:40]}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


FPS = bounded(float, MIN_FPS, MAX_FPS)
"""``--fps``: output frames per second."""


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
    p.add_argument(
        "--batch-size",
        type=bounded(int, 1, MAX_BATCH_SIZE),
        help=f"frames per inference call, 1 to {MAX_BATCH_SIZE} (default: 32, or 128 with chunks)",
    )
    p.add_argument(
        "--frames-per-pass",
        type=bounded(int, 1, 1000),
        metavar="K",
        help="frames animated from one encoder pass, for models with a chunk network (default: the "
        "most the model was trained for, and at most that; 1 = the lowest latency)",
    )
    p.add_argument(
        "--context-frames",
        type=bounded(int, 0, 1000),
        metavar="C",
        help="frames of earlier audio each encoder pass also hears (default: as many as the chunk network was "
        "trained for, and K + C at most that; 0 = none: with --frames-per-pass 1, one window per frame as in "
        "NVIDIA's SDK)",
    )
    p.add_argument(
        "--fold",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="v3.0 models: run the graph with its constant noise folded in (the same frames within 1e-5, less "
        "work; built once into the cache and checked against network.onnx). Default: on where torch is installed",
    )
    p.add_argument(
        "--noise-seed",
        type=bounded(int, 0, 2**63 - 1),
        default=0,
        metavar="N",
        help="v3.0 models: the seed of the diffusion noise (the same seed gives the same frames; default 0)",
    )
    p.add_argument(
        "--fresh-noise",
        action="store_true",
        help="v3.0 models: draw new noise for every window (the SDK's option) instead of one constant draw",
    )


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--model", help="model folder (NVIDIA's or facecast's); default: the built-in model")
    p.add_argument("--fps", type=FPS, default=DEFAULT_FPS, help="frames per second, 1 to 240 (default: 30)")
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
