"""Tiny v3.0 (diffusion, multi-identity) model folders made by code, for tests and demos. Needs torch."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from facecast.constants import ARKIT_NAMES, TONGUE_NAMES
from facecast.models.testing import default_model_config, make_blendshapes, make_face_mesh
from facecast.pack_v3 import DiffusionInfo, IdentityData, write_diffusion_pack

IDENTITIES = ("Claire", "James", "Mark")


def tiny_network(seed: int = 0, skin_verts: int = 120, tongue_verts: int = 20, identities: int = 3,
                 sample_steps: tuple[int, ...] = (999, 0)):  # fmt: skip
    """A tiny :class:`~facecast.network.diffusion.DiffusionNetwork` with every weight random (the zero-initialised
    heads too, so its output depends on every input) and random per-identity means and scales."""
    import torch

    from facecast.network.diffusion import DiffusionConfig, DiffusionNetwork

    torch.manual_seed(seed)
    cfg = DiffusionConfig.tiny(skin_size=3 * skin_verts, tongue_size=3 * tongue_verts, num_identities=identities,
                               sample_steps=sample_steps)  # fmt: skip
    net = DiffusionNetwork(cfg).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        for head in (net.skin_out, net.tongue_out, net.jaw_out, net.eyes_out):
            torch.nn.init.normal_(head[-1].weight, std=0.3)
        net.mean_geometry.copy_(torch.randn_like(net.mean_geometry))
        net.delta_scale.copy_(0.5 + torch.rand_like(net.delta_scale))
    return net


def make_v3_pack(path: str | Path, *, seed: int = 0, identities: tuple[str, ...] = IDENTITIES, network=None,
                 blendshapes: bool = True) -> Path:  # fmt: skip
    """Write a complete v3.0-layout folder with random weights into ``path`` and return it."""
    from facecast.network.onnx_v3 import export_v3_onnx

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    net = network if network is not None else tiny_network(seed, identities=len(identities))
    cfg = net.cfg
    info = DiffusionInfo(identities=list(identities), skin_size=cfg.skin_size, tongue_size=cfg.tongue_size,
                         num_diffusion_steps=cfg.num_steps, num_gru_layers=cfg.gru_layers,
                         gru_latent_dim=cfg.gru_hidden, num_frames_left_truncate=cfg.left_truncate,
                         num_frames_right_truncate=cfg.right_truncate, num_frames_center=cfg.center_frames,
                         buffer_len=cfg.window, padding_left=cfg.window, padding_right=cfg.window)  # fmt: skip
    rng = np.random.default_rng(seed)
    people = []
    for k, name in enumerate(identities):
        skin = make_face_mesh(cfg.skin_size // 3, rng) * (1.0 + 0.05 * k)
        tongue = (rng.standard_normal((cfg.tongue_size // 3, 3)) * [1.5, 0.5, 2.0] + [0, -4, 5]).astype(np.float32)
        data = {
            "neutral_skin": skin.reshape(-1),
            "neutral_tongue": tongue.reshape(-1),
            "neutral_jaw": np.array([[0, -8, 6], [-3, -7, 5], [3, -7, 5], [-5, -5, 2], [5, -5, 2]], np.float32).ravel(),
            "lip_open_pose_delta": (rng.standard_normal(cfg.skin_size) * 0.05).astype(np.float32),
            "eye_close_pose_delta": (rng.standard_normal(cfg.skin_size) * 0.05).astype(np.float32),
            "saccade_rot_matrix": (rng.standard_normal((5000, 2)) * 0.5).astype(np.float32),
        }
        config = {
            key: v for key, v in default_model_config("none").items() if key not in ("source_shot", "source_frame")
        }
        config["input_strength"] = 1.0
        skin_bs = make_blendshapes(rng, skin, ARKIT_NAMES, 0.8) if blendshapes else None
        tongue_bs = make_blendshapes(rng, tongue, TONGUE_NAMES, None) if blendshapes else None
        people.append(IdentityData(name, config, data, skin_bs, tongue_bs))
    with tempfile.TemporaryDirectory(dir=path) as tmp:
        onnx_path = export_v3_onnx(net, Path(tmp) / "network.onnx")
        write_diffusion_pack(path, info, onnx_path, people)
    return path
