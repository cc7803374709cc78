"""facecast batch on a v3.0 (diffusion, multi-identity) folder: the same frames as animate, per identity."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from facecast.batch.local import find_jobs, run_batch
from facecast.cli import main
from facecast.model import load_model
from facecast.models.testing_v3 import make_v3_pack


@pytest.fixture(scope="module")
def pack_dir(tmp_path_factory):
    return make_v3_pack(tmp_path_factory.mktemp("v3b") / "pack", seed=5)


def _clips(folder, count=3):
    rng = np.random.default_rng(11)
    folder.mkdir(parents=True)
    paths = []
    for i in range(count):
        path = folder / f"clip{i}.wav"
        sf.write(path, (rng.standard_normal(int(16000 * rng.uniform(0.3, 1.2))) * 0.2).astype(np.float32), 16000)
        paths.append(path)
    return paths


def test_batch_runs_v3_folder_like_animate(pack_dir, tmp_path):
    model = load_model(pack_dir, identity="James")
    clips = _clips(tmp_path / "in")
    report = run_batch(model, find_jobs(tmp_path / "in", tmp_path / "out"), ["npz"], group_clips=2, progress=False)
    assert report.done == 3 and not report.failed
    for path in clips:
        with np.load(tmp_path / "out" / f"{path.stem}.npz") as data:
            expected = model.animate(path)
            assert data["skin_weights"].shape == expected.skin_weights.shape
            assert np.abs(data["skin_weights"] - expected.skin_weights).max() < 1e-5


def test_batch_cli_identity(pack_dir, tmp_path, capsys):
    _clips(tmp_path / "in", count=1)
    outs = {}
    for name in ("Claire", "Mark"):
        rc = main(["batch", str(tmp_path / "in"), "-o", str(tmp_path / name), "-m", str(pack_dir), "--formats",
                   "npz", "--identity", name, "--no-blinks"])  # fmt: skip
        assert rc == 0
        with np.load(tmp_path / name / "clip0.npz") as data:
            outs[name] = data["skin_weights"].copy()
    expected = load_model(pack_dir, identity="Mark").animate(tmp_path / "in" / "clip0.wav", blinks=False)
    assert np.abs(outs["Mark"] - expected.skin_weights).max() < 1e-5
    assert np.abs(outs["Mark"] - outs["Claire"]).max() > 1e-4  # the identity reaches the network
    rc = main(["batch", str(tmp_path / "in"), "-o", str(tmp_path / "x"), "-m", str(pack_dir), "--identity", "Nobody"])
    assert rc == 2
    assert "Nobody" in capsys.readouterr().err
