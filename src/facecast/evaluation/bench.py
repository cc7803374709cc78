"""``facecast bench``: throughput and latency on this machine, each beside its naive baseline, as one JSON.

Every figure is measured in the same run as its baseline, alternating the contenders, because shared machines
are noisy: compare ratios, not absolute numbers from different runs.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from pathlib import Path

import numpy as np

from facecast.infer.engine import Engine
from facecast.pack import load_pack
from facecast.timing import extract_windows, frame_targets


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """fp32 matmul rate of numpy's BLAS on all cores (GFLOP/s)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _speech(seconds: float, seed: int = 0) -> np.ndarray:
    from facecast.infer.formant import random_script, synthesise

    return synthesise(seed, random_script(seconds, seed))[: int(seconds * 16000)]


def bench_network(pack_dir: Path, seconds: float, naive_frames: int, repeats: int, int8: bool) -> dict:
    """Offline frames/s (engine fp32 and int8) vs a naive one-window-per-call loop; streaming latency."""
    import onnxruntime as ort

    from facecast.infer.backends import OnnxRuntimeBackend
    from facecast.network.flops import count_flops

    pack = load_pack(pack_dir)
    info = pack.network_info
    audio = _speech(seconds)
    contenders = {
        "engine_fp32": Engine(OnnxRuntimeBackend(pack.network_path, "cpu"), info, pack.implicit_emotion),
        "engine_fp32_one_session": Engine(
            OnnxRuntimeBackend(pack.network_path, "cpu", workers=1), info, pack.implicit_emotion
        ),
    }
    q_path = q_chunk = None
    if int8:  # built and measured on first use; None where refused (error above the limit): not benchmarked
        from facecast.infer.quantize import accuracy, calibration_data, int8_chunk_network, int8_network, int8_summary

        q_path = int8_network(pack)
        q_chunk = int8_chunk_network(pack) if q_path is not None else None
        if q_path is not None:
            contenders["engine_int8"] = Engine(OnnxRuntimeBackend(q_path, "cpu"), info, pack.implicit_emotion)
    frames_per_pass = pack.chunk_frames if pack.chunk_network_path is not None else 0
    if frames_per_pass:
        chunked = OnnxRuntimeBackend(pack.network_path, "cpu", chunk_path=pack.chunk_network_path)
        contenders["engine_fp32_chunks"] = Engine(chunked, info, pack.implicit_emotion,
                                                  frames_per_pass=frames_per_pass)  # fmt: skip
        contenders["engine_fp32_context"] = Engine(chunked, info, pack.implicit_emotion, frames_per_pass=1,
                                                   chunk_frames=frames_per_pass)  # fmt: skip
        if q_chunk is not None:
            q_chunked = OnnxRuntimeBackend(q_path, "cpu", chunk_path=q_chunk)
            contenders["engine_int8_chunks"] = Engine(q_chunked, info, pack.implicit_emotion,
                                                      frames_per_pass=frames_per_pass)  # fmt: skip
    sess = ort.InferenceSession(str(pack.network_path), providers=["CPUExecutionProvider"])
    windows = extract_windows(audio, frame_targets(0, naive_frames, 30.0) - info.buffer_ofs, info.buffer_len)
    emotion = np.zeros((1, 1, info.emotion_len), np.float32)
    emotion[0, 0, : info.implicit_emotion_len] = pack.implicit_emotion

    def naive() -> int:
        for i in range(len(windows)):
            sess.run(None, {"input": windows[i : i + 1, None], "emotion": emotion})
        return len(windows)

    for engine in contenders.values():
        engine.run(audio[:16000])
    naive()
    best = {name: 0.0 for name in [*contenders, "naive_fp32"]}
    frames = 0
    for _ in range(repeats):
        for name, engine in contenders.items():
            t = time.perf_counter()
            frames = len(engine.run(audio))
            best[name] = max(best[name], frames / (time.perf_counter() - t))
        t = time.perf_counter()
        best["naive_fp32"] = max(best["naive_fp32"], naive() / (time.perf_counter() - t))

    # streaming: 10 ms chunks pushed as fast as possible; a frame's latency is the look-ahead, the wait for the
    # rest of its chunk, and the compute of the push that produced it
    chunk = 160
    latency = {
        name: _stream_latency(contenders[name], audio, chunk) for name in ("engine_fp32", "engine_fp32_one_session")
    }
    lat_ms = latency["engine_fp32"]
    end_to_end = _end_to_end_seconds(pack_dir, audio, frames_per_pass=1, context_frames=0)
    flops = sum(count_flops(pack.network_path).values())
    result = {
        "pack": str(pack.root),
        "result_size": info.result_size,
        "gflop_per_frame": round(flops / 1e9, 3),
        "frames": frames,
        "audio_seconds": seconds,
        **{f"{k}_frames_per_s": round(v, 1) for k, v in best.items()},
        "engine_fp32_speedup_vs_naive": round(best["engine_fp32"] / best["naive_fp32"], 3),
        "split_sessions_speedup_vs_one_session": round(best["engine_fp32"] / best["engine_fp32_one_session"], 3),
        "end_to_end_seconds_per_audio_minute_fp32": round(end_to_end * 60.0 / seconds, 2),
        "real_time_factor_fp32_30fps": round(best["engine_fp32"] / 30.0, 2),
        "engine_fp32_gflops": round(best["engine_fp32"] * flops / 1e9, 1),
        "streaming_lookahead_ms": round(1000 * info.lookahead_samples / 16000, 1),
        "streaming_latency_ms_p50": round(float(np.percentile(lat_ms, 50)), 1),
        "streaming_latency_ms_p99": round(float(np.percentile(lat_ms, 99)), 1),
        "streaming_latency_ms_p50_one_session": round(float(np.percentile(latency["engine_fp32_one_session"], 50)), 1),
        "streaming_latency_ms_p99_one_session": round(float(np.percentile(latency["engine_fp32_one_session"], 99)), 1),
    }
    if frames_per_pass:
        result.update(_chunk_figures(contenders, best, audio, chunk, pack_dir, seconds, q_chunk is not None))
    if int8:
        result["int8"] = int8_summary(pack)
    if q_path is not None:
        result["engine_int8_speedup_vs_naive"] = round(best["engine_int8"] / best["naive_fp32"], 3)
        result["engine_int8_speedup_vs_fp32"] = round(best["engine_int8"] / best["engine_fp32"], 3)
        held_out = calibration_data(info, pack.implicit_emotion, count=60, seed=123)
        result["int8_accuracy_bench_audio"] = accuracy(pack.network_path, q_path, *held_out)
    return result


