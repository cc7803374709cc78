"""Read a HuBERT checkpoint in Hugging Face's layout (``facebook/hubert-base-ls960``: ``pytorch_model.bin`` or
``model.safetensors``) into facecast's :class:`~facecast.network.hubert.HubertModel`, to start diffusion
training from a pretrained audio encoder (``diffusion.hubert_checkpoint``; NVIDIA's recipe starts from it).

Names map one to one (``feature_extractor.conv_layers.*``, ``feature_projection.*``, ``encoder.layers.*``, with or
without a ``hubert.`` prefix); the positional convolution's weight norm (``weight_g``/``weight_v``, or the newer
``parametrizations.weight.original0/1``) is folded into one weight; ``masked_spec_embed`` and heads are ignored.
Files are read with ``torch.load(weights_only=True)`` or safetensors: never pickle.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from facecast.network.hubert import HubertModel

IGNORED = ("masked_spec_embed", "label_embeddings_concat", "final_proj", "lm_head")


PREFIXES = (("feature_extractor.conv_layers.", "conv_layers."), ("feature_projection.layer_norm.", "projection_norm."),
            ("feature_projection.projection.", "projection."), ("encoder.pos_conv_embed.conv.", "pos_conv."),
            ("encoder.layer_norm.", "encoder_norm."), ("encoder.layers.", "layers."))  # fmt: skip


def _renamed(key: str) -> str | None:
    key = key.removeprefix("hubert.")
    if key.startswith(IGNORED):
        return None
    for old, new in PREFIXES:
        if key.startswith(old):
            key = new + key[len(old) :]
            break
    return key.replace(".feed_forward.", ".")


def read_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a ``.bin``/``.pt`` (``weights_only``) or ``.safetensors`` file."""
    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise RuntimeError(f"{path}: reading .safetensors needs the safetensors package") from None
        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict")
    return state.get("state_dict", state) if isinstance(state.get("state_dict"), dict) else state


def hubert_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hugging Face HuBERT names -> :class:`HubertModel` names, the positional weight norm folded."""
    out: dict[str, torch.Tensor] = {}
    norm: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = _renamed(key)
        if name is None:
            continue
        for tail, slot in (("weight_g", "g"), ("weight_v", "v"), ("parametrizations.weight.original0", "g"),
                           ("parametrizations.weight.original1", "v")):  # fmt: skip
            if name == f"pos_conv.{tail}":
                norm[slot] = value.float()
                break
        else:
            out[name] = value.float()
    if norm:
        g, v = norm["g"], norm["v"]  # weight_norm over dim 2: one norm per kernel position
        out["pos_conv.weight"] = g * v / v.norm(dim=(0, 1), keepdim=True)
    return out


def load_hubert_checkpoint(model: HubertModel, path: str | os.PathLike) -> HubertModel:
    """Load a Hugging Face HuBERT checkpoint into ``model`` (sizes must match); every missing or unexpected
    weight is named."""
    mapped = hubert_state_dict(read_state(path))
    own = model.state_dict()
    missing = sorted(set(own) - set(mapped))
    unexpected = sorted(set(mapped) - set(own))
    wrong = sorted(k for k in set(own) & set(mapped) if own[k].shape != mapped[k].shape)
    if missing or unexpected or wrong:
        raise ValueError(f"{path}: not a HuBERT checkpoint of this size (missing {missing[:4]}, unexpected "
                         f"{unexpected[:4]}, other shapes {wrong[:4]})")  # fmt: skip
    model.load_state_dict(mapped)
    return model
