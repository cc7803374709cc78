"""Open a v3.0 diffusion folder as a :class:`facecast.model.Model`: the pack, a runner, one identity's engine
and face pipeline. ``facecast.model.load_model`` hands v3.0 folders here."""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from facecast.face.diffusion import DiffusionFacePipeline
from facecast.infer.diffusion import (
    DiffusionEngine,
    NoiseOptions,
    NoiseSource,
    OnnxDiffusionRunner,
    TorchDiffusionRunner,
)
from facecast.pack_v3 import DiffusionPack, load_diffusion_pack

_IDENTITY: contextvars.ContextVar[str | None] = contextvars.ContextVar("facecast_identity", default=None)


@contextlib.contextmanager
def identity_scope(name: str | None) -> Iterator[None]:
    """Within the block, v3.0 folders loaded without an ``identity`` open as ``name`` (the CLI's ``--identity``)."""
    token = _IDENTITY.set(name)
    try:
        yield
    finally:
        _IDENTITY.reset(token)


FOLD_RECIPE = "1"
"""Version of the folded graph; a change rebuilds the cached copies."""
FOLD_TOLERANCE = 1e-4
"""Largest difference between the folded graph and ``network.onnx`` (over the prediction's spread) accepted."""


FOLD_BY_DEFAULT = True
"""Whether ``folded=None`` folds (where torch is installed and the noise is constant)."""


def _has_torch() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


class FoldError(RuntimeError):
    """The folded copy does not reproduce ``network.onnx`` (its weights could not be imported faithfully)."""


def folded_path(pack: DiffusionPack, seed: int = 0) -> Path:
    """Where the folded copy of the pack's network with the noise of ``seed`` is cached (built or not)."""
    from facecast.fileio import cache_dir
    from facecast.infer.quantize import _file_key

    return cache_dir() / "v3fold" / f"{_file_key(pack.network_path)}-s{seed}-r{FOLD_RECIPE}.onnx"


def folded_network(pack: DiffusionPack, seed: int = 0) -> Path:
    """``network.onnx`` imported into torch with the constant noise of ``seed`` folded in
    (:mod:`facecast.network.diffusion_folded`) and exported again; built once into the cache, and only kept when
    it reproduces ``network.onnx`` (:func:`check_folded`; else :class:`FoldError`)."""
    path = folded_path(pack, seed)
    if path.is_file():
        return path
    import torch

    from facecast.network.diffusion_folded import FoldedDiffusion
    from facecast.network.onnx_v3 import export_v3_onnx, import_v3_onnx

    if sys.stderr.isatty():
        print(f"facecast: folding the constant noise into {pack.network_path.name} (once)", file=sys.stderr)
    info = pack.info
    network = import_v3_onnx(pack.network_path, {"skin": info.skin_size, "tongue": info.tongue_size})
    shape = (1, info.num_diffusion_steps + 1, info.frames_per_window, info.output_size)
    noise = NoiseSource(shape, NoiseOptions(seed, True)).next()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    try:
        export_v3_onnx(FoldedDiffusion(network, torch.from_numpy(noise)), tmp)
        check_folded(pack, tmp, noise)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def check_folded(pack: DiffusionPack, folded: Path, noise, windows: int = 2) -> float:
    """The folded graph against ``network.onnx`` through ONNX Runtime on a few windows of synthetic speech, every
    identity, random GRU states: the largest difference over the prediction's spread (:class:`FoldError` above
    :data:`FOLD_TOLERANCE`)."""
    import numpy as np

    from facecast.infer.quantize import _speech

    info = pack.info
    original, copy = (OnnxDiffusionRunner(p, device="cpu") for p in (pack.network_path, folded))
    rng = np.random.default_rng(0)
    audio = _speech(windows * info.buffer_len / info.samplerate + 0.1, 9)
    lo, count = info.num_frames_left_truncate, info.num_frames_center
    worst = 0.0
    for w in range(windows):
        window = audio[None, w * info.buffer_len : (w + 1) * info.buffer_len]
        identity = np.eye(len(info.identities), dtype=np.float32)[[w % len(info.identities)]]
        emotion = rng.uniform(0, 1, (1, count, len(info.emotions))).astype(np.float32)
        latents = rng.normal(0, 0.5, (info.num_diffusion_steps, info.num_gru_layers, 1, info.gru_latent_dim))
        args = (window, identity, emotion, latents.astype(np.float32), noise)
        (ref, ref_state), (got, got_state) = original(*args), copy(*args)
        spread = max(float(ref[0, lo : lo + count].std()), 1e-6)
        worst = max(worst, float(np.abs(got[0] - ref[0, lo : lo + count]).max()) / spread,
                    float(np.abs(got_state - ref_state).max()))  # fmt: skip
    if not worst <= FOLD_TOLERANCE:
        raise FoldError(
            f"the folded copy of {pack.network_path.name} differs from it by {worst:.2g} of the "
            f"prediction's spread (limit {FOLD_TOLERANCE:g}); its weights were not imported faithfully"
        )
    return worst


