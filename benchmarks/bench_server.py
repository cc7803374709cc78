"""Load test of the gRPC server: N concurrent real-time clients; prints one JSON object.

Each client streams its own clip in chunks (100 ms by default) paced by the wall clock, as a live microphone would,
and reads the frames as they come. A frame's latency is the time from sending the audio chunk that completes its
window (the sample at frame time + look-ahead; the end of audio for the last frames) until the frame arrives. A
stream "holds real time" when it got every frame and no frame was later than ``--max-latency-ms``. The server runs
in a child process (one per N, so its scheduler statistics are per N); the clients share this process's event loop.

    python benchmarks/bench_server.py [--streams 1,5,10,20,50] [--seconds 10] [--pack DIR | --pack default]
                                      [--null-network]

Without ``--pack`` a 1-layer test pack is written to a temporary folder (needs torch). ``--pack default`` is the
built-in Claire-size model. ``--null-network`` replaces the network by a trivial function, leaving what the server
itself costs: gRPC, scheduling, face pipeline and blendshape solve.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SR = 16000


class NullBackend:
    """A stand-in network: a cheap projection of the window, the right output size, almost no compute."""

    name = "null"

    def __init__(self, result_size: int) -> None:
        self.weights = np.random.default_rng(0).standard_normal((16, result_size)).astype(np.float32) * 0.01

    def run(self, audio: np.ndarray, emotion: np.ndarray) -> np.ndarray:
        return np.tanh(audio[:, :: audio.shape[1] // 16][:, :16] @ self.weights)

    def run_chunks(self, audio: np.ndarray, offsets: np.ndarray, emotion: np.ndarray) -> np.ndarray:
        rows = self.run(np.repeat(audio, offsets.shape[1], axis=0), emotion.reshape(-1, emotion.shape[-1]))
        return rows.reshape(len(audio), offsets.shape[1], -1)


def child(args: argparse.Namespace) -> None:
    """Serve until SIGTERM, then print the scheduler statistics as one JSON line."""
    from facecast import load_model
    from facecast.model import builtin_pack
    from facecast.pack import load_pack
    from facecast.pack_v3 import is_diffusion_folder
    from facecast.server import ServerConfig, serve
    from facecast.server.app import server_context_frames, server_frames_per_pass

    if args.pack != "default" and is_diffusion_folder(args.pack):  # v3.0: one GRU track per stream
        model = load_model(args.pack, device="cpu", threads=args.threads, precision=args.precision)
        model.engine.run(np.zeros(16000, np.float32), 30.0)  # warm-up (and the folded graph, built once)
        cfg = ServerConfig(port=0, max_streams=args.max_streams, max_batch=args.max_batch,
                           batch_wait_ms=args.batch_wait_ms, **json.loads(args.settings))  # fmt: skip
        return _serve_until_stopped(serve(cfg, model=model), model)
    pack = load_pack(builtin_pack() if args.pack == "default" else args.pack)
    asked = ServerConfig(frames_per_pass=args.frames_per_pass, context_frames=args.context_frames)
    per_pass = server_frames_per_pass(asked, pack)
    model = load_model(pack, device="cpu", threads=args.threads, precision=args.precision,
                       frames_per_pass=per_pass, context_frames=server_context_frames(asked, pack))  # fmt: skip
    if args.null_network:
        model.backend = NullBackend(model.info.result_size)
    cfg = ServerConfig(port=0, max_streams=args.max_streams, max_batch=args.max_batch,
                       batch_wait_ms=args.batch_wait_ms, **json.loads(args.settings))  # fmt: skip
    server = serve(cfg, model=model)
    model.backend.run(
        np.zeros((1, model.info.buffer_len), np.float32), np.zeros((1, model.info.emotion_len), np.float32)
    )
    _serve_until_stopped(server, model)


def _serve_until_stopped(server, model) -> None:
    print(f"PORT {server.port} {model.frames_per_pass}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    server.wait()
    stats = server.scheduler.stats
    print(json.dumps({"batches": stats.batches, "windows": stats.windows, "mean_batch": round(stats.mean_batch, 2),
                      "largest_batch": stats.largest_batch, "busy_seconds": round(stats.busy_seconds, 2),
                      "backend": model.backend.name}), flush=True)  # fmt: skip


def clip(seconds: float, seed: int) -> bytes:
    from facecast.audio import float_to_pcm16_bytes

    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    tone = 0.3 * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 5) * t)) * np.sin(2 * np.pi * rng.uniform(120, 250) * t)
    return float_to_pcm16_bytes(tone + 0.02 * rng.standard_normal(len(t)))


def full_size_v3(path: Path) -> Path:
    """A v3.0 folder with NVIDIA's network size (179.7 M parameters, random weights) and three identities."""
    import torch

    from facecast.models.testing_v3 import make_v3_pack
    from facecast.network.diffusion import DiffusionConfig, DiffusionNetwork

    torch.manual_seed(0)
    net = DiffusionNetwork(DiffusionConfig()).eval()
    with torch.no_grad():
        for head in (net.skin_out, net.tongue_out, net.jaw_out, net.eyes_out):
            torch.nn.init.normal_(head[-1].weight, std=0.01)
    return make_v3_pack(path, network=net)


