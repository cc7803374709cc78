"""Soak test (not a CI test): concurrent real-time streams against one server for a long time.

Starts the server of ``bench_server.py`` in a child process, keeps ``--streams`` clients streaming clips back to
back for ``--minutes``, samples the server's resident memory after every round, and prints one JSON object: streams
completed, errors, and memory growth after a warm-up (``--warmup-fraction`` of the run): end vs warm, peak vs warm,
and the least-squares trend in MB per hour.

    python benchmarks/bench_soak.py --minutes 30 --streams 4 [--pack DIR] [--null-network]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import signal
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("bench_server", HERE / "bench_server.py")
bench_server = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_server)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


async def soak(address: str, args: argparse.Namespace, pid: int, lookahead: int) -> dict:
    deadline = time.perf_counter() + args.minutes * 60
    done = errors = rounds = 0
    samples: list[tuple[float, float]] = []
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        clients = [
            bench_server.one_client(
                address, bench_server.clip(args.seconds, seed=rounds * 100 + i), 100.0, lookahead, 30.0
            )
            for i in range(args.streams)
        ]
        for result in await asyncio.gather(*clients, return_exceptions=True):
            if isinstance(result, BaseException) or not result["ok"] or result["frames"] != result["expected"]:
                errors += 1
            else:
                done += 1
        rounds += 1
        samples.append((round(time.perf_counter() - started, 1), round(rss_mb(pid), 1)))
    return {"minutes": args.minutes, "streams": args.streams, "rounds": rounds, "streams_completed": done,
            "errors": errors, **memory_report(samples, args.warmup_fraction)}  # fmt: skip


def memory_report(samples: list[tuple[float, float]], warmup_fraction: float) -> dict:
    """Memory growth after warm-up: the first ``warmup_fraction`` of the run (allocator arenas and ONNX Runtime's
    buffers for every batch size settle there) is excluded; growth is measured against the first sample after
    it, with the peak after it and a least-squares trend (MB per hour) over the rest."""
    if not samples:
        return {}
    t_end = samples[-1][0]
    after = [(t, m) for t, m in samples if t >= warmup_fraction * t_end] or samples[-1:]
    warm, end = after[0][1], samples[-1][1]
    t, m = np.array(after).T
    slope = float(np.polyfit(t, m, 1)[0]) * 3600 if len(after) > 2 else 0.0
    return {
        "warmup_seconds": round(after[0][0], 1),
        "rss_mb_first_round": samples[0][1],
        "rss_mb_warm": warm,
        "rss_mb_end": end,
        "rss_mb_peak_after_warmup": float(m.max()),
        "rss_growth": round(end / warm - 1.0, 4),
        "rss_peak_growth": round(float(m.max()) / warm - 1.0, 4),
        "rss_trend_mb_per_hour_after_warmup": round(slope, 1),
        "rss_samples": samples[:: max(1, len(samples) // 20)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0, help="clip length per stream")
    parser.add_argument("--pack", default="default", help="model folder, or 'default'")
    parser.add_argument("--null-network", action="store_true", help="server overhead only (no inference)")
    parser.add_argument("--precision", choices=["fp32", "int8"], default="fp32")
    parser.add_argument("--warmup-fraction", type=float, default=0.1, help="share of the run excluded as warm-up")
    args = parser.parse_args()
    proc, address = bench_server.start_child(
        args.pack, args.streams, None, 5.0, null_network=args.null_network, precision=args.precision
    )
    try:
        from facecast import load_model

        info = load_model(None if args.pack == "default" else args.pack, device="cpu").info
        report = asyncio.run(soak(address, args, proc.pid, info.buffer_len - info.buffer_ofs))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    print(json.dumps({"benchmark": "soak", **report}, indent=2))


if __name__ == "__main__":
    main()
