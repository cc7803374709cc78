"""The v3.0 network folded for one constant noise tensor: the same prediction as
:meth:`DiffusionNetwork.forward` with that noise, with everything that depends only on the noise done once.

With constant noise (the SDK's default) x_T and every step's noise are constants, and between two steps the pose
only passes through linear maps: the step's output layer (hidden -> D), the DDPM update (a weighted sum with x_t,
the identity's mean and the noise) and the next step's input embedding (D -> embedding). So the skin and tongue
poses of every step but the last are carried as their embeddings, ``y = W_embed x``:

    y_T = W_embed x_T                                    (once)
    y <- c0 (W_embed W_out) a + c0 W_embed (b_out + mean) + c1 y + sigma W_embed noise_i
                                                         (a: the head's hidden layer; W_embed W_out is 512 x 512)

instead of the 72,006-wide output layer and embedding of each step (about 30% of a full-size window's work, and
all of it in NVIDIA's graph, which also reruns HuBERT per step). Only the last step's heads run at full width.
Jaw and eyes (19 values) are carried as they are. The answer equals the unfolded network's up to float rounding
(tested within 1e-5). Outputs: the centre frames only, ``prediction`` [N, C, D], and ``output_latents``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facecast.network.diffusion import DiffusionNetwork


class FoldedDiffusion(nn.Module):
    """``network`` with ``noise`` [1, steps + 1, F, D] folded in: ``(window, identity, emotion, input_latents) ->
    (prediction [N, C, D] centre frames, output_latents)``."""

    def __init__(self, network: DiffusionNetwork, noise: torch.Tensor) -> None:
        super().__init__()
        self.net = network.eval()
        cfg = network.cfg
        self.cfg = cfg
        lo, hi = cfg.left_truncate, cfg.left_truncate + cfg.center_frames
        s, t = cfg.skin_size, cfg.skin_size + cfg.tongue_size
        centre = noise[0, :, lo:hi].float()  # [steps + 1, C, D]
        with torch.no_grad():
            folds = {}
            parts = (("skin", network.skin_embed, network.skin_out, slice(0, s)),
                     ("tongue", network.tongue_embed, network.tongue_out, slice(s, t)))  # fmt: skip
            for name, embed, head, part in parts:
                w_in, w_out, b_out = embed.linear.weight, head[-1].weight, head[-1].bias
                folds[f"{name}_fold"] = w_in @ w_out  # [E, hidden of the head]
                folds[f"{name}_bias"] = w_in @ b_out  # [E]
                folds[f"{name}_mean"] = network.mean_geometry[:, part] @ w_in.T  # [I, E]
                folds[f"{name}_noise"] = centre[..., part] @ w_in.T  # [steps + 1, C, E]
            folds["small_mean"] = network.mean_geometry[:, t:].clone()  # jaw and eyes, [I, 19]
            folds["small_noise"] = centre[..., t:].clone()
        for name, value in folds.items():
            self.register_buffer(name, value.contiguous(), persistent=False)

    def _geometry(self, ys: torch.Tensor, yt: torch.Tensor, small: torch.Tensor) -> torch.Tensor:
        """:meth:`DiffusionNetwork.geometry_features` from the carried embeddings (before their bias)."""
        net, cfg = self.net, self.cfg
        jaw = cfg.jaw_size

        def finish(embed, y):
            y = y + embed.linear.bias
            shape = y.shape
            return F.relu(embed.conv(y.reshape(-1, 1, shape[-1])).reshape(shape))

        parts = (finish(net.skin_embed, ys), finish(net.tongue_embed, yt), net.jaw_embed(small[..., :jaw]),
                 net.eyes_embed(small[..., jaw:]))  # fmt: skip
        return net.geometry_fuse(torch.cat(parts, dim=-1))

    def forward(
        self, window: torch.Tensor, identity: torch.Tensor, emotion: torch.Tensor, input_latents: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        net, cfg = self.net, self.cfg
        n, steps = window.shape[0], cfg.num_steps
        audio = net.audio_features(window)
        ys = self.skin_noise[-1].expand(n, -1, -1)
        yt = self.tongue_noise[-1].expand(n, -1, -1)
        small = self.small_noise[-1].expand(n, -1, -1)
        mean_s = (identity @ self.skin_mean).unsqueeze(1)
        mean_t = (identity @ self.tongue_mean).unsqueeze(1)
        mean_small = (identity @ self.small_mean).unsqueeze(1)
        states = [input_latents[i] for i in range(steps)]
        sched = net.schedule
        out = None
        for i in reversed(range(steps)):
            h, states[i] = net.recur(audio, self._geometry(ys, yt, small), identity, emotion, i, states[i])
            if i == 0:
                out = net.heads(h)
                break
            c0, c1, sigma = sched["coef_x0"][i], sched["coef_xt"][i], sched["sigma"][i]
            a_s = F.relu(net.skin_out[0](h))
            a_t = F.relu(net.tongue_out[0](h))
            ys = c0 * (a_s @ self.skin_fold.T + self.skin_bias + mean_s) + c1 * ys + sigma * self.skin_noise[i]
            yt = c0 * (a_t @ self.tongue_fold.T + self.tongue_bias + mean_t) + c1 * yt + sigma * self.tongue_noise[i]
            x_small = torch.cat([net.jaw_out(h), net.eyes_out(h)], dim=-1) + mean_small
            small = c0 * x_small + c1 * small + sigma * self.small_noise[i]
        return out * (identity @ net.delta_scale).unsqueeze(1), torch.stack(states)
