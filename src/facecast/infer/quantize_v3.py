"""int8 (and fp16) for the v3.0 diffusion network: dynamic int8 MatMuls with ONNX Runtime, measured and cached per
network.

What is made int8: every MatMul whose weight is a constant of at least :data:`MIN_WEIGHT` values (HuBERT's
projections and feed-forward layers, the skin and tongue embeddings and heads); weights int8 per tensor,
activations quantised per call (dynamic), so no calibration set is needed. Convolutions (HuBERT's feature
extractor), attention products, the GRU and the small layers stay fp32.

The int8 copy is then measured, never assumed: every identity animates held-out speech (facecast's formant
synthesiser, levels from quiet to loud, explicit emotions on half the clip) through the SDK loop with fp32 and with
int8, and the pose error (RMSE over the fp32 pose's standard deviation, as for v2.3 packs) is stored beside the
cached graph. Above :data:`LIMIT` the int8 graph is refused and fp32 is used, with a one-line warning.

fp16 (``precision="fp16"``, for CUDA): the whole graph in half precision with fp32 inputs and outputs, measured
and refused the same way, on the device it will run on.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from facecast.fileio import cache_dir
from facecast.infer.diffusion import DiffusionEngine, NoiseOptions, OnnxDiffusionRunner
from facecast.infer.quantize import LIMIT, _file_key, _speech
from facecast.infer.quantize_graph import candidate_layers, constants, name_nodes, pose_error
from facecast.pack_v3 import DiffusionInfo, DiffusionPack

RECIPE = "v3-1"
"""Version of this recipe; a change rebuilds the cached int8 networks and their reports."""
MIN_WEIGHT = 1 << 16
"""MatMul weights with fewer values stay fp32 (too little work to gain from int8)."""
HELD_OUT_SECONDS = 4.0
"""Speech per identity on which the int8 copy is measured."""


def quantize_diffusion(src: str | os.PathLike, dst: str | os.PathLike, min_weight: int | None = None) -> dict:
    """Write the dynamic-int8 copy of a v3.0 ``network.onnx`` to ``dst``; returns which layers were made int8.

    The graph is first folded by ONNX Runtime's basic optimisations (an exporter's ``Transpose`` of a constant
    weight becomes the constant), so that every layer's weight is seen as one."""
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        folded = Path(tmp) / "folded.onnx"
        _constant_fold(src, folded)
        model = onnx.load(str(folded))
        name_nodes(model)
        consts = constants(model)
        layers, _ = candidate_layers(model, consts)
        least = MIN_WEIGHT if min_weight is None else min_weight
        matmuls = {n.name for n in model.graph.node if n.op_type == "MatMul"}
        chosen = [layer["name"] for layer in layers
                  if layer["name"] in matmuls and consts[layer["w"]].size >= least]  # fmt: skip
        work = {layer["name"]: consts[layer["w"]].size for layer in layers}
        if not chosen:  # (an empty list would make ONNX Runtime quantise every node)
            shutil.copyfile(src, dst)
        else:
            _quantize(model, chosen, dst)
    total = sum(work.values()) or 1
    return {"int8_layers": len(chosen), "fp32_layers": len(layers) - len(chosen),
            "int8_weight_fraction": round(sum(work[n] for n in chosen) / total, 4)}  # fmt: skip


def _constant_fold(src: str | os.PathLike, dst: Path) -> None:
    """``src`` after ONNX Runtime's basic (exact) graph optimisations, constant folding among them."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(dst)
    options.log_severity_level = 3
    ort.InferenceSession(str(src), options, providers=["CPUExecutionProvider"])


def _quantize(model, nodes: list[str], dst: str | os.PathLike) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        named = Path(tmp) / "named.onnx"
        onnx.save(model, str(named), save_as_external_data=model.ByteSize() > 1_900_000_000)
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # ONNX Runtime's advice to pre-process the graph, on the root logger
        try:
            quantize_dynamic(str(named), str(dst), weight_type=QuantType.QInt8, nodes_to_quantize=nodes,
                             op_types_to_quantize=["MatMul"], extra_options={"MatMulConstBOnly": True})  # fmt: skip
        finally:
            root.setLevel(level)


def held_out_error(fp32: str | os.PathLike, int8: str | os.PathLike, info: DiffusionInfo,
                   threads: int | None = None, seed: int = 0, device: str = "cpu") -> dict:  # fmt: skip
    """Pose error of ``int8`` (or any reduced copy) against ``fp32`` on held-out speech, every identity, through
    the SDK loop, both on ``device``."""
    from facecast.emotion import EmotionTrack

    runners = [OnnxDiffusionRunner(path, threads=threads, device=device) for path in (fp32, int8)]
    refs, gots = [], []
    for index in range(len(info.identities)):
        audio = _speech(HELD_OUT_SECONDS, 2 + index)
        emotion = np.zeros(len(info.emotions), np.float32)
        emotion[index % len(emotion)] = 0.8
        track = EmotionTrack().add(0.0, np.zeros_like(emotion)).add(HELD_OUT_SECONDS / 2, emotion)
        ref, got = (DiffusionEngine(r, info, index, 1.0, NoiseOptions(seed, True)).run(audio, info.fps, track).result
                    for r in runners)  # fmt: skip
        refs.append(ref)
        gots.append(got)
    ref, got = np.concatenate(refs), np.concatenate(gots)
    return {"error": round(pose_error(ref, got), 5), "max_abs_error": round(float(np.abs(got - ref).max()), 5),
            "frames": len(ref), "seconds_per_identity": HELD_OUT_SECONDS}  # fmt: skip


def halve_diffusion(src: str | os.PathLike, dst: str | os.PathLike) -> dict:
    """Write the fp16 copy of a v3.0 graph (for CUDA): every float weight and op in fp16, inputs and outputs
    kept fp32, so the engine feeds it unchanged."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True, disable_shape_infer=True)
    onnx.save(model, str(dst))
    return {"fp16_nodes": sum(1 for n in model.graph.node if n.op_type != "Cast")}


