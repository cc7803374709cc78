"""Train and deploy the v3.0 diffusion network (spec v3 section 5) on several identities.

A training sample is a segment of ``diffusion.windows`` consecutive SDK windows of one shot (0.5 s of kept
frames each): HuBERT runs on each 1 s window, the centre frames of the windows tile the segment, and the GRU runs
over the whole segment from a zero state, which is what inference computes with the state carried from window to
window. One diffusion step t per segment (uniform over the 1000 training steps, or the sampler's own steps);
x_t = sqrt(a_t) x0 + sqrt(1 - a_t) noise; the network predicts x0. Targets per identity and part:
x0 = mean + delta / scale (``target = "delta"``: mean 0, scale the deltas' std; ``"pose"``: NVIDIA's absolute poses,
mean (neutral - centroid) / size, scale the neutral's size), held in the network's ``mean_geometry`` and
``delta_scale``, so the deployed graph outputs deltas. Losses: the simple x0 loss per part (tongue weight 0.1,
jaw 1), upper-face temporal smoothness and the closure-weighted lip distance; pitch-shift augmentation (+-2
semitones, p 0.2). Adam with gradient accumulation.
Single process (no torchrun); checkpoints are plain state dicts read back with ``weights_only=True``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from facecast.network.diffusion import TRAIN_STEPS, DiffusionConfig, DiffusionNetwork, alphas_cumprod
from facecast.network.hubert import HubertConfig
from facecast.train.config import TrainConfig
from facecast.train.diffusion_data import DiffusionData, frames_at, segment
from facecast.train.losses import lip_distance_loss
from facecast.train.trainer import TrainResult, resolve_device

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "facecast-diffusion-1"


def network_config(cfg: TrainConfig, data: DiffusionData) -> DiffusionConfig:
    """The architecture: NVIDIA's sizes (or tiny HuBERT) with the data's vertex counts and identities."""
    d = cfg.diffusion
    hubert = HubertConfig.tiny() if d.hubert == "tiny" else HubertConfig()
    known = set(DiffusionConfig.__dataclass_fields__) - {"hubert", "sample_steps", "skin_size", "tongue_size"}
    if unknown := sorted(set(d.sizes) - known):
        raise ValueError(f"diffusion.sizes.{unknown[0]} is not a network size (known: {', '.join(sorted(known))})")
    return DiffusionConfig(hubert=hubert, skin_size=data.skin_size, tongue_size=data.tongue_size,
                           num_identities=len(data.identities), **d.sizes)  # fmt: skip


def normalisation(data: DiffusionData, target: str) -> tuple[np.ndarray, np.ndarray]:
    """Per identity and output column: (mean [I, D], scale [I, D]) with x0 = mean + delta / scale."""
    s, t = data.skin_size, data.tongue_size
    parts = [slice(0, s), slice(s, s + t), slice(s + t, s + t + 15), slice(s + t + 15, s + t + 19)]
    mean = np.zeros((len(data.identities), data.output_size), np.float32)
    scale = np.ones_like(mean)
    for i, ident in enumerate(data.identities):
        targets = np.concatenate([shot.targets for shot in ident.shots])
        for k, part in enumerate(parts):
            std = float(np.sqrt(np.mean(targets[:, part] ** 2)))
            scale[i, part] = std if std > 1e-8 else 1.0
            if target == "pose" and k < 2:
                neutral = ident.model_data["neutral_skin" if k == 0 else "neutral_tongue"].reshape(-1, 3)
                centre = neutral.mean(axis=0)
                size = float(np.sqrt(np.mean((neutral - centre) ** 2))) or 1.0
                mean[i, part] = ((neutral - centre) / size).reshape(-1)
                scale[i, part] = size
    return mean, scale


@dataclass
class Batch:
    windows: torch.Tensor  # [B, K, S]
    x0: torch.Tensor  # [B, K * C, D] normalised targets
    identity: torch.Tensor  # [B, I]
    emotion: torch.Tensor  # [B, K * C, E]
    ident_index: torch.Tensor  # [B]


def sample_batch(data: DiffusionData, mean: np.ndarray, scale: np.ndarray, cfg: DiffusionConfig, windows: int,
                 batch: int, rng: np.random.Generator, shift: tuple[float, float] = (0.0, 0.0)) -> Batch:  # fmt: skip
    """Random segments, shots drawn in proportion to their length (every identity's shots together); with
    probability ``shift[1]`` a segment's audio is pitch-shifted by up to ``shift[0]`` semitones."""
    pool = [(i, shot) for i, ident in enumerate(data.identities) for shot in ident.shots]
    weights = np.array([len(shot.audio) for _, shot in pool], np.float64)
    c = cfg.center_frames
    out: dict[str, list] = {"w": [], "x": [], "i": [], "e": []}
    for _ in range(batch):
        i, shot = pool[int(rng.choice(len(pool), p=weights / weights.sum()))]
        span = windows * c
        start = 3 * int(rng.integers(-c // 3, max(1, (shot.native_frames - span // 2) // 3)))
        frames = np.arange(start, start + span)
        delta = frames_at(shot, data.identities[i].fps, frames)
        semitones = float(rng.uniform(-shift[0], shift[0])) if rng.uniform() < shift[1] else 0.0
        out["w"].append(segment(shot, start, windows, cfg.window, semitones))
        out["x"].append(mean[i] + delta / scale[i])
        out["i"].append(i)
        out["e"].append(np.broadcast_to(shot.emotion, (span, len(shot.emotion))))
    index = torch.tensor(out["i"])
    return Batch(torch.from_numpy(np.stack(out["w"])), torch.from_numpy(np.stack(out["x"]).astype(np.float32)),
                 F.one_hot(index, len(data.identities)).float(), torch.from_numpy(np.stack(out["e"]).copy()),
                 index)  # fmt: skip


def predict_x0(net: DiffusionNetwork, b: Batch, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The denoiser over whole segments: x0 [B, K * C, D] (with the identity's mean) at diffusion steps ``t``."""
    n, k = b.windows.shape[:2]
    audio = net.audio_features(b.windows.reshape(n * k, -1)).reshape(n, -1, net.cfg.audio_dim)
    length = audio.shape[1]
    ident = net.identity_embed(b.identity).unsqueeze(1).expand(n, length, -1)
    step = F.mish(net.step_embed.weight[:, t].T + net.step_embed.bias).unsqueeze(1).expand(n, length, -1)
    inputs = torch.cat([audio, net.geometry_features(x_t), ident, step, net.emotion_embed(b.emotion)], dim=-1)
    h, _ = net.gru(inputs)
    return net.heads(h) + (b.identity @ net.mean_geometry).unsqueeze(1)


class DiffusionLoss:
    """The recipe's losses on normalised x0: per-part MSE, upper-face smoothness, lip distance (in the data's
    units)."""

    def __init__(self, cfg: TrainConfig, data: DiffusionData, net_cfg: DiffusionConfig, scale: np.ndarray) -> None:
        d = cfg.diffusion
        s, t = net_cfg.skin_size, net_cfg.tongue_size
        weights = np.ones(net_cfg.output_size, np.float32)
        weights[s : s + t], weights[s + t : s + t + 15], weights[s + t + 15 :] = (d.tongue_weight, d.jaw_weight,
                                                                                 d.eyes_weight)  # fmt: skip
        self.weights = torch.from_numpy(weights / weights.mean())
        self.smooth, self.lip, self.lip_exp = d.smooth_weight, d.lip_weight, d.lip_exp
        self.skin = s
        self.scale = torch.from_numpy(scale[:, :s])
        masks = []
        for ident in data.identities:  # upper face: a sigmoid over height around the eyes (or the mesh's middle)
            verts = ident.model_data["neutral_skin"].reshape(-1, 3)
            y = verts[:, 1]
            centre = float(np.mean(y[ident.eye_verts])) if ident.eye_verts else float(np.median(y))
            width = 0.05 * float(np.ptp(y) or 1.0)
            masks.append(1 / (1 + np.exp(-(y - centre) / width)))
        self.upper = torch.from_numpy(np.stack(masks).astype(np.float32))  # [I, V]
        lips = data.identities[0].lip_verts
        self.lips = (torch.tensor(lips[0]), torch.tensor(lips[1])) if lips and self.lip else None

    def __call__(self, pred: torch.Tensor, b: Batch) -> dict[str, torch.Tensor]:
        err = (pred - b.x0) ** 2
        out = {"simple": (err * self.weights).mean()}
        n, length = pred.shape[:2]
        skin_pred = pred[..., : self.skin].reshape(n, length, -1, 3)
        if self.smooth:
            motion = (skin_pred[:, 1:] - skin_pred[:, :-1]).pow(2).sum(-1)  # [B, L - 1, V]
            out["smooth"] = self.smooth * (motion * self.upper[b.ident_index].unsqueeze(1)).mean()
        if self.lips is not None:
            sc = self.scale[b.ident_index].unsqueeze(1)
            p = (pred[..., : self.skin] * sc).reshape(n, length, -1, 3)  # mean cancels in a distance
            q = (b.x0[..., : self.skin] * sc).reshape(n, length, -1, 3)
            out["lip"] = self.lip * lip_distance_loss(p, q, *self.lips, self.lip_exp)
        out["total"] = sum(out.values())
        return out


def _step_loss(net: DiffusionNetwork, loss_fn: DiffusionLoss, b: Batch, t: torch.Tensor, acp: torch.Tensor,
               noise: torch.Tensor) -> dict[str, torch.Tensor]:  # fmt: skip
    a = acp[t].view(-1, 1, 1)
    x_t = a.sqrt() * b.x0 + (1 - a).sqrt() * noise
    return loss_fn(predict_x0(net, b, x_t, t), b)


@torch.no_grad()
def held_loss(net: DiffusionNetwork, loss_fn: DiffusionLoss, data: DiffusionData, cfg: TrainConfig,
              batches: int = 4) -> float:  # fmt: skip
    """The loss on fixed segments, noise and steps (each sampler step in turn), in eval mode: comparable
    between checkpoints, unlike the noisy per-step training loss."""
    d, was = cfg.diffusion, net.training
    net.eval()
    device = net.mean_geometry.device
    acp = torch.tensor(alphas_cumprod(), dtype=torch.float32, device=device)
    mean, scale = net.mean_geometry.cpu().numpy(), net.delta_scale.cpu().numpy()
    total = 0.0
    for k in range(batches):
        rng = np.random.default_rng([cfg.train.seed, 7717, k])
        b = sample_batch(data, mean, scale, net.cfg, d.windows, d.batch_size, rng)
        b = Batch(*(x.to(device) for x in (b.windows, b.x0, b.identity, b.emotion, b.ident_index)))
        noise = torch.from_numpy(rng.standard_normal(b.x0.shape).astype(np.float32)).to(device)
        step = sorted(net.cfg.sample_steps)[k % net.cfg.num_steps]
        t = torch.full((len(b.x0),), step, device=device)
        total += float(_step_loss(net, loss_fn, b, t, acp, noise)["total"]) / batches
    net.train(was)
    return total


def _freeze(net: DiffusionNetwork, layers: int) -> None:
    h = net.hubert
    frozen = [h.conv_layers, h.projection_norm, h.projection, *list(h.layers)[:layers]]
    for module in frozen:
        for p in module.parameters():
            p.requires_grad_(False)


def build_network(cfg: TrainConfig, data: DiffusionData) -> DiffusionNetwork:
    """A fresh network, or ``diffusion.init_from``'s weights; means and scales set from the data."""
    net_cfg = network_config(cfg, data)
    if cfg.diffusion.init_from is not None:
        from facecast.network.onnx_v3 import import_v3_onnx
        from facecast.pack_v3 import load_diffusion_pack

        pack = load_diffusion_pack(cfg.diffusion.init_from)
        net = import_v3_onnx(pack.network_path, {"skin": pack.info.skin_size, "tongue": pack.info.tongue_size})
        if net.cfg.output_size != net_cfg.output_size or net.cfg.num_identities != net_cfg.num_identities:
            raise ValueError(f"{cfg.diffusion.init_from}: its network has {net.cfg.num_identities} identities and "
                             f"{net.cfg.output_size} outputs, the data {net_cfg.num_identities} and "
                             f"{net_cfg.output_size}")  # fmt: skip
    else:
        net = DiffusionNetwork(net_cfg)
        if cfg.diffusion.hubert_checkpoint is not None:
            from facecast.train.hubert_weights import load_hubert_checkpoint

            load_hubert_checkpoint(net.hubert, cfg.diffusion.hubert_checkpoint)
    mean, scale = normalisation(data, cfg.diffusion.target)
    with torch.no_grad():
        net.mean_geometry.copy_(torch.from_numpy(mean))
        net.delta_scale.copy_(torch.from_numpy(scale))
    _freeze(net, cfg.diffusion.frozen_hubert_layers)
    return net


def save_checkpoint(path: Path, net: DiffusionNetwork, opt: torch.optim.Optimizer | None, step: int,
                    names: list[str], losses: list[float]) -> Path:  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": CHECKPOINT_FORMAT, "config": json.loads(json.dumps(net.cfg.to_dict())), "step": step,
             "network": {k: v.cpu() for k, v in net.state_dict().items()}, "identities": list(names),
             "losses": list(losses), "optimizer": opt.state_dict() if opt is not None else None}  # fmt: skip
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return path


@dataclass
class DiffusionCheckpoint:
    network: DiffusionNetwork
    identities: list[str]
    step: int
    losses: list[float]
    optimizer: dict | None
    path: Path


def load_diffusion_checkpoint(path: str | Path) -> DiffusionCheckpoint:
    """Read a checkpoint written by :func:`train_diffusion` (``weights_only=True``)."""
    path = Path(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a facecast diffusion checkpoint ({CHECKPOINT_FORMAT})")
    net = DiffusionNetwork(DiffusionConfig(**state["config"]))
    net.load_state_dict(state["network"])
    return DiffusionCheckpoint(net.eval(), list(state["identities"]), int(state["step"]), list(state["losses"]),
                               state.get("optimizer"), path)  # fmt: skip


def train_diffusion(cfg: TrainConfig, data: DiffusionData, resume: bool | str | Path = False) -> TrainResult:
    """Train ``diffusion.steps`` optimiser steps; checkpoints in ``train.out_dir/checkpoints`` (``latest.pt``)."""
    d, tr = cfg.diffusion, cfg.train
    if tr.threads:
        torch.set_num_threads(tr.threads)
    device = resolve_device(tr.device)
    net = build_network(cfg, data)
    mean, scale = net.mean_geometry.numpy().copy(), net.delta_scale.numpy().copy()
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=d.lr)
    out = Path(tr.out_dir)
    latest = out / "checkpoints" / "latest.pt"
    step, history = 0, []
    if resume:
        ckpt = load_diffusion_checkpoint(latest if resume is True else Path(resume))
        net.load_state_dict(ckpt.network.state_dict())
        if ckpt.optimizer is not None:
            opt.load_state_dict(ckpt.optimizer)
        step, history = ckpt.step, ckpt.losses
    net.to(device).train()
    loss_fn = DiffusionLoss(cfg, data, net.cfg, scale)
    for name in ("weights", "scale", "upper"):
        setattr(loss_fn, name, getattr(loss_fn, name).to(device))
    if loss_fn.lips is not None:
        loss_fn.lips = (loss_fn.lips[0].to(device), loss_fn.lips[1].to(device))
    acp = torch.tensor(alphas_cumprod(), dtype=torch.float32, device=device)
    sampler = torch.tensor(sorted(net.cfg.sample_steps), device=device)
    metrics = out / "diffusion_metrics.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    before = held_loss(net, loss_fn, data, cfg)
    while step < d.steps:
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for micro in range(d.grad_accum):
            rng = np.random.default_rng([tr.seed, step, micro])
            torch.manual_seed(int(rng.integers(2**31)))  # dropout and noise: a pure function of (seed, step)
            b = sample_batch(data, mean, scale, net.cfg, d.windows, d.batch_size, rng, (d.pitch_shift,
                             d.pitch_shift_p))  # fmt: skip
            b = Batch(*(x.to(device) for x in (b.windows, b.x0, b.identity, b.emotion, b.ident_index)))
            if d.timesteps == "sampler":
                t = sampler[torch.randint(len(sampler), (len(b.x0),), device=device)]
            else:
                t = torch.randint(TRAIN_STEPS, (len(b.x0),), device=device)
            losses = _step_loss(net, loss_fn, b, t, acp, torch.randn_like(b.x0))
            (losses["total"] / d.grad_accum).backward()
            total += float(losses["total"].detach()) / d.grad_accum
        opt.step()
        step += 1
        history.append(total)
        if not math.isfinite(total):
            raise FloatingPointError(f"diffusion training diverged at step {step} (loss {total})")
        if step % tr.log_every == 0 or step == d.steps:
            with open(metrics, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"step": step, "loss": total, "seconds": time.monotonic() - began}) + "\n")
        if step % tr.checkpoint_every == 0 or step == d.steps:
            save_checkpoint(latest, net, opt, step, data.names, history)
    after = held_loss(net, loss_fn, data, cfg)
    summary = {"world_size": 1, "seconds": time.monotonic() - began, "identities": data.names,
               "held_loss_before": before, "held_loss_after": after}  # fmt: skip
    return TrainResult(step, out, latest if latest.is_file() else None, metrics, None, summary)
