"""``facecast preprocess | train | eval | deploy CONFIG``: thin wrappers over :mod:`facecast.train.pipeline`.

:func:`register` adds the subcommands to facecast's parser; parsing imports neither torch nor numpy. The same
commands run standalone as ``python -m facecast.train``, which is what ``torchrun`` launches for multi-GPU
training (``torchrun --nproc_per_node 8 -m facecast.train train config.toml``).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict

from facecast.cli.options import bounded
from facecast.train.calibrate import MIN_STD, ROUNDING_POSES


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _need_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise RuntimeError(
            'training needs torch: pip install torch==2.13.0 "facecast[train]" (the CPU wheel)'
        ) from None


def cmd_preprocess(args: argparse.Namespace) -> int:
    from facecast.train.config import load_config
    from facecast.train.pipeline import run_preprocess

    cfg = load_config(args.config)
    data = run_preprocess(cfg)
    if cfg.network.kind == "diffusion":
        print(data.summary())  # type: ignore[attr-defined]
        return 0
    print(
        f"{len(data.shots)} shots, {data.targets.shape[0]} frames; skin {data.num_shapes_skin} components "
        f"({100 * data.skin.explained:.3f}% variance), tongue {data.num_shapes_tongue} components; "
        f"cache in {cfg.preprocess.cache_dir}"
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    _need_torch()
    from facecast.train.config import load_config
    from facecast.train.pipeline import run_train

    cfg = load_config(args.config)
    result = run_train(cfg, resume=args.resume_from or args.resume)
    if _rank() == 0:
        summary = result.summary
        print(f"trained {result.steps} steps on {summary['world_size']} process(es) in {summary['seconds']:.0f} s")
        for label, path in (("checkpoint", result.checkpoint), ("metrics", result.metrics), ("loss plot", result.plot)):
            if path is not None:
                print(f"  {label:<10} {path}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    _need_torch()
    from facecast.train.config import load_config
    from facecast.train.pipeline import run_eval

    cfg = load_config(args.config)
    report = run_eval(cfg, args.checkpoint)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"checkpoint {report['checkpoint']} (step {report['step']})")
    for name, metrics in [*report["shots"].items(), ("overall", report["overall"])]:
        values = "  ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "frames")
        print(f"  {name:<24} {metrics['frames']:>6} frames  {values}")
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    _need_torch()
    from facecast.train.config import load_config
    from facecast.train.pipeline import run_deploy

    cfg = load_config(args.config)
    out = run_deploy(cfg, args.checkpoint, args.output)
    print(f"wrote the model files to {out} (load with facecast.load_model or facecast animate -m {out})")
    return 0


def cmd_synthetic(args: argparse.Namespace) -> int:
    from facecast.train.synthetic import make_synthetic_dataset

    root = make_synthetic_dataset(args.output, num_shots=args.shots, seconds=args.seconds, seed=args.seed)
    print(f"wrote a synthetic dataset to {root}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    import sys

    from facecast.model import load_model
    from facecast.train.calibrate import corpus_shots, gains_json, pose_gains, write_multipliers

    model = load_model(args.pack)
    shots = corpus_shots(args.corpus, args.max_shots)
    count = [0]

    def progress(name: str) -> None:
        count[0] += 1
        if not args.json:
            print(f"\r  {count[0]} shots", end="", file=sys.stderr, flush=True)

    jaw = None
    try:
        gains = pose_gains(model, shots, args.poses, progress, args.min_std)
        if args.jaw:
            from facecast.characters import build_default_character
            from facecast.train.calibrate import jaw_gain

            count[0] = 0
            jaw = jaw_gain(model, corpus_shots(args.corpus, args.max_shots), build_default_character(), progress)
    finally:
        if count[0] and not args.json:
            print(file=sys.stderr)
    written: dict[str, float] = write_multipliers(args.pack, gains) if args.write else {}
    if args.write and jaw is not None:
        from facecast.train.calibrate import write_jaw_strength

        written["lower_teeth_strength"] = write_jaw_strength(args.pack, jaw)
    if args.json:
        out = {"gains": gains_json(gains), "written": written}
        if jaw is not None:
            out["jaw"] = asdict(jaw)
        print(json.dumps(out, indent=2))
        return 0
    for name, g in gains.items():
        line = f"{name:16s} gain {g.gain:.3f}  (teacher std {g.teacher_std:.3f}, model std {g.model_std:.3f}, "
        print(line + f"correlation {g.correlation:.2f}, {g.frames} frames)")
    if jaw is not None:
        print(f"{'jaw':16s} gain {jaw.gain:.3f}  on lower_teeth_strength (teeth drop by the ARKit jaw shapes: "
              f"std {jaw.arkit_drop_std_cm:.3f} cm, correlation with the A2F jaw {jaw.correlation:.3f}, "
              f"{jaw.frames} frames)")  # fmt: skip
    if written:
        print("wrote " + ", ".join(f"{k}={v}" for k, v in written.items()))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``preprocess``, ``train``, ``eval``, ``deploy`` and ``calibrate`` subcommands to a facecast parser."""
    p = subparsers.add_parser("preprocess", help="check a training dataset and build its PCA training cache")
    p.add_argument("config", help="training config (.toml, or .yaml with PyYAML)")
    p.set_defaults(func=cmd_preprocess)

    p = subparsers.add_parser("train", help="train a regression network (run under torchrun for several GPUs)")
    p.add_argument("config", help="training config (.toml, or .yaml with PyYAML)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in train.out_dir")
    p.add_argument("--resume-from", metavar="CHECKPOINT", help="continue from this checkpoint file")
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser("eval", help="evaluate a checkpoint: R², vertex, lip and closure errors")
    p.add_argument("config", help="training config (.toml, or .yaml with PyYAML)")
    p.add_argument("--checkpoint", help="checkpoint file (default: eval.checkpoint, else the latest)")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.set_defaults(func=cmd_eval)

    p = subparsers.add_parser("deploy", help="write a checkpoint as the official model file set")
    p.add_argument("config", help="training config (.toml, or .yaml with PyYAML)")
    p.add_argument("--checkpoint", help="checkpoint file (default: deploy.checkpoint, else the latest)")
    p.add_argument("-o", "--output", help="output folder (default: deploy.out_dir)")
    p.set_defaults(func=cmd_deploy)

    p = subparsers.add_parser(
        "calibrate",
        help="per-pose output gains that give a trained pack back its teacher's range (bsWeightMultipliers)",
    )
    p.add_argument("pack", help="model folder (a deployed pack)")
    p.add_argument("corpus", help="a 'facecast synth' corpus held out from training (its teacher curves)")
    p.add_argument(
        "--poses",
        nargs="+",
        default=list(ROUNDING_POSES),
        metavar="POSE",
        help=f"skin poses to calibrate (default: {' '.join(ROUNDING_POSES)}, the lip rounding)",
    )
    p.add_argument("--max-shots", type=bounded(int, 1, 10**7), metavar="N", help="use the first N shots only")
    p.add_argument(
        "--min-std",
        type=bounded(float, 0, 1e6),
        default=MIN_STD,
        help=f"refuse poses that vary less than this (default {MIN_STD:g})",
    )
    p.add_argument(
        "--jaw",
        action="store_true",
        help="also scale lower_teeth_strength so the A2F jaw opens the teeth as far as the solved ARKit jaw shapes "
        "do on the default character",
    )
    p.add_argument(
        "--write",
        action="store_true",
        help="multiply the pack's bsWeightMultipliers (and with --jaw its jaw) by the gains",
    )
    p.add_argument("--json", action="store_true", help="print the gains as JSON")
    p.set_defaults(func=cmd_calibrate)

    p = subparsers.add_parser("toy-dataset", help="write a tiny synthetic dataset (for trying the training framework)")
    p.add_argument("output", help="dataset folder to create")
    p.add_argument("--shots", type=bounded(int, 1, 1000), default=6, help="1 to 1000 (default 6)")
    p.add_argument("--seconds", type=bounded(float, 0.5, 600), default=2.5, help="0.5 to 600 (default 2.5)")
    p.add_argument("--seed", type=bounded(int, 0, 2**32 - 1), default=0)
    p.set_defaults(func=cmd_synthetic)
