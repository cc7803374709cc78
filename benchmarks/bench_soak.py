"""Soak test (not a CI test): concurrent real-time streams against one server for a long time, optionally beside
hostile clients; prints one JSON object.

Starts the server of ``bench_server.py`` in a child process and keeps ``--streams`` clients streaming clips back to
back in real time (100 ms chunks) for ``--minutes``, recording every frame's latency (``bench_server.one_client``)
and sampling the server's resident memory every ``--sample-seconds``. Memory growth is measured after a warm-up
(``--warmup-fraction`` of the run): end vs the first warm sample, peak vs warm, and the least-squares trend.

With ``--attacks`` a second child process (``--attacker``) runs the hostile clients of issue 20 (items 6-8, from
``tests/grpc_attacks.py``) every ``--attack-every`` seconds, on their own event loop so that building 3 MB
messages never delays the healthy clients' clocks:

- key floods: 10 messages of 140,000 timed emotions (3.2 MB each), and a flood just within the key limits
  (10 messages of 1,000 keys: the per-stream limit);
- refusals: calls with no token, a token without the ``Bearer`` scheme and a wrong one, each writing 300 messages
  as fast as it can (expected ``UNAUTHENTICATED``); a bad header while writing (in-band error, ``OK``); messages of
  4 MiB + 2 and 100 MB (``RESOURCE_EXHAUSTED``); 20 calls at once on a server of 16 slots;
- trickles: 10 clients sending 2 bytes every 10 s (``DEADLINE_EXCEEDED`` once the rate window has passed).

A healthy stream refused for want of a slot (during the slot attack) retries after 0.2 s; refusals are counted.

    python benchmarks/bench_soak.py --minutes 30 --streams 5 --attacks [--pack default]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("bench_server", HERE / "bench_server.py")
bench_server = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_server)

TOKEN = "soak-token"
METADATA = (("authorization", f"Bearer {TOKEN}"),)
MAX_STREAMS = 16
"""The soak server's slots: 5 healthy streams, 10 trickles and one to spare."""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


# -- healthy clients ------------------------------------------------------------------------------------------------


async def healthy(address: str, index: int, args: argparse.Namespace, lookahead: int, deadline: float, out: dict):
    """One client streaming clips back to back in real time until ``deadline``."""
    clip_no = 0
    while time.perf_counter() < deadline:
        pcm = bench_server.clip(args.seconds, seed=index * 10_000 + clip_no)
        clip_no += 1
        try:
            result = await bench_server.one_client(address, pcm, 100.0, lookahead, 30.0, METADATA)
        except Exception as exc:  # a client-side failure is an error of the run, not a crash of the soak
            out["errors"].append(f"{type(exc).__name__}: {exc}"[:200])
            continue
        if result["code"] == "RESOURCE_EXHAUSTED" and result["frames"] == 0:
            out["refused"] += 1  # no free slot (the slot attack): try again
            await asyncio.sleep(0.2)
            continue
        if not result["ok"] or result["frames"] != result["expected"]:
            out["errors"].append(f"{result['code']}: {result['frames']}/{result['expected']} frames")
        else:
            out["completed"] += 1
        out["latency"].append(result["latency"])
        out["rounds"].append((round(time.perf_counter() - out["started"], 1), float(result["latency"].max(initial=0))))


async def sample_memory(pid: int, every: float, deadline: float, samples: list, started: float) -> None:
    while time.perf_counter() < deadline:
        samples.append((round(time.perf_counter() - started, 1), round(rss_mb(pid), 1)))
        await asyncio.sleep(every)


