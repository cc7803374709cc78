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
GAP_SECONDS = 4.0
"""Pause between two attacks of a round, so that each one's effect on the healthy frames can be told apart."""


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
        out["clips"].append((result["arrival_wall"], result["latency"]))
        out["rounds"].append((round(time.perf_counter() - out["started"], 1), float(result["latency"].max(initial=0))))


async def sample_memory(pid: int, every: float, deadline: float, samples: list, started: float) -> None:
    while time.perf_counter() < deadline:
        samples.append((round(time.perf_counter() - started, 1), round(rss_mb(pid), 1)))
        await asyncio.sleep(every)


async def soak(address: str, args: argparse.Namespace, pid: int, lookahead: int) -> dict:
    started = time.perf_counter()
    deadline = started + args.minutes * 60
    out = {"latency": [], "errors": [], "refused": 0, "completed": 0, "rounds": [], "started": started, "clips": []}
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
        "_clips": out["clips"],
    }


def split_by_attacks(clips: list, spans: list, limit: float) -> dict:
    """Latency of the healthy frames that arrived while an attack ran (or within a second after it) and of the
    others (the machine's own noise shows there), and per attack."""

    def stats(mask: np.ndarray) -> dict:
        picked = latency[mask] * 1000
        if not picked.size:
            return {"frames": 0}
        return {
            "frames": int(picked.size),
            "latency_ms_p50": round(float(np.median(picked)), 1),
            "latency_ms_p99": round(float(np.percentile(picked, 99)), 1),
            "latency_ms_max": round(float(picked.max()), 1),
            "frames_over_limit": int((picked > limit).sum()),
        }

    if not clips:
        return {}
    arrival = np.concatenate([a for a, _ in clips])
    latency = np.concatenate([lat for _, lat in clips])
    hit = {span[0]: np.zeros(arrival.shape, bool) for span in spans}
    for name, start, end, *_ in spans:
        hit[name] |= (arrival >= start) & (arrival <= end + 1.0)
    during = np.any(list(hit.values()), axis=0) if hit else np.zeros(arrival.shape, bool)
    return {"during_attacks": stats(during), "outside_attacks": stats(~during),
            "by_attack": {name: stats(mask) for name, mask in hit.items()}}  # fmt: skip


