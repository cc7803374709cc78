"""The Audio2Face-3D v3.0 diffusion network in torch: HuBERT, a GRU denoiser and the in-graph DDPM sampler.

Layer by layer as spec v3 section 5; the interface as section 3: ``window`` [N, S], ``identity`` [N, I],
``emotion`` [N, C, E], ``input_latents`` [steps, layers, N, H], ``noise`` [N, steps + 1, F, D] ->
``prediction`` [N, F, D] (vertex deltas), ``output_latents`` like ``input_latents``. The sampler is DDPM with a
cosine schedule over 1000 training steps respaced to ``sample_steps`` (999, 0), x0-prediction and fixed-small
variance; each step runs the denoiser on its own GRU slot (step i uses slot i and ``noise[:, i]``; x_T is
``noise[:, -1]``). The audio features do not depend on the step, so they are computed once per call.

Interpretations (not checkable against a released file): the ``Conv1d(1, 1, 9)`` of the skin and tongue
embeddings runs along the embedding's features (padding 4); the 50 Hz HuBERT frames are resampled to the F
frames with ``interpolate(mode="linear", align_corners=False)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from facecast.network.hubert import HubertConfig, HubertModel

TRAIN_STEPS = 1000


@dataclass(frozen=True)
class DiffusionConfig:
    """Sizes of the diffusion network; the defaults are NVIDIA's v3.0 (179.66 M parameters)."""

    hubert: HubertConfig = field(default_factory=HubertConfig)
    skin_size: int = 72006
    tongue_size: int = 16806
    jaw_size: int = 15
    eyes_size: int = 4
    num_identities: int = 3
    num_emotions: int = 10
    window: int = 16000
    frames: int = 60
    left_truncate: int = 15
    right_truncate: int = 15
    audio_dim: int = 256
    skin_embed: int = 512
    tongue_embed: int = 20
    jaw_embed: int = 30
    eyes_embed: int = 8
    step_dim: int = 256
    identity_dim: int = 32
    emotion_dim: int = 32
    gru_hidden: int = 256
    gru_layers: int = 2
    dropout: float = 0.3
    skin_head: int = 512
    tongue_head: int = 512
    jaw_head: int = 128
    eyes_head: int = 128
    sample_steps: tuple[int, ...] = (999, 0)
    """Training steps the sampler visits, last first: (999, 0) for the 2-step respacing."""

    def __post_init__(self) -> None:
        if isinstance(self.hubert, dict):
            object.__setattr__(self, "hubert", HubertConfig(**self.hubert))
        object.__setattr__(self, "sample_steps", tuple(int(t) for t in self.sample_steps))
        if self.center_frames < 1:
            raise ValueError("left_truncate + right_truncate must leave at least one centre frame")
        if list(self.sample_steps) != sorted(self.sample_steps, reverse=True) or self.sample_steps[-1] != 0:
            raise ValueError(f"sample_steps must decrease to 0, got {self.sample_steps}")

    @property
    def center_frames(self) -> int:
        return self.frames - self.left_truncate - self.right_truncate

    @property
    def output_size(self) -> int:
        return self.skin_size + self.tongue_size + self.jaw_size + self.eyes_size

    @property
    def num_steps(self) -> int:
        return len(self.sample_steps)

    @property
    def geometry_dim(self) -> int:
        return (self.skin_embed + self.tongue_embed + self.jaw_embed + self.eyes_embed) // 2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def tiny(cls, **changes) -> DiffusionConfig:
        """A small network with the full interface, for tests (a few hundred thousand parameters)."""
        values = dict(hubert=HubertConfig.tiny(), skin_size=90, tongue_size=24, audio_dim=16, skin_embed=16,
                      tongue_embed=6, jaw_embed=6, eyes_embed=4, step_dim=8, identity_dim=4, emotion_dim=4,
                      gru_hidden=12, skin_head=16, tongue_head=8, jaw_head=8, eyes_head=8)  # fmt: skip
        values.update(changes)
        return cls(**values)


