"""One function per training stage, driven by a :class:`~facecast.train.config.TrainConfig`.

Heavy imports (torch) happen inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from facecast.train.config import TrainConfig

if TYPE_CHECKING:
    from facecast.train.preprocess import TrainingData
    from facecast.train.trainer import TrainResult


def run_preprocess(cfg: TrainConfig) -> TrainingData:
    """Check the dataset and build (or reuse) the training cache in ``preprocess.cache_dir``."""
    from facecast.train.dataset import load_dataset
    from facecast.train.preprocess import preprocess

    ds = cfg.dataset
    dataset = load_dataset(
        ds.root,
        fps=ds.fps,
        shots=ds.shots or None,
        shots_file=ds.shots_file,
        emotions=ds.emotions,
        frame_tolerance=ds.frame_tolerance,
    )
    return preprocess(dataset, cfg.preprocess, ds.actor)


def run_train(cfg: TrainConfig, resume: bool | str | os.PathLike = False) -> TrainResult:
    """Preprocess (rank 0; other ranks wait and read the cache), then train."""
    import torch.distributed as dist

    from facecast.train.preprocess import load_training_data
    from facecast.train.trainer import Trainer, init_distributed

    rank, world, _ = init_distributed(cfg.train.device)
    if rank == 0:
        data = run_preprocess(cfg)
    if world > 1:
        dist.barrier()
    if rank != 0:
        data = load_training_data(cfg.preprocess.cache_dir)
    return Trainer(cfg, data).fit(resume)


def _checkpoint(cfg: TrainConfig, explicit: Path | None) -> Path:
    from facecast.train.trainer import latest_checkpoint

    return explicit if explicit is not None else latest_checkpoint(cfg.train.out_dir)


def run_eval(cfg: TrainConfig, checkpoint: str | os.PathLike | None = None) -> dict:
    """Evaluate a checkpoint (default: the latest) and write ``eval.json`` next to the training outputs."""
    from facecast.fileio import write_json
    from facecast.train.evaluate import evaluate
    from facecast.train.trainer import load_checkpoint

    data = run_preprocess(cfg)
    ckpt = load_checkpoint(_checkpoint(cfg, Path(checkpoint) if checkpoint else cfg.eval.checkpoint))
    table = ckpt.emotion_table if cfg.eval.implicit_emotion == "trained" else None
    report = evaluate(
        ckpt.network,
        data,
        ckpt.layout,
        table,
        cfg.eval.shots or None,
        cfg.eval.closure_threshold,
        cfg.train.frame_time_offset,
    )
    report["checkpoint"] = str(ckpt.path)
    report["step"] = ckpt.step
    write_json(Path(cfg.train.out_dir) / "eval.json", report)
    return report


def run_deploy(
    cfg: TrainConfig, checkpoint: str | os.PathLike | None = None, out_dir: str | os.PathLike | None = None
) -> Path:
    """Write the official model file set for a checkpoint (default: the latest) into ``deploy.out_dir``."""
    from facecast.train.deploy import deploy

    data = run_preprocess(cfg)
    dep = cfg.deploy
    return deploy(
        _checkpoint(cfg, Path(checkpoint) if checkpoint else dep.checkpoint),
        data,
        out_dir or dep.out_dir,
        actor=dep.actor or cfg.dataset.actor,
        source_shot=dep.source_shot,
        source_frame=dep.source_frame,
        model_config=dep.model_config,
        blendshapes_dir=Path(cfg.dataset.root) / "bs_data",
        centre_rest=dep.centre_rest,
    )
