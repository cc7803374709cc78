"""int8 inference for the regression network: static QDQ quantisation with ONNX Runtime, measured and cached per
network.

Building the int8 copy of a network is a measurement, not a recipe applied blindly, because how much 8 bits cost
depends on the weights: the same layout with other weights can go from 1% to 70% of the pose's spread.

1. Calibration: activation ranges from speech-like audio (facecast's formant synthesiser at levels from quiet to
   loud, with pauses); weights int8 per output channel, activations uint8 per tensor.
2. Candidates: every Conv and MatMul with a constant weight that does at least :data:`MIN_WORK` of the network's
   multiply-adds (smaller layers gain nothing from int8); products of two activations (attention) stay fp32.
3. Sensitivity: one fp32 session runs a copy of the graph in which each candidate's int8 rounding (input, weight,
   output) is switched on by a gate input, so the pose error of each layer alone is measured on validation speech.
4. Selection: the layers with the least error per multiply-add are made int8 while the errors, added in power,
   stay within :data:`TARGET`; the layers that blow up stay fp32. The choice is checked jointly, then built with
   ONNX Runtime and checked again on the real int8 graph.
5. Report: the pose error on held-out speech (neither calibration nor validation), RMSE over the fp32 pose's
   standard deviation, is stored beside the cached graph. Above :data:`LIMIT` the int8 graph is refused and fp32 is
   used, with a one-line warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from facecast.fileio import cache_dir
from facecast.infer.formant import random_script, synthesise
from facecast.infer.quantize_graph import (
    calibration_cache,
    candidate_layers,
    constants,
    gated,
    measure,
    name_nodes,
    open_session,
    pose_error,
    run_feeds,
    select,
    smooth,
)
from facecast.pack import ModelPack, NetworkInfo
from facecast.timing import block_length, extract_windows, frame_targets

RECIPE = "6"
"""Version of the quantisation recipe; a change rebuilds the cached int8 networks and their reports."""
LIMIT = 0.02
"""Largest held-out pose error (RMSE / fp32 pose std) at which an int8 network is used."""
TARGET = 0.015
"""Pose error the layer selection aims at on validation speech (below :data:`LIMIT`, for held-out variance)."""
MIN_WORK = 0.005
"""Layers doing less than this fraction of the network's multiply-adds stay fp32."""
SEEDS = {"calibration": 0, "validation": 1, "held_out": 2}
"""Speech of each role is synthesised from its own seed: no held-out window is ever calibrated on."""
FEEDS = {"calibration": 48, "validation": 16, "held_out": 48}
"""Windows of speech per role (chunk graphs: one chunk per 6 windows)."""