def alphas_cumprod(train_steps: int = TRAIN_STEPS) -> list[float]:
    """The cosine schedule's cumulative products of (1 - beta_t), t = 0 .. train_steps - 1 (betas capped at
    0.999): x_t = sqrt(a_t) x0 + sqrt(1 - a_t) noise."""

    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = [min(1 - alpha_bar((i + 1) / train_steps) / alpha_bar(i / train_steps), 0.999) for i in range(train_steps)]
    cumprod, acc = [], 1.0
    for b in betas:
        acc *= 1 - b
        cumprod.append(acc)
    return cumprod


def respaced_schedule(sample_steps: tuple[int, ...], train_steps: int = TRAIN_STEPS) -> dict[str, list[float]]:
    """DDPM posterior coefficients of the cosine schedule respaced to ``sample_steps`` (index i = sampler step
    i, from 0 = the last): x_prev = coef_x0 * x0 + coef_xt * x_t + sigma * noise (sigma 0 at i = 0)."""
    cumprod = alphas_cumprod(train_steps)
    kept = sorted(sample_steps)
    out: dict[str, list[float]] = {"coef_x0": [], "coef_xt": [], "sigma": []}
    for i, t in enumerate(kept):
        acp = cumprod[t]
        prev = cumprod[kept[i - 1]] if i else 1.0
        beta = 1 - acp / prev
        out["coef_x0"].append(beta * math.sqrt(prev) / (1 - acp))
        out["coef_xt"].append((1 - prev) * math.sqrt(1 - beta) / (1 - acp))
        out["sigma"].append(math.sqrt(beta * (1 - prev) / (1 - acp)) if i else 0.0)
    return out


