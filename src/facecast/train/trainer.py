"""The Audio2Face-3D regression training loop (spec 10.4-10.5), single process or DistributedDataParallel.

Under ``torchrun`` every rank trains on its share of each epoch (DistributedSampler) and only rank 0 writes
checkpoints, metrics and plots. Checkpoints are ``torch.save`` of plain state dicts (read back with
``weights_only=True``); resuming from one continues the run exactly as if it had not stopped.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from facecast.fileio import write_json
from facecast.network.regression import NetworkConfig, RegressionNetwork
from facecast.train import losses as L
from facecast.train.config import NetworkSection, TrainConfig
from facecast.train.encoders import init_encoder
from facecast.train.metrics import METRIC_FIELDS, MetricsWriter, plot_metrics
from facecast.train.preprocess import TrainingData
from facecast.train.sampling import (
    SequenceDataset,
    TableShot,
    batches_per_epoch,
    collate,
    layout_from_json,
    layout_to_json,
    table_layout,
)

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "facecast-train-1"


def network_config(section: NetworkSection, data: TrainingData) -> NetworkConfig:
    """The architecture for a config section and the preprocessed data's PCA sizes."""
    return NetworkConfig(
        num_layers=section.num_layers,
        num_shapes_skin=data.num_shapes_skin,
        num_shapes_tongue=data.num_shapes_tongue,
        buffer_len=section.buffer_len,
        encoder=section.encoder,
        buffer_ofs=section.buffer_ofs,
        chunk_frames=section.chunk_frames,
    )


def fold_output_scaling(network: RegressionNetwork, scale: torch.Tensor, shift: torch.Tensor) -> RegressionNetwork:
    """Fold ``y = scale * net(x) + shift`` (per result channel) into the two output layers, in place."""
    k, kt = network.cfg.num_shapes_skin, network.cfg.num_shapes_tongue
    tongue = slice(k, k + kt)
    rest = torch.cat((torch.arange(k), torch.arange(k + kt, scale.numel())))
    with torch.no_grad():
        for layer, idx in ((network.out_mapping1, rest), (network.out_mapping1_tongue, tongue)):
            layer.weight.mul_(scale[idx, None])
            layer.bias.mul_(scale[idx]).add_(shift[idx])
    return network


class TrainModule(nn.Module):
    """The network plus the learnable implicit emotion table (one row per training frame), trained together.

    The network's output is rescaled per channel (``scale * y + shift``, from the target statistics) while
    training: an optimisation aid that leaves the loss unchanged and folds into the output layers afterwards
    (:func:`fold_output_scaling`), so the exported graph is NVIDIA's architecture.
    """

    def __init__(
        self, network: RegressionNetwork, rows: int, scale: torch.Tensor, shift: torch.Tensor, sigma: float = 0.01
    ) -> None:
        super().__init__()
        self.network = network
        self.emotion_table = nn.Parameter(torch.randn(rows, network.cfg.implicit_emotion_len) * sigma)
        self.register_buffer("out_scale", scale.float().clone())
        self.register_buffer("out_shift", shift.float().clone())

    def forward(
        self, x: torch.Tensor, explicit: torch.Tensor, rows: torch.Tensor, offsets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        implicit = self.emotion_table[rows]
        emotion = torch.cat((implicit, explicit), dim=-1)
        if offsets is None:
            out = self.network(x, emotion)
        else:
            out = self.network.forward_chunks(x, offsets, emotion)
        return out * self.out_scale + self.out_shift, implicit

    def folded_network(self) -> RegressionNetwork:
        """A copy of the network with the output scaling folded in (what evaluation and export use)."""
        net = RegressionNetwork(self.network.cfg)
        net.load_state_dict(self.network.state_dict())
        return fold_output_scaling(net.eval(), self.out_scale.cpu(), self.out_shift.cpu())


@dataclass
class Checkpoint:
    """A saved training state, as read back for evaluation and deployment."""

    network: RegressionNetwork
    emotion_table: np.ndarray
    layout: list[TableShot]
    step: int
    config: dict
    path: Path


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by :class:`Trainer` (``weights_only=True``) into a ready network."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: checkpoint is missing") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a facecast training checkpoint")
    network = RegressionNetwork(NetworkConfig(**json.loads(state["network_config"])))
    network.load_state_dict(state["model"])
    fold_output_scaling(network, state["out_scale"], state["out_shift"])
    return Checkpoint(
        network=network.eval(),
        emotion_table=state["emotion_table"].numpy(),
        layout=layout_from_json(json.loads(state["layout"])),
        step=int(state["step"]),
        config=json.loads(state["train_config"]),
        path=path,
    )