async def soak(address: str, args: argparse.Namespace, pid: int, lookahead: int) -> dict:
    started = time.perf_counter()
    deadline = started + args.minutes * 60
    out = {"latency": [], "errors": [], "refused": 0, "completed": 0, "rounds": [], "started": started}
    samples: list[tuple[float, float]] = []
    tasks = [healthy(address, i, args, lookahead, deadline, out) for i in range(args.streams)]
    await asyncio.gather(sample_memory(pid, args.sample_seconds, deadline, samples, started), *tasks)
    samples.append((round(time.perf_counter() - started, 1), round(rss_mb(pid), 1)))
    latency = np.concatenate(out["latency"]) * 1000 if out["latency"] else np.zeros(0)
    limit = args.max_latency_ms
    worst = sorted(out["rounds"], key=lambda r: -r[1])[:10]
    return {
        "minutes": args.minutes,
        "streams": args.streams,
        "clip_seconds": args.seconds,
        "streams_completed": out["completed"],
        "errors": len(out["errors"]),
        "error_samples": out["errors"][:10],
        "healthy_refused_for_slots": out["refused"],
        "frames": int(latency.size),
        "latency_ms_p50": round(float(np.percentile(latency, 50)), 1) if latency.size else None,
        "latency_ms_p99": round(float(np.percentile(latency, 99)), 1) if latency.size else None,
        "latency_ms_max": round(float(latency.max()), 1) if latency.size else None,
        "max_latency_ms": limit,
        "frames_over_limit": int((latency > limit).sum()),
        "all_frames_within_limit": bool(latency.size and (latency <= limit).all()),
        "worst_clips_at_s_ms": [(t, round(m * 1000, 1)) for t, m in worst],
        **memory_report(samples, args.warmup_fraction),
    }


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
        "rss_mb_first_sample": samples[0][1],
        "rss_mb_warm": warm,
        "rss_mb_end": end,
        "rss_mb_peak_after_warmup": float(m.max()),
        "rss_growth": round(end / warm - 1.0, 4),
        "rss_within_10_percent": bool(abs(end / warm - 1.0) <= 0.10),
        "rss_peak_growth": round(float(m.max()) / warm - 1.0, 4),
        "rss_trend_mb_per_hour_after_warmup": round(slope, 1),
        "rss_samples": samples[:: max(1, len(samples) // 30)],
    }


# -- the attacker process -----------------------------------------------------------------------------------------

EXPECTED = {
    "key flood 140k keys": {"RESOURCE_EXHAUSTED"},
    "key flood within limits": {"OK"},
    "no token": {"UNAUTHENTICATED"},
    "token without Bearer": {"UNAUTHENTICATED"},
    "wrong token": {"UNAUTHENTICATED"},
    "bad header while writing": {"OK"},
    "message of 4 MiB + 2": {"RESOURCE_EXHAUSTED"},
    "message of 100 MB": {"RESOURCE_EXHAUSTED"},
    "20 calls on 16 slots": {"OK", "RESOURCE_EXHAUSTED"},
    "trickle 2 B / 10 s": {"DEADLINE_EXCEEDED"},
}


async def attack_cycle(address: str, attacks) -> dict[str, list[dict]]:
    """One round of every attack (about 80 s: the trickles end once the 20 s rate window has passed)."""
    ok = METADATA
    runs: dict[str, list[dict]] = {}
    runs["key flood 140k keys"] = await attacks.key_flood(address, messages=10, keys=140_000, metadata=ok)
    runs["key flood within limits"] = await attacks.key_flood(address, messages=10, keys=1000, metadata=ok)
    for name, metadata in (("no token", None), ("token without Bearer", (("authorization", TOKEN),)),
                           ("wrong token", (("authorization", "Bearer nope"),))):  # fmt: skip
        runs[name] = await attacks.fast_writer(address, messages=300, attempts=2, metadata=metadata)
    runs["bad header while writing"] = await attacks.fast_writer(address, 300, bad_header=True, attempts=2, metadata=ok)
    runs["message of 4 MiB + 2"] = await attacks.big_message(address, 4 * 1024 * 1024 + 2, metadata=ok)
    runs["message of 100 MB"] = await attacks.big_message(address, 100 * 1024 * 1024, metadata=ok)
    runs["20 calls on 16 slots"] = await attacks.slot_flood(address, calls=MAX_STREAMS + 4, metadata=ok)
    runs["trickle 2 B / 10 s"] = await attacks.trickle(address, clients=10, size=2, every=10.0, sends=30, metadata=ok)
    return runs


async def attacker(address: str, minutes: float, every: float) -> dict:
    sys.path.insert(0, str(HERE.parent / "tests"))
    import grpc_attacks as attacks

    started = time.perf_counter()
    deadline = started + minutes * 60
    report: dict[str, dict] = {
        name: {"runs": 0, "codes": {}, "unexpected": [], "max_seconds": 0.0} for name in EXPECTED
    }
    cycles = 0
    while time.perf_counter() + 90 < deadline:  # a cycle takes about 80 s
        cycle_start = time.perf_counter()
        for name, outcomes in (await attack_cycle(address, attacks)).items():
            entry = report[name]
            for outcome in outcomes:
                entry["runs"] += 1
                entry["codes"][outcome["code"]] = entry["codes"].get(outcome["code"], 0) + 1
                entry["max_seconds"] = max(entry["max_seconds"], outcome["seconds"])
                if outcome["code"] not in EXPECTED[name] and len(entry["unexpected"]) < 5:
                    entry["unexpected"].append({k: outcome[k] for k in ("code", "details", "seconds")})
        cycles += 1
        await asyncio.sleep(max(0.0, cycle_start + every - time.perf_counter()))
    return {"cycles": cycles, "every_seconds": every, "attacks": report}


def start_attacker(address: str, args: argparse.Namespace) -> subprocess.Popen:
    command = [sys.executable, __file__, "--attacker", address, "--minutes", str(args.minutes),
               "--attack-every", str(args.attack_every)]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


# -- main -----------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--streams", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0, help="clip length per stream")
    parser.add_argument("--pack", default="default", help="model folder, or 'default'")
    parser.add_argument("--null-network", action="store_true", help="server overhead only (no inference)")
    parser.add_argument("--precision", choices=["fp32", "int8"], default="fp32")
    parser.add_argument("--warmup-fraction", type=float, default=0.1, help="share of the run excluded as warm-up")
    parser.add_argument("--sample-seconds", type=float, default=10.0, help="how often the server's RSS is read")
    parser.add_argument("--max-latency-ms", type=float, default=500.0)
    parser.add_argument("--attacks", action="store_true", help="run the hostile clients of issue 20 beside")
    parser.add_argument("--attack-every", type=float, default=120.0, help="seconds between attack rounds")
    parser.add_argument("--attacker", metavar="ADDRESS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.attacker:
        print(json.dumps(asyncio.run(attacker(args.attacker, args.minutes, args.attack_every))), flush=True)
        return

    load_before = [round(x, 2) for x in os.getloadavg()]
    proc, address = bench_server.start_child(args.pack, MAX_STREAMS, None, 5.0, null_network=args.null_network,
                                             precision=args.precision, settings={"token": TOKEN})  # fmt: skip
    attacker_proc = start_attacker(address, args) if args.attacks else None
    try:
        from facecast import load_model

        info = load_model(None if args.pack == "default" else args.pack, device="cpu").info
        report = asyncio.run(soak(address, args, proc.pid, info.buffer_len - info.buffer_ofs))
        if attacker_proc is not None:
            out, _ = attacker_proc.communicate(timeout=600)
            report["attacks"] = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"error": "no report"}
    finally:
        if attacker_proc is not None and attacker_proc.poll() is None:
            attacker_proc.kill()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    report["machine"] = {"cpus": os.cpu_count(), "load_average_before": load_before,
                         "load_average_after": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip
    print(json.dumps({"benchmark": "soak", **report}, indent=2))


if __name__ == "__main__":
    main()
