"""The Audio2Face-3D regression network (v2.3 / v2.3.1) in torch.

Module and parameter names follow NVIDIA's released ONNX graphs (``wave2vec_model``, ``combine_weights``,
``in_scale_autocorr``, ``freq1..5``, ``time1..5``, ``audio_feature_map``, ``emo_linear1``, ``out_mapping*``), so
``torch.onnx.export`` of this module yields the official initializer names and interface.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facecast.constants import (
    BUFFER_LEN,
    BUFFER_OFS,
    EMOTION_NAMES,
    EYES_RESULT_SIZE,
    IMPLICIT_EMOTION_LEN,
    JAW_RESULT_SIZE,
)
from facecast.network import whisper
from facecast.network.wav2vec2 import EMBED_DIM, Wav2Vec2Model, num_feature_frames
from facecast.timing import FEATURE_HOP

ENCODERS = ("wav2vec2", "whisper")
"""Audio encoders the regression network can use (``NetworkConfig.encoder``)."""

AUTOCORR_X_SCALE = 8.912028121636435
"""The training framework's autocorrelation input scale (exported as ``in_scale_autocorr``)."""


@dataclass
class AutocorrConfig:
    """Hand-crafted autocorrelation features: ``num_windows`` Hann windows x ``num_lags`` lags."""

    num_lags: int = 32
    num_windows: int = 25
    win_len: int = 640
    win_stride: int = 320
    remove_dc: bool = True


@dataclass
class NetworkConfig:
    """Architecture of one regression network; everything that varies between Mark, Claire and James."""

    num_layers: int = 4
    num_shapes_skin: int = 140
    num_shapes_tongue: int = 10
    implicit_emotion_len: int = IMPLICIT_EMOTION_LEN
    num_explicit_emotions: int = len(EMOTION_NAMES)
    explicit_emotion_embedding: int = 8
    jaw_size: int = JAW_RESULT_SIZE
    eyes_size: int = EYES_RESULT_SIZE
    buffer_len: int = BUFFER_LEN
    autocorr: AutocorrConfig = field(default_factory=AutocorrConfig)
    encoder: str = "wav2vec2"
    """``wav2vec2`` (NVIDIA's network) or ``whisper`` (Whisper tiny.en's encoder, see network/whisper.py)."""
    buffer_ofs: int = BUFFER_OFS
    """Samples of the window before the frame time (the rest is the look-ahead, :attr:`NetworkInfo.lookahead_samples
    <facecast.pack.NetworkInfo.lookahead_samples>`)."""
    chunk_frames: int = 0
    """Most frames the network was trained to animate from one shared encoder pass (0: one window per frame
    only; see :meth:`RegressionNetwork.forward_chunks`)."""

    def __post_init__(self) -> None:
        if isinstance(self.autocorr, dict):
            self.autocorr = AutocorrConfig(**self.autocorr)
        for name in ("num_layers", "num_shapes_skin", "num_shapes_tongue", "buffer_len"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"NetworkConfig.{name} must be positive, got {getattr(self, name)}")
        if self.encoder not in ENCODERS:
            raise ValueError(f"NetworkConfig.encoder must be one of {', '.join(ENCODERS)}, got {self.encoder!r}")
        if not 0 <= self.buffer_ofs <= self.buffer_len:
            raise ValueError(f"NetworkConfig.buffer_ofs must be in 0..{self.buffer_len}, got {self.buffer_ofs}")
        ac = self.autocorr
        if (ac.num_windows - 1) * ac.win_stride + ac.win_len != self.buffer_len:
            raise ValueError("autocorrelation windows must tile the audio buffer exactly")
        if self.encoder == "wav2vec2" and num_feature_frames(self.buffer_len) != ac.num_windows:
            raise ValueError("wav2vec2 frames and autocorrelation windows must agree")
        if self.chunk_frames < 0:
            raise ValueError(f"NetworkConfig.chunk_frames must be 0 or more, got {self.chunk_frames}")
        if self.chunk_frames and (self.encoder != "whisper" or self.buffer_len % FEATURE_HOP):
            raise ValueError("chunked inference needs the Whisper encoder and a buffer_len that is a multiple of 320")
        if self.encoder == "whisper":
            if self.num_layers > whisper.TINY.n_layers:
                raise ValueError(
                    f"Whisper tiny has {whisper.TINY.n_layers} layers, NetworkConfig asks {self.num_layers}"
                )
            if whisper.num_frames(self.buffer_len) < ac.num_windows + whisper.FRAME_OFFSET:
                raise ValueError("the Whisper encoder gives too few frames for the autocorrelation windows")

    @property
    def emotion_len(self) -> int:
        return self.implicit_emotion_len + self.num_explicit_emotions

    @property
    def result_size(self) -> int:
        return self.num_shapes_skin + self.num_shapes_tongue + self.jaw_size + self.eyes_size

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def claire(cls) -> NetworkConfig:
        """Claire / James v2.3.1: 4 transformer layers, 140 skin and 10 tongue components."""
        return cls(num_layers=4, num_shapes_skin=140, num_shapes_tongue=10)

    @classmethod
    def mark(cls) -> NetworkConfig:
        """Mark v2.3: 1 transformer layer, 272 skin and 10 tongue components."""
        return cls(num_layers=1, num_shapes_skin=272, num_shapes_tongue=10)


