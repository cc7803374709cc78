"""A tiny synthetic training dataset in NVIDIA's layout, made entirely by code.

Audio is a string of tone-burst "syllables" (harmonic tones under smooth envelopes, with pauses); a procedural
head of a few hundred vertices opens its jaw and lips with the envelope, lifts its tongue tip on high-pitched
syllables, blinks once per shot and wears a fixed per-emotion expression. Everything a real dataset has is
written: audio, skin / tongue caches (``.npy``, ``.pc2`` or Maya), neutrals, pose deltas, vertex lists, jaw
keypoints, eye rotations, saccades and ARKit / tongue blendshapes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facecast.audio import save_wav
from facecast.constants import ARKIT_NAMES, EMOTION_NAMES, SAMPLE_RATE, TONGUE_NAMES
from facecast.fileio import write_json, write_npz
from facecast.models.testing import make_blendshapes, make_face_mesh
from facecast.pack import BlendshapeSet
from facecast.timing import num_frames
from facecast.train.caches import write_maya_cache, write_pc2

PIVOT = np.array([0.0, -2.0, -2.0])
MAX_JAW_DEG = 14.0
DEFAULT_EMOTIONS = ("neutral", "joy", "anger", "sadness", "amazement", "neutral")


@dataclass
class SyntheticHead:
    """The procedural character: neutral meshes, vertex groups and per-emotion displacement fields."""

    skin: np.ndarray
    upper_lip: np.ndarray
    lower_lip: np.ndarray
    upper_lid: np.ndarray
    lower_lid: np.ndarray
    jaw_weight: np.ndarray
    emotion_fields: dict[str, np.ndarray]
    tongue: np.ndarray
    tongue_rigid: np.ndarray
    tongue_tip: np.ndarray
    jaw_keypoints: np.ndarray


def make_head(num_face_points: int = 240) -> SyntheticHead:
    """The same head every time (its own fixed seed)."""
    rng = np.random.default_rng(1234)
    face = make_face_mesh(num_face_points, rng).astype(np.float64)
    lip_x = np.linspace(-2.0, 2.0, 9)
    lip_z = 9.0 * np.cos(np.arcsin(lip_x / 8.0))
    upper = np.stack([lip_x, np.full(9, -5.9), lip_z], 1)
    lower = np.stack([lip_x, np.full(9, -6.1), lip_z], 1)
    lid_x = np.array([-3.6, -3.0, -2.4, 2.4, 3.0, 3.6])
    lid_z = 9.0 * np.cos(np.arcsin(lid_x / 8.0))
    up_lid = np.stack([lid_x, np.full(6, 3.5), lid_z], 1)
    low_lid = np.stack([lid_x, np.full(6, 2.5), lid_z], 1)
    skin = np.concatenate([face, upper, lower, up_lid, low_lid])
    n = len(face)
    groups = [np.arange(n + 9 * i, n + 9 * (i + 1)) for i in range(2)]
    lids = [np.arange(n + 18 + 6 * i, n + 18 + 6 * (i + 1)) for i in range(2)]
    jaw_weight = np.clip((-6.0 - skin[:, 1]) / 0.6 + 0.5, 0.0, 1.0)
    jaw_weight[groups[0]] = 0.0
    jaw_weight[groups[1]] = 1.0
    fields = {"neutral": np.zeros_like(skin)}
    for i, name in enumerate(EMOTION_NAMES):
        r = np.random.default_rng(100 + i)
        centre = skin[r.integers(0, n)]
        direction = r.standard_normal(3)
        direction *= 0.6 / np.linalg.norm(direction)
        weight = np.exp(-np.sum((skin - centre) ** 2, axis=1) / (2 * 3.0**2))
        fields[name] = weight[:, None] * direction[None, :]
    grid = np.stack(np.meshgrid([-0.5, 0.0, 0.5], [-0.25, 0.25, 0.0], [0.0, 0.6, 1.2, 1.8], indexing="ij"), -1)
    tongue = grid.reshape(-1, 3) + np.array([0.0, -6.6, 4.0])
    jaw_keypoints = np.array([[0, -9, 6], [-4, -7, 3], [4, -7, 3], [-6, -4, -1], [6, -4, -1]], np.float64)
    return SyntheticHead(
        skin=skin.astype(np.float32),
        upper_lip=groups[0],
        lower_lip=groups[1],
        upper_lid=lids[0],
        lower_lid=lids[1],
        jaw_weight=jaw_weight,
        emotion_fields=fields,
        tongue=tongue.astype(np.float32),
        tongue_rigid=np.flatnonzero(tongue[:, 2] < 4.3),
        tongue_tip=np.flatnonzero(tongue[:, 2] > 5.5),
        jaw_keypoints=jaw_keypoints.astype(np.float32),
    )


def _rotate_x(points: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotate [..., 3] points about the x axis through PIVOT by ``angle`` (radians, broadcast)."""
    p = points - PIVOT
    c, s = np.cos(angle), np.sin(angle)
    y = c * p[..., 1] - s * p[..., 2]
    z = s * p[..., 1] + c * p[..., 2]
    x = np.broadcast_to(p[..., 0], y.shape)
    return np.stack([x, y, z], -1) + PIVOT


