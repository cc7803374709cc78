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


def is_diffusion(cfg: TrainConfig) -> bool:
    """Whether ``cfg`` trains the v3.0 diffusion network (``network.kind = "diffusion"``)."""
    return cfg.network.kind == "diffusion"


def run_preprocess(cfg: TrainConfig) -> TrainingData:
    """Check the dataset and build (or reuse) the training cache in ``preprocess.cache_dir`` (diffusion: read
    and check every identity's dataset; there is no PCA cache)."""
    if is_diffusion(cfg):
        from facecast.train.diffusion_data import load_diffusion_data

        return load_diffusion_data(cfg)  # type: ignore[return-value]
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
    if is_diffusion(cfg):
        from facecast.train.diffusion_train import train_diffusion

        return train_diffusion(cfg, run_preprocess(cfg), resume)  # type: ignore[arg-type]
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

    if is_diffusion(cfg):
        raise ValueError("eval is not available for diffusion models yet; deploy, then run "
                         "facecast evaluate-lipsync -m DEPLOYED_FOLDER")  # fmt: skip
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
    if is_diffusion(cfg):
        from facecast.train.diffusion_deploy import deploy_diffusion

        ckpt = _checkpoint(cfg, Path(checkpoint) if checkpoint else dep.checkpoint)
        return deploy_diffusion(ckpt, data, out_dir or dep.out_dir, dep.model_config)  # type: ignore[arg-type]
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
