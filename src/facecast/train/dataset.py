"""Read a training dataset in NVIDIA's Audio2Face-3D layout (spec 10.2) and check it.

```
<root>/audio/<shot>.wav
<root>/cache/skin/<shot>/<shot>.{npy,pc2,xml}     (or cache/skin/<shot>.{npy,pc2})
<root>/cache/tongue/<shot>/<shot>.{npy,pc2,xml}   (optional)
<root>/geom/skin/neutral_pose.npy, lip_open_pose_delta.npy, eye_close_pose_delta.npy,
                 lip_dist_vertex_list.json, eye_dist_vertex_list.json
<root>/geom/tongue/neutral_pose.npy, rigid_vertex_list.json                     (optional)
<root>/xform/jaw_keypoints_neutral.npy, jaw_keypoints_cache_all.npz {shot: [F,5,3]},
             eye_rotations_all.npz {shot: [F,2,2]}, eye_saccade_rotations.npy      (optional)
<root>/bs_data/bs_skin.npz, bs_skin_config.json, bs_tongue.npz, bs_tongue_config.json (optional)
```

Every problem found is reported at once, each naming the shot and the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from facecast.audio import load_audio
from facecast.constants import EMOTION_NAMES
from facecast.fileio import FileFormatError, read_json, read_npz
from facecast.pack import BlendshapeSet
from facecast.train.caches import CACHE_SUFFIXES, CacheError, cache_shape, read_cache

NEUTRAL = "neutral"
SHOT_EMOTIONS: tuple[str, ...] = (NEUTRAL, *EMOTION_NAMES)
"""Shot emotion labels: ``neutral`` (all-zero explicit emotion) and the 10 A2F emotions."""

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
DEFAULT_SACCADE_ROWS = 5000


class DatasetError(FileFormatError):
    """The dataset is incomplete or inconsistent; the message lists every problem, naming shot and file."""


def infer_emotion(shot_name: str) -> str:
    """The emotion label of a shot from its name: the first of :data:`SHOT_EMOTIONS` it contains, else neutral."""
    lowered = shot_name.lower()
    return next((e for e in SHOT_EMOTIONS if e in lowered), NEUTRAL)


def read_shots_file(path: Path) -> list[tuple[str, str | None]]:
    """Shots (name, optional emotion) from a text file (``name [emotion]`` per line) or a JSON list."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        raw = read_json(path)
        if isinstance(raw, dict):
            raw = raw.get("shots")
        if not isinstance(raw, list):
            raise DatasetError([f"{path}: expected a JSON list of shots (names or {{name, emotion}} objects)"])
        out: list[tuple[str, str | None]] = []
        for item in raw:
            if isinstance(item, str):
                out.append((item, None))
            elif isinstance(item, dict) and isinstance(item.get("name"), str):
                out.append((item["name"], item.get("emotion")))
            else:
                raise DatasetError([f"{path}: shot entry {item!r} is neither a name nor {{name, emotion}}"])
        return out
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DatasetError([f"{path}: shots file is missing"]) from None
    out = []
    for number, line in enumerate(lines, 1):
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        if len(parts) > 2:
            raise DatasetError([f"{path}:{number}: expected 'shot [emotion]', got {line.strip()!r}"])
        out.append((parts[0], parts[1] if len(parts) == 2 else None))
    return out


@dataclass
class ShotSource:
    """One shot: its files, emotion label and frame count."""

    name: str
    emotion: str
    audio_path: Path
    skin_path: Path
    tongue_path: Path | None
    num_frames: int
    audio_seconds: float


@dataclass
class Geometry:
    """The character's static data: neutrals, pose deltas, vertex lists, jaw keypoints and saccades."""

    skin_neutral: np.ndarray
    lip_open_pose_delta: np.ndarray
    eye_close_pose_delta: np.ndarray
    lip_dist_verts: dict[str, list[int]] | None
    eye_dist_verts: dict[str, list[int]] | None
    tongue_neutral: np.ndarray | None
    tongue_rigid_verts: list[int] | None
    jaw_neutral: np.ndarray
    saccade: np.ndarray

    @property
    def num_verts_skin(self) -> int:
        return int(self.skin_neutral.shape[0])


