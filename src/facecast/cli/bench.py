"""``facecast bench``: throughput and latency on this machine, as JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def cmd_bench(args: argparse.Namespace) -> int:
    from facecast.evaluation.bench import run_bench
    from facecast.models.builtin import default_pack, packaged_available
    from facecast.models.random_pack import random_claire_pack

    packs = {"claire_size_random": random_claire_pack()}
    if packaged_available():
        packs["default"] = default_pack()
    for spec in args.model:
        label, _, path = spec.rpartition("=")
        packs[label or Path(path).name] = Path(path)
    report = run_bench(packs, seconds=args.seconds, repeats=args.repeats, int8=not args.no_int8)
    print(json.dumps(report, indent=2))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``bench``."""
    p = subparsers.add_parser("bench", help="measure throughput and latency here; prints JSON")
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="[LABEL=]PATH",
        help="also benchmark this model folder (repeatable); the Claire-size random model always runs",
    )
    p.add_argument("--seconds", type=float, default=10.0, help="audio length per offline run (default 10)")
    p.add_argument("--repeats", type=int, default=3, help="alternating rounds; best of each is reported")
    p.add_argument("--no-int8", action="store_true", help="skip the int8 network")
    p.set_defaults(func=cmd_bench)
