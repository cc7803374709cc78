"""``facecast batch``: a folder or manifest of clips, resumably, locally or on Ray."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facecast.cli.options import add_batching_arguments
from facecast.constants import DEFAULT_FPS


def cmd_batch(args: argparse.Namespace) -> int:
    from facecast.batch.local import find_jobs, run_batch, write_report

    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    jobs = find_jobs(args.source, args.output)
    if not jobs:
        raise ValueError(f"{args.source}: no audio files found")
    if args.ray:
        from facecast.batch.ray_cluster import run_batch_ray

        report = run_batch_ray(args.ray, args.model, jobs, formats, args.fps, args.actors, args.gpus_per_actor,
                               args.device, not args.no_blinks)  # fmt: skip
    else:
        from facecast.model import load_model

        model = load_model(args.model, device=args.device, batch_size=args.batch_size, precision=args.precision,
                           frames_per_pass=args.frames_per_pass, context_frames=args.context_frames)  # fmt: skip
        if model.random_weights:
            print("facecast: NOTE: the built-in model has RANDOM weights; the motion is meaningless", file=sys.stderr)
        report = run_batch(model, jobs, formats, args.fps, args.workers, blinks=not args.no_blinks)
    write_report(Path(args.output) / "batch_report.json", report)
    print(f"{report.done} animated, {report.skipped} already done, {len(report.failed)} failed "
          f"({report.frames} frames); report in {Path(args.output) / 'batch_report.json'}")  # fmt: skip
    for path, error in list(report.failed.items())[:10]:
        print(f"  failed: {path}: {error}", file=sys.stderr)
    return 1 if report.failed else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``batch``."""
    p = subparsers.add_parser("batch", help="animate a folder or manifest of clips, resumably (locally or on Ray)")
    p.add_argument(
        "source", help="folder of audio files, or a manifest (.txt paths, or .csv with audio[,output,emotion])"
    )
    p.add_argument("-o", "--output", required=True, help="output folder (mirrors the input layout)")
    p.add_argument("-m", "--model", help="model folder; default: the built-in model")
    p.add_argument("--formats", default="json,csv", help="output formats (default json,csv)")
    p.add_argument("--fps", type=float, default=DEFAULT_FPS)
    p.add_argument("--workers", type=int, default=2, help="decoding threads (default 2)")
    add_batching_arguments(p)
    p.add_argument("--precision", default="fp32", choices=["fp32", "int8"])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "tensorrt"])
    p.add_argument("--no-blinks", action="store_true")
    p.add_argument("--ray", metavar="ADDRESS", help="run on a Ray cluster ('auto', 'ray://host:10001', or 'local')")
    p.add_argument("--actors", type=int, default=1, help="Ray actors (model replicas), default 1")
    p.add_argument("--gpus-per-actor", type=float, default=0.0)
    p.set_defaults(func=cmd_batch)