@dataclass
class A2FDataset:
    """A checked dataset; the per-shot arrays are read on demand."""

    root: Path
    fps: float
    shots: list[ShotSource]
    geometry: Geometry
    jaw: dict[str, np.ndarray] | None = None
    eyes: dict[str, np.ndarray] | None = None
    bs_skin: BlendshapeSet | None = None
    bs_tongue: BlendshapeSet | None = None
    files: list[Path] = field(default_factory=list)

    @property
    def has_tongue(self) -> bool:
        return self.geometry.tongue_neutral is not None

    def shot(self, name: str) -> ShotSource:
        for s in self.shots:
            if s.name == name:
                return s
        raise KeyError(f"no shot {name!r} in {self.root}")

    def skin(self, shot: ShotSource) -> np.ndarray:
        """Skin vertices [F, V, 3] of a shot."""
        return read_cache(shot.skin_path)

    def tongue(self, shot: ShotSource) -> np.ndarray | None:
        """Tongue vertices [F, Vt, 3], or None for a dataset without tongue."""
        return read_cache(shot.tongue_path) if shot.tongue_path is not None else None

    def jaw_deltas(self, shot: ShotSource) -> np.ndarray:
        """Jaw keypoint deltas [F, 15] (zeros without jaw data)."""
        if self.jaw is None:
            return np.zeros((shot.num_frames, 15), np.float32)
        return self.jaw[shot.name].reshape(len(self.jaw[shot.name]), 15).astype(np.float32)

    def eye_rotations(self, shot: ShotSource) -> np.ndarray:
        """Eye rotations [F, 4] (right x, right y, left x, left y; zeros without eye data)."""
        if self.eyes is None:
            return np.zeros((shot.num_frames, 4), np.float32)
        return self.eyes[shot.name].reshape(len(self.eyes[shot.name]), 4).astype(np.float32)

    def audio(self, shot: ShotSource) -> np.ndarray:
        """16 kHz mono float32 audio of a shot."""
        return load_audio(shot.audio_path)

    def fingerprint(self) -> list[tuple[str, int, int]]:
        """(path relative to the root, size, mtime in ns) of every input file, for cache keys."""
        out = []
        for path in sorted(set(self.files)):
            stat = path.stat()
            out.append((os.path.relpath(path, self.root), stat.st_size, stat.st_mtime_ns))
        return out


def _find_cache(folder: Path, shot: str) -> Path | None:
    for base in (folder / shot / shot, folder / shot):
        for suffix in CACHE_SUFFIXES:
            candidate = base.with_name(base.name + suffix)
            if candidate.is_file():
                return candidate
    return None


def _load_array(path: Path, shape_tail: tuple[int, ...], problems: list[str], files: list[Path]) -> np.ndarray | None:
    """An optional .npy file whose trailing dims must equal ``shape_tail`` (-1 = any)."""
    if not path.is_file():
        return None
    files.append(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        problems.append(f"{path}: not a readable .npy array ({exc})")
        return None
    tail = arr.shape[len(arr.shape) - len(shape_tail) :]
    if arr.ndim != len(shape_tail) or any(want not in (-1, got) for want, got in zip(shape_tail, tail, strict=True)):
        problems.append(f"{path}: expected shape {shape_tail} (-1 = any), got {arr.shape}")
        return None
    if arr.dtype.kind not in "fiu" or not np.all(np.isfinite(arr)):
        problems.append(f"{path}: must hold finite numbers")
        return None
    return arr.astype(np.float32)


def _vertex_lists(
    path: Path, keys: Sequence[str], num_verts: int, problems: list[str], files: list[Path]
) -> dict[str, list[int]] | None:
    if not path.is_file():
        return None
    files.append(path)
    try:
        raw = read_json(path)
    except FileFormatError as exc:
        problems.extend(exc.problems)
        return None
    if not isinstance(raw, dict) or any(not isinstance(raw.get(k), list) for k in keys):
        problems.append(f"{path}: expected an object with lists {', '.join(keys)}")
        return None
    lists = {k: raw[k] for k in keys}
    if len({len(v) for v in lists.values()}) != 1 or not lists[keys[0]]:
        problems.append(f"{path}: lists {', '.join(keys)} must be non-empty and of equal length")
        return None
    for k, v in lists.items():
        if any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < num_verts for i in v):
            problems.append(f"{path}: list {k!r} holds entries that are not vertex indices in 0..{num_verts - 1}")
            return None
    return lists


def _rigid_list(path: Path, num_verts: int, problems: list[str], files: list[Path]) -> list[int] | None:
    files.append(path)
    try:
        raw = read_json(path)
    except FileFormatError as exc:
        problems.extend(exc.problems)
        return None
    if isinstance(raw, dict):  # tolerate {"rigid": [...]} style files
        raw = next((v for v in raw.values() if isinstance(v, list)), None)
    if (
        not isinstance(raw, list)
        or len(raw) < 4
        or any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < num_verts for i in raw)
    ):
        problems.append(f"{path}: expected a list of at least 4 tongue vertex indices in 0..{num_verts - 1}")
        return None
    return list(raw)


