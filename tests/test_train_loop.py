"""Training on the synthetic dataset: exact resume, loss falling, evaluation, deploy -> load_model -> animate."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from facecast.train import run_deploy, run_eval, run_train
from facecast.train.evaluate import evaluate
from facecast.train.pipeline import run_preprocess
from facecast.train.sampling import SequenceDataset, shifted_targets, table_layout
from facecast.train.synthetic import make_synthetic_dataset, quick_config
from facecast.train.trainer import Trainer, load_checkpoint

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Three 1.5 s shots (neutral, joy, anger): 45 frames each."""
    return make_synthetic_dataset(tmp_path_factory.mktemp("synthetic") / "data", num_shots=3, seconds=1.5)


def test_samples_time_shift_and_muted_shots(synthetic, tmp_path):
    cfg = quick_config(synthetic, tmp_path, muted_frames_per_emotion=12)
    data = run_preprocess(cfg)
    layout = table_layout(cfg, data)
    muted = [s for s in layout if s.muted]
    assert {s.emotion for s in muted} == {s.emotion for s in data.shots} and all(s.frames == 12 for s in muted)
    assert muted[0].row == data.targets.shape[0]  # muted rows follow every real frame
    ds = SequenceDataset(cfg, data, layout)
    assert len(ds) == sum(s.frames - 1 for s in layout)
    item = ds[3]
    assert item["x"].shape == (2, 8320) and item["y"].shape == (2, data.result_size)
    assert np.array_equal(ds[3]["x"], item["x"])  # rebuilt identically (seeded per epoch and index)
    ds.set_epoch(1)
    assert not np.array_equal(ds[3]["x"], item["x"])  # a new time shift in a new epoch
    neutral_muted = next(s for s in muted if s.emotion == "neutral")
    first = int(ds.offsets[ds.shots.index(neutral_muted)])
    sample = ds[first]
    assert np.all(sample["y"][:, : data.num_shapes_skin] == 0)  # neutral muted shots rest at the neutral
    assert np.abs(sample["x"]).max() < 1e-3 and np.all(sample["explicit"] == 0)
    targets = np.arange(10, dtype=np.float32)[:, None]
    assert shifted_targets(targets, np.array([4, 5]), 0.25)[:, 0].tolist() == [4.25, 5.25]
    assert shifted_targets(targets, np.array([0, 9]), -0.5)[:, 0].tolist() == [0.0, 8.5]


