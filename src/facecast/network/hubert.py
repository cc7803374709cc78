"""HuBERT-BASE encoder in plain torch, with every size configurable (tiny test configurations included).

The layout of ``facebook/hubert-base-ls960`` (spec v3 section 5): the wav2vec 2.0 group-norm convolutional
feature extractor (seven convolutions, 320 samples per 50 Hz frame), LayerNorm + Linear feature projection, a
grouped convolutional positional embedding, an encoder LayerNorm and post-LN transformer layers. The positional
convolution's weight norm is folded into a plain weight (HuBERT's ``weight_g``/``weight_v`` pair is 128 values
more), and the training-only ``masked_spec_embed`` (768) is left out: 94,370,816 parameters instead of the
checkpoint's 94,371,712.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

CONV_LAYERS: tuple[tuple[int, int], ...] = ((10, 5), (3, 2), (3, 2), (3, 2), (3, 2), (2, 2), (2, 2))
"""(kernel, stride) of the seven feature-extractor convolutions."""


@dataclass(frozen=True)
class HubertConfig:
    """Sizes of a HuBERT encoder; the defaults are HuBERT-BASE."""

    conv_dim: int = 512
    embed_dim: int = 768
    num_heads: int = 12
    ffn_dim: int = 3072
    num_layers: int = 12
    pos_conv_kernel: int = 128
    pos_conv_groups: int = 16
    layer_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.embed_dim % self.num_heads or self.embed_dim % self.pos_conv_groups:
            raise ValueError("embed_dim must be divisible by num_heads and pos_conv_groups")
        if min(self.conv_dim, self.num_layers, self.ffn_dim, self.pos_conv_kernel) < 1:
            raise ValueError("HuBERT sizes must be positive")

    @classmethod
    def tiny(cls) -> HubertConfig:
        """A few thousand parameters, for tests."""
        return cls(conv_dim=16, embed_dim=16, num_heads=2, ffn_dim=32, num_layers=2, pos_conv_kernel=8,
                   pos_conv_groups=2)  # fmt: skip


def num_feature_frames(num_samples: int) -> int:
    """50 Hz frames the feature extractor makes from ``num_samples`` samples (16000 -> 49)."""
    n = num_samples
    for kernel, stride in CONV_LAYERS:
        n = (n - kernel) // stride + 1
    return n


class _ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, group_norm: bool) -> None:
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel, stride=stride, bias=False)
        self.layer_norm = nn.GroupNorm(cout, cout, affine=True) if group_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        return F.gelu(x)


class _Attention(nn.Module):
    def __init__(self, cfg: HubertConfig) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.heads = cfg.num_heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        shape = (b, n, self.heads, d // self.heads)
        q = self.q_proj(x).view(shape).transpose(1, 2)
        k = self.k_proj(x).view(shape).transpose(1, 2)
        v = self.v_proj(x).view(shape).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-1, -2)) * ((d // self.heads) ** -0.5)
        out = torch.matmul(scores.softmax(dim=-1), v)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


class _Layer(nn.Module):
    def __init__(self, cfg: HubertConfig) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.attention = _Attention(cfg)
        self.layer_norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.intermediate_dense = nn.Linear(d, cfg.ffn_dim)
        self.output_dense = nn.Linear(cfg.ffn_dim, d)
        self.final_layer_norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer_norm(x + self.attention(x))
        return self.final_layer_norm(x + self.output_dense(F.gelu(self.intermediate_dense(x))))


class HubertModel(nn.Module):
    """Raw 16 kHz audio [B, T] -> last-layer features [B, frames, embed_dim] (no input normalisation)."""

    def __init__(self, cfg: HubertConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or HubertConfig()
        blocks, cin = [], 1
        for i, (kernel, stride) in enumerate(CONV_LAYERS):
            blocks.append(_ConvBlock(cin, cfg.conv_dim, kernel, stride, group_norm=i == 0))
            cin = cfg.conv_dim
        self.conv_layers = nn.ModuleList(blocks)
        self.projection_norm = nn.LayerNorm(cfg.conv_dim, eps=cfg.layer_norm_eps)
        self.projection = nn.Linear(cfg.conv_dim, cfg.embed_dim)
        k = cfg.pos_conv_kernel
        self.pos_conv = nn.Conv1d(cfg.embed_dim, cfg.embed_dim, k, padding=k // 2, groups=cfg.pos_conv_groups)
        self.encoder_norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.layer_norm_eps)
        self.layers = nn.ModuleList(_Layer(cfg) for _ in range(cfg.num_layers))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = audio.unsqueeze(1)
        for block in self.conv_layers:
            x = block(x)
        x = self.projection(self.projection_norm(x.transpose(1, 2)))
        pos = self.pos_conv(x.transpose(1, 2))
        if self.cfg.pos_conv_kernel % 2 == 0:  # an even kernel makes one frame too many
            pos = pos[..., :-1]
        x = self.encoder_norm(x + F.gelu(pos).transpose(1, 2))
        for layer in self.layers:
            x = layer(x)
        return x
