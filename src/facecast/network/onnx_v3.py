"""ONNX round trip of the v3.0 diffusion network: export with NVIDIA's interface, import a graph's weights.

Export: inputs ``window``, ``identity``, ``emotion``, ``input_latents``, ``noise``; outputs ``prediction``,
``output_latents`` (spec v3 section 3), opset 14, the batch dynamic (axis 0, or axis 2 of the latents). The
configuration travels in the graph's metadata (``facecast_diffusion_config``), so facecast's own files re-import
without guessing. Parameters stay initializers named as in the state dict (``fold_constants=False``); ONNX
Runtime folds the transposes when it opens the file.

Import: named initializers are taken by name. Anonymous ones (a graph whose weights were constant-folded, as
NVIDIA's are) are matched structurally: facecast exports its own network of the same configuration, and each
anonymous weight is paired with the parameter of the same shape (up to a transpose) that the graph first uses
at the same position among same-shaped weights; ONNX ``GRU`` nodes give their W/R/B by layer, gates reordered.
The structural path is checked on facecast's own graphs with their names removed; NVIDIA's released file could
not be checked here.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from facecast.network.diffusion import DiffusionConfig, DiffusionNetwork

OPSET = 14
INPUTS = ("window", "identity", "emotion", "input_latents", "noise")
OUTPUTS = ("prediction", "output_latents")
CONFIG_KEY = "facecast_diffusion_config"


class OnnxV3ImportError(ValueError):
    """The ONNX file is not a v3.0 diffusion network facecast can read."""


def dummy_inputs(cfg: DiffusionConfig, batch: int = 1) -> tuple[torch.Tensor, ...]:
    """Inputs of the interface's shapes (zeros; random noise)."""
    return (
        torch.zeros(batch, cfg.window),
        torch.nn.functional.one_hot(torch.zeros(batch, dtype=torch.long), cfg.num_identities).float(),
        torch.zeros(batch, cfg.center_frames, cfg.num_emotions),
        torch.zeros(cfg.num_steps, cfg.gru_layers, batch, cfg.gru_hidden),
        torch.randn(batch, cfg.num_steps + 1, cfg.frames, cfg.output_size),
    )


def export_v3_onnx(network: DiffusionNetwork, path: str | os.PathLike, opset: int = OPSET) -> Path:
    """Write ``network`` as ``path`` with the v3.0 interface; atomic (temp file, then rename). A
    :class:`~facecast.network.diffusion_folded.FoldedDiffusion` is written without the ``noise`` input."""
    path = Path(path)
    folded = not isinstance(network, DiffusionNetwork)
    inputs = INPUTS[:-1] if folded else INPUTS
    axes = {name: {0: "batch"} for name in inputs + OUTPUTS}
    axes["input_latents"] = axes["output_latents"] = {2: "batch"}
    was_training = network.training
    network.eval()
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on GRU batch sizes and unfoldable slices
            args = dummy_inputs(network.cfg)[: len(inputs)]
            torch.onnx.export(network, args, tmp, input_names=list(inputs),
                              output_names=list(OUTPUTS), opset_version=opset, dynamic_axes=axes,
                              do_constant_folding=False, dynamo=False)  # fmt: skip
        model = onnx.load(tmp)
        entry = model.metadata_props.add()
        entry.key, entry.value = CONFIG_KEY, json.dumps(network.cfg.to_dict())
        onnx.save(model, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
        network.train(was_training)
    return path


def _interface(model: onnx.ModelProto) -> dict[str, list[int | str]]:
    dims = {}
    for value in list(model.graph.input) + list(model.graph.output):
        shape = value.type.tensor_type.shape.dim
        dims[value.name] = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in shape]
    missing = [n for n in INPUTS + OUTPUTS if n not in dims]
    if missing:
        raise OnnxV3ImportError(f"not a v3.0 diffusion graph: no {', '.join(missing)}")
    return dims


def infer_config(model: onnx.ModelProto, sizes: dict[str, int] | None = None) -> DiffusionConfig:
    """The configuration stored by facecast's exporter, else NVIDIA's defaults checked against the interface
    (``sizes``: skin/tongue/jaw/eyes sizes from network_info.json)."""
    for prop in model.metadata_props:
        if prop.key == CONFIG_KEY:
            return DiffusionConfig(**json.loads(prop.value))
    dims = _interface(model)
    cfg = DiffusionConfig(**{f"{k}_size": v for k, v in (sizes or {}).items()})
    want = {"window": cfg.window, "noise": cfg.output_size, "identity": cfg.num_identities}
    got = {"window": dims["window"][1], "noise": dims["noise"][3], "identity": dims["identity"][1]}
    if got != want:
        raise OnnxV3ImportError(f"graph interface {got} does not match the default configuration {want}")
    return cfg


