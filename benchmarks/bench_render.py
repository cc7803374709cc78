"""MP4 preview speed (issue 23): the OpenGL renderer beside the numpy rasteriser on the same clip; prints JSON.

For each engine: render-only frames/s (wall and CPU-seconds per frame) over the same posed frames, and the whole
MP4 (posing, rendering, H.264 + AAC encode) of ``--seconds`` of animation, with its real-time factor. The budget
is a 768 x 384 two-view preview at 30 fps at least 2x faster than real time on 2 CPU cores. On a shared machine
compare the engines' ratio, measured side by side here; the load average is printed with the figures.

    python benchmarks/bench_render.py --seconds 10 [--size 384] [--views both] [--engines gl,numpy]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from facecast.characters import apply_weights, build_default_character
from facecast.characters.render import make_renderer, write_preview_mp4
from facecast.constants import ARKIT_NAMES


def speech_like_weights(frames: int, fps: float = 30.0, seed: int = 0) -> np.ndarray:
    """[N, 52] ARKit weights that open and close the mouth at syllable rate, with blinks and some smiles."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / fps
    w = np.zeros((frames, len(ARKIT_NAMES)), np.float32)
    w[:, ARKIT_NAMES.index("jawOpen")] = 0.35 * (1 + np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6))) / 2
    w[:, ARKIT_NAMES.index("mouthFunnel")] = 0.3 * np.clip(np.sin(2 * np.pi * 0.7 * t), 0, 1)
    for name in ("mouthSmileLeft", "mouthSmileRight"):
        w[:, ARKIT_NAMES.index(name)] = 0.25 * np.clip(np.sin(2 * np.pi * 0.2 * t), 0, 1)
    blink = (np.mod(t, 3.1) < 0.15).astype(np.float32)
    for name in ("eyeBlinkLeft", "eyeBlinkRight"):
        w[:, ARKIT_NAMES.index(name)] = blink
    return w


def bench_engine(char, engine: str, weights: np.ndarray, size: int, views: str, render_frames: int) -> dict:
    """Render-only speed over ``render_frames`` frames, then the whole MP4 of all of ``weights``."""
    renderer = make_renderer(char, size, views, engine=engine)
    posed = apply_weights(char, weights[:render_frames])
    renderer.render(renderer.stack(posed, 0))  # warm up (shader compile, caches)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(render_frames):
        renderer.render(renderer.stack(posed, i))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if hasattr(renderer, "release"):
        renderer.release()
    seconds = len(weights) / 30.0
    sr = 48000
    audio = (0.1 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * sr)) / sr)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu0 = time.perf_counter(), time.process_time()
        write_preview_mp4(Path(tmp) / "clip.mp4", char, weights, audio=audio, sample_rate=sr, size=size, views=views,
                          engine=engine, progress=False)  # fmt: skip
        mp4_wall, mp4_cpu = time.perf_counter() - start, time.process_time() - cpu0
    return {
        "engine": type(renderer).__name__,
        "render_fps": round(render_frames / wall, 2),
        "render_cpu_ms_per_frame": round(1000 * cpu / render_frames, 2),
        "mp4_seconds": round(mp4_wall, 2),
        "mp4_cpu_seconds": round(mp4_cpu, 2),
        "mp4_fps": round(len(weights) / mp4_wall, 2),
        "mp4_times_real_time": round(seconds / mp4_wall, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length for the MP4 (default 10)")
    parser.add_argument("--render-frames", type=int, default=60, help="frames for the render-only timing")
    parser.add_argument("--size", type=int, default=384, help="each view's side (default 384: 768 x 384 for two)")
    parser.add_argument("--views", default="both")
    parser.add_argument("--engines", default="gl,numpy", help="comma list of gl, numpy")
    args = parser.parse_args()
    char = build_default_character()
    weights = speech_like_weights(int(round(args.seconds * 30)))
    load_before = os.getloadavg()
    results = {e: bench_engine(char, e, weights, args.size, args.views, args.render_frames)
               for e in args.engines.split(",")}  # fmt: skip
    out = {
        "seconds_of_animation": args.seconds,
        "frame": f"{args.size * len(args.views.split(',')) if args.views != 'both' else 2 * args.size} x {args.size}",
        "fps": 30,
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "engines": results,
    }
    if "gl" in results and "numpy" in results:
        out["gl_over_numpy_render_fps"] = round(results["gl"]["render_fps"] / results["numpy"]["render_fps"], 2)
        out["gl_over_numpy_mp4"] = round(results["numpy"]["mp4_seconds"] / results["gl"]["mp4_seconds"], 2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
