"""Blendshape-solve throughput on one core: facecast's BlendshapeSolver vs scipy's BVLS per frame.

Builds a synthetic ARKit-sized problem (52 poses, 5,000 mask vertices of a 6,000-vertex mesh, smooth
weight tracks with many weights at 0, plus noise), solves ~2,000 frames with facecast, solves the first
frames again with scipy.optimize.lsq_linear(method="bvls") on the same QP (least-squares form
min ‖Rw − c‖², A = RᵀR, Rᵀc = b, temporal state and cancel pass done by hand), and prints one JSON
object with frames/s for both and the largest weight difference.

    python benchmarks/bench_solver.py [--frames 2000] [--scipy-frames 200]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402
from scipy.linalg import solve_triangular  # noqa: E402
from scipy.optimize import lsq_linear  # noqa: E402

try:
    from facecast.face.blendshapes import BlendshapeConfig, BlendshapeSolver
except ImportError:  # running from a checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from facecast.face.blendshapes import BlendshapeConfig, BlendshapeSolver
from facecast.constants import ARKIT_NAMES  # noqa: E402


def make_data(
    seed: int, frames: int, vertices: int = 6000, mask_vertices: int = 5000
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Neutral [V,3], localised deltas [52,V,3], frontal mask, float32 targets [N,V,3]."""
    rng = np.random.default_rng(seed)
    poses = len(ARKIT_NAMES)
    neutral = rng.uniform(-15.0, 15.0, (vertices, 3))  # bbox diagonal ≈ 52, close to Mark's 53.45
    deltas = np.empty((poses, vertices, 3))
    for k in range(poses):
        centre = neutral[rng.integers(vertices)]
        falloff = np.exp(-((neutral - centre) ** 2).sum(axis=1) / (2 * 5.0**2))
        deltas[k] = falloff[:, None] * rng.normal(0.0, 0.5, 3) + 0.01 * rng.normal(size=(vertices, 3))
    mask = np.sort(rng.choice(vertices, mask_vertices, replace=False)).astype(np.int32)
    t = np.arange(frames) / 30.0
    tracks = np.zeros((frames, poses))
    for _ in range(3):
        tracks += 0.35 * np.sin(t[:, None] * rng.uniform(0.3, 4.0, poses) + rng.uniform(0, 2 * np.pi, poses))
    weights = np.clip(tracks + rng.uniform(-0.3, 0.5, poses), 0.0, 1.0)
    targets = neutral + np.einsum("fk,kvc->fvc", weights, deltas)
    targets += 0.005 * rng.normal(size=targets.shape)
    return neutral, deltas, mask, targets.astype(np.float32)


def mark_like_config(cancel: bool) -> BlendshapeConfig:
    """Mark's skin settings (SDK test): L1 0.5, L2 0.5, temporal 0.3, symmetry 100 on the L/R pairs."""
    names = list(ARKIT_NAMES)
    symmetry = [-1] * len(names)
    for k, name in enumerate(names):
        if name.endswith("Left"):
            symmetry[k] = symmetry[names.index(name[:-4] + "Right")] = k
    cancel_ids = [-1] * len(names)
    if cancel:
        for pair, (a, b) in enumerate(
            (("jawLeft", "jawRight"), ("mouthLeft", "mouthRight"), ("mouthSmileLeft", "mouthFrownLeft"))
        ):
            cancel_ids[names.index(a)] = cancel_ids[names.index(b)] = pair
    return BlendshapeConfig(
        strength_l1=0.5,
        strength_l2=0.5,
        strength_temporal=0.3,
        strength_symmetry=100.0,
        symmetry_pairs=symmetry,
        cancel_pairs=cancel_ids,
        template_bb_size=53.4505,
    )