def test_resume_matches_an_uninterrupted_run(tmp_path):
    root = make_synthetic_dataset(tmp_path / "data", num_shots=1, seconds=0.7)  # 21 frames: 20 samples
    common = {"max_steps": 12, "checkpoint_every": 6, "batch_size": 4, "muted_frames_per_emotion": 0,
              "log_every": 3}  # fmt: skip
    cfg_a = quick_config(root, tmp_path / "a", **common)
    data = run_preprocess(cfg_a)
    full = Trainer(cfg_a, data)
    assert full.batches == 5  # the 12 steps cross two epoch boundaries (and two StepLR steps)
    result = full.fit()
    assert result.steps == 12 and (tmp_path / "a" / "train" / "checkpoints" / "step_0000006.pt").is_file()
    cfg_b = quick_config(root, tmp_path / "b", **common)
    resumed = Trainer(cfg_b, data)
    resumed.fit(resume=tmp_path / "a" / "train" / "checkpoints" / "step_0000006.pt")
    assert resumed.step == 12 and resumed.epoch == full.epoch == 2
    for key, value in full.module.state_dict().items():
        assert torch.allclose(value, resumed.module.state_dict()[key], atol=1e-6, rtol=0), key
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(full.optimizer.param_groups[0]["lr"])
    rows = list(csv.DictReader(open(tmp_path / "b" / "train" / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [9, 12]
    assert full.optimizer.param_groups[0]["lr"] == pytest.approx(2.5e-4 * 0.99**2)
    # a resumed run in the same folder drops metric rows written after its checkpoint
    again = Trainer(cfg_a, data)
    again.fit(resume=tmp_path / "a" / "train" / "checkpoints" / "step_0000006.pt")
    rows = list(csv.DictReader(open(tmp_path / "a" / "train" / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [3, 6, 9, 12]


def test_train_eval_deploy_and_animate(synthetic, tmp_path):
    from facecast import load_model

    steps = {"max_steps": 200, "checkpoint_every": 100, "log_every": 20}  # 5 epochs of 3 x 44 + 3 x 9 muted pairs
    cfg = quick_config(synthetic, tmp_path, muted_frames_per_emotion=10, **steps)
    data = run_preprocess(cfg)
    untrained = Trainer(cfg, data).module.folded_network()  # the same seeded initial weights
    result = run_train(cfg)
    assert result.steps == 200 and result.checkpoint.is_file()
    rows = list(csv.DictReader(open(result.metrics)))
    assert len(rows) == 10 and float(rows[-1]["mse"]) < float(rows[0]["mse"])
    assert result.plot is not None and result.plot.stat().st_size > 1000
    assert len(result.summary["rank_fingerprints"]) == 1

    report = run_eval(cfg)
    overall = report["overall"]
    ckpt = load_checkpoint(result.checkpoint)
    start = evaluate(untrained, data, ckpt.layout, ckpt.emotion_table)["overall"]
    assert overall["mse"] < 0.5 * start["mse"], (start, overall)  # the training loss fell well below its start
    assert overall["r2_skin"] > 0.5 and np.isfinite(overall["lip_closure_error"])
    assert overall["mean_vertex_error"] < 0.7 * start["mean_vertex_error"], (start, overall)
    assert overall["lip_vertex_error"] < 0.5 * start["lip_vertex_error"], (start, overall)

    out = run_deploy(cfg)
    info = json.loads((out / "network_info.json").read_text())
    assert info["params"]["num_shapes_skin"] == ckpt.network.cfg.num_shapes_skin
    with np.load(out / "model_data.npz") as data:
        assert len(data.files) == 8
    config = json.loads((out / "model_config.json").read_text())["config"]
    assert config["source_shot"] == ckpt.layout[0].name and config["source_frame"] == 0
    assert (out / "bs_skin.npz").is_file() and (out / "trt_info.json").is_file()

    assert "quiet_hold" not in config  # NVIDIA's keys only, unless the config sets facecast's
    cfg.deploy.model_config = {"quiet_hold": 1.0}
    out = run_deploy(cfg)
    assert json.loads((out / "model_config.json").read_text())["config"]["quiet_hold"] == 1.0

    model = load_model(out, device="cpu")
    assert model.pipeline.default_params.quiet_hold == 1.0
    shot = "synth_joy_01"
    anim = model.animate(str(synthetic / "audio" / f"{shot}.wav"), blinks=False, geometry=True)
    assert anim.skin_weights.shape[1] == 52 and np.all(np.isfinite(anim.skin_weights))
    lips = json.loads((synthetic / "geom" / "skin" / "lip_dist_vertex_list.json").read_text())
    truth = np.load(synthetic / "cache" / "skin" / shot / f"{shot}.npy")
    n = min(len(truth), len(anim.skin_geometry))

    def opening(v):
        return (v[:n, lips["upper"], 1] - v[:n, lips["lower"], 1]).mean(axis=1)

    assert np.corrcoef(opening(truth), opening(anim.skin_geometry))[0, 1] > 0.8

    # rest centring, checked through ONNX Runtime: the deployed pack answers silence with the neutral face
    cfg.deploy.centre_rest = True
    centred = run_deploy(cfg, out_dir=tmp_path / "centred")
    engine = load_model(centred, device="cpu").engine
    emotion = engine.emotion_rows(np.array([16000]), None)[0]
    plain_rest = model.engine.rest_result(emotion)
    assert np.abs(plain_rest[:-4]).max() > 1e-3
    assert np.abs(engine.rest_result(emotion)[:-4]).max() < 1e-4
    assert np.allclose(engine.rest_result(emotion)[-4:], plain_rest[-4:], atol=1e-5)  # the gaze is not centred
    from facecast.train.package import package_trained

    packaged = package_trained(result.checkpoint, centred, tmp_path / "packaged")
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(centred / "network.onnx")).graph
    deployed = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    with np.load(packaged / "decoder.npz") as decoder:  # packaging keeps the deployed (centred) biases
        for key in ("out_mapping1.bias", "out_mapping1_tongue.bias"):
            assert np.array_equal(decoder[key], deployed[key])
            assert not np.allclose(decoder[key], ckpt.network.state_dict()[key].numpy())


def test_chunk_samples_and_a_chunk_trained_pack(synthetic, tmp_path):
    """``network.chunk_frames``: pairs of frames seen from blocks of K, K drawn per step, a deployable chunk graph."""
    from facecast import load_model
    from facecast.timing import block_length, chunk_span
    from facecast.train.sampling import read_window

    cfg = quick_config(synthetic, tmp_path, max_steps=12, time_shift=0.0, log_every=4)
    cfg.network.chunk_frames = 4
    data = run_preprocess(cfg)
    ds = SequenceDataset(cfg, data, table_layout(cfg, data))
    ds.set_chunk(4)
    info = data.shot(ds.shots[0].name)
    audio, targets = data.shot_audio(info), data.shot_targets(info)
    slots = set()
    for first in (0, 1, 5, 17, 30):
        item = ds[first]
        assert item["x"].shape == (block_length(4, 30.0, 8320),)
        offsets = item["offsets"]
        assert offsets.shape == (2,) and 0 <= offsets[0] < offsets[1] <= chunk_span(4, 30.0)
        slots.add(int(offsets[0]))
        for j in range(2):  # the pair's windows are where the frames' own windows are, inside the block's chunk
            centre = int(np.floor((first + j) * 16000 / 30 + 1e-6))
            window = read_window(audio, centre - cfg.network.buffer_ofs, 8320)
            assert np.array_equal(item["x"][offsets[j] : offsets[j] + 8320], window)
        assert np.allclose(item["y"], targets[first : first + 2])
        assert np.allclose(item["volume"], [np.abs(item["x"][o : o + 8320]).mean() for o in offsets])
    assert len(slots) > 1  # the pair sits at different places in its block
    ds.set_chunk(1)
    assert ds[5]["x"].shape == (2, 8320) and "offsets" not in ds[5]  # K = 1: the window pairs

    trainer = Trainer(cfg, data)
    ks = [trainer.chunk_for_step(s) for s in range(90)]
    assert ks == [trainer.chunk_for_step(s) for s in range(90)] and {1, 2, 3, 4} == set(ks)
    result = trainer.fit()
    assert result.steps == 12 and np.isfinite(float(list(csv.DictReader(open(result.metrics)))[-1]["loss"]))
    model = load_model(run_deploy(cfg), device="cpu")
    assert model.frames_per_pass == 4 and model.pack.chunk_frames == 4
    anim = model.animate(str(synthetic / "audio" / "synth_joy_01.wav"), blinks=False)
    assert np.all(np.isfinite(anim.skin_weights)) and len(anim) > 10


def test_lip_shape_loss_and_a_refine_stage(tmp_path):
    """``train.refine``: steps after max_steps with other loss weights (here the lip-shape term switched on)."""
    root = make_synthetic_dataset(tmp_path / "data", num_shots=1, seconds=0.7)
    common = {"max_steps": 4, "batch_size": 4, "muted_frames_per_emotion": 0, "log_every": 2}
    cfg = quick_config(root, tmp_path / "run", **common)
    cfg.train.refine.steps = 2
    cfg.train.refine.losses = {"lip_shape": 50.0, "lip_distance_exp": 10.0}
    assert cfg.train.refine_losses().lip_shape == 50.0 and cfg.train.losses.lip_shape is None
    assert cfg.train.refine_losses().mse == cfg.train.losses.mse  # the rest is kept
    trainer = Trainer(cfg, run_preprocess(cfg))
    assert (trainer.main_steps, trainer.total_steps) == (4, 6)
    result = trainer.fit()
    assert result.steps == 6
    rows = list(csv.DictReader(open(tmp_path / "run" / "train" / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [2, 4, 6]
    lip_shape = [float(r["lip_shape"]) for r in rows]
    assert lip_shape[:2] == [0.0, 0.0] and lip_shape[2] > 0  # logged while the refine stage trains it