def latest_checkpoint(out_dir: str | os.PathLike) -> Path:
    """``<out_dir>/checkpoints/latest.pt``, with a clear error when training has not written one."""
    path = Path(out_dir) / "checkpoints" / "latest.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint yet; run training first")
    return path


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if name == "cuda":
        return torch.device(f"cuda:{local_rank}")
    return torch.device(name)


def init_distributed(device_name: str = "auto") -> tuple[int, int, int]:
    """(rank, world size, local rank); joins the process group when launched by torchrun with several ranks."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        use_nccl = device_name != "cpu" and torch.cuda.is_available()
        dist.init_process_group("nccl" if use_nccl else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))
    return 0, 1, 0


def _save_atomic(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@dataclass
class TrainResult:
    """What a finished run produced."""

    steps: int
    out_dir: Path
    checkpoint: Path | None
    metrics: Path | None
    plot: Path | None
    summary: dict


class Trainer:
    """Trains a regression network on a preprocessed :class:`TrainingData` as ``cfg`` says."""

    def __init__(self, cfg: TrainConfig, data: TrainingData) -> None:
        self.cfg = cfg
        self.data = data
        tr = cfg.train
        self.rank, self.world, local = init_distributed(tr.device)
        self.device = resolve_device(tr.device, local)
        if tr.threads:
            torch.set_num_threads(tr.threads)
        self.out_dir = Path(tr.out_dir)
        self.layout = table_layout(cfg, data)
        self.dataset = SequenceDataset(cfg, data, self.layout)
        if len(self.dataset) == 0:
            raise ValueError("no training samples: every shot is excluded or shorter than 2 frames")
        self.batches = batches_per_epoch(len(self.dataset), self.world, tr.batch_size)
        total = tr.epochs * self.batches
        self.main_steps = min(total, tr.max_steps) if tr.max_steps else total
        self.total_steps = self.main_steps + tr.refine.steps
        self.stage_losses = (tr.losses, tr.refine_losses())  # main stage, refine stage
        torch.manual_seed(tr.seed)
        self.net_cfg = network_config(cfg.network, data)
        network = RegressionNetwork(self.net_cfg)
        init_encoder(network, cfg.network.encoder_checkpoint)
        network.freeze_encoder(cfg.network.freeze_encoder)
        rows = self.layout[-1].row + self.layout[-1].frames
        scale, shift = self._output_scaling(tr.standardize_outputs)
        self.module = TrainModule(network, rows, scale, shift).to(self.device)
        self.model: nn.Module = self.module
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.module, device_ids=ids, broadcast_buffers=False)
        trainable = [p for p in network.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(
            [
                {"params": trainable, "lr": tr.lr},
                {"params": [self.module.emotion_table], "lr": tr.lr * tr.emotion_lr_mult},
            ]
        )
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=1, gamma=tr.lr_gamma)
        decay = tr.losses.normalizer_decay
        self.normalizers = {name: L.LossNormalizer(decay) for name in ("mse", "motion", "emotion_reg")}
        self._geometry_tensors()
        self.step = 0
        self.epoch = 0
        self.next_batch = 0

    def _output_scaling(self, enabled: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel (std, mean) of the training targets, or (1, 0) when disabled."""
        d = self.data.result_size
        if not enabled:
            return torch.ones(d), torch.zeros(d)
        rows = [self.data.shot_targets(self.data.shot(s.name)) for s in self.layout if s.train and not s.muted]
        targets = torch.from_numpy(np.concatenate(rows)).double()
        std = targets.std(dim=0, unbiased=False)
        return std.clamp_min(1e-6 * float(std.max()) + 1e-12).float(), targets.mean(dim=0).float()

    def _geometry_tensors(self) -> None:
        """PCA rows of the lip and eyelid vertices, for decoding only what the losses need."""
        data, ks = self.data, self.data.num_shapes_skin
        self.ks = ks
        self.lip = self.eye = None
        comps = torch.from_numpy(data.skin.components)
        mean = torch.from_numpy(data.skin.mean)
        for attr, verts in (("lip", data.lip_dist_verts), ("eye", data.eye_dist_verts)):
            if verts is None:
                continue
            idx = torch.tensor(verts["upper"] + verts["lower"])
            n = len(verts["upper"])
            basis, base = comps[:, idx].to(self.device), mean[idx].to(self.device)
            setattr(
                self,
                attr,
                (basis, base, torch.arange(n, device=self.device), torch.arange(n, 2 * n, device=self.device)),
            )

    # ------------------------------------------------------------------------------------------------
    # losses

    def losses(
        self, batch: dict[str, torch.Tensor], pred: torch.Tensor, implicit: torch.Tensor
    ) -> tuple[torch.Tensor, dict]:
        """Total loss and the raw value of each term for one batch."""
        refining = self.step >= self.main_steps
        lc = self.stage_losses[refining]
        target = batch["y"]
        exponent = anneal_exponent(self.step, self.total_steps if refining else self.main_steps)
        if self.eye is not None and lc.eye_dist_threshold is not None:
            basis, base, up, lo = self.eye
            lids = L.decode_vertices(target[..., : self.ks], basis, base)
            keep = L.eye_open_mask(lids, up, lo, lc.eye_dist_threshold).to(pred.dtype).view(-1, 1, 1)
            pred, target = pred * keep, target * keep
        parts: dict[str, float] = {}
        total = pred.new_zeros(())
        for name, weight, fn in (
            ("mse", lc.mse, lambda: L.mse_loss(pred, target)),
            ("motion", lc.motion, lambda: L.motion_loss(pred, target)),
            ("emotion_reg", lc.emotion_reg, lambda: L.emotion_reg_loss(implicit)),
        ):
            if weight:
                value = fn()
                parts[name] = float(value.detach())
                total = total + weight * L.annealed(self.normalizers[name], value, exponent)
        if (lc.lip_distance or lc.lip_shape) and self.lip is not None:
            basis, base, up, lo = self.lip
            p_lips = L.decode_vertices(pred[..., : self.ks], basis, base)
            t_lips = L.decode_vertices(target[..., : self.ks], basis, base)
            if lc.lip_distance:
                value = L.lip_distance_loss(p_lips, t_lips, up, lo, lc.lip_distance_exp)
                parts["lip_distance"] = float(value.detach())
                total = total + lc.lip_distance * value
            if lc.lip_shape:
                value = L.lip_shape_loss(p_lips, t_lips)
                parts["lip_shape"] = float(value.detach())
                total = total + lc.lip_shape * value
        if lc.quiet_jitter:
            value = L.quiet_jitter_from_volume(batch["volume"], pred, lc.quiet_jitter_exp)
            parts["quiet_jitter"] = float(value.detach())
            total = total + lc.quiet_jitter * value
        parts["r2"] = float(L.r2_score(pred.detach(), target))
        return total, parts

    # ------------------------------------------------------------------------------------------------
    # checkpoints

    def state(self) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "step": self.step,
            "epoch": self.epoch,
            "next_batch": self.next_batch,
            "model": self.module.network.state_dict(),
            "emotion_table": self.module.emotion_table.detach().cpu(),
            "out_scale": self.module.out_scale.cpu(),
            "out_shift": self.module.out_shift.cpu(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "normalizers": {k: n.state_dict() for k, n in self.normalizers.items()},
            "network_config": json.dumps(self.net_cfg.to_dict()),
            "train_config": json.dumps(self.cfg.to_dict()),
            "layout": json.dumps(layout_to_json(self.layout)),
            "total_steps": self.total_steps,
        }

    def save_checkpoint(self) -> Path | None:
        if self.rank != 0:
            return None
        state = self.state()
        folder = self.out_dir / "checkpoints"
        path = folder / f"step_{self.step:07d}.pt"
        _save_atomic(state, path)
        _save_atomic(state, folder / "latest.pt")
        return path

    def load_state(self, path: Path) -> None:
        state = torch.load(path, map_location=self.device, weights_only=True)
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path}: not a facecast training checkpoint")
        saved = NetworkConfig(**json.loads(state["network_config"]))
        if saved != self.net_cfg:
            raise ValueError(f"{path}: the checkpoint's network ({saved}) differs from the config's ({self.net_cfg})")
        self.module.network.load_state_dict(state["model"])
        with torch.no_grad():
            self.module.emotion_table.copy_(state["emotion_table"])
            self.module.out_scale.copy_(state["out_scale"])
            self.module.out_shift.copy_(state["out_shift"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        for key, norm in self.normalizers.items():
            norm.load_state_dict(state["normalizers"][key])
        self.step, self.epoch, self.next_batch = int(state["step"]), int(state["epoch"]), int(state["next_batch"])

    # ------------------------------------------------------------------------------------------------
    # the loop

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        sampler = torch.utils.data.DistributedSampler(
            self.dataset, num_replicas=self.world, rank=self.rank, shuffle=True, seed=self.cfg.train.seed
        )
        sampler.set_epoch(epoch)
        indices = list(sampler)
        bs = self.cfg.train.batch_size
        return [indices[i * bs : (i + 1) * bs] for i in range(self.batches)]

    def chunk_for_step(self, step: int) -> int:
        """Frames per sample at a step: 1 (separate windows) a third of the time, ``chunk_frames`` a third, any
        size between the rest; drawn from (seed, step), so resumed runs repeat it."""
        most = self.cfg.network.chunk_frames
        if most < 2:
            return 1
        rng = np.random.default_rng([self.cfg.train.seed, 7919, step])
        pick = rng.integers(3)
        return 1 if pick == 0 else most if pick == 1 else int(rng.integers(2, most + 1))

    def _batch(self, indices: list[int]) -> dict[str, torch.Tensor]:
        """The samples of one step: window pairs, or pairs of frames seen from blocks of K frames."""
        self.dataset.set_chunk(self.chunk_for_step(self.step))
        return collate([self.dataset[i] for i in indices])

    def _train_step(self, batch: dict[str, torch.Tensor]) -> dict:
        batch = {k: v.to(self.device) for k, v in batch.items()}
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        pred, implicit = self.model(batch["x"], batch["explicit"], batch["rows"], batch.get("offsets"))
        total, parts = self.losses(batch, pred, implicit)
        total.backward()
        self.optimizer.step()
        parts["loss"] = float(total.detach())
        return parts

    def fit(self, resume: bool | str | os.PathLike = False) -> TrainResult:
        """Train to ``total_steps``; ``resume`` is True (the latest checkpoint, if any) or a checkpoint path."""
        tr = self.cfg.train
        resume_path = None
        if resume is True:
            candidate = self.out_dir / "checkpoints" / "latest.pt"
            resume_path = candidate if candidate.is_file() else None
        elif resume:
            resume_path = Path(resume)
        if resume_path is not None:
            self.load_state(resume_path)
            log.info("resumed from %s at step %d", resume_path, self.step)
        writer = None
        if self.rank == 0:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            write_json(self.out_dir / "config.json", self.cfg.to_dict())
            writer = MetricsWriter(self.out_dir, self.step if resume_path else None)
        bar = None
        if self.rank == 0 and sys.stderr.isatty():
            from tqdm import tqdm

            bar = tqdm(total=self.total_steps, initial=self.step, desc="training", unit="step")
        window: dict[str, list[float]] = {}
        started = time.time()
        last_checkpoint = None
        try:
            while self.step < self.total_steps:
                self.dataset.set_epoch(self.epoch)
                batches = self._epoch_batches(self.epoch)
                for b in range(self.next_batch, len(batches)):
                    parts = self._train_step(self._batch(batches[b]))
                    for key, value in parts.items():
                        window.setdefault(key, []).append(value)
                    self.step += 1
                    self.next_batch = b + 1
                    if self.next_batch == len(batches):
                        self.scheduler.step()
                        self.epoch, self.next_batch = self.epoch + 1, 0
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{parts['loss']:.4f}", r2=f"{parts['r2']:.3f}")
                    if writer is not None and (self.step % tr.log_every == 0 or self.step == self.total_steps):
                        row = {k: float(np.mean(window.get(k, [0.0]))) for k in METRIC_FIELDS[3:-1]}
                        lr = self.optimizer.param_groups[0]["lr"]
                        writer.write({"step": self.step, "epoch": self.epoch, "lr": lr, **row,
                                      "seconds": round(time.time() - started, 3)})  # fmt: skip
                        window = {}
                    if self.step % tr.checkpoint_every == 0 or self.step == self.total_steps:
                        last_checkpoint = self.save_checkpoint() or last_checkpoint
                    if self.step >= self.total_steps:
                        break
        except KeyboardInterrupt:
            log.warning("training interrupted at step %d; saving a checkpoint", self.step)
            last_checkpoint = self.save_checkpoint()
            raise
        finally:
            if bar is not None:
                bar.close()
            if writer is not None:
                writer.close()
        return self._finish(writer, last_checkpoint, time.time() - started)

    def _fingerprint(self) -> list[list[float]]:
        """[sum, sum of squares] of all trained tensors on every rank (equal when the ranks agree)."""
        with torch.no_grad():
            tensors = [p.detach().double() for p in self.module.parameters()]
            mine = torch.stack([sum(t.sum() for t in tensors), sum((t * t).sum() for t in tensors)]).cpu()
        if self.world == 1:
            return [mine.tolist()]
        mine = mine.to(self.device)  # NCCL gathers CUDA tensors only
        gathered = [torch.zeros_like(mine) for _ in range(self.world)]
        dist.all_gather(gathered, mine)
        return [g.cpu().tolist() for g in gathered]

    def _finish(self, writer: MetricsWriter | None, checkpoint: Path | None, seconds: float) -> TrainResult:
        fingerprints = self._fingerprint()
        summary = {
            "steps": self.step,
            "epochs_completed": self.epoch,
            "world_size": self.world,
            "seconds": round(seconds, 3),
            "rank_fingerprints": fingerprints,
        }
        plot = metrics = None
        if self.rank == 0:
            metrics = writer.path if writer is not None else None
            if metrics is not None:
                plot = plot_metrics(metrics, self.out_dir / "loss.png")
            write_json(self.out_dir / "summary.json", summary)
        if dist.is_initialized():
            dist.barrier()
        return TrainResult(self.step, self.out_dir, checkpoint, metrics, plot, summary)


def train(cfg: TrainConfig, data: TrainingData, resume: bool | str | os.PathLike = False) -> TrainResult:
    """Train with ``cfg`` on ``data`` (see :class:`Trainer`)."""
    return Trainer(cfg, data).fit(resume)


def steps_per_epoch(cfg: TrainConfig, data: TrainingData, world_size: int = 1) -> int:
    """Optimiser steps one epoch takes on each rank."""
    dataset = SequenceDataset(cfg, data, table_layout(cfg, data))
    return batches_per_epoch(len(dataset), world_size, cfg.train.batch_size)


def anneal_exponent(step: int, total_steps: int) -> float:
    """The loss exponent at ``step``: 1 - step / total (spec 10.5)."""
    return max(0.0, 1.0 - step / max(total_steps, 1))


__all__ = [
    "Checkpoint",
    "Trainer",
    "TrainModule",
    "TrainResult",
    "anneal_exponent",
    "fold_output_scaling",
    "init_distributed",
    "latest_checkpoint",
    "load_checkpoint",
    "network_config",
    "plot_metrics",
    "steps_per_epoch",
    "train",
]