def _read_geometry(root: Path, problems: list[str], files: list[Path]) -> Geometry | None:
    skin_dir, tongue_dir, xform = root / "geom" / "skin", root / "geom" / "tongue", root / "xform"
    neutral_path = skin_dir / "neutral_pose.npy"
    if not neutral_path.is_file():
        problems.append(f"{neutral_path}: skin neutral pose is missing")
        return None
    neutral = _load_array(neutral_path, (-1, 3), problems, files)
    if neutral is None:
        return None
    v = neutral.shape[0]
    lip_open = _load_array(skin_dir / "lip_open_pose_delta.npy", (v, 3), problems, files)
    eye_close = _load_array(skin_dir / "eye_close_pose_delta.npy", (v, 3), problems, files)
    lip = _vertex_lists(skin_dir / "lip_dist_vertex_list.json", ("upper", "lower"), v, problems, files)
    eye = _vertex_lists(skin_dir / "eye_dist_vertex_list.json", ("upper", "lower"), v, problems, files)
    tongue_neutral = _load_array(tongue_dir / "neutral_pose.npy", (-1, 3), problems, files)
    rigid = None
    if tongue_neutral is not None:
        rigid_path = tongue_dir / "rigid_vertex_list.json"
        if not rigid_path.is_file():
            problems.append(f"{rigid_path}: missing; a tongue needs its rigid vertex list for stabilisation")
        else:
            rigid = _rigid_list(rigid_path, tongue_neutral.shape[0], problems, files)
    jaw = _load_array(xform / "jaw_keypoints_neutral.npy", (5, 3), problems, files)
    saccade = _load_array(xform / "eye_saccade_rotations.npy", (-1, 2), problems, files)
    return Geometry(
        skin_neutral=neutral,
        lip_open_pose_delta=lip_open if lip_open is not None else np.zeros_like(neutral),
        eye_close_pose_delta=eye_close if eye_close is not None else np.zeros_like(neutral),
        lip_dist_verts=lip,
        eye_dist_verts=eye,
        tongue_neutral=tongue_neutral,
        tongue_rigid_verts=rigid,
        jaw_neutral=jaw if jaw is not None else np.zeros((5, 3), np.float32),
        saccade=saccade if saccade is not None else np.zeros((DEFAULT_SACCADE_ROWS, 2), np.float32),
    )


def _shot_list(
    root: Path, shots: Sequence[str] | None, shots_file: Path | None, emotions: Mapping[str, str]
) -> list[tuple[str, str]]:
    if shots_file is not None:
        listed = read_shots_file(shots_file)
    elif shots:
        listed = [(s, None) for s in shots]
    else:
        audio_dir = root / "audio"
        if not audio_dir.is_dir():
            raise DatasetError([f"{audio_dir}: audio folder is missing"])
        listed = [(p.stem, None) for p in sorted(audio_dir.iterdir()) if p.suffix.lower() in AUDIO_SUFFIXES]
        if not listed:
            raise DatasetError([f"{audio_dir}: no audio files (.wav, .flac, .ogg) found"])
    out = []
    seen: set[str] = set()
    for name, emotion in listed:
        if name in seen:
            raise DatasetError([f"{shots_file or root}: shot {name!r} is listed twice"])
        seen.add(name)
        label = emotions.get(name) or emotion or infer_emotion(name)
        if label not in SHOT_EMOTIONS:
            raise DatasetError([f"shot {name!r}: emotion {label!r} is not one of {', '.join(SHOT_EMOTIONS)}"])
        out.append((name, label))
    return out


def _per_shot_npz(path: Path, tail: tuple[int, ...], problems: list[str], files: list[Path]) -> dict | None:
    if not path.is_file():
        return None
    files.append(path)
    try:
        arrays = read_npz(path)
    except FileFormatError as exc:
        problems.extend(exc.problems)
        return None
    for name, arr in arrays.items():
        if arr.ndim != 1 + len(tail) or tuple(arr.shape[1:]) != tail:
            problems.append(
                f"{path}: shot {name!r} has shape {arr.shape}, expected [frames, {', '.join(map(str, tail))}]"
            )
    return arrays