class _Embed(nn.Module):
    """Linear, then Conv1d(1, 1, 9) along the features, ReLU."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(size, dim)
        self.conv = nn.Conv1d(1, 1, 9, padding=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        shape = y.shape
        return F.relu(self.conv(y.reshape(-1, 1, shape[-1])).reshape(shape))


def _mlp(a: int, b: int, c: int, last_relu: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(a, b), nn.ReLU(), nn.Linear(b, c)]
    if last_relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class DiffusionNetwork(nn.Module):
    """HuBERT + GRU denoiser + heads + the sampler; ``forward`` is the v3.0 ONNX graph's computation."""

    def __init__(self, cfg: DiffusionConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or DiffusionConfig()
        self.hubert = HubertModel(cfg.hubert)
        self.audio_proj = nn.Linear(cfg.hubert.embed_dim, cfg.audio_dim)
        self.skin_embed = _Embed(cfg.skin_size, cfg.skin_embed)
        self.tongue_embed = _Embed(cfg.tongue_size, cfg.tongue_embed)
        self.jaw_embed = _mlp(cfg.jaw_size, cfg.jaw_embed, cfg.jaw_embed, last_relu=True)
        self.eyes_embed = _mlp(cfg.eyes_size, cfg.eyes_embed, cfg.eyes_embed, last_relu=True)
        fused = cfg.skin_embed + cfg.tongue_embed + cfg.jaw_embed + cfg.eyes_embed
        self.geometry_fuse = _mlp(fused, fused, cfg.geometry_dim)
        self.step_embed = nn.Linear(TRAIN_STEPS, cfg.step_dim)
        self.identity_embed = nn.Linear(cfg.num_identities, cfg.identity_dim, bias=False)
        self.emotion_embed = nn.Linear(cfg.num_emotions, cfg.emotion_dim, bias=False)
        gru_in = cfg.audio_dim + cfg.geometry_dim + cfg.identity_dim + cfg.step_dim + cfg.emotion_dim
        self.gru = nn.GRU(gru_in, cfg.gru_hidden, cfg.gru_layers, batch_first=True, dropout=cfg.dropout)
        self.skin_out = _mlp(cfg.gru_hidden, cfg.skin_head, cfg.skin_size)
        self.tongue_out = _mlp(cfg.gru_hidden, cfg.tongue_head, cfg.tongue_size)
        self.jaw_out = _mlp(cfg.gru_hidden, cfg.jaw_head, cfg.jaw_size)
        self.eyes_out = _mlp(cfg.gru_hidden, cfg.eyes_head, cfg.eyes_size)
        for head in (self.skin_out, self.tongue_out, self.jaw_out, self.eyes_out):
            nn.init.zeros_(head[-1].weight)
            nn.init.zeros_(head[-1].bias)
        self.register_buffer("mean_geometry", torch.zeros(cfg.num_identities, cfg.output_size))
        self.register_buffer("delta_scale", torch.ones(cfg.num_identities, cfg.output_size))
        steps = torch.zeros(cfg.num_steps, TRAIN_STEPS)
        for i, t in enumerate(sorted(cfg.sample_steps)):
            steps[i, t] = 1.0
        self.register_buffer("step_onehot", steps, persistent=False)
        self.schedule = respaced_schedule(cfg.sample_steps)

    # -- pieces ---------------------------------------------------------------------------------------------

    def audio_features(self, window: torch.Tensor) -> torch.Tensor:
        """[N, S] audio -> [N, C, audio_dim] features of the centre frames."""
        cfg = self.cfg
        feats = self.hubert(window)
        feats = F.interpolate(feats.transpose(1, 2), size=cfg.frames, mode="linear", align_corners=False)
        feats = self.audio_proj(feats.transpose(1, 2))
        return feats[:, cfg.left_truncate : cfg.left_truncate + cfg.center_frames]

    def geometry_features(self, x: torch.Tensor) -> torch.Tensor:
        """Noisy geometry [N, C, D] -> [N, C, geometry_dim]."""
        c = self.cfg
        s, t, j = c.skin_size, c.skin_size + c.tongue_size, c.skin_size + c.tongue_size + c.jaw_size
        parts = (self.skin_embed(x[..., :s]), self.tongue_embed(x[..., s:t]), self.jaw_embed(x[..., t:j]),
                 self.eyes_embed(x[..., j:]))  # fmt: skip
        return self.geometry_fuse(torch.cat(parts, dim=-1))

    def heads(self, h: torch.Tensor) -> torch.Tensor:
        """GRU output [N, C, H] -> geometry [N, C, D] (before the identity's mean is added)."""
        return torch.cat([self.skin_out(h), self.tongue_out(h), self.jaw_out(h), self.eyes_out(h)], dim=-1)

    def denoise(
        self, audio: torch.Tensor, x_t: torch.Tensor, identity: torch.Tensor, emotion: torch.Tensor, step: int,
        state: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """One x0-prediction on the centre frames: (x0 [N, C, D] without the mean, new GRU state)."""
        h, new_state = self.recur(audio, self.geometry_features(x_t), identity, emotion, step, state)
        return self.heads(h), new_state

    def recur(
        self, audio: torch.Tensor, geometry: torch.Tensor, identity: torch.Tensor, emotion: torch.Tensor, step: int,
        state: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """The GRU of one step on its inputs (geometry features given): (hidden [N, C, H], new GRU state)."""
        n, c = audio.shape[0], audio.shape[1]
        ident = self.identity_embed(identity).unsqueeze(1).expand(n, c, -1)
        step_e = F.mish(self.step_embed(self.step_onehot[step])).expand(n, c, -1)
        inputs = torch.cat([audio, geometry, ident, step_e, self.emotion_embed(emotion)], dim=-1)
        return self.gru(inputs, state)

    # -- the graph ------------------------------------------------------------------------------------------

    def forward(
        self, window: torch.Tensor, identity: torch.Tensor, emotion: torch.Tensor, input_latents: torch.Tensor,
        noise: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        cfg = self.cfg
        lo, hi = cfg.left_truncate, cfg.left_truncate + cfg.center_frames
        audio = self.audio_features(window)
        mean = identity @ self.mean_geometry  # [N, D]
        x = noise[:, -1]
        states = [input_latents[i] for i in range(cfg.num_steps)]
        sched = self.schedule
        for i in reversed(range(cfg.num_steps)):
            x0c, states[i] = self.denoise(audio, x[:, lo:hi], identity, emotion, i, states[i])
            x0 = F.pad(x0c + mean.unsqueeze(1), (0, 0, lo, cfg.frames - hi))  # edge frames zero-filled
            if i:
                x = sched["coef_x0"][i] * x0 + sched["coef_xt"][i] * x + sched["sigma"][i] * noise[:, i]
            else:
                x = x0
        prediction = (x - mean.unsqueeze(1)) * (identity @ self.delta_scale).unsqueeze(1)
        return prediction, torch.stack(states)

    def run_track(
        self, windows: torch.Tensor, identity: torch.Tensor, emotion: torch.Tensor, latents: torch.Tensor,
        noise: list[torch.Tensor], batch: int = 8,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """Consecutive windows [W, S] of one track, GRU state carried: the same values as ``forward`` window by
        window, with every step-independent op batched across windows (HuBERT, embeddings, heads) and only the
        GRU recurrences in order. ``identity`` [1, I], ``emotion`` [W, C, E], ``latents`` [steps, layers, 1, H],
        ``noise``: one [1, steps + 1, F, D] tensor per window (the same object for constant noise). Returns the
        kept centre frames [W, C, D] (deltas) and the final latents."""
        cfg = self.cfg
        lo, hi, count = cfg.left_truncate, cfg.left_truncate + cfg.center_frames, len(windows)
        audio = torch.cat([self.audio_features(windows[i : i + batch]) for i in range(0, count, batch)])
        mean = (identity @ self.mean_geometry).unsqueeze(1)  # [1, 1, D]
        shared = all(n is noise[0] for n in noise)
        x = torch.cat([n[:, -1, lo:hi] for n in (noise[:1] if shared else noise)])  # x_T, centre frames
        ident = self.identity_embed(identity).unsqueeze(1).expand(1, cfg.center_frames, -1)
        emo = self.emotion_embed(emotion)
        sched = self.schedule
        states = [latents[i] for i in range(cfg.num_steps)]
        for i in reversed(range(cfg.num_steps)):
            geom = self._batched(self.geometry_features, x, batch)
            step_e = F.mish(self.step_embed(self.step_onehot[i])).expand(1, cfg.center_frames, -1)
            hs = []
            for w in range(count):  # the only part that runs in window order
                g = geom[0:1] if len(geom) == 1 else geom[w : w + 1]
                inputs = torch.cat([audio[w : w + 1], g, ident, step_e, emo[w : w + 1]], dim=-1)
                h, states[i] = self.gru(inputs, states[i])
                hs.append(h)
            x0 = self._batched(self.heads, torch.cat(hs), batch) + mean
            if i:
                x_c = x if len(x) == count else x.expand(count, -1, -1)
                step_noise = torch.cat([n[:, i, lo:hi] for n in noise]) if not shared else noise[0][:, i, lo:hi]
                x = sched["coef_x0"][i] * x0 + sched["coef_xt"][i] * x_c + sched["sigma"][i] * step_noise
            else:
                x = x0
        return (x - mean) * (identity @ self.delta_scale).unsqueeze(1), torch.stack(states)

    @staticmethod
    def _batched(fn, x: torch.Tensor, batch: int) -> torch.Tensor:
        return torch.cat([fn(x[i : i + batch]) for i in range(0, len(x), batch)])


def count_parameters(cfg: DiffusionConfig | None = None) -> int:
    """Parameters of a network of ``cfg`` (default: NVIDIA's), counted on the meta device: nothing allocated."""
    with torch.device("meta"):
        net = DiffusionNetwork(cfg or DiffusionConfig())
    return sum(p.numel() for p in net.parameters())