def marginal_cpu(attacks: dict, server_cpu: float, wall: float) -> None:
    """Add to each attack the server CPU it cost above the healthy streams' own rate (measured outside attacks)."""
    attack_cpu = sum(a["server_cpu_s"] for a in attacks.values())
    attack_wall = sum(a["wall_s"] for a in attacks.values())
    rate = (server_cpu - attack_cpu) / max(wall - attack_wall, 1e-9)
    for entry in attacks.values():
        entry["server_cpu_s_above_baseline"] = round(entry["server_cpu_s"] - rate * entry["wall_s"], 2)


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
    "message of 100 MB": {"RESOURCE_EXHAUSTED", "INTERNAL"},  # INTERNAL: the asyncio client's bug, grpc/grpc#36066
    "message of 100 MB, sync client": {"RESOURCE_EXHAUSTED"},
    "20 calls on 16 slots": {"OK", "RESOURCE_EXHAUSTED"},
    "trickle 2 B / 10 s": {"DEADLINE_EXCEEDED"},
}


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of process ``pid`` (this one by default), in seconds."""
    fields = Path(f"/proc/{pid or os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def attack_cycle(address: str, attacks, spans: list, server_pid: int) -> dict[str, list[dict]]:
    """One round of every attack (about 90 s: the trickles end once the 20 s rate window has passed); appends
    ``(name, wall start, wall end, server CPU s, attacker CPU s)`` of each to ``spans``."""
    ok = METADATA
    plan = [
        ("key flood 140k keys", attacks.key_flood(address, messages=10, keys=140_000, metadata=ok)),
        ("key flood within limits", attacks.key_flood(address, messages=10, keys=1000, metadata=ok)),
        ("no token", attacks.fast_writer(address, messages=300, attempts=2)),
        ("token without Bearer", attacks.fast_writer(address, 300, attempts=2, metadata=(("authorization", TOKEN),))),
        ("wrong token", attacks.fast_writer(address, 300, attempts=2, metadata=(("authorization", "Bearer nope"),))),
        ("bad header while writing", attacks.fast_writer(address, 300, bad_header=True, attempts=2, metadata=ok)),
        ("message of 4 MiB + 2", attacks.big_message(address, 4 * 1024 * 1024 + 2, metadata=ok)),
        ("message of 100 MB", attacks.big_message(address, 100 * 1024 * 1024, metadata=ok)),
        ("message of 100 MB, sync client", attacks.big_message_sync(address, 100 * 1024 * 1024, metadata=ok)),
        ("20 calls on 16 slots", attacks.slot_flood(address, calls=MAX_STREAMS + 4, seconds=0.05, metadata=ok)),
        ("trickle 2 B / 10 s", attacks.trickle(address, clients=10, size=2, every=10.0, sends=30, metadata=ok)),
    ]
    runs: dict[str, list[dict]] = {}
    for name, attack in plan:
        start, server_cpu, own_cpu = time.time(), cpu_seconds(server_pid), cpu_seconds()
        runs[name] = await attack
        cpu = (round(cpu_seconds(server_pid) - server_cpu, 2), round(cpu_seconds() - own_cpu, 2))
        spans.append((name, start, time.time(), *cpu))
        await asyncio.sleep(GAP_SECONDS)
    return runs


async def attacker(address: str, minutes: float, every: float, delay: float, server_pid: int) -> dict:
    sys.path.insert(0, str(HERE.parent / "tests"))
    import grpc_attacks as attacks

    started = time.perf_counter()
    deadline = started + minutes * 60
    report: dict[str, dict] = {
        name: {
            "runs": 0,
            "codes": {},
            "unexpected": [],
            "max_seconds": 0.0,
            "wall_s": 0.0,
            "server_cpu_s": 0.0,
            "attacker_cpu_s": 0.0,
        }
        for name in EXPECTED
    }
    cycles, spans = 0, []
    attacks._flood_message(140_000)  # built once, before the healthy streams start, and sent as bytes
    attacks._flood_message(1000)
    await asyncio.sleep(delay)  # the healthy streams are running by then
    while time.perf_counter() + 100 < deadline:  # a cycle takes about 90 s
        cycle_start = time.perf_counter()
        for name, outcomes in (await attack_cycle(address, attacks, spans, server_pid)).items():
            entry = report[name]
            for outcome in outcomes:
                entry["runs"] += 1
                entry["codes"][outcome["code"]] = entry["codes"].get(outcome["code"], 0) + 1
                entry["max_seconds"] = max(entry["max_seconds"], outcome["seconds"])
                if outcome["code"] not in EXPECTED[name] and len(entry["unexpected"]) < 5:
                    entry["unexpected"].append({k: outcome[k] for k in ("code", "details", "seconds")})
        for name, start, end, server_cpu, own_cpu in spans[-len(EXPECTED) :]:
            report[name]["wall_s"] = round(report[name]["wall_s"] + end - start, 2)
            report[name]["server_cpu_s"] = round(report[name]["server_cpu_s"] + server_cpu, 2)
            report[name]["attacker_cpu_s"] = round(report[name]["attacker_cpu_s"] + own_cpu, 2)
        cycles += 1
        await asyncio.sleep(max(0.0, cycle_start + every - time.perf_counter()))
    return {"cycles": cycles, "every_seconds": every, "attacks": report, "spans": spans}


def start_attacker(address: str, args: argparse.Namespace, server_pid: int) -> subprocess.Popen:
    command = [sys.executable, __file__, "--attacker", address, "--minutes", str(args.minutes),
               "--attack-every", str(args.attack_every), "--attack-delay", str(args.attack_delay),
               "--server-pid", str(server_pid)]  # fmt: skip
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
    parser.add_argument("--attack-delay", type=float, default=30.0, help="seconds before the first round")
    parser.add_argument("--attacker", metavar="ADDRESS", help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.attacker:
        report = asyncio.run(
            attacker(args.attacker, args.minutes, args.attack_every, args.attack_delay, args.server_pid)
        )
        print(json.dumps(report), flush=True)
        return

    load_before = [round(x, 2) for x in os.getloadavg()]
    proc, address = bench_server.start_child(args.pack, MAX_STREAMS, None, 5.0, null_network=args.null_network,
                                             precision=args.precision, settings={"token": TOKEN})  # fmt: skip
    attacker_proc = start_attacker(address, args, proc.pid) if args.attacks else None
    try:
        from facecast import load_model

        info = load_model(None if args.pack == "default" else args.pack, device="cpu").info
        cpu_start, wall_start = cpu_seconds(proc.pid), time.time()
        report = asyncio.run(soak(address, args, proc.pid, info.buffer_len - info.buffer_ofs))
        server_cpu, wall = cpu_seconds(proc.pid) - cpu_start, time.time() - wall_start
        report["server_cpu_cores_mean"] = round(server_cpu / wall, 3)
        clips = report.pop("_clips")
        if attacker_proc is not None:
            out, _ = attacker_proc.communicate(timeout=600)
            report["attacks"] = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"error": "no report"}
            spans = report["attacks"].pop("spans", [])
            report["healthy_latency_by_attack"] = split_by_attacks(clips, spans, args.max_latency_ms)
            marginal_cpu(report["attacks"].get("attacks", {}), server_cpu, wall)
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
