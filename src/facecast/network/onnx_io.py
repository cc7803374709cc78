"""ONNX round trip for the regression network: export with NVIDIA's interface, import official-style graphs.

Export gives ``input`` [B,1,8320] and ``emotion`` [B,1,26] -> ``result`` [B,1,D], opset 14, dynamic batch, and
NVIDIA's initializer names where its graphs have names. Import reads the weights of any such graph into a
:class:`RegressionNetwork`. Named tensors are taken by name; anonymous ones (constant-folded MatMul weights, the
group-norm affine, folded convolutions) are identified by the node that consumes them and the named bias next to
it, never by their own names.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from facecast.network.regression import NetworkConfig, RegressionNetwork

OPSET = 14
FRAMEWORK_ALIASES: tuple[tuple[str, str], ...] = (
    ("w2v.", "wave2vec_model."),
    ("w2v_feature_coeffs", "combine_weights"),
    ("w2v_linear_mapping.", "audio_feature_map."),
    ("linear_explicit_emo.", "emo_linear1."),
    ("linear_skin_jaw_eyes1.", "out_mapping."),
    ("linear_skin_jaw_eyes2.", "out_mapping1."),
    ("linear_tongue1.", "out_mapping_tongue."),
    ("linear_tongue2.", "out_mapping1_tongue."),
)
"""Training-framework parameter names -> names in NVIDIA's released graphs."""


class OnnxImportError(ValueError):
    """The ONNX file is not a regression network facecast can read."""


def export_onnx(
    network: RegressionNetwork, path: str | os.PathLike, opset: int = OPSET, fold_constants: bool = True
) -> Path:
    """Write ``network`` as ``path`` with the official interface; atomic (temp file, then rename).

    ``fold_constants=False`` keeps every parameter as an initializer named as in the state dict (ONNX Runtime
    folds the graph when it opens it)."""
    cfg = network.cfg
    dummy = (torch.zeros(1, 1, cfg.buffer_len), torch.zeros(1, 1, cfg.emotion_len))
    names = ["input", "emotion", "result"]
    axes = {name: {0: "batch_size"} for name in names}
    return _export(network, network, dummy, names, axes, path, opset, fold_constants)


def _export(
    network: RegressionNetwork,
    module: torch.nn.Module,
    dummy: tuple[torch.Tensor, ...],
    names: list[str],
    dynamic_axes: dict[str, dict[int, str]],
    path: str | os.PathLike,
    opset: int,
    fold_constants: bool = True,
) -> Path:
    """Trace ``module`` (``network`` or a wrapper of it) in eval mode into ``path`` atomically; ``names`` are the
    inputs, then the single output."""
    path = Path(path)
    was_training = network.training
    network.eval()
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        with torch.no_grad():
            torch.onnx.export(
                module,
                dummy,
                tmp,
                input_names=names[:-1],
                output_names=names[-1:],
                opset_version=opset,
                dynamic_axes=dynamic_axes,
                do_constant_folding=fold_constants,
                dynamo=False,
            )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
        network.train(was_training)
    return path