def _first_uses(model: onnx.ModelProto, names: set[str]) -> dict[str, tuple[int, int]]:
    uses: dict[str, tuple[int, int]] = {}
    for i, node in enumerate(model.graph.node):
        for j, name in enumerate(node.input):
            if name in names and name not in uses:
                uses[name] = (i, j)
    return uses


def _gru_weights(model: onnx.ModelProto, consts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """torch GRU parameters from ONNX GRU nodes (gates z, r, h -> torch's r, z, n)."""
    out: dict[str, np.ndarray] = {}
    layer = 0
    for node in model.graph.node:
        if node.op_type != "GRU":
            continue
        w, r = (consts.get(node.input[k]) for k in (1, 2))
        b = consts.get(node.input[3]) if len(node.input) > 3 else None
        if w is None or r is None:
            continue

        def reorder(a: np.ndarray) -> np.ndarray:
            z, rr, h = np.split(a, 3, axis=0)
            return np.concatenate([rr, z, h])

        out[f"gru.weight_ih_l{layer}"] = reorder(w[0])
        out[f"gru.weight_hh_l{layer}"] = reorder(r[0])
        if b is not None:
            bi, bh = np.split(b[0], 2)
            out[f"gru.bias_ih_l{layer}"], out[f"gru.bias_hh_l{layer}"] = reorder(bi), reorder(bh)
        layer += 1
    return out


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    consts[node.output[0]] = numpy_helper.to_array(attr.t)
        elif node.op_type == "Identity" and node.input[0] in consts:  # merged duplicate initializers
            consts[node.output[0]] = consts[node.input[0]]
    return consts


def _shape_key(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(sorted(shape))


def import_v3_onnx(path: str | os.PathLike, sizes: dict[str, int] | None = None) -> DiffusionNetwork:
    """A :class:`DiffusionNetwork` holding the weights of a v3.0 ``network.onnx``."""
    model = onnx.load(str(path))
    cfg = infer_config(model, sizes)
    net = DiffusionNetwork(cfg).eval()
    own = net.state_dict()
    consts = _constants(model)
    found = {name: consts[name] for name in own if name in consts}
    found.update({k: v for k, v in _gru_weights(model, consts).items() if k not in found})
    missing = [n for n in own if n not in found]
    if missing:
        found.update(_structural(model, consts, net, missing, set(found)))
    state = {}
    problems = []
    for name, target in own.items():
        value = found.get(name)
        if value is None:
            problems.append(f"{name} not found")
            continue
        value = np.asarray(value, np.float32)
        if value.shape != tuple(target.shape) and value.T.shape == tuple(target.shape):
            value = value.T
        if value.shape != tuple(target.shape):
            problems.append(f"{name}: shape {value.shape}, expected {tuple(target.shape)}")
            continue
        state[name] = torch.from_numpy(np.array(value, np.float32, copy=True))
    if problems:
        raise OnnxV3ImportError(f"{path}: {len(problems)} weights unmatched, e.g. {'; '.join(problems[:3])}")
    net.load_state_dict(state)
    return net


def _structural(
    model: onnx.ModelProto, consts: dict[str, np.ndarray], net: DiffusionNetwork, missing: list[str], used: set[str]
) -> dict[str, np.ndarray]:
    """Pair anonymous initializers with ``missing`` parameters by shape and order of first use, against a graph
    facecast exports for the same configuration."""
    ref_net = DiffusionNetwork(net.cfg)
    with torch.no_grad():  # distinct values everywhere, so the exporter merges no duplicate initializers
        for tensor in list(ref_net.parameters()) + list(ref_net.buffers()):
            tensor.normal_()
    with tempfile.TemporaryDirectory() as tmp:
        reference = onnx.load(str(export_v3_onnx(ref_net, Path(tmp) / "ref.onnx")))
    ref_names = {t.name for t in reference.graph.initializer} & set(missing)
    ref_uses = _first_uses(reference, ref_names)
    shapes = {n: tuple(net.state_dict()[n].shape) for n in missing}
    anon = {t.name for t in model.graph.initializer} - used
    anon_uses = _first_uses(model, anon)
    groups_ref: dict[tuple, list[str]] = defaultdict(list)
    groups_anon: dict[tuple, list[str]] = defaultdict(list)
    for name in sorted(ref_uses, key=ref_uses.get):
        groups_ref[_shape_key(shapes[name])].append(name)
    for name in sorted(anon_uses, key=anon_uses.get):
        groups_anon[_shape_key(consts[name].shape)].append(name)
    out = {}
    for key, names in groups_ref.items():
        candidates = groups_anon.get(key, [])
        if len(candidates) != len(names):
            raise OnnxV3ImportError(f"{len(names)} weights of shape {key} expected, the graph has {len(candidates)}")
        out.update({n: consts[c] for n, c in zip(names, candidates, strict=True)})
    return out
