"""The Audio2Face-3D regression losses (spec 10.5) and the R² metric.

Shapes: targets and predictions are [B, S, D] (S = 2 consecutive frames), vertices [B, S, V, 3], audio windows
[B, S, T], implicit emotion [B, S, 16].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mse_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over everything."""
    return F.mse_loss(pred, target)


def motion_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE of the frame-to-frame motion (differences along the sequence axis)."""
    return F.mse_loss(pred[:, 1:] - pred[:, :-1], target[:, 1:] - target[:, :-1])


def emotion_reg_loss(implicit: torch.Tensor) -> torch.Tensor:
    """Temporal smoothness of the implicit emotion: mean(Δe²) / mean(e²)."""
    motion = implicit[:, 1:] - implicit[:, :-1]
    return (motion**2).mean() / (implicit**2).mean().clamp_min(1e-12)


def lip_distance(vertices: torch.Tensor, upper: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
    """Vertical distance of each (upper, lower) lip vertex pair: [..., V, 3] -> [..., P]."""
    return vertices[..., upper, 1] - vertices[..., lower, 1]


def lip_distance_loss(
    pred_vertices: torch.Tensor,
    true_vertices: torch.Tensor,
    upper: torch.Tensor,
    lower: torch.Tensor,
    exp_scale: float = 1.0,
) -> torch.Tensor:
    """Closure-weighted MSE of lip distances: weight exp(-exp_scale * max(d_true, 0)) on both sides."""
    d_pred = lip_distance(pred_vertices, upper, lower)
    d_true = lip_distance(true_vertices, upper, lower)
    weight = torch.exp(-exp_scale * d_true.clamp_min(0.0))
    return F.mse_loss(weight * d_pred, weight * d_true)


def lip_shape_loss(pred_lips: torch.Tensor, true_lips: torch.Tensor) -> torch.Tensor:
    """MSE of the lip vertices [..., V, 3]: the lips' shape (open, rounded, spread), not only their gap."""
    return F.mse_loss(pred_lips, true_lips)


def quiet_jitter_loss(
    audio: torch.Tensor, pred: torch.Tensor, exp_scale: float = 5000.0, skip_last: int = 4
) -> torch.Tensor:
    """Less motion when the audio is quiet: mean over samples of exp(-k * mean|x|) * mean(Δy²), without the
    last ``skip_last`` channels (the eyes)."""
    return quiet_jitter_from_volume(audio.abs().mean(dim=-1), pred, exp_scale, skip_last)


def quiet_jitter_from_volume(
    volume: torch.Tensor, pred: torch.Tensor, exp_scale: float = 5000.0, skip_last: int = 4
) -> torch.Tensor:
    """:func:`quiet_jitter_loss` from each frame's mean |x| [B, S]: every step between consecutive frames is
    weighted by exp(-k * the mean volume of its two frames)."""
    weight = torch.exp(-exp_scale * 0.5 * (volume[:, 1:] + volume[:, :-1]))
    y = pred[..., : pred.shape[-1] - skip_last] if skip_last else pred
    motion = ((y[:, 1:] - y[:, :-1]) ** 2).mean(dim=-1)
    return (weight * motion).mean()


def eye_open_mask(
    true_vertices: torch.Tensor, upper: torch.Tensor, lower: torch.Tensor, threshold: float
) -> torch.Tensor:
    """[B] True where the mean eyelid distance of the sample exceeds ``threshold`` (closed eyes are excluded)."""
    dist = true_vertices[..., upper, 1] - true_vertices[..., lower, 1]
    return (dist.mean(dim=tuple(range(1, dist.dim()))) > threshold).detach()


def r2_score(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - mean squared error / mean squared deviation of the target from its per-channel mean."""
    flat_t = target.reshape(-1, target.shape[-1])
    flat_p = pred.reshape(-1, pred.shape[-1])
    denom = ((flat_t - flat_t.mean(dim=0)) ** 2).mean()
    return 1.0 - ((flat_p - flat_t) ** 2).mean() / denom.clamp_min(1e-12)


class LossNormalizer:
    """Divides a loss by the running RMS of its past values (decayed sums), as NVIDIA's ``stddev`` normaliser."""

    def __init__(self, decay: float = 0.99) -> None:
        self.decay = float(decay)
        self.num = 0.0
        self.den = 0.0

    def __call__(self, loss: torch.Tensor) -> torch.Tensor:
        value = float(loss.detach())
        self.num = self.num * self.decay + value * value
        self.den = self.den * self.decay + 1.0
        return loss / ((self.num / self.den) ** 0.5 + 1e-8)

    def state_dict(self) -> dict[str, float]:
        return {"num": self.num, "den": self.den, "decay": self.decay}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.num, self.den, self.decay = float(state["num"]), float(state["den"]), float(state["decay"])


def annealed(normalizer: LossNormalizer, loss: torch.Tensor, exponent: float) -> torch.Tensor:
    """normalizer(loss) ** exponent: the exponent goes from 1 to 0 over training (spec 10.5)."""
    return normalizer(loss) ** exponent


def decode_vertices(coeffs: torch.Tensor, basis: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """PCA coefficients [..., K] with a basis [K, V, 3] (e.g. restricted to a few vertices) -> [..., V, 3]."""
    flat = torch.matmul(coeffs, basis.reshape(basis.shape[0], -1))
    return flat.reshape(*coeffs.shape[:-1], -1, 3) + mean
