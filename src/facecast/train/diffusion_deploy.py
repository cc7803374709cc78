"""Deploy a trained diffusion checkpoint as the v3.0 folder :mod:`facecast.pack_v3` reads.

``network.onnx`` (NVIDIA's interface, :func:`facecast.network.onnx_v3.export_v3_onnx`), ``network_info.json``,
``trt_info.json``, ``model.json`` and per identity ``model_config_<Id>.json`` (strengths 1, offsets 0, as the
SDK's pass-through, with ``deploy.model_config`` overrides), ``model_data_<Id>.npz`` and, when its dataset has
``bs_data/``, ``bs_skin_<Id>`` / ``bs_tongue_<Id>``; it loads with ``facecast.load_model(path, identity=...)``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from facecast.network.onnx_v3 import export_v3_onnx
from facecast.pack_v3 import DiffusionInfo, IdentityData, write_diffusion_pack
from facecast.train.deploy import FACECAST_KEYS, INTEGER_KEYS, neutral_model_config
from facecast.train.diffusion_data import DiffusionData
from facecast.train.diffusion_train import DiffusionCheckpoint, load_diffusion_checkpoint


def identity_config(overrides: Mapping[str, float] | None = None) -> dict:
    """``model_config_<Id>.json`` values: the pass-through face parameters, without source shot and frame."""
    config = {k: v for k, v in neutral_model_config("none").items() if k not in ("source_shot", "source_frame")}
    for key, value in (overrides or {}).items():
        if key not in config and key not in FACECAST_KEYS:
            raise ValueError(f"deploy.model_config.{key} is not a model_config value")
        config[key] = int(value) if key in INTEGER_KEYS else float(value)
    return config


def deploy_diffusion(
    checkpoint: DiffusionCheckpoint | str | os.PathLike,
    data: DiffusionData,
    out_dir: str | os.PathLike,
    model_config: Mapping[str, float] | None = None,
) -> Path:
    """Write the v3.0 folder of ``checkpoint`` for the identities of ``data`` into ``out_dir``; returns it."""
    ckpt = checkpoint if isinstance(checkpoint, DiffusionCheckpoint) else load_diffusion_checkpoint(checkpoint)
    net = ckpt.network.eval()
    cfg = net.cfg
    if ckpt.identities != data.names or (cfg.skin_size, cfg.tongue_size) != (data.skin_size, data.tongue_size):
        raise ValueError(f"{ckpt.path}: trained for identities {ckpt.identities} with {cfg.skin_size} skin / "
                         f"{cfg.tongue_size} tongue values; the configuration gives {data.names}, "
                         f"{data.skin_size} / {data.tongue_size}")  # fmt: skip
    info = DiffusionInfo(identities=list(data.names), skin_size=cfg.skin_size, tongue_size=cfg.tongue_size,
                         num_diffusion_steps=cfg.num_steps, num_gru_layers=cfg.gru_layers,
                         gru_latent_dim=cfg.gru_hidden, num_frames_left_truncate=cfg.left_truncate,
                         num_frames_right_truncate=cfg.right_truncate, num_frames_center=cfg.center_frames,
                         buffer_len=cfg.window, padding_left=cfg.window, padding_right=cfg.window)  # fmt: skip
    config = identity_config(model_config)
    people = [IdentityData(i.name, dict(config), i.model_data, i.bs_skin, i.bs_tongue) for i in data.identities]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        onnx_path = export_v3_onnx(net, Path(tmp) / "network.onnx")
        write_diffusion_pack(out, info, onnx_path, people)
    return out