def _paths(network: Path, precision: str = "int8") -> tuple[str, Path, Path]:
    key = _file_key(network)
    base = cache_dir() / precision / f"{key}-{RECIPE}"
    return key, base.with_name(base.name + ".onnx"), base.with_name(base.name + ".json")


def int8_diffusion_report(pack: DiffusionPack, network: Path | None = None, precision: str = "int8") -> dict | None:
    """The stored report of the int8 (or fp16) copy of the pack's network (or of ``network``, a folded copy of it);
    None when not built. Never builds."""
    _, graph, report = _paths(network or pack.network_path, precision)
    try:
        stored = json.loads(report.read_text())
    except (OSError, ValueError):
        return None
    if (
        not isinstance(stored, dict)
        or stored.get("recipe") != RECIPE
        or stored.get("status") not in ("built", "refused")
    ):
        return None
    return stored if stored["status"] == "refused" or graph.is_file() else None


def int8_diffusion_network(
    pack: DiffusionPack, threads: int | None = None, network: Path | None = None, seed: int = 0,
    precision: str = "int8", device: str = "cpu",
) -> Path:  # fmt: skip
    """The network ``precision="int8"`` (or ``"fp16"``) runs: the cached reduced copy of the pack's network (or
    of ``network``, a folded copy of it with the noise of ``seed``), built and measured on ``device`` on first use,
    or the fp32 network, with one line on stderr, where the copy's held-out error is above :data:`LIMIT`."""
    network = network or pack.network_path
    key, graph, report_path = _paths(network, precision)
    report = int8_diffusion_report(pack, network, precision)
    if report is None:
        if sys.stderr.isatty():
            print(f"facecast: building the {precision} copy of {pack.network_path.name} and measuring it against "
                  "fp32 (once; this can take a few minutes)", file=sys.stderr)  # fmt: skip
        graph.parent.mkdir(parents=True, exist_ok=True)
        tmp_graph = graph.with_name(graph.name + f".{os.getpid()}.tmp")
        try:
            build = quantize_diffusion if precision == "int8" else halve_diffusion
            report = build(network, tmp_graph)
            report.update(held_out_error(network, tmp_graph, pack.info, threads, seed, device))
            report.update({"recipe": RECIPE, "network": key, "limit": LIMIT, "precision": precision,
                           "measured_on": device})  # fmt: skip
            report["status"] = "built" if report["error"] <= LIMIT else "refused"
            if report["status"] == "built":
                os.replace(tmp_graph, graph)
        finally:
            tmp_graph.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".json", dir=report_path.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump(report, fh, indent=1)
        os.replace(tmp, report_path)
    if report["status"] == "built":
        return graph
    print(f"facecast: warning: {precision} {pack.network_path.name} refused: {report['error']:.1%} error > "
          f"{report['limit']:.1%}; fp32 is used", file=sys.stderr)  # fmt: skip
    return network


def describe_v3(report: dict | None) -> str:
    """One line for ``facecast info``."""
    if report is None:
        return "not built (built and measured on first use of --precision int8)"
    verdict = "built" if report["status"] == "built" else f"refused, > {report['limit']:.1%}; fp32 is used"
    if "int8_weight_fraction" not in report:
        return f"{report['error']:.2%} error ({verdict})"
    return f"{report['error']:.2%} error ({verdict}; {report['int8_weight_fraction']:.0%} of the weights in int8)"
