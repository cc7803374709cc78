"""Multi-process training: torchrun with 2 CPU processes (gloo) ends with identical weights on both ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from facecast.train.config import load_config
from facecast.train.evaluate import evaluate
from facecast.train.pipeline import run_preprocess
from facecast.train.synthetic import make_synthetic_dataset
from facecast.train.trainer import Trainer, load_checkpoint

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

CONFIG = """
[dataset]
root = "data"
actor = "synth"
[preprocess]
cache_dir = "preproc"
skin_prune_radius = 0.05
tongue_prune_radius = 0.05
tongue_components = 4
[network]
encoder = "whisper"
num_layers = 1
[train]
out_dir = "train"
batch_size = 4
max_steps = 100
lr = 2.5e-4  # 1e-3 overshoots on batches of 4 (see facecast.train.synthetic.quick_config)
threads = 1
log_every = 10
checkpoint_every = 50
muted_frames_per_emotion = 10
"""


def test_two_gloo_processes_train_in_lockstep(tmp_path):
    make_synthetic_dataset(tmp_path / "data", num_shots=2, seconds=1.5)
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "facecast", "train", str(config)]  # fmt: skip
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained 100 steps on 2 process(es)") == 1  # rank 0 alone reports
    summary = json.loads((tmp_path / "train" / "summary.json").read_text())
    assert summary["world_size"] == 2
    first, second = summary["rank_fingerprints"]
    assert first == second  # both ranks hold bit-identical weights
    # each rank saw half of every batch-epoch: 2 x 100 x 4 samples in all; the loss fell from the start
    cfg = load_config(config)
    data = run_preprocess(cfg)
    ckpt = load_checkpoint(tmp_path / "train" / "checkpoints" / "latest.pt")
    assert ckpt.step == 100
    start = Trainer(cfg, data).module.folded_network()
    before = evaluate(start, data, ckpt.layout, ckpt.emotion_table)["overall"]
    after = evaluate(ckpt.network, data, ckpt.layout, ckpt.emotion_table)["overall"]
    assert after["mse"] < 0.9 * before["mse"], (before, after)
    assert after["mean_vertex_error"] < before["mean_vertex_error"], (before, after)

    # the other commands work on the same run through the CLI
    from facecast.cli import main

    assert main(["preprocess", str(config)]) == 0
    assert main(["eval", str(config), "--json"]) == 0
    assert json.loads((tmp_path / "train" / "eval.json").read_text())["step"] == 100
    assert main(["deploy", str(config), "-o", str(tmp_path / "pack")]) == 0
    assert (tmp_path / "pack" / "model.json").is_file() and (tmp_path / "pack" / "network.onnx").is_file()
