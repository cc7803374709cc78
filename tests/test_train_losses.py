"""The A2F training losses against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from facecast.train import losses as L


def test_mse_and_motion_by_hand():
    pred = torch.tensor([[[1.0, 2.0], [3.0, 5.0]]])
    true = torch.tensor([[[0.0, 2.0], [3.0, 3.0]]])
    assert L.mse_loss(pred, true).item() == pytest.approx((1 + 0 + 0 + 4) / 4)
    # motion: pred (2, 3), true (3, 1) -> ((2-3)^2 + (3-1)^2) / 2
    assert L.motion_loss(pred, true).item() == pytest.approx(2.5)


def test_emotion_regulariser_by_hand():
    e = torch.tensor([[[1.0, 0.0], [3.0, 0.0]]])
    # mean(delta^2) = (4 + 0) / 2 = 2; mean(e^2) = (1 + 0 + 9 + 0) / 4 = 2.5
    assert L.emotion_reg_loss(e).item() == pytest.approx(0.8)


def test_lip_distance_loss_weights_closures():
    true = torch.zeros(1, 1, 2, 3)
    true[..., 0, 1] = 0.5  # upper lip 0.5 above the lower one
    pred = true.clone()
    pred[..., 0, 1] = 1.5
    up, lo = torch.tensor([0]), torch.tensor([1])
    # weight exp(-2 * 0.5) applied to both distances: (w * 1.5 - w * 0.5)^2
    expected = (math.exp(-1.0) * 1.0) ** 2
    assert L.lip_distance_loss(pred, true, up, lo, exp_scale=2.0).item() == pytest.approx(expected, rel=1e-6)
    assert L.lip_distance_loss(true, true, up, lo).item() == 0.0


def test_lip_shape_loss_by_hand():
    true = torch.zeros(1, 2, 2, 3)
    pred = true.clone()
    pred[0, 0, 0] = torch.tensor([0.3, 0.0, 0.4])  # one lip vertex 0.5 cm off: 0.09 + 0.16 over 12 values
    assert L.lip_shape_loss(pred, true).item() == pytest.approx(0.25 / 12, rel=1e-6)
    assert L.lip_shape_loss(true, true).item() == 0.0


def test_quiet_jitter_loss_by_hand():
    audio = torch.zeros(2, 2, 4)
    audio[1] = 0.001  # louder sample: weight exp(-5000 * 0.001)
    pred = torch.zeros(2, 2, 6)
    pred[:, 1, 0] = 2.0  # motion of channel 0; channel 5 (an eye) moves too but is ignored
    pred[:, 1, 5] = 100.0
    per_sample = 4.0 / 2  # skip_last=4 leaves channels 0 and 1: (2^2 + 0) / 2
    expected = (1.0 * per_sample + math.exp(-5.0) * per_sample) / 2
    assert L.quiet_jitter_loss(audio, pred, 5000.0, skip_last=4).item() == pytest.approx(expected, rel=1e-6)


def test_eye_open_mask_and_r2():
    verts = torch.zeros(2, 2, 2, 3)
    verts[0, :, 0, 1] = 1.0  # sample 0: eyelids 1.0 apart (open), sample 1: closed
    mask = L.eye_open_mask(verts, torch.tensor([0]), torch.tensor([1]), 0.35)
    assert mask.tolist() == [True, False]
    y = torch.tensor([[[0.0], [2.0]], [[4.0], [6.0]]])
    assert L.r2_score(y, y).item() == pytest.approx(1.0)
    # mean 3, variance 5; constant prediction 3 gives R² 0
    assert L.r2_score(torch.full_like(y, 3.0), y).item() == pytest.approx(0.0, abs=1e-6)


def test_normaliser_divides_by_running_rms_and_anneals():
    norm = L.LossNormalizer(decay=0.5)
    first = norm(torch.tensor(4.0))
    assert first.item() == pytest.approx(1.0, rel=1e-6)  # 4 / sqrt(16)
    second = norm(torch.tensor(2.0))
    # num = 16 * 0.5 + 4 = 12, den = 0.5 + 1 = 1.5 -> rms sqrt(8)
    assert second.item() == pytest.approx(2.0 / math.sqrt(8.0), rel=1e-6)
    state = norm.state_dict()
    other = L.LossNormalizer()
    other.load_state_dict(state)
    assert other(torch.tensor(3.0)).item() == pytest.approx(norm(torch.tensor(3.0)).item())
    fresh = L.LossNormalizer()
    assert L.annealed(fresh, torch.tensor(9.0), 0.0).item() == pytest.approx(1.0)


def test_decode_vertices_matches_manual_reconstruction():
    basis = torch.randn(3, 4, 3)
    mean = torch.randn(4, 3)
    coeffs = torch.randn(2, 5, 3)
    manual = torch.einsum("bsk,kvc->bsvc", coeffs, basis) + mean
    assert torch.allclose(L.decode_vertices(coeffs, basis, mean), manual, atol=1e-5)