def _levels(rng: np.random.Generator, n: int) -> np.ndarray:
    """A speaking level per half second, 0.05 to 1.25 (log-uniform): quiet and loud talkers."""
    return np.repeat(10.0 ** rng.uniform(-1.3, 0.1, n // 8000 + 1), 8000)[:n]


def _speech(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1000)
    audio = synthesise(seed + 7, random_script(seconds, seed))
    return (audio * _levels(rng, len(audio))).astype(np.float32)


def _emotion(rng: np.random.Generator, info: NetworkInfo, implicit: np.ndarray, count: int) -> np.ndarray:
    """Implicit emotion of the pack, explicit emotions random in half of the rows and zero in the rest."""
    emotion = np.zeros((count, info.emotion_len), np.float32)
    emotion[:, : info.implicit_emotion_len] = implicit
    explicit = rng.uniform(0, 1, (count, info.emotion_len - info.implicit_emotion_len))
    emotion[:, info.implicit_emotion_len :] = explicit * (rng.uniform(0, 1, (count, 1)) < 0.5)
    return emotion


def calibration_data(
    info: NetworkInfo, implicit: np.ndarray, count: int = 64, seed: int = 0, input_strength: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` windows of synthetic speech (every third frame of a clip, levels varying), with emotion inputs ->
    (audio [count, buffer_len], emotion [count, E])."""
    stride = 3
    audio = _speech(count * stride / 30.0 + 1.0, seed)
    targets = frame_targets(0, count * stride, 30.0)[::stride]
    windows = extract_windows(audio, targets - info.buffer_ofs, info.buffer_len) * np.float32(input_strength)
    return windows, _emotion(np.random.default_rng(seed), info, implicit, count)


def chunk_calibration(
    info: NetworkInfo,
    implicit: np.ndarray,
    frames_per_pass: int,
    count: int = 8,
    seed: int = 0,
    input_strength: float = 1.0,
) -> list[dict[str, np.ndarray]]:
    """``count`` chunk-graph feeds of ``frames_per_pass`` frames each, every other block of a speech clip."""
    length = block_length(frames_per_pass, 30.0, info.buffer_len)
    speech = _speech(2 * count * frames_per_pass / 30.0 + 1.0, seed)
    emotion = _emotion(np.random.default_rng(seed), info, implicit, count * frames_per_pass)
    feeds = []
    for i in range(count):
        targets = frame_targets(2 * i * frames_per_pass, frames_per_pass, 30.0)
        chunk = extract_windows(speech, targets[:1] - info.buffer_ofs, length) * np.float32(input_strength)
        offsets = (targets - targets[0])[None].astype(np.int64)
        chunk[0, offsets[0, -1] + info.buffer_len :] = 0.0
        rows = emotion[None, i * frames_per_pass : (i + 1) * frames_per_pass]
        feeds.append({"input": chunk, "offsets": offsets, "emotion": rows})
    return feeds


def window_feeds(audio: np.ndarray, emotion: np.ndarray, batch: int = 8) -> list[dict[str, np.ndarray]]:
    """Window-graph feeds of ``batch`` windows each."""
    return [
        {"input": audio[i : i + batch, None], "emotion": emotion[i : i + batch, None]}
        for i in range(0, len(audio), batch)
    ]


def quantize_network(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    audio: np.ndarray | list,
    emotion: np.ndarray | None = None,
    exclude: list[str] | None = None,
    pre: str | os.PathLike | None = None,
    ranges: dict[str, tuple[float, float]] | None = None,
) -> Path:
    """Write an int8 (QDQ, per-channel) copy of ``src`` calibrated on the given inputs (windows and emotion, or a
    list of feeds), with the nodes named in ``exclude`` kept fp32; atomic. ``pre``: ``src`` already through ONNX
    Runtime's pre-processing with named nodes, and ``ranges`` its calibration (as :func:`build_int8` has them)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    feeds = audio if isinstance(audio, list) else window_feeds(audio, emotion)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.i = 0

        def get_next(self):
            if self.i >= len(feeds):
                return None
            self.i += 1
            return feeds[self.i - 1]

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
        if pre is None:
            pre = _prepare(src, Path(tmp) / "pre.onnx", dynamic="offsets" in feeds[0])
        out = Path(tmp) / "int8.onnx"
        cache = calibration_cache(ranges, Path(tmp) / "ranges.json") if ranges else None
        quantize_static(
            str(pre),
            str(out),
            None if cache else Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["Conv", "MatMul"],
            nodes_to_exclude=list(exclude or []),
            **({"calibration_cache_path": str(cache)} if cache else {}),
        )
        shutil.move(str(out), dst)
    return dst


def _prepare(src: str | os.PathLike, dst: Path, dynamic: bool) -> Path:
    """ONNX Runtime's pre-processing (shape inference, graph optimisation), then unique node names."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # symbolic shape inference cannot follow the chunk graph's dynamic audio length; ONNX's own can
    quant_pre_process(str(src), str(dst), skip_symbolic_shape=dynamic)
    model = onnx.load(str(dst))
    if name_nodes(model):
        onnx.save(model, str(dst))
    return dst


def build_int8(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    calibration: list[dict],
    validation: list[dict],
    held_out: list[dict],
    target: float = TARGET,
    limit: float = LIMIT,
) -> dict:
    """Measure, choose the int8 layers, build ``dst`` and report: the error on ``held_out`` against fp32 and
    whether it is within ``limit`` (``status`` "built"; else "refused" and no ``dst`` is left)."""
    import onnx
    import onnxruntime

    start = time.perf_counter()
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
        pre = _prepare(src, Path(tmp) / "pre.onnx", dynamic="offsets" in calibration[0])
        model = onnx.load(str(pre))
        layers, others = candidate_layers(model, constants(model))
        ranges, total = measure(model, layers, calibration)
        counted = len(layers) + len(others)
        layers = [x for x in layers if x["macs"] >= MIN_WORK * total and x["x"] in ranges and x["y"] in ranges]
        smoothed = smooth(model, layers, ranges)
        if smoothed:
            onnx.save(model, str(pre))
        fp32 = open_session(src)
        refs = [run_feeds(fp32, [feed]) for feed in validation]
        ref = np.concatenate(refs)
        chosen: list[int] = []
        if layers:
            chosen = select(open_session(gated(model, layers, ranges)), layers, validation, refs, target)
        validation_error = 0.0
        out = Path(tmp) / "int8.onnx"
        for attempt in range(3 if chosen else 0):  # the real int8 graph may differ a little from the simulation
            keep = {layers[i]["name"] for i in chosen}
            exclude = [n.name for n in model.graph.node if n.op_type in ("Conv", "MatMul") and n.name not in keep]
            quantize_network(src, out, calibration, exclude=exclude, pre=pre, ranges=ranges)
            validation_error = pose_error(ref, run_feeds(open_session(out), validation))
            if validation_error <= target * 1.2 or len(chosen) == 1 or attempt == 2:
                break  # the held-out measurement below decides
            chosen.remove(max(chosen, key=lambda i: (layers[i]["alone"] or 0.0, layers[i]["macs"])))
        report: dict = {"recipe": RECIPE, "status": "refused", "error": None, "limit": limit, "target": target}
        if chosen:
            report.update(accuracy(fp32, out, held_out))
            report["validation_error"] = round(validation_error, 5)
        usable = bool(chosen) and report["error"] <= limit
        report.update({
            "status": "built" if usable else "refused",
            "int8_layers": len(chosen),
            "smoothed_inputs": smoothed,
            "fp32_layers": counted - len(chosen),
            "int8_work_fraction": round(sum(layers[i]["macs"] for i in chosen) / max(total, 1), 4),
            "kept_fp32": [x["name"] for i, x in enumerate(layers) if i not in chosen],
            "layers_alone": {x["name"]: round(x["alone"], 5) for x in layers if x.get("alone") is not None},
            "build_seconds": round(time.perf_counter() - start, 1),
            "onnxruntime": onnxruntime.__version__,
        })  # fmt: skip
        if usable:
            shutil.move(str(out), dst)
    return report


def accuracy(fp32, int8, audio, emotion: np.ndarray | None = None) -> dict:
    """Pose error of the int8 network against fp32 (paths or ONNX Runtime sessions) on the given inputs (windows
    and emotion, or feeds): ``error`` is the RMSE over the fp32 pose's standard deviation."""
    feeds = audio if isinstance(audio, list) else window_feeds(audio, emotion)
    ref, got = (run_feeds(x if hasattr(x, "run") else open_session(x), feeds) for x in (fp32, int8))
    err = got - ref
    std = ref.std(axis=0)
    return {
        "error": round(pose_error(ref, got), 5),
        "worst_channel_rmse_over_std": round(float((np.sqrt((err**2).mean(axis=0)) / np.maximum(std, 1e-8)).max()), 5),
        "max_abs_error": round(float(np.abs(err).max()), 5),
        "frames": len(ref),
    }


def _file_key(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()[:24]


def _cache_paths(network: Path) -> tuple[str, Path, Path]:
    """(network hash, cached int8 graph, its report) of an fp32 network file."""
    key = _file_key(network)
    base = cache_dir() / "int8" / f"{key}-r{RECIPE}"
    return key, base.with_name(base.name + ".onnx"), base.with_name(base.name + ".json")


def _read_report(path: Path, graph: Path) -> dict | None:
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict) or report.get("recipe") != RECIPE:
        return None
    if report.get("status") not in ("built", "refused"):
        return None
    if report["status"] == "built" and not graph.is_file():
        return None
    return report


def int8_report(pack: ModelPack, chunks: bool = False) -> dict | None:
    """The stored int8 report of the pack's network (or chunk network); None when not built. Never builds."""
    network = pack.chunk_network_path if chunks else pack.network_path
    if network is None or not network.is_file():
        return None
    _, graph, report = _cache_paths(network)
    return _read_report(report, graph)


def _build(pack: ModelPack, chunks: bool) -> tuple[dict, Path]:
    """The int8 report of the pack's network (built and measured on first use) and the int8 graph's path."""
    network = pack.chunk_network_path if chunks else pack.network_path
    key, graph, report_path = _cache_paths(network)
    report = _read_report(report_path, graph)
    if report is not None:
        return report, graph
    if sys.stderr.isatty():
        print(f"facecast: building the int8 copy of {network.name} and measuring it against fp32 (once; this can "
              "take a few minutes)", file=sys.stderr)  # fmt: skip
    info, implicit = pack.network_info, pack.implicit_emotion
    strength = float(pack.model_config.get("input_strength", 1.0))
    counts = FEEDS
    if chunks:
        # a chunk graph runs a pass for several frames, cheaply: a chunk per 6 windows (48 windows -> 8 chunks)
        feeds = {role: chunk_calibration(info, implicit, pack.chunk_frames, max(2, -(-n // 6)), SEEDS[role], strength)
                 for role, n in counts.items()}  # fmt: skip
    else:
        feeds = {role: window_feeds(*calibration_data(info, implicit, n, SEEDS[role], strength))
                 for role, n in counts.items()}  # fmt: skip
    report = build_int8(network, graph, feeds["calibration"], feeds["validation"], feeds["held_out"], TARGET, LIMIT)
    report.update({"network": key, "file": network.name, "graph": "chunks" if chunks else "windows"})
    report_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".json", dir=report_path.parent)
    with os.fdopen(fd, "w") as fh:
        json.dump(report, fh, indent=1)
    os.replace(tmp, report_path)
    return report, graph


def int8_network(pack: ModelPack) -> Path | None:
    """The cached int8 version of a pack's network, built and measured on first use; None where it was refused
    (its held-out error is above :data:`LIMIT`)."""
    report, graph = _build(pack, chunks=False)
    return graph if report["status"] == "built" else None


def int8_chunk_network(pack: ModelPack) -> Path | None:
    """The cached int8 version of a pack's chunk network (None when it has none, or where it was refused)."""
    if pack.chunk_network_path is None:
        return None
    report, graph = _build(pack, chunks=True)
    return graph if report["status"] == "built" else None


def describe(report: dict | None) -> str:
    """One line for ``facecast info``: "0.8% error (built)", "not built", or why int8 was refused."""
    if report is None:
        return "not built (built and measured on first use of --precision int8)"
    if report["status"] == "built":
        return f"{report['error']:.1%} error (built; {report['int8_work_fraction']:.0%} of the work in int8)"
    if report.get("error") is None:
        return f"refused: no layer quantises within {report['limit']:.1%}; fp32 is used"
    return f"refused: {report['error']:.1%} error > {report['limit']:.1%}; fp32 is used"


def int8_summary(pack: ModelPack) -> dict:
    """The stored int8 reports of a pack, short (``facecast info --json``, ``bench``): per graph its status ("built",
    "refused" or "not built"), held-out error, limit and the fraction of the work in int8. Never builds."""
    keys = ("status", "error", "limit", "validation_error", "int8_work_fraction", "int8_layers", "fp32_layers")
    out = {}
    for graph, chunks in (("network", False), ("chunk_network", True)):
        if chunks and pack.chunk_network_path is None:
            continue
        report = int8_report(pack, chunks)
        out[graph] = {"status": "not built"} if report is None else {k: report.get(k) for k in keys}
        out[graph]["line"] = describe(report)
    return out


def int8_or_fp32(pack: ModelPack, uses_chunks: bool) -> tuple[Path, Path | None]:
    """The (window, chunk) networks that ``precision="int8"`` runs: the int8 copies, or the fp32 network of each
    one whose int8 copy was refused, with one line on stderr saying so."""
    network, chunk = int8_network(pack), int8_chunk_network(pack) if uses_chunks else None
    refused = [(False, pack.network_path)] if network is None else []
    if uses_chunks and chunk is None:
        refused.append((True, pack.chunk_network_path))
    if refused:
        why = "; ".join(f"{path.name} {describe(int8_report(pack, chunks))}" for chunks, path in refused)
        print(f"facecast: warning: int8 {why}", file=sys.stderr)
    return network or pack.network_path, (chunk or pack.chunk_network_path) if uses_chunks else None