def _chunk_figures(contenders: dict, best: dict, audio: np.ndarray, chunk: int, pack_dir: Path, seconds: float,
                   int8: bool) -> dict:  # fmt: skip
    """Chunked engines beside the window engine: speed, the difference in pose, latency, end to end (on a
    whole minute of audio, the default frames per pass)."""
    engine = contenders["engine_fp32_chunks"]
    minute = np.tile(audio, int(np.ceil(60.0 / seconds)))[: 60 * 16000]
    a, b = engine.run(audio).result, contenders["engine_fp32"].run(audio).result
    lat = _stream_latency(engine, audio, chunk)
    context = contenders["engine_fp32_context"]
    context_lat = _stream_latency(context, audio, chunk)
    out = {
        "frames_per_pass": engine.frames_per_pass,
        "context_frames_one_per_pass": context.context_frames,
        "engine_fp32_context_vs_windows_speed": round(best["engine_fp32_context"] / best["engine_fp32"], 3),
        "streaming_context_latency_ms_p50": round(float(np.percentile(context_lat, 50)), 1),
        "streaming_context_latency_ms_p99": round(float(np.percentile(context_lat, 99)), 1),
        "engine_fp32_chunks_speedup_vs_windows": round(best["engine_fp32_chunks"] / best["engine_fp32"], 3),
        "engine_fp32_chunks_speedup_vs_naive": round(best["engine_fp32_chunks"] / best["naive_fp32"], 3),
        "chunks_vs_windows_pose_rmse_over_std": round(float(np.sqrt(((a - b) ** 2).mean()) / b.std()), 4),
        "streaming_chunks_latency_ms_p50": round(float(np.percentile(lat, 50)), 1),
        "streaming_chunks_latency_ms_p99": round(float(np.percentile(lat, 99)), 1),
        "end_to_end_seconds_per_audio_minute_fp32_chunks": round(_end_to_end_seconds(pack_dir, minute), 2),
    }
    if int8:
        out["engine_int8_chunks_speedup_vs_naive"] = round(best["engine_int8_chunks"] / best["naive_fp32"], 3)
        q = contenders["engine_int8_chunks"].run(audio).result
        out["int8_chunks_vs_fp32_chunks_pose_rmse_over_std"] = round(float(np.sqrt(((q - a) ** 2).mean()) / a.std()), 4)
        out["end_to_end_seconds_per_audio_minute_int8_chunks"] = round(_end_to_end_seconds(pack_dir, minute, "int8"), 2)
        out["int8_chunks_accuracy"] = _int8_chunk_accuracy(pack_dir, engine.frames_per_pass)
    return out


def _int8_chunk_accuracy(pack_dir: Path, frames_per_pass: int) -> dict:
    """int8 chunk network against fp32 on held-out chunks (the same speech as the windows' held-out set)."""
    import onnxruntime as ort

    from facecast.infer.quantize import chunk_calibration, int8_chunk_network

    pack = load_pack(pack_dir)
    feeds = chunk_calibration(pack.network_info, pack.implicit_emotion, frames_per_pass, count=4, seed=123)

    def run(path) -> np.ndarray:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return np.concatenate([session.run(None, feed)[0].reshape(-1, pack.network_info.result_size) for feed in feeds])

    ref, got = run(pack.chunk_network_path), run(int8_chunk_network(pack) or pack.chunk_network_path)
    return {"pose_rmse_over_std": round(float(np.sqrt(((got - ref) ** 2).mean()) / ref.std()), 5), "frames": len(ref)}


