"""What a new user meets: wheel size, a fresh venv's install time and size with no extras, and ``facecast animate``
wall time on a 1-minute clip there (first run: assembles the built-in model into an empty cache; then warm).

    python benchmarks/fresh_install.py            # prints JSON; needs `build` and PyPI
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run([sys.executable, "-m", "build", "--wheel", "-o", str(tmp / "dist"), str(ROOT)], check=True,
                       capture_output=True)  # fmt: skip
        (wheel,) = (tmp / "dist").glob("facecast-*.whl")
        venv = tmp / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["FACECAST_CACHE"] = str(tmp / "cache")
        start = time.perf_counter()
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], check=True, env=env)
        install_s = time.perf_counter() - start
        from facecast.infer.formant import synthesise

        clip = tmp / "minute.wav"
        speech = synthesise(0)
        sf.write(clip, np.resize(speech, 60 * 16000), 16000)
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run([str(venv / "bin" / "facecast"), "animate", str(clip), "-o", str(tmp / "out"), "-q"],
                           check=True, env=env)  # fmt: skip
            runs.append(round(time.perf_counter() - start, 2))
        print(json.dumps({
            "wheel_mb": round(wheel.stat().st_size / 1e6, 2),
            "venv_mb": round(folder_bytes(venv) / 1e6, 1),
            "install_s": round(install_s, 1),
            "animate_1min_first_s": runs[0],
            "animate_1min_warm_s": min(runs[1:]),
        }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
