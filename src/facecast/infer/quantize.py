"""int8 inference for the regression network: static QDQ quantisation with ONNX Runtime, cached per network.

Convolutions and matrix products get int8 weights (per channel) and uint8 activations calibrated on
speech-like audio from facecast's formant synthesiser; ONNX Runtime then runs them with VNNI/AVX-512 integer
kernels where the CPU has them. The fp32 network stays the reference: :func:`accuracy` measures the cost
(pose RMSE relative to the pose's standard deviation) on held-out windows.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from facecast.fileio import cache_dir
from facecast.infer.formant import random_script, synthesise
from facecast.pack import ModelPack, NetworkInfo
from facecast.timing import block_length, extract_windows, frame_targets

FP32_NODES = ("log_mel", "/conv1/", "attention/MatMul")
"""Name fragments of the nodes kept in fp32 (the Whisper front end, and the attention products of two activations:
default-model pose RMSE 2.2% -> 1.9% of its std); part of the cache key."""
RECIPE = "3"
"""Version of the quantisation recipe; a change rebuilds the cached int8 networks."""


def calibration_data(
    info: NetworkInfo, implicit: np.ndarray, count: int = 48, seed: int = 0, input_strength: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` windows of synthetic speech at several levels, with emotion inputs -> (audio, emotion)."""
    rng = np.random.default_rng(seed)
    seconds = count / 30.0 + 1.0
    audio = synthesise(seed, random_script(seconds, seed))
    audio = audio * np.repeat(rng.uniform(0.2, 1.2, len(audio) // 8000 + 1), 8000)[: len(audio)]
    targets = frame_targets(0, count, 30.0)
    windows = extract_windows(audio.astype(np.float32), targets - info.buffer_ofs, info.buffer_len)
    windows *= np.float32(input_strength)
    emotion = np.zeros((count, info.emotion_len), np.float32)
    emotion[:, : info.implicit_emotion_len] = implicit
    explicit = rng.uniform(0, 1, (count, info.emotion_len - info.implicit_emotion_len)) * (
        rng.uniform(0, 1, (count, 1)) < 0.5
    )
    emotion[:, info.implicit_emotion_len :] = explicit
    return windows, emotion


def chunk_calibration(
    info: NetworkInfo,
    implicit: np.ndarray,
    frames_per_pass: int,
    count: int = 8,
    seed: int = 0,
    input_strength: float = 1.0,
) -> list[dict[str, np.ndarray]]:
    """``count`` chunk-graph feeds of ``frames_per_pass`` frames each, cut from the windows' calibration speech."""
    audio, emotion = calibration_data(info, implicit, count * frames_per_pass, seed, input_strength)
    length = block_length(frames_per_pass, 30.0, info.buffer_len)
    speech = synthesise(seed, random_script(count * frames_per_pass / 30.0 + 1.0, seed)).astype(np.float32)
    feeds = []
    for i in range(count):
        targets = frame_targets(i * frames_per_pass, frames_per_pass, 30.0)
        chunk = extract_windows(speech, targets[:1] - info.buffer_ofs, length) * np.float32(input_strength)
        offsets = (targets - targets[0])[None].astype(np.int64)
        chunk[0, offsets[0, -1] + info.buffer_len :] = 0.0
        rows = emotion[None, i * frames_per_pass : (i + 1) * frames_per_pass]
        feeds.append({"input": chunk, "offsets": offsets, "emotion": rows})
    return feeds


def window_feeds(audio: np.ndarray, emotion: np.ndarray) -> list[dict[str, np.ndarray]]:
    """One window-graph feed per window."""
    return [{"input": audio[i : i + 1, None], "emotion": emotion[i : i + 1, None]} for i in range(len(audio))]


def quantize_network(
    src: str | os.PathLike, dst: str | os.PathLike, audio: np.ndarray | list, emotion: np.ndarray | None = None
) -> Path:
    """Write an int8 (QDQ, per-channel) copy of ``src`` calibrated on the given inputs (windows and emotion, or a
    list of feeds); atomic."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    feeds = audio if isinstance(audio, list) else window_feeds(audio, emotion)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.i = 0

        def get_next(self):
            if self.i >= len(feeds):
                return None
            self.i += 1
            return feeds[self.i - 1]

    import onnx

    # a spectrogram front end (a fixed DFT and mel matrix feeding a log) loses too much in 8 bits, and so does the
    # first convolution on the log-mel (Whisper's conv1: 2.5% pose RMSE with it in int8, 1.9% without): keep fp32
    exclude = [n.name for n in onnx.load(str(src)).graph.node if any(key in n.name for key in FP32_NODES)]
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
        pre = Path(tmp) / "pre.onnx"
        out = Path(tmp) / "int8.onnx"
        # symbolic shape inference cannot follow the chunk graph's dynamic audio length; ONNX's own can
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=isinstance(audio, list))
        quantize_static(
            str(pre),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["Conv", "MatMul"],
            nodes_to_exclude=exclude,
        )
        shutil.move(str(out), dst)
    return dst


def _file_key(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()[:24]


def int8_network(pack: ModelPack) -> Path:
    """The cached int8 version of a pack's network, built on first use."""
    target = cache_dir() / "int8" / f"{_file_key(pack.network_path)}-r{RECIPE}.onnx"
    if not target.exists():
        strength = float(pack.model_config.get("input_strength", 1.0))
        audio, emotion = calibration_data(pack.network_info, pack.implicit_emotion, input_strength=strength)
        quantize_network(pack.network_path, target, audio, emotion)
    return target


def int8_chunk_network(pack: ModelPack) -> Path | None:
    """The cached int8 version of a pack's chunk network (None when it has none), built on first use."""
    if pack.chunk_network_path is None:
        return None
    target = cache_dir() / "int8" / f"{_file_key(pack.chunk_network_path)}-r{RECIPE}.onnx"
    if not target.exists():
        strength = float(pack.model_config.get("input_strength", 1.0))
        feeds = chunk_calibration(pack.network_info, pack.implicit_emotion, pack.chunk_frames, input_strength=strength)
        quantize_network(pack.chunk_network_path, target, feeds)
    return target


def accuracy(fp32: str | os.PathLike, int8: str | os.PathLike, audio: np.ndarray, emotion: np.ndarray) -> dict:
    """Relative pose error of the int8 network against fp32 on the given inputs."""
    import onnxruntime as ort

    def run(path):
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return sess.run(None, {"input": audio[:, None], "emotion": emotion[:, None]})[0][:, 0]

    ref, got = run(fp32), run(int8)
    err = got - ref
    std = ref.std(axis=0)
    return {
        "pose_rmse_over_std": float(np.sqrt((err**2).mean()) / ref.std()),
        "worst_channel_rmse_over_std": float((np.sqrt((err**2).mean(axis=0)) / np.maximum(std, 1e-8)).max()),
        "max_abs_error": float(np.abs(err).max()),
        "frames": len(ref),
    }
