"""facecast's training framework: NVIDIA-layout datasets in, PCA preprocessing, the Audio2Face-3D regression
losses, single- or multi-GPU training, evaluation, and deployment to the official model file set.

Never imported by the runtime. Typical use::

    from facecast.train import load_config, run_preprocess, run_train, run_deploy

    cfg = load_config("train_config.toml")
    data = run_preprocess(cfg)
    run_train(cfg)
    run_deploy(cfg)
"""

from __future__ import annotations

from facecast.train.config import ConfigError, TrainConfig, load_config
from facecast.train.pipeline import run_deploy, run_eval, run_preprocess, run_train

__all__ = ["ConfigError", "TrainConfig", "load_config", "run_deploy", "run_eval", "run_preprocess", "run_train"]