def make_runner(
    pack: DiffusionPack, backend: str = "onnxruntime", device: str = "auto", threads: int | None = None,
    precision: str = "fp32", folded: bool = False, seed: int = 0,
):  # fmt: skip
    """The network of ``pack`` through ONNX Runtime (``precision="int8"``: its measured int8 copy, see
    :mod:`facecast.infer.quantize_v3`; ``folded``: with the constant noise of ``seed`` folded in), or imported
    into facecast's torch module."""
    network = pack.network_path
    if folded:
        if backend != "onnxruntime":
            raise ValueError("the folded graph runs on the onnxruntime backend")
        network = folded_network(pack, seed)
    if precision in ("int8", "fp16"):
        if backend != "onnxruntime":
            raise ValueError(f"precision {precision} needs the onnxruntime backend")
        from facecast.infer.quantize_v3 import int8_diffusion_network

        if precision == "int8":
            device = "cpu"  # ONNX Runtime's dynamic int8 kernels are CPU kernels
        else:
            import onnxruntime as ort

            gpu = "CUDAExecutionProvider" in ort.get_available_providers()
            if device not in ("cuda", "tensorrt", "auto") or not gpu:
                raise ValueError("precision fp16 is for GPUs (--device cuda, with onnxruntime-gpu); this run has "
                                 f"{'no CUDA provider' if not gpu else 'device ' + device}")  # fmt: skip
        network = int8_diffusion_network(pack, threads, network, seed, precision, device)
    elif backend != "onnxruntime":
        network = None
    if network is not None:
        runner = OnnxDiffusionRunner(network, threads=threads, device=device)
        runner.folded_seed = seed if folded else None
        return runner
    if backend == "torch":
        import torch

        from facecast.network.onnx_v3 import import_v3_onnx

        if threads:
            torch.set_num_threads(int(threads))
        info = pack.info
        sizes = {"skin": info.skin_size, "tongue": info.tongue_size}
        return TorchDiffusionRunner(import_v3_onnx(pack.network_path, sizes))
    raise ValueError(f"unknown backend {backend!r}; choose onnxruntime or torch")


def load_diffusion_model(
    model_cls: type,
    path: str | os.PathLike | DiffusionPack,
    identity: str | None = None,
    device: str = "auto",
    backend: str = "onnxruntime",
    threads: int | None = None,
    seed: int = 0,
    constant_noise: bool = True,
    precision: str = "fp32",
    folded: bool | None = None,
) -> Any:
    """A ``model_cls`` (:class:`facecast.model.Model`) animating ``identity`` (default: the CLI's, else the
    first) of a v3.0 folder. ``seed`` and ``constant_noise`` set the noise (:class:`NoiseOptions`); ``folded``
    runs the graph with that constant noise folded in (the same frames, less work; needs constant noise)."""
    if folded and not constant_noise:
        raise ValueError("folded needs constant noise (the noise is built into the folded graph)")
    auto = folded is None
    if auto:
        folded = FOLD_BY_DEFAULT and backend == "onnxruntime" and constant_noise and _has_torch()
    pack = path if isinstance(path, DiffusionPack) else load_diffusion_pack(Path(path))
    index, ident = pack.identity(identity if identity is not None else _IDENTITY.get())
    pipeline = DiffusionFacePipeline(pack.info, ident, pack.root)
    try:
        runner = make_runner(pack, backend, device, threads, precision, folded, seed)
    except (FoldError, ValueError) as exc:  # a failed fold or weight import (OnnxV3ImportError is a ValueError)
        if not auto:
            raise
        print(f"facecast: warning: {exc}; running {pack.network_path.name} as it is", file=sys.stderr)
        runner = make_runner(pack, backend, device, threads, precision, False, seed)
    strength = pipeline.default_params.input_strength
    engine = DiffusionEngine(runner, pack.info, index, strength, NoiseOptions(seed, constant_noise))
    model = model_cls.__new__(model_cls)  # the regression constructor builds PCA parts; set the same attributes
    model.pack = pack
    model.backend = runner
    model.random_weights = False
    model.pipeline = pipeline
    model.engine = engine
    model.identity = ident.name
    return model
