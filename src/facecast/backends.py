"""Inference backends: run the regression network on batches of audio windows.

A backend maps ``audio`` [B, buffer_len] and ``emotion`` [B, emotion_len] (float32) to ``result`` [B, D].
:class:`OnnxRuntimeBackend` runs a ``network.onnx`` (NVIDIA's or ours) on the CPU, CUDA or TensorRT execution
provider; :class:`TorchBackend` runs facecast's torch module (training, export checks, GPU without ONNX Runtime).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

DEVICES = ("auto", "cpu", "cuda", "tensorrt")
PRECISIONS = ("fp32", "int8")


class Backend(Protocol):
    """What the engine needs from an inference backend."""

    name: str

    def run(self, audio: np.ndarray, emotion: np.ndarray) -> np.ndarray: ...


class BackendError(RuntimeError):
    """The requested device or runtime is not available."""


def _providers(device: str, available: list[str], cache_dir: Path | None) -> list:
    if device not in DEVICES:
        raise BackendError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    trt_options = {"trt_fp16_enable": True, "trt_engine_cache_enable": True}
    if cache_dir is not None:
        trt_options["trt_engine_cache_path"] = str(cache_dir)
    chain = {
        "cpu": ["CPUExecutionProvider"],
        "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
        "tensorrt": [("TensorrtExecutionProvider", trt_options), "CUDAExecutionProvider", "CPUExecutionProvider"],
    }
    if device == "auto":
        device = "cuda" if "CUDAExecutionProvider" in available else "cpu"
    wanted = chain[device]
    first = wanted[0][0] if isinstance(wanted[0], tuple) else wanted[0]
    if first not in available:
        raise BackendError(
            f"device {device!r} needs ONNX Runtime's {first}, which this installation lacks "
            f"(available: {', '.join(available)}); install onnxruntime-gpu for CUDA/TensorRT"
        )
    return [p for p in wanted if (p[0] if isinstance(p, tuple) else p) in available]


class OnnxRuntimeBackend:
    """ONNX Runtime session over a regression ``network.onnx`` with the official interface."""

    def __init__(self, network_path: str | os.PathLike, device: str = "auto", threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(network_path)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        providers = _providers(device, ort.get_available_providers(), self.path.parent)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BackendError(f"{self.path}: ONNX Runtime cannot load this network ({exc})") from None
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = [o.name for o in self.session.get_outputs()]
        if set(inputs) != {"input", "emotion"} or outputs != ["result"]:
            raise BackendError(
                f"{self.path}: expected inputs input/emotion and output result, got {sorted(inputs)} -> {outputs}"
            )
        self.buffer_len = inputs["input"].shape[-1]
        self.emotion_len = inputs["emotion"].shape[-1]
        self.providers = self.session.get_providers()
        self.name = f"onnxruntime:{self.providers[0].replace('ExecutionProvider', '').lower()}"

    def run(self, audio: np.ndarray, emotion: np.ndarray) -> np.ndarray:
        feeds = {
            "input": np.ascontiguousarray(audio, dtype=np.float32)[:, None, :],
            "emotion": np.ascontiguousarray(emotion, dtype=np.float32)[:, None, :],
        }
        return self.session.run(["result"], feeds)[0][:, 0, :]


class TorchBackend:
    """facecast's torch :class:`~facecast.network.regression.RegressionNetwork` as a backend."""

    def __init__(self, network, device: str = "cpu", half: bool = False) -> None:
        import torch

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.torch = torch
        self.device = torch.device(device)
        self.dtype = torch.float16 if half else torch.float32
        self.network = network.to(self.device, self.dtype).eval()
        self.name = f"torch:{self.device.type}"

    def run(self, audio: np.ndarray, emotion: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            x = torch.as_tensor(audio, device=self.device, dtype=self.dtype)[:, None, :]
            e = torch.as_tensor(emotion, device=self.device, dtype=self.dtype)[:, None, :]
            return self.network(x, e)[:, 0, :].float().cpu().numpy()
