"""``facecast evaluate-lipsync``: lip-sync metrics, facecast beside its peers."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from facecast.cli.options import FPS, bounded
from facecast.constants import DEFAULT_FPS
from facecast.evaluation.conditions import ALL_CONDITIONS, KINDS, parse_conditions
from facecast.evaluation.corpus import HELD_OUT_VOICE
from facecast.evaluation.languages import ALL_LANGUAGES
from facecast.evaluation.peers import ORACLE_NAMES, PEER_NAMES
from facecast.evaluation.report import CORPORA


def _names(spec: str, allowed: Sequence[str], what: str) -> list[str]:
    names = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [n for n in names if n not in allowed]
    if bad:
        raise ValueError(f"unknown {what} {', '.join(bad)}; choose from {', '.join(allowed)}")
    return names


def cmd_evaluate_lipsync(args: argparse.Namespace) -> int:
    from facecast.evaluation.report import evaluate_lipsync, report_json, report_markdown
    from facecast.fileio import atomic_write

    corpora = _names(args.corpus, CORPORA, "corpus") if args.corpus != "none" else []
    languages = [] if not args.languages else list(ALL_LANGUAGES) if args.languages == "all" else \
        _names(args.languages, ALL_LANGUAGES, "language")  # fmt: skip
    if args.conditions:
        parse_conditions(args.conditions)  # refuse a bad list before any work
    peers = _names(args.peers, PEER_NAMES + ORACLE_NAMES, "peer") if args.peers != "none" else []
    from facecast.model import load_model

    model = load_model(args.model, precision=args.precision, frames_per_pass=args.frames_per_pass,
                       context_frames=args.context_frames)  # fmt: skip
    if model.random_weights:
        print("facecast: NOTE: this model has RANDOM weights; its lip-sync figures are meaningless", file=sys.stderr)
    report = evaluate_lipsync(model, corpora, peers, args.voice, args.fps, args.bootstrap,
                              noise_snr_db=args.noise_snr, conditions=args.conditions,
                              languages=languages)  # fmt: skip
    markdown = report_markdown(report)
    for out in args.out:
        path = Path(out)
        text = report_json(report) if path.suffix.lower() == ".json" else markdown
        atomic_write(path, lambda fh, text=text: fh.write(text.encode()))
        print(f"wrote {path}", file=sys.stderr)
    print(report_json(report) if args.json else markdown)
    return 0


def _read_report(path: str) -> dict:
    import json

    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc}); write reports with evaluate-lipsync --out FILE.json") from None


def cmd_compare_lipsync(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from facecast.evaluation.compare import compare_reports, comparison_markdown
    from facecast.fileio import atomic_write

    changes = compare_reports(_read_report(args.base), _read_report(args.new), args.system, args.base_system,
                              args.threshold)  # fmt: skip
    if args.json:
        import json

        text = json.dumps([asdict(c) for c in changes], indent=1)
    else:
        base, new = Path(args.base), Path(args.new)
        names = (base.stem, new.stem) if base.stem != new.stem else (f"{base.parent.name}/{base.stem}",
                                                                      f"{new.parent.name}/{new.stem}")  # fmt: skip
        text = comparison_markdown(changes, *names)
    for out in args.out:
        atomic_write(Path(out), lambda fh: fh.write(text.encode()))
        print(f"wrote {out}", file=sys.stderr)
    print(text)
    worse = [c for c in changes if c.verdict == "worse"]
    if args.fail_on_worse and worse:
        print(f"facecast: {len(worse)} metric(s) worse than {args.base}", file=sys.stderr)
        return 1
    return 0


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``evaluate-lipsync`` and ``compare-lipsync`` subcommands to the ``facecast`` CLI."""
    c = subparsers.add_parser(
        "compare-lipsync", help="two evaluate-lipsync JSON reports side by side, in standard errors"
    )
    c.add_argument("base", help="the baseline report (evaluate-lipsync --out base.json)")
    c.add_argument("new", help="the candidate report, measured on the same corpora and conditions")
    c.add_argument("--system", default="facecast", help="the system compared (default facecast)")
    c.add_argument("--base-system", help="the system in the baseline report (default: --system)")
    c.add_argument("--threshold", type=bounded(float, 0.01, 100.0), default=1.0, metavar="Z",
                   help="|difference| / combined standard error from which a metric counts as better or worse "
                        "(default 1)")  # fmt: skip
    c.add_argument("--out", action="append", default=[], metavar="FILE", help="also write the comparison here")
    c.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    c.add_argument("--fail-on-worse", action="store_true", help="exit 1 when any metric is worse (for CI)")
    c.set_defaults(func=cmd_compare_lipsync)

    p = subparsers.add_parser(
        "evaluate-lipsync", help="lip-sync metrics on recorded and held-out TTS speech, facecast beside peers"
    )
    p.add_argument("-m", "--model", help="model folder (default: the built-in model)")
    p.add_argument("--precision", choices=["fp32", "int8"], default="fp32", help="network precision (default fp32)")
    p.add_argument("--frames-per-pass", type=bounded(int, 1, 1000), metavar="K",
                   help="frames per encoder pass, for models with a chunk network (default: the model's)")  # fmt: skip
    p.add_argument("--context-frames", type=bounded(int, 0, 1000), metavar="C",
                   help="frames of earlier audio each pass also hears (default: as trained for; 0 = none)")  # fmt: skip
    p.add_argument("--out", action="append", default=[], metavar="FILE",
                   help="write the report: .json gives JSON, anything else Markdown (repeatable)")  # fmt: skip
    p.add_argument("--corpus", default=",".join(CORPORA), help=f"comma list of {', '.join(CORPORA)}, or 'none'")
    p.add_argument("--peers", default=",".join(PEER_NAMES),
                   help=f"comma list of {', '.join(PEER_NAMES)} (the default), the oracle "
                        f"{', '.join(ORACLE_NAMES)}, or 'none'")  # fmt: skip
    p.add_argument("--voice", default=HELD_OUT_VOICE, help=f"espeak-ng voice for the TTS corpus ({HELD_OUT_VOICE})")
    p.add_argument("--fps", type=FPS, default=DEFAULT_FPS, help="frames per second, 1 to 240 (default 30)")
    p.add_argument("--bootstrap", type=bounded(int, 0, 100_000), default=200,
                   help="bootstrap resamples for the standard errors, 0 to 100000 (default 200)")  # fmt: skip
    p.add_argument("--noise-snr", type=bounded(float, -30, 100), metavar="DB",
                   help="add white noise at this SNR (-30 to 100 dB below each clip's mean power)")  # fmt: skip
    p.add_argument("--conditions", metavar="LIST",
                   help=f"also measure in listening conditions: comma list of KIND[:VALUE] with KIND in "
                        f"{', '.join(k for k in KINDS if k != 'clean')} (e.g. telephone:alaw, opus:6, reverb:1.0, "
                        f"babble:5, speed:0.8), or 'all' ({', '.join(ALL_CONDITIONS[1:])})")  # fmt: skip
    p.add_argument("--languages", metavar="LIST",
                   help=f"also measure held-out espeak-ng voices per language: comma list of "
                        f"{', '.join(ALL_LANGUAGES)}, or 'all'")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    p.set_defaults(func=cmd_evaluate_lipsync)
    return p
