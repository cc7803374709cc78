"""The ``facecast`` command line: thin wrappers over the library."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .constants import DEFAULT_FPS

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, RuntimeError)


def _progress(iterable, total: int, desc: str):
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit="clip")
    return iterable


def cmd_info(args: argparse.Namespace) -> int:
    from .face_params import FaceParams
    from .pack import load_pack

    pack = load_pack(args.pack)
    summary = pack.summary()
    summary["quiet_hold"] = FaceParams.from_model_config(pack.model_config).quiet_hold
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{summary['path']}")
    print(f"  actor        {summary['actor']} (version {summary['version']})")
    net = summary["network"]
    print(f"  network      {net['file']}, {net['bytes'] / 1e6:.1f} MB, {net['result_size']} outputs per frame")
    for part in ("skin", "tongue"):
        s = summary[part]
        print(f"  {part:<12} {s['pca_shapes']} PCA shapes, {s['vertices']} vertices")
    bs = summary["blendshapes"]
    print(f"  blendshapes  {bs['skin']} skin, {bs['tongue']} tongue")
    print(f"  emotions     {', '.join(summary['emotions'])}")
    imp = summary["implicit_emotion"]
    print(
        f"  implicit     {imp['length']} values, {imp['frames']} frames, shot {imp['source_shot']!r} "
        f"frame {imp['source_frame']}"
    )
    print(f"  look-ahead   {summary['lookahead_ms']:.0f} ms ({summary['window_samples']}-sample window)")
    chunk = summary.get("chunk_network")
    if chunk:
        k = chunk["frames_per_pass"]
        print(f"  chunks       {chunk['file']}: up to {k} frames per encoder pass; a pass of K frames also hears "
              f"the {k} - K frames before them (--context-frames)")  # fmt: skip
    if summary["quiet_hold"] > 0:
        print(f"  quiet hold   {summary['quiet_hold']:g}: the face holds still in silences (--face-param quiet_hold=0)")
    return 0


def _face_params(specs: list[str]) -> dict[str, float]:
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


def _add_batching_arguments(p: argparse.ArgumentParser) -> None:
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


def cmd_animate(args: argparse.Namespace) -> int:
    from .audio import load_audio
    from .emotion import EmotionTrack
    from .export import write
    from .export.raw import write_raw_json
    from .model import load_model

    inputs = [Path(p) for p in args.audio]
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    emotion = EmotionTrack.parse(args.emotion) if args.emotion else None
    face_params = _face_params(args.face_param)
    clips = [(path, load_audio(path)) for path in inputs]  # fail fast on a bad input, before loading the model
    model = load_model(args.model, device=args.device, backend=args.backend, batch_size=args.batch_size,
                       precision=args.precision, frames_per_pass=args.frames_per_pass,
                       context_frames=args.context_frames)  # fmt: skip
    model.pipeline.face_params(face_params)  # validate overrides before any work
    if model.random_weights:
        print(
            "facecast: NOTE: using the built-in Claire-layout model with RANDOM weights; the motion is "
            "meaningless (pass -m PATH to use a real model)",
            file=sys.stderr,
        )
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    for path, audio in _progress(clips, len(clips), "animating"):
        anim = model.animate(
            audio,
            fps=args.fps,
            emotion=emotion,
            face_params=face_params,
            blinks=not args.no_blinks,
            auto_emotion=args.auto_emotion,
        )
        written = write(anim, out_dir / path.stem, [f for f in formats if f != "pose"])
        if "pose" in formats:
            written.append(write_raw_json(out_dir / f"{path.stem}.pose.json", anim.raw))
        if not args.quiet:
            for target in written:
                print(f"wrote {target} ({len(anim)} frames at {args.fps:g} fps)")
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from .batch import find_jobs, run_batch, write_report

    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    jobs = find_jobs(args.source, args.output)
    if not jobs:
        raise ValueError(f"{args.source}: no audio files found")
    if args.ray:
        from .batch_ray import run_batch_ray

        report = run_batch_ray(args.ray, args.model, jobs, formats, args.fps, args.actors, args.gpus_per_actor,
                               args.device, not args.no_blinks)  # fmt: skip
    else:
        from .model import load_model

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


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench
    from .default_model import default_pack, packaged_available
    from .defaults import random_claire_pack

    packs = {"claire_size_random": random_claire_pack()}
    if packaged_available():
        packs["default"] = default_pack()
    for spec in args.model:
        label, _, path = spec.rpartition("=")
        packs[label or Path(path).name] = Path(path)
    report = run_bench(packs, seconds=args.seconds, repeats=args.repeats, int8=not args.no_int8)
    print(json.dumps(report, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facecast", description="Speech to 3D facial animation (Audio2Face-3D).")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("animate", help="animate audio files with a model pack")
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
    _add_batching_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=cmd_animate)

    p = sub.add_parser("batch", help="animate a folder or manifest of clips, resumably (locally or on Ray)")
    p.add_argument(
        "source", help="folder of audio files, or a manifest (.txt paths, or .csv with audio[,output,emotion])"
    )
    p.add_argument("-o", "--output", required=True, help="output folder (mirrors the input layout)")
    p.add_argument("-m", "--model", help="model folder; default: the built-in model")
    p.add_argument("--formats", default="json,csv", help="output formats (default json,csv)")
    p.add_argument("--fps", type=float, default=DEFAULT_FPS)
    p.add_argument("--workers", type=int, default=2, help="decoding threads (default 2)")
    _add_batching_arguments(p)
    p.add_argument("--precision", default="fp32", choices=["fp32", "int8"])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "tensorrt"])
    p.add_argument("--no-blinks", action="store_true")
    p.add_argument("--ray", metavar="ADDRESS", help="run on a Ray cluster ('auto', 'ray://host:10001', or 'local')")
    p.add_argument("--actors", type=int, default=1, help="Ray actors (model replicas), default 1")
    p.add_argument("--gpus-per-actor", type=float, default=0.0)
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("bench", help="measure throughput and latency here; prints JSON")
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

    from .evaluation import register as register_evaluation
    from .export.cli import register as register_export
    from .server.cli import register as register_server
    from .synth.cli import register as register_synth
    from .train.cli import register as register_training
    from .web.cli import register as register_web

    register_training(sub)
    register_web(sub)
    register_evaluation(sub)
    register_export(sub)
    register_synth(sub)
    register_server(sub)

    p = sub.add_parser("info", help="summarise a model pack")
    p.add_argument("pack", help="model folder or its model.json")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one line and exit with code 2."""
    return run_command(build_parser().parse_args(argv))


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command (``args.func``); user errors print one line and give exit code 2, no traceback."""
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        print(f"facecast: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facecast: interrupted", file=sys.stderr)
        return 130
