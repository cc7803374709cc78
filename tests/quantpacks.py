"""Claire-layout packs from several initialisations, exported the way NVIDIA's graphs are, for the int8 tests.

NVIDIA's released graphs are constant-folded, with anonymous (numeric) names for the folded tensors, so nothing in
them can be recognised by name. :func:`independent_pack` writes such a pack from facecast's network with other
random weights: ``facecast`` (facecast's own initialisation and exporter, names kept), ``anonymous`` (the same
initialisation, every node and folded tensor renamed), ``scaled`` (weights twice as large, layer norms with
biases: the wav2vec2 feature extractor's quiet frames then drown in int8 rounding) and ``outlier`` (``scaled``
plus a few outlier channels in the transformer's layer norms, as trained transformers have).

Run as a script it builds the packs and prints, per recipe, the pose error of the old int8 recipe (every Conv
and MatMul int8 but the attention products) and of the measured one, as JSON::

    python tests/quantpacks.py [--layers 4] [--recipes scaled outlier] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

RECIPES = ("facecast", "anonymous", "scaled", "outlier")


def anonymize(path: Path) -> None:
    """Rename every node to "" and every folded tensor and intermediate value to a number, as in NVIDIA's graphs
    (named parameters such as ``freq1.weight`` keep their names there, and here)."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    keep = {i.name for i in graph.input} | {o.name for o in graph.output}
    names: dict[str, str] = {}
    counter = iter(range(2230, 1 << 30))
    for tensor in graph.initializer:
        if tensor.name.startswith("onnx::") or "::" in tensor.name or tensor.name[:1] == "/":
            names[tensor.name] = str(next(counter))
    for node in graph.node:
        node.name = ""
        for out in node.output:
            if out not in keep:
                names.setdefault(out, str(next(counter)))
    for tensor in graph.initializer:
        tensor.name = names.get(tensor.name, tensor.name)
    for node in graph.node:
        node.input[:] = [names.get(x, x) for x in node.input]
        node.output[:] = [names.get(x, x) for x in node.output]
    graph.ClearField("value_info")
    onnx.save(model, str(path))


def independent_network(recipe: str, seed: int, num_layers: int):
    """facecast's Claire-layout network (140 skin, 10 tongue shapes) with ``recipe``'s random weights."""
    import torch

    from facecast.network.regression import NetworkConfig, RegressionNetwork

    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    torch.manual_seed(seed)
    network = RegressionNetwork(NetworkConfig(num_layers=num_layers, num_shapes_skin=140, num_shapes_tongue=10))
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in network.named_parameters():
            if recipe in ("scaled", "outlier"):
                if p.dim() >= 2:
                    p.mul_(2.0)
                elif name.endswith("bias"):
                    p.add_(torch.randn(p.shape, generator=gen) * 0.1)
            if recipe == "outlier" and "layer_norm.weight" in name and p.numel() == 768:
                p[torch.randperm(768, generator=gen)[:4]] = 30.0
    return network.eval()


def independent_pack(path: str | Path, recipe: str, seed: int = 0, num_layers: int = 1) -> Path:
    """Write a complete Claire-layout pack of ``recipe`` (see the module) into ``path``."""
    from facecast.models.testing import make_pack

    path = Path(path)
    make_pack(path, network=independent_network(recipe, seed, num_layers), seed=seed)
    if recipe != "facecast":
        anonymize(path / "network.onnx")
    return path


def old_recipe_error(pack_dir: Path, work: Path) -> float:
    """Held-out pose error of int8 as facecast built it before the measured recipe: every Conv and MatMul int8,
    only nodes named like attention products kept fp32 (none are, in an anonymous graph)."""
    import onnx

    from facecast.infer import quantize as q
    from facecast.pack import load_pack

    pack = load_pack(pack_dir)
    info, implicit = pack.network_info, pack.implicit_emotion
    names = [n.name for n in onnx.load(str(pack.network_path)).graph.node]
    exclude = [n for n in names if any(key in n for key in ("log_mel", "/conv1/", "attention/MatMul"))]
    calibration = q.window_feeds(*q.calibration_data(info, implicit, 48, q.SEEDS["calibration"]))
    held_out = q.window_feeds(*q.calibration_data(info, implicit, 48, q.SEEDS["held_out"]))
    out = q.quantize_network(pack.network_path, work / "old.onnx", calibration, exclude=exclude)
    return q.accuracy(pack.network_path, out, held_out)["error"]


def main() -> None:
    import os

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=4, help="transformer layers (4: Claire)")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=RECIPES)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", type=Path, help="keep the packs here (default: a temporary folder)")
    args = parser.parse_args()
    from facecast.infer import quantize as q
    from facecast.pack import load_pack

    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        os.environ.setdefault("FACECAST_CACHE", str(root / "cache"))
        rows = {}
        for k, recipe in enumerate(args.recipes):
            pack_dir = independent_pack(root / recipe, recipe, seed=args.seed + k, num_layers=args.layers)
            report, _ = q._build(load_pack(pack_dir), chunks=False)
            rows[recipe] = {
                "old_recipe_error": round(old_recipe_error(pack_dir, root), 5),
                **{
                    key: report.get(key)
                    for key in (
                        "status",
                        "error",
                        "validation_error",
                        "int8_work_fraction",
                        "int8_layers",
                        "fp32_layers",
                        "build_seconds",
                    )
                },  # fmt: skip
            }
            print(json.dumps({recipe: rows[recipe]}), flush=True)
        print(json.dumps({"layers": args.layers, "limit": q.LIMIT, "packs": rows}, indent=1))


if __name__ == "__main__":
    main()
