"""Inference backends: run the regression network on batches of audio windows.

A backend maps ``audio`` [B, buffer_len] and ``emotion`` [B, emotion_len] (float32) to ``result`` [B, D].
:class:`OnnxRuntimeBackend` runs a ``network.onnx`` (NVIDIA's or ours) on the CPU, CUDA or TensorRT execution
provider; :class:`TorchBackend` runs facecast's torch module (training, export checks, GPU without ONNX Runtime).
"""

from __future__ import annotations

import os
import threading
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
    """ONNX Runtime session(s) over a regression ``network.onnx`` with the official interface.

    On the CPU the backend holds one single-threaded session per thread (``threads``, default all cores) and
    splits each batch between them, run concurrently: for networks of this size that beats one session whose
    intra-op threads share every small GEMM (``benchmarks/bench_engine.py`` measures both). GPU providers get
    one session, run with I/O binding (``io_binding``, default on for GPU providers): inputs are copied to the
    device once and the result is allocated there, then copied back in one piece.
    """

    def __init__(
        self,
        network_path: str | os.PathLike,
        device: str = "auto",
        threads: int | None = None,
        workers: int | None = None,
        chunk_path: str | os.PathLike | None = None,
        io_binding: bool | None = None,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(network_path)
        providers = _providers(device, ort.get_available_providers(), self.path.parent)
        total = max(1, threads or (os.cpu_count() or 1))
        on_cpu = (providers[0][0] if isinstance(providers[0], tuple) else providers[0]) == "CPUExecutionProvider"
        count = (workers or total) if on_cpu else 1
        if count < 1:
            raise BackendError(f"workers must be at least 1, got {count}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = max(1, total // count)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.sessions = self._load(ort, self.path, options, providers, count)
        self.session = first = self.sessions[0]
        inputs = {i.name: i for i in first.get_inputs()}
        outputs = [o.name for o in first.get_outputs()]
        if set(inputs) != {"input", "emotion"} or outputs != ["result"]:
            raise BackendError(
                f"{self.path}: expected inputs input/emotion and output result, got {sorted(inputs)} -> {outputs}"
            )
        self.buffer_len = inputs["input"].shape[-1]
        self.emotion_len = inputs["emotion"].shape[-1]
        width = first.get_outputs()[0].shape[-1]
        self.result_size = width if isinstance(width, int) else None
        self.providers = first.get_providers()
        self.name = f"onnxruntime:{self.providers[0].replace('ExecutionProvider', '').lower()}"
        self.io_binding = (not on_cpu) if io_binding is None else bool(io_binding)
        self._output_device = "cpu" if on_cpu else "cuda"
        self.chunk_path = Path(chunk_path) if chunk_path is not None else None
        self.chunk_sessions = []
        if self.chunk_path is not None:
            self.chunk_sessions = self._load(ort, self.chunk_path, options, providers, count)
            names = {i.name for i in self.chunk_sessions[0].get_inputs()}
            if names != {"input", "offsets", "emotion"}:
                raise BackendError(f"{self.chunk_path}: expected inputs input/offsets/emotion, got {sorted(names)}")
        else:
            self.run_chunks = None  # type: ignore[assignment]  (no chunk graph: the engine runs windows)

    @staticmethod
    def _load(ort, path: Path, options, providers, count: int) -> list:
        try:
            return [ort.InferenceSession(str(path), options, providers=providers) for _ in range(count)]
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BackendError(f"{path}: ONNX Runtime cannot load this network ({exc})") from None

    @property
    def workers(self) -> int:
        """Sessions that share each batch."""
        return len(self.sessions)

    def run(self, audio: np.ndarray, emotion: np.ndarray) -> np.ndarray:
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        emotion = np.ascontiguousarray(emotion, dtype=np.float32)
        if len(audio) == 0:  # ONNX Runtime cannot run an empty batch
            if self.result_size is None:
                one_row = (np.zeros((1, audio.shape[-1]), np.float32), np.zeros((1, emotion.shape[-1]), np.float32))
                self.result_size = self._run(self.session, *one_row).shape[-1]
            return np.zeros((0, self.result_size), np.float32)
        return self._split(self.sessions, self._run, audio, emotion)

    def run_chunks(self, audio: np.ndarray, offsets: np.ndarray, emotion: np.ndarray) -> np.ndarray:
        """Chunks [B, L], window offsets [B, K] and emotion [B, K, E] -> [B, K, D] (see facecast.timing)."""
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        emotion = np.ascontiguousarray(emotion, dtype=np.float32)
        if len(audio) == 0:
            return np.zeros((0, offsets.shape[1], self.result_size or 0), np.float32)
        return self._split(self.chunk_sessions, self._run_chunk, audio, offsets, emotion)

    def _run_chunk(self, session, audio: np.ndarray, offsets: np.ndarray, emotion: np.ndarray) -> np.ndarray:
        return self._feed(session, {"input": audio, "offsets": offsets, "emotion": emotion})

    def _feed(self, session, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """One session call -> its ``result``, through I/O binding when enabled."""
        if not self.io_binding:
            return session.run(["result"], feeds)[0]
        binding = session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(value))
        binding.bind_output("result", self._output_device)
        session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    @staticmethod
    def _split(sessions: list, fn, *inputs: np.ndarray) -> np.ndarray:
        """Run ``fn(session, *inputs)`` with the batch split between the sessions, concurrently."""
        parts = min(len(sessions), len(inputs[0]))
        if parts <= 1:
            return fn(sessions[0], *inputs)
        bounds = np.linspace(0, len(inputs[0]), parts + 1).round().astype(int)
        results: list = [None] * parts

        def work(i: int) -> None:
            lo, hi = bounds[i], bounds[i + 1]
            try:
                results[i] = fn(sessions[i], *(x[lo:hi] for x in inputs))
            except BaseException as exc:  # re-raised in the caller's thread
                results[i] = exc

        helpers = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(1, parts)]
        for t in helpers:
            t.start()
        work(0)
        for t in helpers:
            t.join()
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return np.concatenate(results)

    def _run(self, session, audio: np.ndarray, emotion: np.ndarray) -> np.ndarray:
        return self._feed(session, {"input": audio[:, None, :], "emotion": emotion[:, None, :]})[:, 0, :]


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
        if not getattr(network.cfg, "chunk_frames", 0):
            self.run_chunks = None  # type: ignore[assignment]  (not trained for chunks: the engine runs windows)

    def run(self, audio: np.ndarray, emotion: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            x = torch.as_tensor(audio, device=self.device, dtype=self.dtype)[:, None, :]
            e = torch.as_tensor(emotion, device=self.device, dtype=self.dtype)[:, None, :]
            return self.network(x, e)[:, 0, :].float().cpu().numpy()

    def run_chunks(self, audio: np.ndarray, offsets: np.ndarray, emotion: np.ndarray) -> np.ndarray:
        """Chunks [B, L], window offsets [B, K] and emotion [B, K, E] -> [B, K, D] (see facecast.timing)."""
        torch = self.torch
        with torch.inference_mode():
            x = torch.as_tensor(audio, device=self.device, dtype=self.dtype)
            o = torch.as_tensor(offsets, device=self.device, dtype=torch.int64)
            e = torch.as_tensor(emotion, device=self.device, dtype=self.dtype)
            return self.network.forward_chunks(x, o, e).float().cpu().numpy()
