"""The public entry point: load a model pack once, animate clips and open streams."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .audio import load_audio
from .backends import Backend, OnnxRuntimeBackend
from .constants import DEFAULT_FPS, SAMPLE_RATE
from .defaults import is_random_pack, random_claire_pack
from .engine import Engine, ExplicitEmotion, NetworkOutput
from .pack import ModelPack, load_pack
from .stream import StreamSession


class Model:
    """A loaded regression model: the pack, an inference backend and an engine."""

    def __init__(self, pack: ModelPack, backend: Backend, batch_size: int = 32) -> None:
        self.pack = pack
        self.backend = backend
        self.random_weights = is_random_pack(pack.root)
        input_strength = float(pack.model_config.get("input_strength", 1.0))
        self.engine = Engine(backend, pack.network_info, pack.implicit_emotion, input_strength, batch_size)

    @property
    def info(self):
        return self.pack.network_info

    def infer(
        self, audio: np.ndarray | str | os.PathLike, fps: float = DEFAULT_FPS, explicit: ExplicitEmotion = None
    ) -> NetworkOutput:
        """Raw network pose for a clip (a path, or 16 kHz mono float samples)."""
        if not isinstance(audio, np.ndarray):
            audio = load_audio(audio)
        return self.engine.run(audio, fps, explicit)

    def stream(
        self, fps: float = DEFAULT_FPS, explicit: ExplicitEmotion = None, sample_rate: int = SAMPLE_RATE
    ) -> StreamSession:
        """A streaming session: push audio chunks, get frames once their window is complete."""
        return StreamSession(self.engine, fps, explicit, sample_rate)


def load_model(
    path: str | os.PathLike | None = None,
    device: str = "auto",
    backend: str = "onnxruntime",
    threads: int | None = None,
    batch_size: int = 32,
) -> Model:
    """Load a model pack folder (NVIDIA's or facecast's); ``None`` gives the built-in default.

    ``backend`` is ``"onnxruntime"`` (runs ``network.onnx`` unchanged) or ``"torch"`` (imports its weights into
    facecast's torch module; needs torch).
    """
    root = Path(path) if path is not None else random_claire_pack()
    pack = load_pack(root)
    if backend == "onnxruntime":
        runner: Backend = OnnxRuntimeBackend(pack.network_path, device=device, threads=threads)
    elif backend == "torch":
        from .backends import TorchBackend
        from .network.onnx_io import import_onnx

        runner = TorchBackend(import_onnx(pack.network_path), device=device)
    else:
        raise ValueError(f"unknown backend {backend!r}; choose onnxruntime or torch")
    return Model(pack, runner, batch_size)