class _ChunkGraph(torch.nn.Module):
    """``RegressionNetwork.forward_chunks`` as a module to trace."""

    def __init__(self, network: RegressionNetwork) -> None:
        super().__init__()
        self.network = network

    def forward(self, audio: torch.Tensor, offsets: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
        return self.network.forward_chunks(audio, offsets, emotion)


def export_chunk_onnx(
    network: RegressionNetwork, path: str | os.PathLike, opset: int = OPSET, fold_constants: bool = True
) -> Path:
    """Write facecast's chunk graph: ``input`` [B, L] (L a multiple of 320), ``offsets`` [B, K] (int64 window
    starts), ``emotion`` [B, K, E] -> ``result`` [B, K, D]; batch, L and K dynamic. Atomic."""
    from facecast.timing import chunk_length

    cfg = network.cfg
    offsets = torch.tensor([[0, 533, 1066]], dtype=torch.int64)
    dummy = (torch.zeros(1, chunk_length(1066, cfg.buffer_len)), offsets, torch.zeros(1, 3, cfg.emotion_len))
    axes = {
        "input": {0: "batch_size", 1: "samples"},
        "offsets": {0: "batch_size", 1: "frames"},
        "emotion": {0: "batch_size", 1: "frames"},
        "result": {0: "batch_size", 1: "frames"},
    }
    return _export(network, _ChunkGraph(network), dummy, list(axes), axes, path, opset, fold_constants)


@dataclass
class _Graph:
    """Constants and consumers of one ONNX graph."""

    constants: dict[str, np.ndarray]
    consumers: dict[str, list[onnx.NodeProto]]
    producers: dict[str, onnx.NodeProto]
    nodes: list[onnx.NodeProto] = field(default_factory=list)

    @classmethod
    def read(cls, model: onnx.ModelProto) -> _Graph:
        constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        producers: dict[str, onnx.NodeProto] = {}
        for node in model.graph.node:
            if node.op_type == "Constant":
                for attr in node.attribute:
                    if attr.name == "value":
                        constants[node.output[0]] = numpy_helper.to_array(attr.t)
            elif node.op_type == "Identity" and node.input[0] in constants:  # merged duplicate initializers
                constants[node.output[0]] = constants[node.input[0]]
            for name in node.input:
                consumers[name].append(node)
            for name in node.output:
                producers[name] = node
        return cls(constants, consumers, producers, list(model.graph.node))

    def other_input(self, node: onnx.NodeProto, name: str) -> str | None:
        others = [i for i in node.input if i != name]
        return others[0] if len(others) == 1 else None

    def follow(self, name: str, passthrough: tuple[str, ...] = ("Reshape", "Unsqueeze", "Identity")) -> list:
        """Consumers of ``name``, looking through shape-only nodes."""
        found = []
        for node in self.consumers.get(name, []):
            if node.op_type in passthrough:
                found.extend(self.follow(node.output[0], passthrough))
            else:
                found.append(node)
        return found


def _canonical(name: str) -> str:
    for old, new in FRAMEWORK_ALIASES:
        if name.startswith(old):
            return new + name[len(old) :]
    return name


def _bias_prefix(graph: _Graph, name: str | None) -> str | None:
    if name is None or not name.endswith(".bias"):
        return None
    return _canonical(name)[: -len(".bias")]


def _infer_config(graph: _Graph, names: dict[str, np.ndarray]) -> NetworkConfig:
    layers = {int(m.group(1)) for n in names if (m := re.search(r"transformer\.layers\.(\d+)\.", n))}
    num_layers = len(layers) or sum(1 for n in graph.nodes if n.op_type == "Softmax")
    try:
        sje = names["out_mapping1.bias"].shape[0]
        tongue = names["out_mapping1_tongue.bias"].shape[0]
    except KeyError as exc:
        raise OnnxImportError(f"no output head named {exc.args[0]!r}: not an Audio2Face regression graph") from None
    base = NetworkConfig()
    return NetworkConfig(
        num_layers=num_layers,
        num_shapes_skin=sje - base.jaw_size - base.eyes_size,
        num_shapes_tongue=tongue,
    )


def _resolve_anonymous(graph: _Graph, expected: dict[str, torch.Size]) -> dict[str, np.ndarray]:
    """Map anonymous constants to parameter names through the nodes that consume them."""
    found: dict[str, np.ndarray] = {}
    for const_name, value in graph.constants.items():
        for node in graph.consumers.get(const_name, []):
            if node.op_type == "MatMul" and value.ndim == 2 and node.input[1] == const_name:
                for add in graph.consumers.get(node.output[0], []):
                    if add.op_type == "Add":
                        prefix = _bias_prefix(graph, graph.other_input(add, node.output[0]))
                        if prefix:
                            found[prefix + ".weight"] = value.T
            elif node.op_type in ("Conv", "Gemm") and len(node.input) > 2 and node.input[1] == const_name:
                prefix = _bias_prefix(graph, node.input[2])
                if prefix:
                    transposed = node.op_type == "Gemm" and not any(
                        a.name == "transB" and a.i == 1 for a in node.attribute
                    )
                    found[prefix + ".weight"] = value.T if transposed else value
    # Group norm of the first feature-extractor convolution: InstanceNormalization -> Mul(scale) -> Add(bias).
    for node in graph.nodes:
        if node.op_type != "InstanceNormalization":
            continue
        conv = graph.producers.get(node.input[0])
        while conv is not None and conv.op_type != "Conv":
            conv = graph.producers.get(conv.input[0])
        if conv is None or not conv.input[1].endswith(".conv.weight"):
            continue
        prefix = _canonical(conv.input[1])[: -len("conv.weight")] + "layer_norm"
        for mul in graph.follow(node.output[0]):
            if mul.op_type != "Mul":
                continue
            scale = graph.other_input(mul, mul.input[0] if mul.input[1] in graph.constants else mul.input[1])
            if scale in graph.constants:
                found[prefix + ".weight"] = graph.constants[scale]
            for add in graph.follow(mul.output[0]):
                bias = next((i for i in add.input if i in graph.constants), None)
                if add.op_type == "Add" and bias is not None:
                    found[prefix + ".bias"] = graph.constants[bias]
    # Layer norms, in the order the graph computes them (torch's exporter merges identical initializers, so an
    # untrained graph's all-ones scales may sit under another layer's name).
    patterns = _layer_norm_patterns(graph)
    modules = [k[: -len(".weight")] for k in expected if k.endswith("layer_norm.weight") and "conv_layers" not in k]
    if len(patterns) == len(modules):
        for prefix, (scale, bias) in zip(modules, patterns, strict=True):
            found.setdefault(prefix + ".weight", graph.constants[scale])
            found.setdefault(prefix + ".bias", graph.constants[bias])
    # The analysis window of the autocorrelation branch: the one constant of win_len values consumed by a Mul.
    win_shape = expected.get("autocorr.window")
    if win_shape is not None and "autocorr.window" not in found:
        candidates = [
            v
            for n, v in graph.constants.items()
            if v.size == win_shape.numel() and any(c.op_type == "Mul" for c in graph.consumers.get(n, []))
        ]
        if len(candidates) == 1:
            found["autocorr.window"] = candidates[0]
    return found


def _layer_norm_patterns(graph: _Graph) -> list[tuple[str, str]]:
    """(scale, bias) constants of every layer norm: a LayerNormalization node, or Div -> Mul(c) -> Add(c)."""
    found = []
    for node in graph.nodes:
        if node.op_type == "LayerNormalization" and len(node.input) == 3:
            found.append((node.input[1], node.input[2]))
        elif node.op_type == "Div":
            for mul in graph.consumers.get(node.output[0], []):
                scale = graph.other_input(mul, node.output[0]) if mul.op_type == "Mul" else None
                if scale not in graph.constants or graph.constants[scale].ndim != 1:
                    continue
                for add in graph.consumers.get(mul.output[0], []):
                    bias = graph.other_input(add, mul.output[0]) if add.op_type == "Add" else None
                    if bias in graph.constants and graph.constants[bias].shape == graph.constants[scale].shape:
                        found.append((scale, bias))
    return found


def import_onnx(path: str | os.PathLike, cfg: NetworkConfig | None = None) -> RegressionNetwork:
    """Build a :class:`RegressionNetwork` holding the weights of an official-style ``network.onnx``."""
    path = Path(path)
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError and friends
        raise OnnxImportError(f"{path}: not a readable ONNX file ({exc.__class__.__name__})") from None
    graph = _Graph.read(model)
    named = {_canonical(k): v for k, v in graph.constants.items()}
    cfg = cfg or _infer_config(graph, named)
    network = RegressionNetwork(cfg)
    state = network.state_dict()
    expected = {k: v.shape for k, v in state.items()}
    resolved = _resolve_anonymous(graph, expected)
    loaded: dict[str, torch.Tensor] = {}
    problems: list[str] = []
    for key, shape in expected.items():
        value = named.get(key)
        if value is None or tuple(value.shape) != tuple(shape):
            value = resolved.get(key, value)
        if value is None:
            if key == "autocorr.window":  # not a learned weight: keep the framework's window
                continue
            problems.append(f"{key}: not found")
            continue
        value = np.asarray(value, dtype=np.float32)
        if value.size != shape.numel():
            problems.append(f"{key}: expected shape {tuple(shape)}, found {tuple(value.shape)}")
            continue
        loaded[key] = torch.from_numpy(value.reshape(tuple(shape)).copy())
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise OnnxImportError(f"{path}: cannot map the graph onto the regression network: {shown}")
    network.load_state_dict(loaded, strict=False)
    return network.eval()