def scipy_reference(
    neutral: np.ndarray, deltas: np.ndarray, mask: np.ndarray, cfg: BlendshapeConfig, targets: np.ndarray
) -> tuple[np.ndarray, float]:
    """Raw weights from scipy's BVLS, built from scratch (all poses active); returns (weights, seconds).

    tol=1e-13: with the default 1e-10, scipy's BVLS can stop early on the cancel pass (1e-10 caps).
    """
    n = deltas.shape[0]
    d = deltas[:, mask].reshape(n, -1).T
    n0 = neutral[mask].reshape(-1)
    s = (np.linalg.norm(neutral.max(axis=0) - neutral.min(axis=0)) / cfg.template_bb_size) ** 2
    per_pose = cfg.per_pose(n)

    def pairs(ids: np.ndarray) -> list[tuple[int, int]]:
        return [(int(i), int(j)) for i, j in (np.flatnonzero(ids == v) for v in np.unique(ids[ids >= 0]))]

    sym = np.zeros((0, n))
    for i, j in pairs(per_pose["symmetry_pairs"]):
        row = np.zeros(n)
        row[i], row[j] = 1.0, -1.0
        sym = np.vstack([sym, row])
    a = d.T @ d + cfg.strength_l1**2 * 0.25 * s + cfg.strength_symmetry * 10 * s * sym.T @ sym
    a += (cfg.strength_l2 * 10 + cfg.strength_temporal * 100) * s * np.eye(n)
    cancel = pairs(per_pose["cancel_pairs"])
    lower, upper = np.zeros(n), np.ones(n)
    prev = np.zeros(n)
    out = np.empty((len(targets), n))
    start = time.perf_counter()
    r = np.linalg.cholesky(a).T  # A = RᵀR
    for f, target in enumerate(targets):
        b = (target[mask].reshape(-1) - n0) @ d + cfg.strength_temporal * s * prev
        c = solve_triangular(r, b, trans="T")
        w = lsq_linear(r, c, bounds=(lower, upper), method="bvls", tol=1e-13).x
        if cancel:
            cap = upper.copy()
            for i, j in cancel:
                cap[j if w[i] >= w[j] else i] = 1e-10
            w = lsq_linear(r, c, bounds=(lower, cap), method="bvls", tol=1e-13).x
        prev = w
        out[f] = w
    return out, time.perf_counter() - start


def run_case(name: str, cancel: bool, data: tuple[np.ndarray, ...], scipy_frames: int, repeats: int) -> dict:
    neutral, deltas, mask, targets = data
    t0 = time.perf_counter()
    solver = BlendshapeSolver(neutral, deltas, ARKIT_NAMES, mask, mark_like_config(cancel))
    build_s = time.perf_counter() - t0
    solver.solve(targets[:50])  # warm caches and code paths
    best = np.inf
    weights = np.empty(0)
    for _ in range(repeats):
        state = solver.new_state()
        t0 = time.perf_counter()
        weights = solver.solve(targets, state)
        best = min(best, time.perf_counter() - t0)
    ref, scipy_s = scipy_reference(neutral, deltas, mask, solver.config, targets[:scipy_frames])
    return {
        "config": name,
        "facecast_frames": int(len(targets)),
        "facecast_fps": round(len(targets) / best, 1),
        "facecast_us_per_frame": round(best / len(targets) * 1e6, 2),
        "build_s": round(build_s, 4),
        "scipy_frames": int(scipy_frames),
        "scipy_fps": round(scipy_frames / scipy_s, 1),
        "speedup": round((len(targets) / best) / (scipy_frames / scipy_s), 1),
        "max_abs_weight_diff": float(np.abs(weights[:scipy_frames] - ref).max()),  # multipliers 1, offsets 0
        "fraction_weights_at_0": round(float((weights == 0).mean()), 3),
        "fraction_weights_at_1": round(float((weights == 1).mean()), 3),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--scipy-frames", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    data = make_data(args.seed, args.frames)
    scipy_frames = min(args.scipy_frames, args.frames)
    cases = [
        run_case("mark_like", False, data, scipy_frames, args.repeats),
        run_case("mark_like+3_cancel_pairs", True, data, scipy_frames, args.repeats),
    ]
    main_case = cases[0]
    result = {
        "benchmark": "blendshape_solve",
        "poses": len(ARKIT_NAMES),
        "mask_vertices": int(data[2].size),
        "mesh_vertices": int(data[0].shape[0]),
        "threads": 1,
        "facecast_fps": main_case["facecast_fps"],
        "scipy_bvls_fps": main_case["scipy_fps"],
        "max_abs_weight_diff": max(c["max_abs_weight_diff"] for c in cases),
        "cases": cases,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
