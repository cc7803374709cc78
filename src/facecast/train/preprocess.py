"""Preprocessing (spec 10.3): PCA-compress skin and tongue, project every frame, write a reusable training cache.

The cache is two files in one folder, both written atomically: ``training_cache.npz`` (bases, per-frame targets
``[skin | tongue | jaw 15 | eyes 4]``, 16 kHz audio of every shot, static geometry) and ``training_cache.json``
(shots, sizes, vertex lists and the key). The key hashes the preprocessing settings and every input file's
path, size and modification time; an unchanged key means the cache is reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facecast.fileio import FileFormatError, read_json, read_npz, write_json, write_npz
from facecast.train.config import PreprocessConfig
from facecast.train.dataset import A2FDataset
from facecast.train.pca import PCABasis, fit_pca, prune_poses, stabilize

log = logging.getLogger(__name__)

CACHE_VERSION = 1
CACHE_NPZ = "training_cache.npz"
CACHE_JSON = "training_cache.json"
NO_TONGUE_SHAPE = (10, 520)
"""(components, vertices) of the all-zero tongue basis of a dataset without tongue (as NVIDIA's framework)."""


@dataclass
class ShotInfo:
    """Where one shot lives in the cache's concatenated arrays."""

    name: str
    emotion: str
    start: int
    frames: int
    audio_start: int
    audio_len: int


@dataclass
class TrainingData:
    """Everything training, evaluation and deployment need, without the raw caches."""

    actor: str
    fps: float
    skin: PCABasis
    tongue: PCABasis
    shots: list[ShotInfo]
    targets: np.ndarray
    """[frames of all shots, Ks + Kt + 15 + 4] float32."""
    audio: np.ndarray
    """16 kHz float32 samples of all shots, concatenated."""
    lip_open_pose_delta: np.ndarray
    eye_close_pose_delta: np.ndarray
    jaw_neutral: np.ndarray
    saccade: np.ndarray
    lip_dist_verts: dict[str, list[int]] | None = None
    eye_dist_verts: dict[str, list[int]] | None = None
    key: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def num_shapes_skin(self) -> int:
        return self.skin.num_components

    @property
    def num_shapes_tongue(self) -> int:
        return self.tongue.num_components

    @property
    def result_size(self) -> int:
        return int(self.targets.shape[1])

    def shot(self, name: str) -> ShotInfo:
        for s in self.shots:
            if s.name == name:
                return s
        raise KeyError(f"no shot {name!r} in the training cache (it has {', '.join(s.name for s in self.shots)})")

    def shot_targets(self, shot: ShotInfo) -> np.ndarray:
        return self.targets[shot.start : shot.start + shot.frames]

    def shot_audio(self, shot: ShotInfo) -> np.ndarray:
        return self.audio[shot.audio_start : shot.audio_start + shot.audio_len]

    def save(self, folder: Path) -> None:
        """Write the cache (npz first, then the json holding the key, so a partial write is never reused)."""
        folder = Path(folder)
        arrays = {"targets": self.targets, "audio": self.audio, "lip_open_pose_delta": self.lip_open_pose_delta,
                  "eye_close_pose_delta": self.eye_close_pose_delta, "jaw_neutral": self.jaw_neutral,
                  "saccade": self.saccade}  # fmt: skip
        for part, basis in (("skin", self.skin), ("tongue", self.tongue)):
            arrays[f"{part}_mean"] = basis.mean
            arrays[f"{part}_components"] = basis.components
            arrays[f"{part}_variances"] = basis.variances
        write_npz(folder / CACHE_NPZ, arrays)
        meta = {
            "version": CACHE_VERSION,
            "key": self.key,
            "actor": self.actor,
            "fps": self.fps,
            "explained": {"skin": self.skin.explained, "tongue": self.tongue.explained},
            "shots": [dataclasses.asdict(s) for s in self.shots],
            "lip_dist_verts": self.lip_dist_verts,
            "eye_dist_verts": self.eye_dist_verts,
            "extra": self.extra,
        }
        write_json(folder / CACHE_JSON, meta)

    @classmethod
    def load(cls, folder: Path) -> TrainingData:
        """Read a cache written by :meth:`save`."""
        folder = Path(folder)
        meta = read_json(folder / CACHE_JSON)
        if not isinstance(meta, dict) or meta.get("version") != CACHE_VERSION:
            raise FileFormatError([f"{folder / CACHE_JSON}: not a facecast training cache (version {CACHE_VERSION})"])
        arrays = read_npz(folder / CACHE_NPZ)
        try:
            bases = {
                part: PCABasis(
                    arrays[f"{part}_mean"],
                    arrays[f"{part}_components"],
                    arrays[f"{part}_variances"],
                    float(meta["explained"][part]),
                )
                for part in ("skin", "tongue")
            }
            return cls(
                actor=meta["actor"],
                fps=float(meta["fps"]),
                skin=bases["skin"],
                tongue=bases["tongue"],
                shots=[ShotInfo(**s) for s in meta["shots"]],
                targets=arrays["targets"],
                audio=arrays["audio"],
                lip_open_pose_delta=arrays["lip_open_pose_delta"],
                eye_close_pose_delta=arrays["eye_close_pose_delta"],
                jaw_neutral=arrays["jaw_neutral"],
                saccade=arrays["saccade"],
                lip_dist_verts=meta.get("lip_dist_verts"),
                eye_dist_verts=meta.get("eye_dist_verts"),
                key=meta.get("key", ""),
                extra=meta.get("extra", {}),
            )
        except (KeyError, TypeError) as exc:
            raise FileFormatError([f"{folder}: training cache is incomplete ({exc})"]) from None


def cache_key(dataset: A2FDataset, cfg: PreprocessConfig, actor: str) -> str:
    """Hash of the settings and the inputs (path, size, mtime of every file)."""
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "cache_dir"}
    payload = {
        "version": CACHE_VERSION,
        "settings": settings,
        "actor": actor,
        "fps": dataset.fps,
        "shots": [(s.name, s.emotion) for s in dataset.shots],
        "files": dataset.fingerprint(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _progress(items, desc: str):
    if os.isatty(2):
        from tqdm import tqdm

        return tqdm(items, desc=desc, unit="shot")
    return items


def _skin_basis(dataset: A2FDataset, cfg: PreprocessConfig) -> PCABasis:
    neutral = dataset.geometry.skin_neutral
    selected = []
    for shot in _progress(dataset.shots, "skin poses"):
        frames = dataset.skin(shot)
        keep = prune_poses((frames - neutral).reshape(len(frames), -1), cfg.skin_prune_radius, cfg.prune_stride)
        selected.append(frames[keep])
    poses = np.concatenate(selected)
    log.info("skin PCA on %d of %d frames", len(poses), sum(s.num_frames for s in dataset.shots))
    return fit_pca(poses, neutral, cfg.skin_variance, cfg.skin_components)


def _tongue_basis(dataset: A2FDataset, cfg: PreprocessConfig) -> PCABasis:
    geo = dataset.geometry
    if geo.tongue_neutral is None:
        k, v = cfg.tongue_components or NO_TONGUE_SHAPE[0], NO_TONGUE_SHAPE[1]
        return PCABasis(np.zeros((v, 3), np.float32), np.zeros((k, v, 3), np.float32), np.zeros(k, np.float32), 1.0)
    selected = []
    for shot in _progress(dataset.shots, "tongue poses"):
        frames = stabilize(dataset.tongue(shot), geo.tongue_neutral, geo.tongue_rigid_verts)
        flat = (frames - geo.tongue_neutral).reshape(len(frames), -1)
        selected.append(frames[prune_poses(flat, cfg.tongue_prune_radius, cfg.prune_stride)])
    return fit_pca(np.concatenate(selected), geo.tongue_neutral, cfg.tongue_variance, cfg.tongue_components)


def build_training_data(dataset: A2FDataset, cfg: PreprocessConfig, actor: str) -> TrainingData:
    """Fit the bases and project every shot (no caching; see :func:`preprocess`)."""
    geo = dataset.geometry
    skin = _skin_basis(dataset, cfg)
    tongue = _tongue_basis(dataset, cfg)
    shots, targets, audio = [], [], []
    row = sample = 0
    for shot in _progress(dataset.shots, "projecting"):
        parts = [skin.project(dataset.skin(shot))]
        tongue_frames = dataset.tongue(shot)
        if tongue_frames is not None:
            parts.append(tongue.project(stabilize(tongue_frames, geo.tongue_neutral, geo.tongue_rigid_verts)))
        else:
            parts.append(np.zeros((len(parts[0]), tongue.num_components), np.float32))
        parts += [dataset.jaw_deltas(shot), dataset.eye_rotations(shot)]
        n = min(len(p) for p in parts)
        targets.append(np.concatenate([p[:n] for p in parts], axis=1).astype(np.float32))
        wave = dataset.audio(shot)
        audio.append(wave)
        shots.append(ShotInfo(shot.name, shot.emotion, row, n, sample, len(wave)))
        row += n
        sample += len(wave)
    return TrainingData(
        actor=actor,
        fps=dataset.fps,
        skin=skin,
        tongue=tongue,
        shots=shots,
        targets=np.concatenate(targets),
        audio=np.concatenate(audio).astype(np.float32),
        lip_open_pose_delta=geo.lip_open_pose_delta,
        eye_close_pose_delta=geo.eye_close_pose_delta,
        jaw_neutral=geo.jaw_neutral,
        saccade=geo.saccade,
        lip_dist_verts=geo.lip_dist_verts,
        eye_dist_verts=geo.eye_dist_verts,
        extra={"has_tongue": dataset.has_tongue, "dataset_root": str(dataset.root)},
    )


def preprocess(dataset: A2FDataset, cfg: PreprocessConfig, actor: str = "actor") -> TrainingData:
    """The training data of ``dataset``: read from ``cfg.cache_dir`` when its key matches, else built and saved."""
    folder = Path(cfg.cache_dir)
    key = cache_key(dataset, cfg, actor)
    if (folder / CACHE_JSON).is_file() and (folder / CACHE_NPZ).is_file():
        try:
            cached = TrainingData.load(folder)
        except FileFormatError:
            cached = None
        if cached is not None and cached.key == key:
            log.info("reusing the training cache in %s", folder)
            return cached
    data = build_training_data(dataset, cfg, actor)
    data.key = key
    data.save(folder)
    return data


def load_training_data(folder: str | os.PathLike) -> TrainingData:
    """Read an existing training cache."""
    return TrainingData.load(Path(folder))