def hann_window(length: int) -> np.ndarray:
    """Symmetric Hann window (``np.hanning``), as the training framework uses."""
    return np.hanning(length).astype(np.float32)


class AutoCorrelation(nn.Module):
    """Per-window autocorrelation: [N, T] -> [N, 1, windows, lags]."""

    def __init__(self, cfg: AutocorrConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("window", torch.from_numpy(hann_window(cfg.win_len)))
        starts = torch.arange(cfg.num_windows) * cfg.win_stride
        self.register_buffer("frame_index", starts[:, None] + torch.arange(cfg.win_len)[None, :], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._lags(x[:, self.frame_index])  # [N, windows, win_len]

    def over_chunk(self, x: torch.Tensor) -> torch.Tensor:
        """Windows every ``win_stride`` samples over a chunk of any length (a multiple of the stride, windows of
        two strides): [N, L] -> [N, 1, L / stride - 1, lags]."""
        blocks = x.reshape(x.shape[0], -1, self.cfg.win_stride)
        return self._lags(torch.cat((blocks[:, :-1], blocks[:, 1:]), dim=-1))

    def _lags(self, frames: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        if cfg.remove_dc:
            frames = frames - frames.mean(dim=-1, keepdim=True)
        frames = frames * self.window
        lags = [(frames[..., : cfg.win_len - k] * frames[..., k:]).sum(dim=-1) for k in range(cfg.num_lags)]
        return (torch.stack(lags, dim=-1) * (1.0 / cfg.win_len)).unsqueeze(1)


def norm_relu(x: torch.Tensor) -> torch.Tensor:
    """ReLU scaled by sqrt(2) (the framework's NormRelu with no leak)."""
    return F.relu(x) * math.sqrt(2.0)


def concat_emotion(x: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
    """Append the [N, E] emotion vector as channels broadcast over x's trailing dims."""
    if x.dim() == 2:
        return torch.cat((x, emotion), dim=1)
    expanded = emotion[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
    return torch.cat((x, expanded), dim=1)


class RegressionNetwork(nn.Module):
    """Audio window [B, 1, buffer_len] and emotion [B, 1, 16 + 10] -> result [B, 1, D].

    ``D = K_skin + K_tongue + 15 + 4`` ordered [skin | tongue | jaw | eyes]. Accepts any sequence length S in
    place of the middle 1 (training uses S = 2); every frame is processed independently.
    """

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        self.cfg = cfg
        emo = cfg.implicit_emotion_len + cfg.explicit_emotion_embedding
        self._encoder_frozen = False
        if cfg.encoder == "whisper":
            self.whisper_model = whisper.WhisperEncoder(cfg.num_layers, num_samples=cfg.buffer_len)
            width = self.whisper_model.width
        else:
            self.wave2vec_model = Wav2Vec2Model(cfg.num_layers)
            width = EMBED_DIM
        self.combine_weights = nn.Parameter(torch.ones(cfg.num_layers))
        self.audio_feature_map = nn.Linear(width, 256)
        # A (frozen) parameter, as in NVIDIA's graphs: it counts towards the official parameter totals.
        self.in_scale_autocorr = nn.Parameter(torch.tensor(AUTOCORR_X_SCALE), requires_grad=False)
        self.autocorr = AutoCorrelation(cfg.autocorr)
        self.freq1 = nn.Conv2d(1, 72, (1, 3), stride=(1, 2), padding=(0, 1))
        self.freq2 = nn.Conv2d(72, 108, (1, 3), stride=(1, 2), padding=(0, 1))
        self.freq3 = nn.Conv2d(108, 162, (1, 3), stride=(1, 2), padding=(0, 1))
        self.freq4 = nn.Conv2d(162, 243, (1, 3), stride=(1, 2), padding=(0, 1))
        self.freq5 = nn.Conv2d(243, 256, (1, 2), stride=(1, 1), padding=(0, 0))
        self.time1 = nn.Conv2d(512, 256, (3, 1), stride=(2, 1), padding=(1, 0))
        self.time2 = nn.Conv2d(256 + emo, 256, (3, 1), stride=(2, 1), padding=(1, 0))
        self.time3 = nn.Conv2d(256 + emo, 256, (3, 1), stride=(2, 1), padding=(1, 0))
        self.time4 = nn.Conv2d(256 + emo, 256, (3, 1), stride=(2, 1), padding=(1, 0))
        self.time5 = nn.Linear(self._time4_height() * (256 + emo), 256)
        skin_jaw_eyes = cfg.num_shapes_skin + cfg.jaw_size + cfg.eyes_size
        self.out_mapping = nn.Linear(256 + emo, skin_jaw_eyes)
        self.out_mapping1 = nn.Linear(skin_jaw_eyes, skin_jaw_eyes)
        self.out_mapping_tongue = nn.Linear(256 + emo, cfg.num_shapes_tongue)
        self.out_mapping1_tongue = nn.Linear(cfg.num_shapes_tongue, cfg.num_shapes_tongue)
        self.emo_linear1 = nn.Linear(cfg.num_explicit_emotions, cfg.explicit_emotion_embedding)

    def _time4_height(self) -> int:
        h = self.cfg.autocorr.num_windows
        for _ in range(4):
            h = (h + 2 - 3) // 2 + 1
        return h

    @property
    def encoder(self) -> nn.Module:
        """The audio encoder module (wav2vec2 or Whisper)."""
        return self.whisper_model if self.cfg.encoder == "whisper" else self.wave2vec_model

    def freeze_encoder(self, frozen: bool = True) -> None:
        """Stop (or restart) training the encoder; a frozen encoder runs without autograd."""
        self._encoder_frozen = bool(frozen)
        for p in self.encoder.parameters():
            p.requires_grad_(not frozen)

    def _encoder_layers(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.cfg.encoder != "whisper":
            return self.wave2vec_model.extract_features(x)
        first, count = whisper.FRAME_OFFSET, self.cfg.autocorr.num_windows
        return [h[:, first : first + count] for h in self.whisper_model.extract_features(x)]

    def audio_features_w2v(self, x: torch.Tensor) -> torch.Tensor:
        """[N, T] -> [N, 256, frames, 1]: layer-weighted encoder features, mapped to 256 channels."""
        if self._encoder_frozen:
            with torch.no_grad():
                layers = torch.stack(self._encoder_layers(x), dim=-1)
        else:
            layers = torch.stack(self._encoder_layers(x), dim=-1)
        feats = (layers * self.combine_weights).sum(dim=-1) / self.combine_weights.sum()
        feats = F.relu(self.audio_feature_map(feats))
        return feats.transpose(1, 2).unsqueeze(-1)

    def audio_features_autocorr(self, x: torch.Tensor) -> torch.Tensor:
        """[N, T] -> [N, 256, windows, 1]."""
        x = self.autocorr(x * self.in_scale_autocorr)
        for conv in (self.freq1, self.freq2, self.freq3, self.freq4, self.freq5):
            x = norm_relu(conv(x))
        return x

    def forward(self, audio: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
        batch, seq = audio.shape[:2]
        x = audio.reshape(batch * seq, audio.shape[-1])
        x = torch.cat((self.audio_features_w2v(x), self.audio_features_autocorr(x)), dim=1)
        return self.decode(x, emotion.reshape(batch * seq, emotion.shape[-1])).reshape(batch, seq, -1)

    def chunk_features(self, audio: torch.Tensor) -> torch.Tensor:
        """One encoder pass over chunks [B, L] (L a multiple of 320) -> 50 Hz features [B, L / 320 - 1, 512];
        feature u is centred on sample 320 u + 320, like window feature u of a window starting at 0."""
        count = audio.shape[-1] // FEATURE_HOP - 1
        if self._encoder_frozen:
            with torch.no_grad():
                layers = self.whisper_model.extract_features(audio, dynamic_length=True)
        else:
            layers = self.whisper_model.extract_features(audio, dynamic_length=True)
        start = whisper.FRAME_OFFSET
        stacked = torch.stack([h[:, start : start + count] for h in layers], dim=-1)
        w2v = (stacked * self.combine_weights).sum(dim=-1) / self.combine_weights.sum()
        w2v = F.relu(self.audio_feature_map(w2v))
        ac = self.autocorr.over_chunk(audio * self.in_scale_autocorr)
        for conv in (self.freq1, self.freq2, self.freq3, self.freq4, self.freq5):
            ac = norm_relu(conv(ac))
        return torch.cat((w2v, ac.squeeze(-1).transpose(1, 2)), dim=-1)

    def forward_chunks(self, audio: torch.Tensor, offsets: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
        """K frames per chunk from one encoder pass: audio [B, L], window starts [B, K] (samples from the chunk
        start, int64), emotion [B, K, E] -> [B, K, D].

        Each frame reads the chunk's 50 Hz features at its own window's positions, interpolated linearly
        between neighbours; a frame whose window starts at 0 of a chunk of ``buffer_len`` samples gets exactly
        what :meth:`forward` computes. What a frame sees beyond its window depends on the chunk, so networks
        are trained for it (``NetworkConfig.chunk_frames``).
        """
        batch, frames = offsets.shape
        feats = self.chunk_features(audio)
        count, width = feats.shape[1], feats.shape[2]
        span = self.cfg.autocorr.num_windows
        pos = offsets.to(feats.dtype) / FEATURE_HOP
        first = torch.floor(pos)
        frac = (pos - first).reshape(batch * frames, 1, 1)
        base = first.to(torch.int64) + torch.arange(batch, device=audio.device).unsqueeze(1) * count
        index = (base.unsqueeze(-1) + torch.arange(span, device=audio.device)).reshape(-1)
        flat = feats.reshape(batch * count, width)
        lo = flat[index].reshape(batch * frames, span, width)
        hi = flat[torch.clamp(index + 1, max=batch * count - 1)].reshape(batch * frames, span, width)
        x = (lo + (hi - lo) * frac).transpose(1, 2).unsqueeze(-1)
        out = self.decode(x, emotion.reshape(batch * frames, emotion.shape[-1]))
        return out.reshape(batch, frames, -1)

    def decode(self, x: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
        """Audio features [N, 512, windows, 1] and emotion [N, E] -> result [N, D]."""
        implicit = emotion[:, : self.cfg.implicit_emotion_len]
        explicit = self.emo_linear1(emotion[:, self.cfg.implicit_emotion_len :])
        joint = torch.cat((implicit, explicit), dim=1)
        for conv in (self.time1, self.time2, self.time3, self.time4):
            x = concat_emotion(norm_relu(conv(x)), joint)
        x = concat_emotion(norm_relu(self.time5(x.flatten(1))), joint)

        skin_jaw_eyes = self.out_mapping1(self.out_mapping(x))
        tongue = self.out_mapping1_tongue(self.out_mapping_tongue(x))
        k = self.cfg.num_shapes_skin
        return torch.cat((skin_jaw_eyes[:, :k], tongue, skin_jaw_eyes[:, k:]), dim=1)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable and frozen parameters (buffers excluded)."""
    return sum(p.numel() for p in module.parameters())