def v3_window_end(info):
    """For a v3.0 model: output frame k's need, the sample that completes the 1 s window holding its native frame."""
    from facecast.infer.diffusion import DiffusionEngine

    engine = DiffusionEngine(None, info)

    def need(k: np.ndarray, fps: float) -> np.ndarray:
        native = (k * int(info.fps)) // int(fps)
        return np.array([engine.window_start(engine.window_of(int(n))) + info.buffer_len for n in native])

    return need


async def one_client(
    address: str, pcm: bytes, chunk_ms: float, lookahead: int, fps: float, metadata: tuple | None = None
) -> dict:
    """Stream one clip in real time; returns per-frame latencies and whether the stream completed (``code``: the
    call's gRPC status name)."""
    import grpc
    from nvidia_ace import audio_pb2
    from nvidia_audio2face_3d import audio2face_pb2_grpc, messages_pb2

    chunk = int(SR * chunk_ms / 1000) * 2
    total = len(pcm) // 2
    sent: list[float] = []
    arrivals: list[float] = []
    status = None
    async with grpc.aio.insecure_channel(address) as channel:
        call = audio2face_pb2_grpc.A2FControllerServiceStub(channel).ProcessAudioStream(metadata=metadata)
        header = messages_pb2.AudioWithEmotionStreamHeader(
            audio_header=audio_pb2.AudioHeader(channel_count=1, samples_per_second=SR, bits_per_sample=16)
        )

        async def write() -> None:
            await call.write(messages_pb2.AudioWithEmotionStream(audio_stream_header=header))
            start = time.perf_counter()
            for j, lo in enumerate(range(0, len(pcm), chunk)):
                await asyncio.sleep(max(0.0, start + j * chunk_ms / 1000 - time.perf_counter()))
                body = messages_pb2.AudioWithEmotion(audio_buffer=pcm[lo : lo + chunk])
                await call.write(messages_pb2.AudioWithEmotionStream(audio_with_emotion=body))
                sent.append(time.perf_counter())
            await call.write(
                messages_pb2.AudioWithEmotionStream(end_of_audio=messages_pb2.AudioWithEmotionStream.EndOfAudio())
            )
            sent.append(time.perf_counter())  # the end of audio releases the last frames
            await call.done_writing()

        writer = asyncio.create_task(write())
        try:
            async for answer in call:
                part = answer.WhichOneof("stream_part")
                if part == "animation_data":
                    arrivals.append(time.perf_counter())
                elif part == "status":
                    status = answer.status
            code = (await call.code()).name
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
            writer.cancel()
        try:
            await writer
        except (asyncio.CancelledError, grpc.aio.AioRpcError, asyncio.InvalidStateError):
            pass
    frames = len(arrivals)
    k = np.arange(frames)
    if callable(lookahead):  # v3.0: the sample that completes the frame's 1 s window
        need = lookahead(k, fps)
    else:
        need = (k * SR) // int(fps) + lookahead  # the sample that completes frame k's window (fps integral here)
    chunk_of = np.where(need >= total, len(sent) - 1, (np.minimum(need, total) - 1) // (chunk // 2))
    chunk_of = np.minimum(chunk_of, max(len(sent) - 1, 0))  # a call that ended early
    latency = np.array(arrivals) - np.array(sent)[chunk_of]
    expected = -(-total * int(fps) // SR)
    ok = code == "OK" and status is not None and status.code == 0
    wall = np.array(arrivals) + (time.time() - time.perf_counter())  # arrival times on the wall clock
    return {"latency": latency, "frames": frames, "expected": expected, "ok": ok, "code": code, "arrival_wall": wall}


async def run_clients(address: str, n: int, args: argparse.Namespace, lookahead: int) -> list[dict]:
    tasks = []
    for i in range(n):
        pcm = clip(args.seconds, seed=i)
        tasks.append(asyncio.create_task(one_client(address, pcm, args.chunk_ms, lookahead, 30.0)))
        await asyncio.sleep(args.chunk_ms / 1000 / max(n, 1))  # spread the clients' chunk phases
    return await asyncio.gather(*tasks)


def start_child(
    pack: str,
    max_streams: int,
    max_batch: int | None,
    batch_wait_ms: float,
    threads: int | None = None,
    null_network: bool = False,
    precision: str = "fp32",
    frames_per_pass: int = 6,
    context_frames: int | None = None,
    settings: dict | None = None,
) -> tuple[subprocess.Popen, str]:
    """Start the server child process; returns it and its 127.0.0.1 address. ``settings``: more
    :class:`facecast.server.ServerConfig` fields."""
    command = [sys.executable, __file__, "--child", "--pack", pack, "--max-streams", str(max(max_streams, 1)),
               "--batch-wait-ms", str(batch_wait_ms),
               "--precision", precision, "--frames-per-pass", str(frames_per_pass)]  # fmt: skip
    if context_frames is not None:
        command += ["--context-frames", str(context_frames)]
    if threads:
        command += ["--threads", str(threads)]
    if max_batch:
        command += ["--max-batch", str(max_batch)]
    if null_network:
        command.append("--null-network")
    if settings:
        command += ["--settings", json.dumps(settings)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"server child failed to start: {line!r}")
    fields = line.split()
    if len(fields) > 2:
        print(json.dumps({"server_frames_per_pass": int(fields[2])}), file=sys.stderr, flush=True)
    return proc, f"127.0.0.1:{int(fields[1])}"


def sweep_point(n: int, args: argparse.Namespace, pack: str, lookahead: int) -> dict:
    proc, address = start_child(
        pack,
        n,
        args.max_batch,
        args.batch_wait_ms,
        args.threads,
        args.null_network,
        args.precision,
        args.frames_per_pass,
        args.context_frames,
    )
    try:
        started = time.perf_counter()
        results = asyncio.run(run_clients(address, n, args, lookahead))
        wall = time.perf_counter() - started
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    stats = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    latency = np.concatenate([r["latency"] for r in results]) * 1000
    limit = args.max_latency_ms
    held = [r["ok"] and r["frames"] == r["expected"] and r["latency"].max() * 1000 <= limit for r in results]
    return {
        "streams": n,
        "frames": int(sum(r["frames"] for r in results)),
        "frames_per_s": round(sum(r["frames"] for r in results) / wall, 1),
        "latency_ms_p50": round(float(np.percentile(latency, 50)), 1),
        "latency_ms_p99": round(float(np.percentile(latency, 99)), 1),
        "latency_ms_max": round(float(latency.max()), 1),
        "streams_held_30fps": int(sum(held)),
        "all_held_30fps": bool(all(held)),
        "scheduler": stats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", default="1,5,10,20,50", help="comma-separated client counts")
    parser.add_argument("--seconds", type=float, default=10.0, help="audio per client")
    parser.add_argument("--chunk-ms", type=float, default=100.0)
    parser.add_argument("--pack", help="model folder, or 'default' (default: a 1-layer test pack)")
    parser.add_argument("--null-network", action="store_true", help="measure the server without the network")
    parser.add_argument("--v3-full", action="store_true", help="a full-size v3.0 folder (random weights)")
    parser.add_argument("--max-batch", type=int, help="frames per inference call (default: the server's)")
    parser.add_argument("--batch-wait-ms", type=float, default=5.0)
    parser.add_argument("--threads", type=int, help="inference threads in the server (default: all cores)")
    parser.add_argument("--precision", choices=["fp32", "int8"], default="fp32", help="network precision")
    parser.add_argument(
        "--frames-per-pass",
        type=int,
        default=6,
        help="frames per encoder pass for models with a chunk network (server default 6)",
    )
    parser.add_argument(
        "--context-frames",
        type=int,
        help="frames of earlier audio per encoder pass (default: the server's, as the model was trained for)",
    )
    parser.add_argument("--max-latency-ms", type=float, default=500.0, help="a later frame breaks real time")
    parser.add_argument("--keep-going", action="store_true", help="do not stop the sweep at the first break")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--max-streams", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--settings", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    from facecast.model import builtin_pack
    from facecast.pack import load_pack
    from facecast.pack_v3 import is_diffusion_folder, load_diffusion_pack

    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        pack = args.pack
        if args.v3_full:
            pack = str(full_size_v3(Path(tmp) / "v3"))
        elif pack is None:
            from facecast.models.testing import make_pack

            pack = str(make_pack(Path(tmp) / "pack", num_layers=1, seed=1))
        if pack != "default" and is_diffusion_folder(pack):
            lookahead = v3_window_end(load_diffusion_pack(pack).info)
        else:
            lookahead = load_pack(builtin_pack() if pack == "default" else pack).network_info.lookahead_samples
        points = []
        for n in [int(s) for s in args.streams.split(",") if s.strip()]:
            point = sweep_point(n, args, pack, lookahead)
            points.append(point)
            print(json.dumps(point), file=sys.stderr, flush=True)
            if not point["all_held_30fps"] and not args.keep_going:
                break
    held = [p["streams"] for p in points if p["all_held_30fps"]]
    broken = [p["streams"] for p in points if not p["all_held_30fps"]]
    print(json.dumps({
        "benchmark": "server",
        "machine": {
                "cpus": os.cpu_count(),
                "processor": platform.processor() or platform.machine(),
                "load_average_before": load_before,
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
            },
        "pack": "full-size v3.0, random weights" if args.v3_full else "1-layer test pack" if args.pack is None
        else args.pack,
        "network": "null (server overhead only)" if args.null_network else f"onnxruntime {args.precision}",
        "audio_seconds_per_stream": args.seconds,
        "chunk_ms": args.chunk_ms,
        "lookahead_ms": "267-750 (v3.0: the window must be complete)" if callable(lookahead) else 1000 * lookahead / SR,
        "max_latency_ms": args.max_latency_ms,
        "max_batch": args.max_batch,
        "frames_per_pass_asked": args.frames_per_pass,
        "context_frames_asked": args.context_frames,
        "batch_wait_ms": args.batch_wait_ms,
        "inference_threads": args.threads or os.cpu_count(),
        "points": points,
        "most_streams_held": max(held) if held else 0,
        "first_broken": min(broken) if broken else None,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
