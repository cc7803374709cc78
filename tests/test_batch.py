"""facecast batch: folder and manifest jobs, cross-file batching, resume, failures, Ray."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import soundfile as sf

from facecast.batch import local
from facecast.batch.local import find_jobs, run_batch
from facecast.cli import main


def _clips(folder, count=5, seed=0):
    rng = np.random.default_rng(seed)
    (folder / "sub").mkdir(parents=True)
    paths = []
    for i in range(count):
        sub = folder / "sub" if i % 2 else folder
        path = sub / f"clip{i}.wav"
        sr = [16000, 22050, 44100][i % 3]
        sf.write(path, (rng.standard_normal(int(sr * rng.uniform(0.2, 0.9))) * 0.2).astype(np.float32), sr)
        paths.append(path)
    return paths


def _digests(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "batch_report.json"}  # fmt: skip


def test_batch_matches_animate_and_mirrors_layout(small_model, tmp_path):
    clips = _clips(tmp_path / "in")
    jobs = find_jobs(tmp_path / "in", tmp_path / "out")
    assert len(jobs) == 5
    report = run_batch(small_model, jobs, ["json", "npz"], group_clips=2, progress=False)
    assert report.done == 5 and not report.failed
    assert (tmp_path / "out" / "sub" / "clip1.json").exists()
    for path in clips:
        rel = path.relative_to(tmp_path / "in").with_suffix("")
        with np.load(tmp_path / "out" / f"{rel}.npz") as data:
            expected = small_model.animate(path)
            assert np.abs(data["skin_weights"] - expected.skin_weights).max() < 1e-5


def test_batch_of_chunk_model_matches_animate(chunk_pack, tmp_path):
    """Blocks of several clips share inference calls and give each clip's own offline frames."""
    from facecast import load_model

    model = load_model(chunk_pack, device="cpu", batch_size=8)
    assert model.frames_per_pass == 4
    clips = _clips(tmp_path / "in", count=3, seed=2)
    report = run_batch(model, find_jobs(tmp_path / "in", tmp_path / "out"), ["npz"], group_clips=3, progress=False)
    assert report.done == 3 and not report.failed
    for path in clips:
        rel = path.relative_to(tmp_path / "in").with_suffix("")
        with np.load(tmp_path / "out" / f"{rel}.npz") as data:
            assert np.abs(data["skin_weights"] - model.animate(path).skin_weights).max() < 1e-5


def test_interrupted_batch_resumes_to_identical_files(small_model, tmp_path, monkeypatch):
    _clips(tmp_path / "in", seed=1)
    full = run_batch(small_model, find_jobs(tmp_path / "in", tmp_path / "a"), ["json", "csv"], progress=False)
    assert full.done == 5
    jobs = find_jobs(tmp_path / "in", tmp_path / "b")
    real, written = local.write, []

    def interrupt_after_two(anim, stem, formats):  # Ctrl-C while the third clip is written
        if len(written) == 4:
            raise KeyboardInterrupt
        written.append(stem)
        return real(anim, stem, formats)

    monkeypatch.setattr(local, "write", interrupt_after_two)
    with pytest.raises(KeyboardInterrupt):
        run_batch(small_model, jobs, ["json", "csv"], progress=False)
    monkeypatch.setattr(local, "write", real)
    assert len(set(written)) == 2 and not list((tmp_path / "b").rglob(".*"))  # no temporaries left
    resumed = run_batch(small_model, jobs, ["json", "csv"], progress=False)
    assert resumed.skipped == 2 and resumed.done == 3
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")


def test_manifest_with_emotion_and_a_bad_file(small_model, tmp_path):
    _clips(tmp_path, count=2, seed=2)
    (tmp_path / "broken.wav").write_text("not audio")
    manifest = tmp_path / "list.csv"
    manifest.write_text("audio,output,emotion\nclip0.wav,happy,joy=1\nbroken.wav,broken,\nsub/clip1.wav,,\n")
    jobs = find_jobs(manifest, tmp_path / "out")
    assert [j.stem.name for j in jobs] == ["happy", "broken", "clip1"]
    report = run_batch(small_model, jobs, ["json"], progress=False)
    assert report.done == 2 and [f.audio for f in report.failed] == [str(tmp_path / "broken.wav")]
    assert report.failed[0].manifest == str(manifest) and report.failed[0].line == 3
    doc = json.loads((tmp_path / "out" / "happy.json").read_text())
    assert doc["emotion"]["weights"][0][doc["emotion"]["names"].index("joy")] == 1.0


def test_batch_cli_exit_codes(small_pack, tmp_path, capsys):
    _clips(tmp_path / "in", count=2, seed=3)
    assert main(["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(small_pack)]) == 0
    assert "2 animated" in capsys.readouterr().out
    assert main(["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(small_pack)]) == 0
    assert "2 already done" in capsys.readouterr().out
    assert main(["batch", str(tmp_path / "nope"), "-o", str(tmp_path / "o2")]) == 2


def test_batch_on_local_ray(small_pack, tmp_path):
    ray = pytest.importorskip("ray")
    from facecast.batch.ray_cluster import run_batch_ray

    _clips(tmp_path / "in", count=3, seed=4)
    jobs = find_jobs(tmp_path / "in", tmp_path / "out")
    try:
        report = run_batch_ray("local", str(small_pack), jobs, ["json"], actors=1, device="cpu", block_size=2)
    finally:
        ray.shutdown()
    assert report.done == 3 and not report.failed and report.frames > 0
    assert len(list((tmp_path / "out").rglob("*.json"))) == 3