def load_dataset(
    root: str | os.PathLike,
    *,
    fps: float = 30.0,
    shots: Sequence[str] | None = None,
    shots_file: str | os.PathLike | None = None,
    emotions: Mapping[str, str] | None = None,
    frame_tolerance: float = 3.0,
) -> A2FDataset:
    """Find and check every shot of the dataset at ``root``; raises :class:`DatasetError` listing all problems.

    A shot's cache must have about ``audio seconds x fps`` frames (within ``frame_tolerance`` frames), the same
    vertex count as its neutral, and matching jaw / eye / tongue frame counts.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError([f"{root}: dataset folder is missing"])
    problems: list[str] = []
    files: list[Path] = []
    geometry = _read_geometry(root, problems, files)
    shot_names = _shot_list(root, shots, Path(shots_file) if shots_file else None, emotions or {})
    jaw = _per_shot_npz(root / "xform" / "jaw_keypoints_cache_all.npz", (5, 3), problems, files)
    eyes = _per_shot_npz(root / "xform" / "eye_rotations_all.npz", (2, 2), problems, files)
    sources: list[ShotSource] = []
    for name, emotion in shot_names:
        source = _check_shot(root, name, emotion, fps, frame_tolerance, geometry, jaw, eyes, problems, files)
        if source is not None:
            sources.append(source)
    bs_skin = bs_tongue = None
    bs_dir = root / "bs_data"
    for part in ("skin", "tongue"):
        npz = bs_dir / f"bs_{part}.npz"
        if npz.is_file():
            config = bs_dir / f"bs_{part}_config.json"
            files.extend([npz] + ([config] if config.is_file() else []))
            try:
                bs = BlendshapeSet.read(npz, config if config.is_file() else None)
            except FileFormatError as exc:
                problems.extend(exc.problems)
                continue
            if part == "skin":
                bs_skin = bs
            else:
                bs_tongue = bs
    if problems:
        raise DatasetError(problems)
    return A2FDataset(root, float(fps), sources, geometry, jaw, eyes, bs_skin, bs_tongue, files)


def _check_shot(
    root: Path,
    name: str,
    emotion: str,
    fps: float,
    tolerance: float,
    geometry: Geometry | None,
    jaw: dict | None,
    eyes: dict | None,
    problems: list[str],
    files: list[Path],
) -> ShotSource | None:
    audio = next(
        (root / "audio" / f"{name}{s}" for s in AUDIO_SUFFIXES if (root / "audio" / f"{name}{s}").is_file()), None
    )
    skin = _find_cache(root / "cache" / "skin", name)
    where = f"shot {name!r}"
    if audio is None:
        problems.append(f"{where}: {root / 'audio' / (name + '.wav')} is missing")
    if skin is None:
        problems.append(f"{where}: no skin cache {root / 'cache' / 'skin' / name / name}.{{npy,pc2,xml}}")
    if audio is None or skin is None:
        return None
    files.extend([audio, skin] + ([skin.with_suffix(".mc")] if skin.suffix == ".xml" else []))
    try:
        seconds = float(sf.info(str(audio)).duration)
    except (RuntimeError, sf.LibsndfileError) as exc:
        problems.append(f"{where}: {audio} is not readable audio ({exc})")
        return None
    try:
        frames, verts = cache_shape(skin)
    except CacheError as exc:
        problems.append(f"{where}: {exc}")
        return None
    expected = seconds * fps
    if abs(frames - expected) > tolerance:
        problems.append(
            f"{where}: {skin} has {frames} frames but {audio.name} lasts {seconds:.3f} s = {expected:.1f} frames "
            f"at {fps:g} fps (tolerance {tolerance:g})"
        )
    if geometry is not None and verts != geometry.num_verts_skin:
        problems.append(
            f"{where}: {skin} has {verts} vertices, geom/skin/neutral_pose.npy has {geometry.num_verts_skin}"
        )
    tongue = None
    if geometry is not None and geometry.tongue_neutral is not None:
        tongue = _find_cache(root / "cache" / "tongue", name)
        if tongue is None:
            problems.append(f"{where}: no tongue cache {root / 'cache' / 'tongue' / name / name}.{{npy,pc2,xml}}")
        else:
            files.append(tongue)
            try:
                t_frames, t_verts = cache_shape(tongue)
            except CacheError as exc:
                problems.append(f"{where}: {exc}")
            else:
                if abs(t_frames - frames) > tolerance:
                    problems.append(f"{where}: {tongue} has {t_frames} frames, the skin cache has {frames}")
                if t_verts != geometry.tongue_neutral.shape[0]:
                    problems.append(
                        f"{where}: {tongue} has {t_verts} vertices, geom/tongue/neutral_pose.npy has "
                        f"{geometry.tongue_neutral.shape[0]}"
                    )
    for label, table, path in (
        ("jaw keypoints", jaw, "xform/jaw_keypoints_cache_all.npz"),
        ("eye rotations", eyes, "xform/eye_rotations_all.npz"),
    ):
        if table is None:
            continue
        if name not in table:
            problems.append(f"{where}: {root / path} has no {label} for this shot")
        elif abs(len(table[name]) - frames) > tolerance:
            problems.append(f"{where}: {root / path} has {len(table[name])} frames of {label}, the skin cache {frames}")
    return ShotSource(name, emotion, audio, skin, tongue, frames, seconds)