def _stream_latency(engine: Engine, audio: np.ndarray, chunk: int) -> np.ndarray:
    """Per-frame latency (ms) of 10 ms chunks pushed as fast as possible: the look-ahead, the wait for the rest of
    the frame's chunk, and the compute of the push that produced it."""
    from facecast.infer.stream import StreamSession

    session = StreamSession(engine)
    lat: list[float] = []
    for start in range(0, len(audio), chunk):
        t = time.perf_counter()
        out = session.push(audio[start : start + chunk])
        lat.extend([time.perf_counter() - t] * len(out))
    look = session.lookahead_seconds + chunk / 16000
    return (look + np.array(lat)) * 1000 if lat else np.zeros(1)


def _end_to_end_seconds(
    pack_dir: Path,
    audio: np.ndarray,
    precision: str = "fp32",
    frames_per_pass: int | None = None,
    context_frames: int | None = None,
) -> float:
    """Seconds for ``facecast animate``'s work on a WAV of ``audio``: decode, network, face, solve (best of 2)."""
    import tempfile

    import soundfile as sf

    from facecast.model import load_model

    model = load_model(pack_dir, device="cpu", precision=precision, frames_per_pass=frames_per_pass,
                       context_frames=context_frames)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.wav"
        sf.write(path, audio, 16000, subtype="PCM_16")
        model.animate_file(path)
        return min(_timed(lambda: model.animate_file(path)) for _ in range(2))


def bench_solver(frames: int = 1000, scipy_frames: int = 100, vertices: int = 5000) -> dict:
    """Blendshape solve on 52 poses and a ``vertices``-vertex mask: facecast vs scipy BVLS per frame."""
    from scipy.linalg import cholesky, solve_triangular
    from scipy.optimize import lsq_linear

    from facecast.constants import ARKIT_NAMES
    from facecast.face.blendshapes import BlendshapeConfig, BlendshapeSolver

    rng = np.random.default_rng(0)
    neutral = rng.uniform(-15, 15, (vertices, 3))
    deltas = np.stack([np.exp(-((neutral - neutral[rng.integers(vertices)]) ** 2).sum(1) / 50)[:, None]
                       * rng.normal(0, 0.5, 3) for _ in ARKIT_NAMES])  # fmt: skip
    weights = np.clip(0.3 + 0.4 * np.sin(np.arange(frames)[:, None] / 9.0 + rng.uniform(0, 6, 52)), 0, 1)
    targets = (neutral + np.einsum("fk,kvc->fvc", weights, deltas)).astype(np.float32)
    config = BlendshapeConfig(strength_l1=0.5, strength_l2=0.5, strength_temporal=0.0)
    solver = BlendshapeSolver(neutral, deltas, ARKIT_NAMES, None, config)
    solver.solve(targets[:10])
    solver.reset()
    t = time.perf_counter()
    ours = solver.solve(targets)
    ours_fps = frames / (time.perf_counter() - t)
    a = solver.normal_matrix
    r = cholesky(a)
    t = time.perf_counter()
    ref = []
    for f in range(scipy_frames):
        b = solver.rhs(targets[f : f + 1])[0]
        c = solve_triangular(r, b, trans="T")
        ref.append(lsq_linear(r, c, bounds=(0, 1), method="bvls", tol=1e-12).x)
    scipy_fps = scipy_frames / (time.perf_counter() - t)
    b_all = solver.rhs(targets)
    state = solver.new_state()
    t = time.perf_counter()
    from_rhs = solver.solve_rhs_raw(b_all, state)
    rhs_fps = frames / (time.perf_counter() - t)
    return {
        "poses": 52,
        "mask_vertices": vertices,
        "facecast_frames_per_s": round(ours_fps, 1),
        "scipy_bvls_frames_per_s": round(scipy_fps, 1),
        "speedup": round(ours_fps / scipy_fps, 2),
        "facecast_from_linear_rhs_frames_per_s": round(rhs_fps, 1),
        "from_linear_rhs_max_abs_diff": float(np.abs(from_rhs - solver.solve_raw(targets, solver.new_state())).max()),
        "max_abs_weight_diff": float(np.abs(np.array(ref) - ours[:scipy_frames]).max()),
    }


def run_bench(
    packs: dict[str, Path], seconds: float = 10.0, naive_frames: int = 60, repeats: int = 3, int8: bool = True
) -> dict:
    """All benchmarks as one JSON-ready dict; ``packs`` maps a label to a model folder."""
    report: dict = {
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "fp32_matmul_peak_gflops": round(matmul_peak_gflops(), 1),
        "networks": {},
    }
    for label, path in packs.items():
        report["networks"][label] = bench_network(path, seconds, naive_frames, repeats, int8)
        report["networks"][label]["peak_rss_mb_so_far"] = round(peak_rss_mb(), 1)
    report["fp32_matmul_peak_gflops"] = max(report["fp32_matmul_peak_gflops"], round(matmul_peak_gflops(), 1))
    for entry in report["networks"].values():
        entry["engine_fp32_fraction_of_matmul_peak"] = round(
            entry["engine_fp32_gflops"] / report["fp32_matmul_peak_gflops"], 3
        )
    report["blendshape_solve"] = bench_solver()
    report["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return report
