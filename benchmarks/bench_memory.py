"""Peak memory of animating long files (``Model.animate_file_blocks`` / ``animate_file``), by audio length.

Each length and mode runs in a fresh child process (so peaks do not mix); prints one JSON object with the peak RSS
per run and the growth from the shortest to the longest per mode. ``blocks`` writes each block out as it comes
(flat memory is the claim); ``result`` keeps the whole Animation (it grows by the result itself, about 1 kB a
frame). The audio is speech-like noise written as 16 kHz PCM.

    python benchmarks/bench_memory.py [--minutes 1 60] [--model DIR] [--precision int8] [--modes blocks result]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

CHILD = """
import sys, time, resource
import numpy as np
from facecast import load_model
model = load_model(sys.argv[1] or None, device="cpu", precision=sys.argv[3])
t = time.perf_counter()
if sys.argv[4] == "blocks":  # a consumer that writes each block out (here: its weights to a raw file) and drops it
    frames = 0
    with open(sys.argv[2] + ".weights", "wb") as out:
        for block in model.animate_file_blocks(sys.argv[2], blinks=True):
            out.write(np.ascontiguousarray(block.skin_weights).tobytes())
            frames += len(block)
else:
    frames = len(model.animate_file(sys.argv[2], blinks=True))
print(frames, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def write_long_wav(path: Path, minutes: float) -> None:
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", 16000, 1, "PCM_16") as fh:
        for _ in range(int(minutes * 6)):  # 10 s blocks
            t = np.arange(160000) / 16000
            block = 0.2 * np.sin(2 * np.pi * 3 * t)[:, None] * rng.standard_normal((160000, 1))
            fh.write(block.astype(np.float32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 60.0])
    parser.add_argument("--model", default="", help="model folder (default: the built-in model)")
    parser.add_argument("--precision", default="int8", choices=["fp32", "int8"])
    parser.add_argument("--modes", nargs="+", default=["blocks", "result"], choices=["blocks", "result"],
                        help="blocks: animate_file_blocks written out as they come; result: animate_file's "
                        "whole Animation held in memory")  # fmt: skip
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            wav = Path(tmp) / f"{minutes:g}min.wav"
            write_long_wav(wav, minutes)
            for mode in args.modes:
                t = time.perf_counter()
                out = subprocess.run([sys.executable, "-c", CHILD, args.model, str(wav), args.precision, mode],
                                     capture_output=True, text=True, check=True)  # fmt: skip
                frames, seconds, rss_kb = out.stdout.split()
                wall = round(time.perf_counter() - t, 1)
                rows.append({"mode": mode, "minutes": minutes, "frames": int(frames),
                             "animate_seconds": round(float(seconds), 1), "wall_seconds": wall,
                             "peak_rss_mb": round(int(rss_kb) / 1024, 1),
                             "file_mb": round(wav.stat().st_size / 1e6, 1)})  # fmt: skip
            wav.unlink()
    growth = {}
    for mode in args.modes:
        runs = [r for r in rows if r["mode"] == mode]
        growth[mode] = round(runs[-1]["peak_rss_mb"] / runs[0]["peak_rss_mb"] - 1.0, 4)
    print(json.dumps({"benchmark": "memory_vs_length", "precision": args.precision, "runs": rows,
                      "peak_growth_shortest_to_longest": growth,
                      "max_rss_children_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)},
                     indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
