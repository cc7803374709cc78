"""``facecast info``: summarise a model pack."""

from __future__ import annotations

import argparse
import json


def cmd_info(args: argparse.Namespace) -> int:
    from facecast.face.params import FaceParams
    from facecast.infer.quantize import int8_summary
    from facecast.pack import load_pack

    if args.pack is None:
        from facecast.model import builtin_pack

        args.pack = builtin_pack()
    from facecast.pack_v3 import describe, is_diffusion_folder, load_diffusion_pack

    if is_diffusion_folder(args.pack):  # a v3.0 multi-identity diffusion model (issue 21)
        from facecast.infer.quantize_v3 import describe_v3, int8_diffusion_report

        pack_v3 = load_diffusion_pack(args.pack)
        summary = pack_v3.summary()
        from facecast.models.diffusion import folded_path

        folded = folded_path(pack_v3)  # the int8 copy is made of the folded graph where one was built
        report = int8_diffusion_report(pack_v3, folded if folded.is_file() else None)
        summary["int8"] = {"status": report["status"] if report else "not built", "error": (report or {}).get("error"),
                           "line": describe_v3(report)}  # fmt: skip
        lines = describe(summary) + [f"  int8         {summary['int8']['line']}"]
        print(json.dumps(summary, indent=2) if args.json else "\n".join(lines))
        return 0
    pack = load_pack(args.pack)
    summary = pack.summary()
    summary["quiet_hold"] = FaceParams.from_model_config(pack.model_config).quiet_hold
    summary["int8"] = int8_summary(pack)
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
    for graph, label in (("network", "int8"), ("chunk_network", "int8 chunks")):
        if graph in summary["int8"]:
            print(f"  {label:<12} {summary['int8'][graph]['line']}")
    if summary["quiet_hold"] > 0:
        print(f"  quiet hold   {summary['quiet_hold']:g}: the face holds still in silences (--face-param quiet_hold=0)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``info``."""
    p = subparsers.add_parser("info", help="summarise a model pack")
    p.add_argument("pack", nargs="?", help="model folder or its model.json (default: the built-in model)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_info)
