"""Peak memory of animating long files in bounded memory (``Model.animate_file``), by audio length.

Each length runs in a fresh child process (so peaks do not mix); prints one JSON object with the peak RSS per
length and the growth from the shortest to the longest. The audio is speech-like noise written as 16 kHz PCM.

    python benchmarks/bench_memory.py [--minutes 1 60] [--model DIR] [--precision int8]
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
from facecast import load_model
model = load_model(sys.argv[1] or None, device="cpu", precision=sys.argv[3])
t = time.perf_counter()
anim = model.animate_file(sys.argv[2], blinks=True)
print(len(anim), time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
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
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            wav = Path(tmp) / f"{minutes:g}min.wav"
            write_long_wav(wav, minutes)
            t = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", CHILD, args.model, str(wav), args.precision],
                                 capture_output=True, text=True, check=True)  # fmt: skip
            frames, seconds, rss_kb = out.stdout.split()
            rows.append({"minutes": minutes, "frames": int(frames), "animate_seconds": round(float(seconds), 1),
                         "wall_seconds": round(time.perf_counter() - t, 1), "peak_rss_mb": round(int(rss_kb) / 1024, 1),
                         "file_mb": round(wav.stat().st_size / 1e6, 1)})  # fmt: skip
            wav.unlink()
    growth = rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"] - 1.0
    print(json.dumps({"benchmark": "memory_vs_length", "precision": args.precision, "runs": rows,
                      "peak_growth_shortest_to_longest": round(growth, 4),
                      "max_rss_children_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)},
                     indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
