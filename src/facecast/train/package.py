"""Package a trained run as facecast's built-in model: keep what we trained (the decoder, configuration, PCA
bases, the source shot's implicit emotion rows and the calibrated gains), drop the pretrained encoder weights.

``python -m facecast.train.package TRAIN_DIR DEPLOY_DIR`` (the last step of ``make default-model``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from facecast.fileio import read_json, read_npz, write_json, write_npz
from facecast.models.builtin import CHUNK_GRAPH, ENCODER_PREFIX, GRAPH, MULTIPLIERS, PACKAGED, WEIGHT_MARK


def package_trained(checkpoint: str | os.PathLike, deploy_dir: str | os.PathLike, out: Path = PACKAGED) -> Path:
    """Keep what we trained from a checkpoint and its deployed pack (drops the encoder's pretrained weights)."""
    from facecast.train.trainer import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    net = ckpt.network
    state = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items() if not k.startswith(ENCODER_PREFIX)}
    deploy_dir = Path(deploy_dir)
    state.update(_deployed_output_biases(deploy_dir, state))
    out.mkdir(parents=True, exist_ok=True)
    write_npz(out / "decoder.npz", state)
    write_json(out / "network.json", net.cfg.to_dict())
    for name in ("network_info.json", "model_config.json", "trt_info.json"):
        shutil.copyfile(deploy_dir / name, out / name)
    write_npz(out / "model_data.npz", read_npz(deploy_dir / "model_data.npz"))
    db = read_npz(deploy_dir / "implicit_emo_db.npz")
    config = read_json(deploy_dir / "model_config.json")["config"]
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in db["emo_spec_names"].tolist()]
    i = names.index(config["source_shot"])
    start, size = int(db["emo_spec_start"][i]), int(db["emo_spec_size"][i])
    write_npz(
        out / "implicit_emo_db.npz",
        {
            "emo_db": db["emo_db"][start : start + size],
            "emo_spec_names": np.array([names[i]], dtype="S"),
            "emo_spec_start": np.array([0], np.int32),
            "emo_spec_size": np.array([size], np.int32),
        },
    )
    _package_multipliers(deploy_dir, out)
    write_graph_templates(out)
    return out


def write_graph_templates(out: Path = PACKAGED) -> list[Path]:
    """Export the packaged network as ONNX graph templates (``graph.onnx``, ``graph_chunk.onnx``) whose weights
    are marked by name instead of stored: the built-in model is then assembled with numpy and onnx only
    (:func:`facecast.models.builtin.fill_graph`). Needs torch and the Whisper weights."""
    import tempfile

    import onnx
    import torch

    from facecast.network.onnx_io import export_chunk_onnx, export_onnx
    from facecast.network.regression import NetworkConfig, RegressionNetwork
    from facecast.network.whisper_weights import pretrained_state

    out = Path(out)
    cfg = NetworkConfig(**read_json(out / "network.json"))
    network = RegressionNetwork(cfg)
    network.whisper_model.load_pretrained(pretrained_state())
    decoder = {k: torch.from_numpy(v) for k, v in read_npz(out / "decoder.npz").items()}
    missing, unexpected = network.load_state_dict(decoder, strict=False)
    if unexpected or any(not k.startswith(ENCODER_PREFIX) for k in missing):
        raise RuntimeError(f"packaged decoder does not fit the network: {unexpected or missing}")
    names = set(network.state_dict())
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        exports = [(export_onnx, GRAPH)] + ([(export_chunk_onnx, CHUNK_GRAPH)] if cfg.chunk_frames else [])
        for export, name in exports:
            model = onnx.load(str(export(network.eval(), Path(tmp) / name, fold_constants=False)))
            marked = 0
            for init in model.graph.initializer:
                key = init.name.removeprefix("network.")
                if key not in names:
                    continue
                init.ClearField("raw_data")
                init.ClearField("float_data")
                del init.external_data[:]
                init.external_data.add(key="location", value=WEIGHT_MARK + key)
                init.data_location = onnx.TensorProto.EXTERNAL
                marked += 1
            if marked < len(names) // 2:
                raise RuntimeError(f"{name}: only {marked} of {len(names)} weights found by name in the export")
            target = out / name
            target.write_bytes(model.SerializeToString())
            written.append(target)
    stale = out / CHUNK_GRAPH
    if not cfg.chunk_frames and stale.exists():
        stale.unlink()
    return written


OUTPUT_BIASES = ("out_mapping1.bias", "out_mapping1_tongue.bias")


def _deployed_output_biases(deploy_dir: Path, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The output biases as deployed (deploy may have centred the rest pose: :mod:`facecast.train.rest`)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(deploy_dir / "network.onnx")).graph
    found = {t.name: numpy_helper.to_array(t) for t in graph.initializer if t.name in OUTPUT_BIASES}
    if set(found) != set(OUTPUT_BIASES) or any(found[k].shape != state[k].shape for k in OUTPUT_BIASES):
        raise ValueError(f"{deploy_dir}: the deployed network's output biases do not match the checkpoint's")
    return {k: np.array(v, np.float32) for k, v in found.items()}


def _package_multipliers(deploy_dir: Path, out: Path) -> None:
    """Keep the deployed pack's calibrated ``bsWeightMultipliers`` (those other than 1) by pose name."""
    from facecast.pack import load_pack

    bs = load_pack(deploy_dir).skin_blendshapes
    values = (bs.config.get("bsWeightMultipliers") or []) if bs is not None else []
    kept = {name: float(v) for name, v in zip(bs.names if bs else [], values, strict=False) if float(v) != 1.0}
    target = out / MULTIPLIERS
    if kept:
        write_json(target, kept)
    elif target.exists():
        target.unlink()


def main(argv: list[str] | None = None) -> int:
    """``python -m facecast.train.package TRAIN_DIR DEPLOY_DIR``: package a trained run as the default model."""
    import sys

    from facecast.train.trainer import latest_checkpoint

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m facecast.train.package TRAIN_DIR DEPLOY_DIR", file=sys.stderr)
        return 2
    out = package_trained(latest_checkpoint(args[0]), args[1])
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"packaged the default model into {out} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
