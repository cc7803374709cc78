"""Graph work behind facecast's int8 networks (see :mod:`facecast.infer.quantize`): calibration ranges and work
per layer, SmoothQuant for inputs with outlier channels, the gated sensitivity graph and the choice of int8 layers.

All of it reads layers by structure (a Conv or MatMul with a constant weight), never by name: NVIDIA's graphs have
anonymous tensors and may have unnamed nodes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

GATES = "facecast_int8_gates"
"""Input of the sensitivity graph: one gate per candidate layer, 1 = that layer's int8 rounding on."""
SMOOTH_ALPHAS = (0.25, 0.4, 0.5, 0.6, 0.75)
"""SmoothQuant migration strengths tried (how much of an input channel's range moves into the weights)."""


def open_session(model, threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads or (os.cpu_count() or 1)
    source = model if isinstance(model, (str, os.PathLike)) else model.SerializeToString()
    return ort.InferenceSession(str(source) if isinstance(source, Path) else source, options,
                                providers=["CPUExecutionProvider"])  # fmt: skip


def run_feeds(session, feeds: list[dict[str, np.ndarray]], extra: dict | None = None) -> np.ndarray:
    """The session's ``result`` over all feeds as frames [N, D]."""
    outs = [session.run(["result"], {**feed, **(extra or {})})[0] for feed in feeds]
    return np.concatenate([o.reshape(-1, o.shape[-1]) for o in outs])


def pose_error(ref: np.ndarray, got: np.ndarray) -> float:
    """RMSE of ``got`` against ``ref`` over the standard deviation of ``ref`` (the whole pose)."""
    return float(np.sqrt(((got - ref) ** 2).mean()) / max(float(ref.std()), 1e-12))


def constants(model) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    found = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            found[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return found


def name_nodes(model) -> bool:
    """Give every node a unique name (NVIDIA's graphs may have none; exclusion works by name); True if any
    changed."""
    seen: set[str] = set()
    changed = False
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name, changed = f"{node.op_type}_q{i}", True
        seen.add(node.name)
    return changed


def candidate_layers(model, consts: dict[str, np.ndarray]) -> tuple[list[dict], list[str]]:
    """Conv/MatMul nodes with a constant weight (candidates for int8) and the other Conv/MatMul/Gemm nodes."""
    layers, others = [], []
    for node in model.graph.node:
        if node.op_type not in ("Conv", "MatMul", "Gemm"):
            continue
        w = consts.get(node.input[1]) if len(node.input) > 1 else None
        if node.op_type == "Gemm" or w is None or node.input[0] in consts or w.ndim < 2:
            others.append(node.name)
            continue
        axis = 0 if node.op_type == "Conv" else w.ndim - 1
        layers.append({"name": node.name, "x": node.input[0], "w": node.input[1], "y": node.output[0], "axis": axis})
    return layers, others


def measure(model, layers: list[dict], feeds: list[dict]) -> tuple[dict[str, tuple[float, float]], int]:
    """Calibration ranges (min, max over all feeds) of every non-constant input and output of the Conv, MatMul and
    Gemm nodes, and their multiply-adds on the first feed; returns the ranges and the total multiply-adds. Each
    layer gets its ``macs`` and, for its input, per-channel minima and maxima (``x_min``, ``x_max``)."""
    import onnx

    consts = constants(model)
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    matmuls = [n for n in probe.graph.node if n.op_type in ("Conv", "MatMul", "Gemm")]
    names = {t for n in matmuls for t in (*n.input[:2], n.output[0]) if t and t not in consts}
    have = {o.name for o in probe.graph.output} | {i.name for i in probe.graph.input}
    for name in sorted(names - have):
        probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    runner = open_session(probe)
    outputs = [o.name for o in runner.get_outputs()]
    channel_axis = {layer["x"]: 1 if layer["axis"] == 0 else -1 for layer in layers}
    ranges: dict[str, tuple[float, float]] = {}
    per_channel: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for feed in feeds:
        values = dict(zip(outputs, runner.run(outputs, feed), strict=True))
        values.update(feed)
        for name in names:
            v = values.get(name)
            if v is None or v.dtype.kind != "f" or v.size == 0:
                continue
            lo, hi = float(v.min()), float(v.max())
            old = ranges.get(name, (lo, hi))
            ranges[name] = (min(old[0], lo), max(old[1], hi))
            shapes.setdefault(name, v.shape)
            if name in channel_axis:
                flat = np.moveaxis(v, channel_axis[name], -1).reshape(-1, v.shape[channel_axis[name]])
                got = (flat.min(axis=0), flat.max(axis=0), (flat.astype(np.float64) ** 2).sum(axis=0), len(flat))
                old_c = per_channel.get(name)
                per_channel[name] = (
                    got
                    if old_c is None
                    else (
                        np.minimum(old_c[0], got[0]),
                        np.maximum(old_c[1], got[1]),
                        old_c[2] + got[2],
                        old_c[3] + got[3],
                    )
                )
    total = 0
    macs: dict[str, int] = {}
    for node in matmuls:
        out, w = shapes.get(node.output[0]), consts.get(node.input[1])
        if out is None:
            continue
        if node.op_type == "Conv" and w is not None:
            depth = int(np.prod(w.shape[1:]))
        elif w is not None and w.ndim == 2:
            depth = w.shape[0] if w.shape[1] == out[-1] else w.shape[1]
        else:
            depth = shapes.get(node.input[0], (0,))[-1]
        macs[node.name] = int(np.prod(out)) * int(depth)
        total += macs[node.name]
    for layer in layers:
        layer["macs"] = macs.get(layer["name"], 0)
        if layer["x"] in per_channel:
            lo, hi, squares, count = per_channel[layer["x"]]
            layer["x_min"], layer["x_max"], layer["x_ms"] = lo, hi, squares / max(count, 1)
    return ranges, total


def smooth(model, layers: list[dict], ranges: dict[str, tuple[float, float]]) -> int:
    """SmoothQuant, in place: divide each channel of a layer input by ``s`` before the layers that read it and
    multiply their weights' matching rows by ``s`` (the product is unchanged), where that lowers the rounding noise
    that a model of 8-bit rounding predicts from the calibration statistics: outlier channels that would take the
    whole uint8 range shrink, at some cost to the weights. Grouped convolutions are left alone. Updates the layers
    and the ranges; returns how many inputs were smoothed."""
    from onnx import helper, numpy_helper

    consts = constants(model)
    groups: dict[str, list[dict]] = {}
    for layer in layers:
        grouped = any(a.name == "group" and a.i != 1 for a in _node(model, layer["name"]).attribute)
        batched = layer["axis"] != 0 and consts[layer["w"]].ndim != 2
        if "x_min" in layer and not grouped and not batched:
            groups.setdefault(layer["x"], []).append(layer)
    count = 0
    for k, (x, readers) in enumerate(groups.items()):
        if len(readers) != sum(1 for r in layers if r["x"] == x):
            continue  # some reader of this input cannot be smoothed
        lo, hi, ms = readers[0]["x_min"], readers[0]["x_max"], readers[0]["x_ms"]
        weights = [_rows(consts[r["w"]], r["axis"]) for r in readers]
        amax = np.maximum(np.maximum(np.abs(lo), np.abs(hi)), 1e-12)
        wmax = np.maximum(np.max([np.abs(w).max(axis=(1, 2)) for w in weights], axis=0), 1e-12)
        options = [np.ones_like(amax)] + [amax**alpha / wmax ** (1 - alpha) for alpha in SMOOTH_ALPHAS]
        s = min(options, key=lambda c: _rounding_noise(c / np.median(c), lo, hi, ms, weights))
        if s is options[0]:
            continue
        s = (s / np.median(s)).astype(np.float32)
        shape = (-1,) + (1,) * (consts[readers[0]["w"]].ndim - 2) if readers[0]["axis"] == 0 else (-1,)
        tag = f"fcsmooth{k}"
        model.graph.initializer.append(numpy_helper.from_array((1.0 / s).reshape(shape), f"{tag}_inv"))
        first = min(i for i, n in enumerate(model.graph.node) if n.name in {r["name"] for r in readers})
        model.graph.node.insert(first, helper.make_node("Mul", [x, f"{tag}_inv"], [f"{tag}_x"], name=f"{tag}_Mul"))
        for j, r in enumerate(readers):
            w = consts[r["w"]]
            scale = s.reshape((1, -1) + (1,) * (w.ndim - 2)) if r["axis"] == 0 else s.reshape(-1, 1)
            model.graph.initializer.append(numpy_helper.from_array((w * scale).astype(np.float32), f"{tag}_w{j}"))
            node = _node(model, r["name"])
            node.input[0], node.input[1] = f"{tag}_x", f"{tag}_w{j}"
            r["x"], r["w"] = f"{tag}_x", f"{tag}_w{j}"
        ranges[f"{tag}_x"] = (float((lo / s).min()), float((hi / s).max()))
        count += 1
    return count


def _rows(w: np.ndarray, axis: int) -> np.ndarray:
    """A weight as [input channels, output channels, taps]."""
    if axis == 0:  # Conv [out, in, *kernel]
        return np.moveaxis(w, 1, 0).reshape(w.shape[1], w.shape[0], -1)
    return w[:, :, None]  # MatMul [in, out]


def _rounding_noise(s: np.ndarray, lo: np.ndarray, hi: np.ndarray, ms: np.ndarray, weights: list) -> float:
    """Predicted output noise power of uint8 inputs divided by ``s`` per channel and int8 per-output-channel weights
    multiplied by ``s`` (uniform rounding: step squared over 12)."""
    span = max(float((hi / s).max()), 0.0) - min(float((lo / s).min()), 0.0)
    step_x = span / 255.0
    noise = 0.0
    for w in weights:
        scaled = w * s[:, None, None]
        noise += step_x**2 / 12 * float((scaled**2).sum(axis=(0, 2)).mean())
        step_w = np.abs(scaled).max(axis=(0, 2)) / 127.0
        noise += float((step_w**2 / 12).mean()) * w.shape[2] * float((ms / s**2).sum())
    return noise


def _node(model, name: str):
    return next(n for n in model.graph.node if n.name == name)


def calibration_cache(ranges: dict[str, tuple[float, float]], path: Path) -> Path | None:
    """The ranges as ONNX Runtime's calibration cache (ONNX Runtime versions that read one), else None."""
    import inspect

    from onnxruntime import quantization

    if "calibration_cache_path" not in inspect.signature(quantization.quantize_static).parameters:
        return None
    data = {
        name: quantization.TensorData(lowest=np.array([lo], np.float32), highest=np.array([hi], np.float32))
        for name, (lo, hi) in ranges.items()
    }
    quantization.save_tensors_data(quantization.TensorsData(quantization.CalibrationMethod.MinMax, data), path)
    return path


def activation_qparams(lo: float, hi: float) -> tuple[float, int]:
    """uint8 asymmetric scale and zero point of a range, as ONNX Runtime computes them."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < 1e-30:
        return 1.0, 0
    scale = (hi - lo) / 255.0
    return scale, int(np.clip(round(-lo / scale), 0, 255))


def weight_rounding(w: np.ndarray, axis: int) -> np.ndarray:
    """int8 symmetric per-channel rounding error of a weight (``quantised - w``)."""
    other = tuple(i for i in range(w.ndim) if i != axis)
    scale = np.maximum(np.abs(w).max(axis=other, keepdims=True), 1e-30) / 127.0
    return (np.clip(np.round(w / scale), -127, 127) * scale - w).astype(np.float32)


def gated(model, layers: list[dict], ranges: dict[str, tuple[float, float]]):
    """A copy of the fp32 graph with input ``GATES`` [len(layers)]: gate i = 1 applies layer i's int8 rounding of
    its input, weight and output (fake quantisation with the calibrated ranges), 0 leaves it fp32."""
    import onnx
    from onnx import helper, numpy_helper

    gated = onnx.ModelProto()
    gated.CopyFrom(model)
    graph = gated.graph
    consts = constants(model)
    extra, nodes = [], []
    by_name = {layer["name"]: (i, layer) for i, layer in enumerate(layers)}

    def fake(tensor: str, span: tuple[float, float], gate: str, out: str, tag: str) -> list:
        scale, zero = activation_qparams(*span)
        extra.append(numpy_helper.from_array(np.array(scale, np.float32), f"{tag}_s"))
        extra.append(numpy_helper.from_array(np.array(zero, np.uint8), f"{tag}_z"))
        return [
            helper.make_node("QuantizeLinear", [tensor, f"{tag}_s", f"{tag}_z"], [f"{tag}_q"]),
            helper.make_node("DequantizeLinear", [f"{tag}_q", f"{tag}_s", f"{tag}_z"], [f"{tag}_d"]),
            helper.make_node("Sub", [f"{tag}_d", tensor], [f"{tag}_e"]),
            helper.make_node("Mul", [f"{tag}_e", gate], [f"{tag}_m"]),
            helper.make_node("Add", [tensor, f"{tag}_m"], [out]),
        ]

    for node in graph.node:
        if node.name not in by_name:
            nodes.append(node)
            continue
        i, layer = by_name[node.name]
        tag = f"fcq{i}"
        gate = f"{tag}_g"
        extra.append(numpy_helper.from_array(np.array([i], np.int64), f"{tag}_i"))
        extra.append(numpy_helper.from_array(weight_rounding(consts[layer["w"]], layer["axis"]), f"{tag}_dw"))
        nodes.append(helper.make_node("Gather", [GATES, f"{tag}_i"], [gate]))
        nodes.extend(fake(layer["x"], ranges[layer["x"]], gate, f"{tag}_x", f"{tag}x"))
        nodes.append(helper.make_node("Mul", [f"{tag}_dw", gate], [f"{tag}_wm"]))
        nodes.append(helper.make_node("Add", [layer["w"], f"{tag}_wm"], [f"{tag}_w"]))
        node.input[0], node.input[1] = f"{tag}_x", f"{tag}_w"
        node.output[0] = f"{tag}_raw"
        nodes.append(node)
        nodes.extend(fake(f"{tag}_raw", ranges[layer["y"]], gate, layer["y"], f"{tag}y"))
    graph.ClearField("node")
    graph.node.extend(nodes)
    graph.initializer.extend(extra)
    graph.input.append(helper.make_tensor_value_info(GATES, onnx.TensorProto.FLOAT, [len(layers)]))
    return gated


def select(runner, layers: list[dict], feeds: list[dict], refs: list[np.ndarray], target: float) -> list[int]:
    """Indices of the layers to make int8. All of them where that is within ``target``; else the least pose error
    per multiply-add first (each layer measured alone, on the first feed), while the errors added in power stay
    within ``target``, then checked together on all feeds (dropping the worst until they pass)."""
    n = len(layers)

    def error(chosen: list[int], count: int = len(feeds)) -> float:
        gates = np.zeros(n, np.float32)
        gates[chosen] = 1.0
        return pose_error(np.concatenate(refs[:count]), run_feeds(runner, feeds[:count], {GATES: gates}))

    everything = list(range(n))
    if error(everything) <= target:
        for layer in layers:
            layer["alone"] = None
        return everything
    for i, layer in enumerate(layers):
        layer["alone"] = error([i], 1)

    def cost(i: int) -> float:
        return layers[i]["alone"] ** 2 / max(layers[i]["macs"], 1)

    chosen, power = [], 0.0
    for i in sorted(everything, key=cost):
        if power + layers[i]["alone"] ** 2 <= (0.8 * target) ** 2:
            chosen.append(i)
            power += layers[i]["alone"] ** 2
    while chosen and error(chosen) > target:
        chosen.remove(max(chosen, key=cost))
    return sorted(chosen)