def skin_frames(head: SyntheticHead, opening: np.ndarray, blink: np.ndarray, emotion: str) -> np.ndarray:
    """Skin vertices [F, V, 3] for per-frame jaw opening and blink in [0, 1]."""
    angle = np.deg2rad(MAX_JAW_DEG) * opening[:, None] * head.jaw_weight[None, :]
    out = _rotate_x(head.skin.astype(np.float64)[None], angle)
    out[:, head.upper_lip, 1] += 0.15 * opening[:, None]
    out[:, head.upper_lid, 1] -= 1.0 * blink[:, None]
    out += head.emotion_fields[emotion][None]
    return out.astype(np.float32)


def tongue_frames(head: SyntheticHead, opening: np.ndarray, tip: np.ndarray) -> np.ndarray:
    """Tongue vertices [F, Vt, 3]: tip lift (deformation), then the jaw's rigid rotation."""
    pts = np.repeat(head.tongue.astype(np.float64)[None], len(opening), axis=0)
    pts[:, head.tongue_tip, 1] += 0.4 * tip[:, None]
    angle = np.deg2rad(MAX_JAW_DEG) * opening
    return _rotate_x(pts, angle[:, None]).astype(np.float32)


def jaw_deltas(head: SyntheticHead, opening: np.ndarray) -> np.ndarray:
    """Jaw keypoint deltas [F, 5, 3]."""
    kp = head.jaw_keypoints.astype(np.float64)
    moved = _rotate_x(kp[None], np.deg2rad(MAX_JAW_DEG) * opening[:, None])
    return (moved - kp).astype(np.float32)


def make_speech(seconds: float, rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[float, float, float, float]]]:
    """Tone-burst syllables: (16 kHz audio, [(start, duration, amplitude, f0)])."""
    n = int(round(seconds * SAMPLE_RATE))
    t = np.arange(n) / SAMPLE_RATE
    audio = rng.standard_normal(n) * 1e-3
    syllables = []
    start = 0.15
    while start < seconds - 0.3:
        dur = rng.uniform(0.12, 0.3)
        amp = rng.uniform(0.5, 1.0)
        f0 = float(rng.choice([110.0, 130.0, 190.0, 220.0]))
        syllables.append((start, dur, amp, f0))
        start += dur + rng.uniform(0.04, 0.2) + (0.4 if rng.uniform() < 0.15 else 0.0)
    for s, d, a, f0 in syllables:
        lo, hi = int(s * SAMPLE_RATE), min(int((s + d) * SAMPLE_RATE), n)
        tt = t[lo:hi] - s
        env = a * np.sin(np.pi * tt / d) ** 2
        tone = sum(np.sin(2 * np.pi * k * f0 * tt + k) / k for k in range(1, 7)) / 2.5
        audio[lo:hi] += 0.8 * env * tone
    return audio.astype(np.float32), syllables


