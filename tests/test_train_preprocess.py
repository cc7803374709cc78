"""Preprocessing: PCA around the neutral, pose pruning, rigid tongue stabilisation and the training cache."""

from __future__ import annotations

import os

import numpy as np
import pytest

from facecast.train import preprocess as pre
from facecast.train.config import PreprocessConfig
from facecast.train.dataset import load_dataset
from facecast.train.pca import fit_pca, kabsch, prune_poses, stabilize
from facecast.train.synthetic import make_synthetic_dataset


def _rotation(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def test_pca_round_trip_keeps_variance_and_reconstructs():
    rng = np.random.default_rng(0)
    neutral = rng.standard_normal((50, 3)).astype(np.float32)
    modes = rng.standard_normal((4, 50, 3)) * np.array([5.0, 2.0, 1.0, 0.5])[:, None, None]
    weights = rng.standard_normal((300, 4))
    poses = neutral + np.einsum("fk,kvc->fvc", weights, modes) + rng.standard_normal((300, 50, 3)) * 1e-3
    basis = fit_pca(poses, neutral, variance=0.9995)
    assert basis.num_components == 4  # the noise floor holds far less than 0.05% of the variance
    assert basis.explained > 0.9995
    flat = basis.components.reshape(4, -1)
    assert np.allclose(flat @ flat.T, np.eye(4), atol=1e-5)
    rec = basis.reconstruct(basis.project(poses))
    assert np.abs(rec - poses).max() < 0.02
    assert np.allclose(basis.mean, neutral)  # custom mean, not the data mean
    forced = fit_pca(poses[:3], neutral, components=6)  # more components than poses: zero rows pad
    assert forced.num_components == 6 and np.allclose(forced.components[3:], 0.0)
    truncated = fit_pca(poses, neutral, variance=0.9)
    assert truncated.num_components < 4


def test_prune_keeps_every_tenth_and_distant_frames():
    poses = np.zeros((100, 6), np.float32)
    poses[37] = 10.0
    poses[38] = 10.05
    keep = prune_poses(poses, radius=1.0, stride=10)
    assert 37 in keep and 0 in keep
    assert len(keep) < 20  # the near-duplicate frames are gone
    distinct = np.random.default_rng(1).standard_normal((60, 6)) * 100
    assert len(prune_poses(distinct, radius=1.0)) == 60


def test_kabsch_and_tongue_stabilisation_recover_a_known_rigid_motion():
    rng = np.random.default_rng(3)
    neutral = rng.standard_normal((30, 3))
    rigid = list(range(8))
    frames = np.repeat(neutral[None], 5, axis=0)
    frames[:, 20:, 1] += np.linspace(0, 1, 5)[:, None]  # a non-rigid deformation of the tip
    moved = np.empty_like(frames)
    for i in range(5):
        rot = _rotation(rng.standard_normal(3), 0.3 * (i + 1))
        moved[i] = frames[i] @ rot.T + rng.standard_normal(3)
    r, t = kabsch(moved[:, rigid], neutral[rigid])
    assert np.allclose(np.linalg.det(r), 1.0)
    assert np.allclose(moved[:, rigid] @ np.swapaxes(r, 1, 2) + t[:, None], neutral[rigid], atol=1e-9)
    back = stabilize(moved, neutral, rigid)
    assert np.abs(back - frames).max() < 1e-4  # motion removed, deformation kept
    assert np.abs(back[4, 20:, 1] - neutral[20:, 1] - 1.0).max() < 1e-4


def test_training_cache_is_built_once_and_rebuilt_when_inputs_change(tmp_path, monkeypatch):
    root = make_synthetic_dataset(tmp_path / "data", num_shots=2, seconds=1.0)
    cfg = PreprocessConfig(cache_dir=tmp_path / "cache", skin_prune_radius=0.05, tongue_prune_radius=0.05,
                           tongue_components=3)  # fmt: skip
    ds = load_dataset(root)
    data = pre.preprocess(ds, cfg, "synth")
    assert data.targets.shape[1] == data.num_shapes_skin + 3 + 15 + 4
    shot = data.shots[1]
    skin = ds.skin(ds.shot(shot.name))
    rec = data.skin.reconstruct(data.shot_targets(shot)[:, : data.num_shapes_skin])
    assert np.abs(rec - skin).max() < 0.2
    assert data.skin.explained >= 0.9995
    assert len(data.shot_audio(shot)) == pytest.approx(16000, abs=10)
    calls = []
    monkeypatch.setattr(pre, "build_training_data", lambda *a: calls.append(a) or data)
    again = pre.preprocess(load_dataset(root), cfg, "synth")
    assert calls == [] and again.key == data.key
    assert np.array_equal(again.targets, data.targets)
    neutral = root / "geom" / "skin" / "neutral_pose.npy"
    os.utime(neutral, ns=(neutral.stat().st_atime_ns, neutral.stat().st_mtime_ns + 10**9))
    pre.preprocess(load_dataset(root), cfg, "synth")
    assert len(calls) == 1  # a changed input invalidates the cache


def test_dataset_without_tongue_gets_a_zero_tongue_basis(tmp_path):
    root = make_synthetic_dataset(tmp_path / "data", num_shots=1, seconds=1.0)
    for name in ("neutral_pose.npy", "rigid_vertex_list.json"):
        (root / "geom" / "tongue" / name).unlink()
    data = pre.build_training_data(load_dataset(root), PreprocessConfig(skin_prune_radius=0.05), "synth")
    assert data.tongue.components.shape == (10, 520, 3)
    assert np.all(data.targets[:, data.num_shapes_skin : data.num_shapes_skin + 10] == 0)
