"""Speed of the full-size v3.0 diffusion network (random weights, 179.7 M parameters) on CPU, fp32, offline.

Measured side by side in one run on the same audio:
- ``naive``: the exported ``network.onnx`` through ONNX Runtime, one window per call, fresh noise drawn per call;
- ``onnx_loop``: facecast's engine on ONNX Runtime (one window per call, the GRU carried), constant noise drawn once;
- ``torch_batched``: facecast's engine on the torch backend, constant noise, HuBERT, embeddings and heads batched
  across the clip's windows (``DiffusionNetwork.run_track``), only the GRU recurrences in order;
- ``onnx_int8``: the engine on the dynamic-int8 copy (``facecast.infer.quantize_v3``), its pose error against
  fp32 measured on held-out speech of every identity (the error the int8 path stores and refuses above 2%);
- ``tracks_one_by_one`` / ``tracks_joined``: the same audio as 4 clips of a quarter of the length, animated one
  after another, then with window w of the 4 tracks joined in one call (``run_tracks``, as ``batch`` and the
  server do).
Also: FLOPs per second of audio (counted from the layer sizes), the machine's measured fp32 matmul rate, and the
streaming look-ahead. Prints JSON. Usage: ``python benchmarks/bench_v3.py --seconds 20 --threads 2``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from facecast.infer.diffusion import (
    DiffusionEngine,
    NoiseOptions,
    NoiseSource,
    OnnxDiffusionRunner,
    TorchDiffusionRunner,
    run_tracks,
)
from facecast.infer.quantize_graph import pose_error
from facecast.infer.quantize_v3 import held_out_error, quantize_diffusion
from facecast.network.diffusion import DiffusionConfig, DiffusionNetwork
from facecast.network.diffusion_folded import FoldedDiffusion
from facecast.network.hubert import CONV_LAYERS, num_feature_frames
from facecast.network.onnx_v3 import export_v3_onnx
from facecast.pack_v3 import DiffusionInfo


def window_flops(cfg: DiffusionConfig) -> dict[str, float]:
    """Multiply-adds x 2 of one window as facecast's graph runs it (audio features once, the denoiser per step)."""
    h = cfg.hubert
    n, conv, cin = cfg.window, 0.0, 1
    for kernel, stride in CONV_LAYERS:
        n = (n - kernel) // stride + 1
        conv += 2 * n * h.conv_dim * cin * kernel
        cin = h.conv_dim
    t = num_feature_frames(cfg.window)
    d = h.embed_dim
    layers = h.num_layers * (2 * t * (4 * d * d + 2 * d * h.ffn_dim) + 4 * t * t * d)
    pos = 2 * t * d * (d // h.pos_conv_groups) * h.pos_conv_kernel
    hubert = conv + 2 * t * h.conv_dim * d + pos + layers
    c = cfg.center_frames
    embed = 2 * c * (cfg.skin_size * cfg.skin_embed + cfg.tongue_size * cfg.tongue_embed)
    heads = 2 * c * (cfg.gru_hidden * (cfg.skin_head + cfg.tongue_head) + cfg.skin_head * cfg.skin_size
                     + cfg.tongue_head * cfg.tongue_size)  # fmt: skip
    gru_in = cfg.audio_dim + cfg.geometry_dim + cfg.identity_dim + cfg.step_dim + cfg.emotion_dim
    gru = 2 * c * 3 * cfg.gru_hidden * (gru_in + cfg.gru_hidden + 2 * cfg.gru_hidden)
    hidden = 2 * c * cfg.gru_hidden * (cfg.skin_head + cfg.tongue_head)  # the heads' first layers
    wide = 2 * c * (cfg.skin_head * cfg.skin_size + cfg.tongue_head * cfg.tongue_size)  # their output layers
    fold = 2 * c * (cfg.skin_head * cfg.skin_embed + cfg.tongue_head * cfg.tongue_embed)  # W_embed W_out
    folded = hubert + cfg.num_steps * (gru + hidden) + (cfg.num_steps - 1) * fold + wide
    return {"hubert": hubert, "per_step": embed + heads + gru, "total": hubert + cfg.num_steps * (embed + heads + gru),
            "folded_total": folded}  # fmt: skip


def matmul_peak(threads: int, size: int = 2048, repeat: int = 10) -> float:
    """Measured fp32 GEMM rate (GFLOP/s) with ``threads`` threads."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(repeat):
        torch.mm(a, b)
    return 2 * size**3 * repeat / (time.perf_counter() - start) / 1e9


def naive_loop(runner: OnnxDiffusionRunner, info: DiffusionInfo, audio: np.ndarray) -> np.ndarray:
    """The SDK loop written plainly: a window per call, fresh noise per call."""
    rng = np.random.default_rng(0)
    total = math.ceil(3 * len(audio) / 800)
    windows = (total + 45) // 30 + 1
    padded = np.concatenate([np.zeros(16000, np.float32), audio, np.zeros(32000, np.float32)])
    latents = np.zeros((2, 2, 1, info.gru_latent_dim), np.float32)
    ident = np.eye(len(info.identities), dtype=np.float32)[:1]
    emotion = np.zeros((1, 30, 10), np.float32)
    out = []
    for w in range(windows):
        noise = rng.standard_normal((1, 3, 60, info.output_size), dtype=np.float32)
        pred, latents = runner(padded[w * 8000 : w * 8000 + 16000][None], ident, emotion, latents, noise)
        out.append(pred[0, 15:45])
    return np.concatenate(out)[45:][:total]


def engine_of(path: Path, info: DiffusionInfo, threads: int) -> DiffusionEngine:
    """facecast's engine on a graph through ONNX Runtime on the CPU, constant noise of seed 0."""
    runner = OnnxDiffusionRunner(path, threads=threads, device="cpu")
    return DiffusionEngine(runner, info, noise=NoiseOptions(0, constant=True))


def timed_run(engine: DiffusionEngine, audio: np.ndarray, timings: dict, name: str) -> np.ndarray:
    """The engine's frames for ``audio`` at 60 fps, timed after a 1 s warm-up run into ``timings[name]``."""
    engine.run(audio[:16000], 60)
    start = time.perf_counter()
    out = engine.run(audio, 60).result
    timings[name] = time.perf_counter() - start
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="audio length (default 20 s)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--torch", action="store_true", help="also time the torch backend (slower than ORT here)")
    parser.add_argument(
        "--no-int8-error",
        dest="int8_error",
        action="store_false",
        help="skip the int8 held-out error (every identity, fp32 and int8: about a minute)",
    )
    parser.add_argument("--workdir", default=None, help="where the 720 MB network.onnx is written (default: temp)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = DiffusionConfig()
    net = DiffusionNetwork(cfg).eval()
    with torch.no_grad():
        for head in (net.skin_out, net.tongue_out, net.jaw_out, net.eyes_out):
            torch.nn.init.normal_(head[-1].weight, std=0.01)
    params = sum(p.numel() for p in net.parameters())
    info = DiffusionInfo(identities=["Claire", "James", "Mark"])
    rng = np.random.default_rng(1)
    t = np.arange(int(args.seconds * 16000)) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 150 * t) * rng.uniform(0.3, 1, len(t))).astype(np.float32)
    results: dict = {"parameters": params, "audio_seconds": args.seconds, "threads": args.threads,
                     "cpu": os.cpu_count()}  # fmt: skip
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        start = time.perf_counter()
        path = export_v3_onnx(net, Path(tmp) / "network.onnx")
        results["export_s"] = round(time.perf_counter() - start, 1)
        runner = OnnxDiffusionRunner(path, threads=args.threads, device="cpu")
        timings = {}
        naive_loop(runner, info, audio[:16000])  # every row is timed after a warm-up run
        start = time.perf_counter()
        naive = naive_loop(runner, info, audio)
        timings["naive"] = time.perf_counter() - start
        onnx_engine = DiffusionEngine(runner, info, noise=NoiseOptions(0, constant=True))
        onnx_out = timed_run(onnx_engine, audio, timings, "onnx_loop")
        del runner, onnx_engine
        noise = NoiseSource((1, 3, 60, info.output_size), NoiseOptions(0, True)).next()
        start = time.perf_counter()
        folded_path = export_v3_onnx(FoldedDiffusion(net, torch.from_numpy(noise)), Path(tmp) / "folded.onnx")
        results["fold_export_s"] = round(time.perf_counter() - start, 1)
        folded_engine = engine_of(folded_path, info, args.threads)
        folded_out = timed_run(folded_engine, audio, timings, "onnx_folded")
        results["max_abs_diff_folded_vs_onnx"] = float(np.abs(folded_out - onnx_out).max())
        quarter = len(audio) // 4
        clips = [audio[i * quarter : (i + 1) * quarter] for i in range(4)]
        start = time.perf_counter()
        alone = [folded_engine.run(clip, 60).result for clip in clips]
        timings["folded_tracks_one_by_one"] = time.perf_counter() - start
        start = time.perf_counter()
        joined = run_tracks([folded_engine] * 4, clips, 60, [None] * 4, batch=4)
        timings["folded_tracks_joined"] = time.perf_counter() - start
        results["max_abs_diff_joined_vs_alone"] = max(
            float(np.abs(j.result - a).max()) for j, a in zip(joined, alone, strict=True)
        )
        del folded_engine
        int8_path = Path(tmp) / "folded_int8.onnx"
        start = time.perf_counter()
        results["int8"] = quantize_diffusion(folded_path, int8_path)
        results["int8"]["build_s"] = round(time.perf_counter() - start, 1)
        int8_out = timed_run(engine_of(int8_path, info, args.threads), audio, timings, "folded_int8")
        results["int8"]["error_on_this_audio"] = round(pose_error(folded_out, int8_out), 5)
        if args.int8_error:
            results["int8"]["held_out"] = held_out_error(folded_path, int8_path, info, args.threads)
    if args.torch:
        torch_engine = DiffusionEngine(TorchDiffusionRunner(net), info, noise=NoiseOptions(0, constant=True))
        start = time.perf_counter()
        torch_out = torch_engine.run(audio, 60).result
        timings["torch_batched"] = time.perf_counter() - start
        results["max_abs_diff_torch_vs_onnx"] = float(np.abs(torch_out - onnx_out).max())
    flops = window_flops(cfg)
    windows_per_second = 16000 / info.stride
    peak = matmul_peak(args.threads)
    results.update({
        "seconds": {k: round(v, 2) for k, v in timings.items()},
        "x_real_time": {k: round(args.seconds / v, 2) for k, v in timings.items()},
        "speedup_vs_naive": {k: round(timings["naive"] / v, 2) for k, v in timings.items()},
        "gflop_per_audio_second": round(flops["total"] * windows_per_second / 1e9, 1),
        "gflop_per_window": {k: round(v / 1e9, 2) for k, v in flops.items()},
        "gflop_per_audio_second_folded": round(flops["folded_total"] * windows_per_second / 1e9, 1),
        "achieved_gflop_s": {k: round(flops["folded_total" if "folded" in k else "total"] * windows_per_second
                                      * args.seconds / v / 1e9, 1)
                             for k, v in timings.items()},
        "matmul_peak_gflop_s": round(peak, 1),
        "fraction_of_peak": {k: round(flops["folded_total" if "folded" in k else "total"] * windows_per_second
                                      * args.seconds / v / 1e9 / peak, 2)
                             for k, v in timings.items()},
        "frames": len(onnx_out),
        "naive_frames": len(naive),
        "lookahead_ms": [round(1000 * x) for x in info.lookahead_seconds],
    })  # fmt: skip
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