def envelopes(times: np.ndarray, syllables: list[tuple[float, float, float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(mouth opening, tongue tip lift) at ``times``: the syllable envelopes; tip only on high pitch."""
    opening = np.zeros_like(times)
    tip = np.zeros_like(times)
    for s, d, a, f0 in syllables:
        inside = (times >= s) & (times < s + d)
        env = a * np.sin(np.pi * (times[inside] - s) / d) ** 2
        opening[inside] += env
        if f0 > 150:
            tip[inside] += env
    return opening, tip


def _write_cache(path: Path, frames: np.ndarray, fmt: str, fps: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "npy":
        np.save(path.with_suffix(".npy"), frames)
    elif fmt == "pc2":
        write_pc2(path.with_suffix(".pc2"), frames, sample_rate=fps)
    elif fmt == "maya":
        write_maya_cache(path.with_suffix(".xml"), frames, fps)
    else:
        raise ValueError(f"unknown cache format {fmt!r}: npy, pc2 or maya")


def _blendshapes(head: SyntheticHead) -> tuple[BlendshapeSet, BlendshapeSet]:
    rng = np.random.default_rng(7)
    skin_bs = make_blendshapes(rng, head.skin, ARKIT_NAMES, None)
    skin_bs.frontal_mask = np.arange(len(head.skin), dtype=np.int32)
    one = np.ones(1)
    skin_bs.deltas[ARKIT_NAMES.index("jawOpen")] = skin_frames(head, one, 0 * one, "neutral")[0] - head.skin
    for side, idx in (("Left", head.upper_lid[3:]), ("Right", head.upper_lid[:3])):
        delta = np.zeros_like(head.skin)
        delta[idx, 1] = -1.0
        skin_bs.deltas[ARKIT_NAMES.index(f"eyeBlink{side}")] = delta
    tongue_bs = make_blendshapes(rng, head.tongue, TONGUE_NAMES, None)
    tongue_bs.deltas[TONGUE_NAMES.index("tongueTipUp")] = tongue_frames(head, 0 * one, one)[0] - head.tongue
    return skin_bs, tongue_bs


def make_synthetic_dataset(
    root: str | os.PathLike,
    *,
    num_shots: int = 6,
    seconds: float = 2.5,
    seed: int = 0,
    emotions: tuple[str, ...] = DEFAULT_EMOTIONS,
    skin_format: str = "npy",
    tongue_format: str = "pc2",
    fps: float = 30.0,
    blendshapes: bool = True,
) -> Path:
    """Write a synthetic dataset in NVIDIA's layout under ``root`` and return ``root``.

    Shots are named ``synth_<emotion>_<i>`` so their emotion is inferred from the name.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    head = make_head()
    jaw_all, eyes_all = {}, {}
    for i in range(num_shots):
        emotion = emotions[i % len(emotions)]
        name = f"synth_{emotion}_{i:02d}"
        audio, syllables = make_speech(seconds, rng)
        (root / "audio").mkdir(parents=True, exist_ok=True)
        save_wav(root / "audio" / f"{name}.wav", audio)
        frames = num_frames(len(audio), fps)
        times = np.arange(frames) / fps
        opening, tip = envelopes(times, syllables)
        blink = np.zeros(frames)
        b0 = rng.integers(5, max(6, frames - 8))
        blink[b0 : b0 + 6] = np.sin(np.linspace(0, np.pi, 6))
        _write_cache(
            root / "cache" / "skin" / name / name, skin_frames(head, opening, blink, emotion), skin_format, fps
        )
        _write_cache(root / "cache" / "tongue" / name / name, tongue_frames(head, opening, tip), tongue_format, fps)
        jaw_all[name] = jaw_deltas(head, opening)
        phase = rng.uniform(0, 2 * np.pi, 2)
        look = 1.0 * np.sin(2 * np.pi * 0.3 * times[:, None] + phase[None, :])
        eyes_all[name] = np.stack([look, look], axis=1).astype(np.float32)
    geom = root / "geom"
    (geom / "skin").mkdir(parents=True, exist_ok=True)
    (geom / "tongue").mkdir(parents=True, exist_ok=True)
    np.save(geom / "skin" / "neutral_pose.npy", head.skin)
    lip_open = np.zeros_like(head.skin)
    lip_open[head.upper_lip, 1], lip_open[head.lower_lip, 1] = 0.2, -0.2
    np.save(geom / "skin" / "lip_open_pose_delta.npy", lip_open)
    eye_close = np.zeros_like(head.skin)
    eye_close[head.upper_lid, 1] = -1.0
    np.save(geom / "skin" / "eye_close_pose_delta.npy", eye_close)
    write_json(geom / "skin" / "lip_dist_vertex_list.json",
               {"upper": head.upper_lip.tolist(), "lower": head.lower_lip.tolist()})  # fmt: skip
    write_json(geom / "skin" / "eye_dist_vertex_list.json",
               {"upper": head.upper_lid.tolist(), "lower": head.lower_lid.tolist()})  # fmt: skip
    np.save(geom / "tongue" / "neutral_pose.npy", head.tongue)
    write_json(geom / "tongue" / "rigid_vertex_list.json", head.tongue_rigid.tolist())
    xform = root / "xform"
    xform.mkdir(parents=True, exist_ok=True)
    np.save(xform / "jaw_keypoints_neutral.npy", head.jaw_keypoints)
    write_npz(xform / "jaw_keypoints_cache_all.npz", jaw_all)
    write_npz(xform / "eye_rotations_all.npz", eyes_all)
    np.save(xform / "eye_saccade_rotations.npy", (rng.standard_normal((5000, 2)) * 0.5).astype(np.float32))
    if blendshapes:
        skin_bs, tongue_bs = _blendshapes(head)
        skin_bs.write(root / "bs_data" / "bs_skin.npz", root / "bs_data" / "bs_skin_config.json")
        tongue_bs.write(root / "bs_data" / "bs_tongue.npz", root / "bs_data" / "bs_tongue_config.json")
    return root


def quick_config(dataset_root: str | os.PathLike, work_dir: str | os.PathLike, **train: object):
    """A small, fast :class:`~facecast.train.config.TrainConfig` for the synthetic dataset (random, frozen
    1-layer Whisper encoder; batch 4). Keyword arguments override ``train`` settings.

    The learning rate is 2.5e-4: at 1e-3, Adam on batches of 4 overshoots and the fit swings between a quarter of
    the starting error and all of it within ten steps, so where a short run stops (set by the seed, and even by the
    CPU's rounding: AVX-512 or AVX2 kernels) decided whether it had learnt."""
    from facecast.train.config import parse_config

    work = Path(work_dir)
    section = {"out_dir": str(work / "train"), "batch_size": 4, "epochs": 100, "max_steps": 300, "lr": 2.5e-4,
               "lr_gamma": 0.99, "checkpoint_every": 100, "log_every": 10, "muted_frames_per_emotion": 30,
               "threads": 2}  # fmt: skip
    section.update(train)
    data = {
        "dataset": {"root": str(dataset_root), "actor": "synth"},
        "preprocess": {
            "cache_dir": str(work / "preproc"),
            "skin_prune_radius": 0.05,
            "tongue_prune_radius": 0.05,
            "tongue_components": 4,
        },  # fmt: skip
        "network": {"encoder": "whisper", "num_layers": 1, "freeze_encoder": True},
        "train": section,
        "deploy": {"out_dir": str(work / "deploy")},
    }
    return parse_config(data, "<synthetic>", work)
