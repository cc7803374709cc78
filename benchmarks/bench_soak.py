"""Soak test (not a CI test): concurrent real-time streams against one server for a long time.

Starts the server of ``bench_server.py`` in a child process, keeps ``--streams`` clients streaming clips back to
back for ``--minutes``, samples the server's resident memory every few seconds, and prints one JSON object: streams
completed, errors, and memory growth from the end of the first round (warm) to the end.

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
    warm_rss = None
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
        if warm_rss is None:
            warm_rss = samples[-1][1]
    end_rss = samples[-1][1]
    return {
        "minutes": args.minutes,
        "streams": args.streams,
        "rounds": rounds,
        "streams_completed": done,
        "errors": errors,
        "rss_mb_warm": warm_rss,
        "rss_mb_end": end_rss,
        "rss_growth": round(end_rss / warm_rss - 1.0, 4) if warm_rss else None,
        "rss_samples": samples[:: max(1, len(samples) // 20)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0, help="clip length per stream")
    parser.add_argument("--pack", default="default", help="model folder, or 'default'")
    parser.add_argument("--null-network", action="store_true", help="server overhead only (no inference)")
    args = parser.parse_args()
    proc, address = bench_server.start_child(args.pack, args.streams, 32, 5.0, null_network=args.null_network)
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
