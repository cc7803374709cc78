"""``facecast batch``: a folder or manifest of clips, resumably, locally or on Ray."""

from __future__ import annotations

import argparse
import sys

from facecast.cli.options import FPS, add_batching_arguments, bounded
from facecast.constants import DEFAULT_FPS

SHOWN = 50
"""Failures printed on stderr (all of them are in the report)."""
EXIT_SOME_FAILED = 1
"""Exit code when the run finished but some entries failed (refused rows, bad clips); the rest were written."""


def _show(failures: list, label: str) -> None:
    for failure in failures[:SHOWN]:
        print(f"facecast: {label}: {failure}", file=sys.stderr)
    if len(failures) > SHOWN:
        print(f"facecast: ... and {len(failures) - SHOWN} more (all in the report)", file=sys.stderr)


def cmd_batch(args: argparse.Namespace) -> int:
    """Exit 0: every entry written (or already there); 1: some failed, the rest written, all named in the report
    and on stderr; 2: nothing could run (bad arguments or manifest, an unusable output folder) or the output
    filled up (rerun to resume); 130 / 143: interrupted (Ctrl-C / SIGTERM)."""
    from facecast.batch.local import REPORT_NAME, BatchReport, read_jobs, run_batch, write_report
    from facecast.cli.animate import check_formats
    from facecast.fileio import output_folder

    formats = check_formats(args.formats)
    if "pose" in formats:
        raise ValueError("--formats pose is not available in batch; choose from json, csv, npz, gltf, usd, mp4")
    if args.identity and args.ray:
        raise ValueError("--identity is not available with --ray yet; run the v3.0 model locally")
    listing = read_jobs(args.source, args.output)  # a broken manifest: one line, nothing created
    out_dir = output_folder(args.output)  # a file there, a read-only or full disk: one line before any work
    if not listing.jobs and not listing.refused:
        raise ValueError(f"{args.source}: no audio files found")
    _show(listing.refused, "refused")
    report = BatchReport()
    if listing.jobs and args.ray:
        from facecast.batch.ray_cluster import run_batch_ray

        report = run_batch_ray(args.ray, args.model, listing.jobs, formats, args.fps, args.actors,
                               args.gpus_per_actor, args.device, not args.no_blinks)  # fmt: skip
    elif listing.jobs:
        from facecast.model import load_model

        model = load_model(args.model, device=args.device, batch_size=args.batch_size, precision=args.precision,
                           frames_per_pass=args.frames_per_pass, context_frames=args.context_frames,
                           identity=args.identity, fold=args.fold, noise_seed=args.noise_seed,
                           constant_noise=not args.fresh_noise)  # fmt: skip
        if model.random_weights:
            print("facecast: NOTE: the built-in model has RANDOM weights; the motion is meaningless", file=sys.stderr)
        report = run_batch(model, listing.jobs, formats, args.fps, args.workers, blinks=not args.no_blinks)
    _show(report.failed, "failed")
    report.failed[:0] = listing.refused
    report_path = out_dir / REPORT_NAME
    try:
        write_report(report_path, report)
        where = f"report in {report_path}"
    except OSError as exc:
        where = f"no report ({exc})"
    print(f"{report.done} animated, {report.skipped} already done, {len(report.failed)} failed "
          f"({report.frames} frames); {where}")  # fmt: skip
    if report.stopped:
        print(f"facecast: error: {report.stopped}; stopped, rerun the same command to resume", file=sys.stderr)
        return 2
    return EXIT_SOME_FAILED if report.failed else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``batch``."""
    p = subparsers.add_parser(
        "batch",
        help="animate a folder or manifest of clips, resumably (locally or on Ray)",
        epilog="exit codes: 0 all written (or already there); 1 some entries failed, the rest written (see "
        "batch_report.json); 2 nothing ran (bad arguments, manifest or output folder) or the output filled up; "
        "130 Ctrl-C; 143 SIGTERM",
    )
    p.add_argument(
        "source", help="folder of audio files, or a manifest (.txt paths, or .csv with audio[,output,emotion])"
    )
    p.add_argument("-o", "--output", required=True, help="output folder (mirrors the input layout; nothing is "
                   "written outside it)")  # fmt: skip
    p.add_argument("-m", "--model", help="model folder; default: the built-in model")
    p.add_argument("--formats", default="json,csv", help="output formats (default json,csv)")
    p.add_argument("--fps", type=FPS, default=DEFAULT_FPS, help="frames per second, 1 to 240 (default 30)")
    p.add_argument("--workers", type=bounded(int, 1, 64), default=2, help="decoding threads, 1 to 64 (default 2)")
    add_batching_arguments(p)
    p.add_argument("--precision", default="fp32", choices=["fp32", "int8", "fp16"],
                   help="fp32 (default), int8 (measured, CPU) or fp16 (v3.0 models on a GPU)")  # fmt: skip
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "tensorrt"])
    p.add_argument("--no-blinks", action="store_true")
    p.add_argument("--identity", metavar="NAME", help="identity of a v3.0 multi-identity model (e.g. James)")
    p.add_argument("--ray", metavar="ADDRESS", help="run on a Ray cluster ('auto', 'ray://host:10001', or 'local')")
    p.add_argument("--actors", type=bounded(int, 1, 1024), default=1, help="Ray actors (model replicas), default 1")
    p.add_argument("--gpus-per-actor", type=bounded(float, 0, 16), default=0.0, help="0 to 16 (default 0)")
    p.set_defaults(func=cmd_batch)
