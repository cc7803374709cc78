"""wav2vec 2.0 BASE encoder in plain torch, with torchaudio's module names.

Only what Audio2Face-3D uses: the convolutional feature extractor (group-norm variant), the feature projection,
the convolutional positional embedding and a stack of post-LN transformer layers, returning the output of every
layer (torchaudio's ``extract_features``). Parameter names match ``torchaudio.models.wav2vec2_base`` so that a
torchaudio or NVIDIA state dict loads unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CONV_LAYERS: tuple[tuple[int, int], ...] = ((10, 5), (3, 2), (3, 2), (3, 2), (3, 2), (2, 2), (2, 2))
"""(kernel, stride) of the seven feature-extractor convolutions."""

CONV_DIM = 512
EMBED_DIM = 768
NUM_HEADS = 12
FFN_DIM = 3072
POS_CONV_KERNEL = 128
POS_CONV_GROUPS = 16
LAYER_NORM_EPS = 1e-5


def num_feature_frames(num_samples: int) -> int:
    """Frames the feature extractor makes from ``num_samples`` samples (8320 -> 25)."""
    n = num_samples
    for kernel, stride in CONV_LAYERS:
        n = (n - kernel) // stride + 1
    return n


class ConvLayerBlock(nn.Module):
    """Conv1d without bias, optional GroupNorm (first layer only), GELU."""

    def __init__(self, in_channels: int, kernel: int, stride: int, group_norm: bool) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, CONV_DIM, kernel, stride=stride, bias=False)
        self.layer_norm = nn.GroupNorm(CONV_DIM, CONV_DIM, affine=True) if group_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        return F.gelu(x)


class FeatureExtractor(nn.Module):
    """Raw waveform [B, T] -> features [B, frames, 512]."""

    def __init__(self) -> None:
        super().__init__()
        blocks = []
        in_channels = 1
        for i, (kernel, stride) in enumerate(CONV_LAYERS):
            blocks.append(ConvLayerBlock(in_channels, kernel, stride, group_norm=i == 0))
            in_channels = CONV_DIM
        self.conv_layers = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(1)
        for block in self.conv_layers:
            x = block(x)
        return x.transpose(1, 2)


class FeatureProjection(nn.Module):
    """LayerNorm(512) then Linear(512 -> 768)."""

    def __init__(self) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(CONV_DIM, eps=LAYER_NORM_EPS)
        self.projection = nn.Linear(CONV_DIM, EMBED_DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.layer_norm(x))


class ConvolutionalPositionalEmbedding(nn.Module):
    """Grouped Conv1d over time (weight norm folded into a plain weight), drop the last frame, GELU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(
            EMBED_DIM, EMBED_DIM, POS_CONV_KERNEL, padding=POS_CONV_KERNEL // 2, groups=POS_CONV_GROUPS
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x.transpose(1, 2))
        x = x[..., :-1]  # even kernel: one extra frame
        return F.gelu(x).transpose(1, 2)


class SelfAttention(nn.Module):
    """Multi-head self attention with separate q, k, v projections."""

    def __init__(self) -> None:
        super().__init__()
        self.head_dim = EMBED_DIM // NUM_HEADS
        self.q_proj = nn.Linear(EMBED_DIM, EMBED_DIM)
        self.k_proj = nn.Linear(EMBED_DIM, EMBED_DIM)
        self.v_proj = nn.Linear(EMBED_DIM, EMBED_DIM)
        self.out_proj = nn.Linear(EMBED_DIM, EMBED_DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        shape = (batch, length, NUM_HEADS, self.head_dim)
        q = self.q_proj(x).view(shape).transpose(1, 2)
        k = self.k_proj(x).view(shape).transpose(1, 2)
        v = self.v_proj(x).view(shape).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (self.head_dim**-0.5)
        out = torch.matmul(scores.softmax(dim=-1), v)
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, EMBED_DIM))


class FeedForward(nn.Module):
    """Linear(768 -> 3072), GELU, Linear(3072 -> 768)."""

    def __init__(self) -> None:
        super().__init__()
        self.intermediate_dense = nn.Linear(EMBED_DIM, FFN_DIM)
        self.output_dense = nn.Linear(FFN_DIM, EMBED_DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_dense(F.gelu(self.intermediate_dense(x)))


class EncoderLayer(nn.Module):
    """Post-LN transformer layer (wav2vec 2.0 BASE)."""

    def __init__(self) -> None:
        super().__init__()
        self.attention = SelfAttention()
        self.layer_norm = nn.LayerNorm(EMBED_DIM, eps=LAYER_NORM_EPS)
        self.feed_forward = FeedForward()
        self.final_layer_norm = nn.LayerNorm(EMBED_DIM, eps=LAYER_NORM_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer_norm(x + self.attention(x))
        return self.final_layer_norm(x + self.feed_forward(x))


class Transformer(nn.Module):
    """Positional embedding, LayerNorm, then ``num_layers`` encoder layers."""

    def __init__(self, num_layers: int) -> None:
        super().__init__()
        self.pos_conv_embed = ConvolutionalPositionalEmbedding()
        self.layer_norm = nn.LayerNorm(EMBED_DIM, eps=LAYER_NORM_EPS)
        self.layers = nn.ModuleList(EncoderLayer() for _ in range(num_layers))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.layer_norm(x + self.pos_conv_embed(x))
        outputs = []
        for layer in self.layers:
            x = layer(x)
            outputs.append(x)
        return outputs


class Encoder(nn.Module):
    """Feature projection and transformer."""

    def __init__(self, num_layers: int) -> None:
        super().__init__()
        self.feature_projection = FeatureProjection()
        self.transformer = Transformer(num_layers)

    def forward(self, features: torch.Tensor) -> list[torch.Tensor]:
        return self.transformer(self.feature_projection(features))


class Wav2Vec2Model(nn.Module):
    """wav2vec 2.0 BASE truncated to ``num_layers`` transformer layers."""

    def __init__(self, num_layers: int) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"wav2vec2 needs at least one transformer layer, got {num_layers}")
        self.feature_extractor = FeatureExtractor()
        self.encoder = Encoder(num_layers)

    @property
    def num_layers(self) -> int:
        return len(self.encoder.transformer.layers)

    def extract_features(self, waveforms: torch.Tensor) -> list[torch.Tensor]:
        """[B, T] waveform -> one [B, frames, 768] tensor per transformer layer."""
        return self.encoder(self.feature_extractor(waveforms))

    def load_checkpoint_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load a torchaudio or fairseq-style state dict, folding weight norm and dropping extra layers."""
        state = dict(state)
        prefix = "encoder.transformer.pos_conv_embed.conv."
        g = state.pop(prefix + "weight_g", state.pop(prefix + "parametrizations.weight.original0", None))
        v = state.pop(prefix + "weight_v", state.pop(prefix + "parametrizations.weight.original1", None))
        if g is not None and v is not None:
            norm = v.norm(dim=(0, 1), keepdim=True)
            state[prefix + "weight"] = g * v / norm
        own = self.state_dict()
        kept = {k: t for k, t in state.items() if k in own}
        missing = sorted(set(own) - set(kept))
        if missing:
            raise ValueError(f"wav2vec2 checkpoint lacks {len(missing)} tensors, e.g. {missing[:3]}")
        self.load_state_dict(kept)
