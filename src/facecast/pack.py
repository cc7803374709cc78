"""The Audio2Face-3D regression model file set on disk: read, validate, write.

A pack is a folder holding ``model.json`` and the files it names (spec section 4): ``network_info.json``,
``network.onnx``, ``model_config.json``, ``model_data.npz``, ``implicit_emo_db.npz``, ``bs_skin.npz`` /
``bs_skin_config.json``, ``bs_tongue.npz`` / ``bs_tongue_config.json`` and ``trt_info.json``. NVIDIA's
released folders load unchanged, and facecast writes the very same layout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facecast.constants import (
    BUFFER_LEN,
    BUFFER_OFS,
    EMOTION_NAMES,
    EYES_RESULT_SIZE,
    IMPLICIT_EMOTION_LEN,
    JAW_RESULT_SIZE,
    SAMPLE_RATE,
)
from facecast.fileio import FileFormatError, copy_file, read_json, read_npz, write_json, write_npz
from facecast.timing import check_frames_per_pass

MODEL_JSON = "model.json"
DEFAULT_FILES = {
    "networkInfoPath": "network_info.json",
    "networkPath": "network.onnx",
    "modelConfigPath": "model_config.json",
    "modelDataPath": "model_data.npz",
    "emotionDatabasePath": "implicit_emo_db.npz",
}
REQUIRED_MODEL_DATA = ("shapes_matrix_skin", "shapes_mean_skin", "lip_open_pose_delta", "eye_close_pose_delta",
                       "shapes_matrix_tongue", "shapes_mean_tongue", "neutral_jaw", "saccade_rot_matrix")  # fmt: skip


class PackError(FileFormatError):
    """A model pack is missing, unreadable or inconsistent; the message lists every problem found."""


def resolve_inside(root: Path, relative: str, what: str) -> Path:
    """Resolve ``relative`` against the pack folder, refusing anything that lands outside it."""
    if not isinstance(relative, str) or not relative:
        raise PackError([f"{root / MODEL_JSON}: {what} must be a non-empty relative path, got {relative!r}"])
    candidate = Path(relative)
    if candidate.is_absolute():
        raise PackError([f"{root / MODEL_JSON}: {what} is an absolute path ({relative}); packs use relative paths"])
    resolved = (root / candidate).resolve()
    try:
        resolved.relative_to(root.resolve())
    except ValueError:
        raise PackError([f"{root / MODEL_JSON}: {what} ({relative}) points outside the pack folder"]) from None
    return resolved


# ----------------------------------------------------------------------------------------------------
# network_info.json


@dataclass
class NetworkInfo:
    """``network_info.json`` of a regression model."""

    actor: str
    num_shapes_skin: int
    num_verts_skin: int
    num_shapes_tongue: int
    num_verts_tongue: int
    version: str = "2.3"
    implicit_emotion_len: int = IMPLICIT_EMOTION_LEN
    explicit_emotions: list[str] = field(default_factory=lambda: list(EMOTION_NAMES))
    default_emotion: list[float] = field(default_factory=lambda: [0.0] * len(EMOTION_NAMES))
    result_jaw_size: int = JAW_RESULT_SIZE
    result_eyes_size: int = EYES_RESULT_SIZE
    buffer_len: int = BUFFER_LEN
    buffer_ofs: int = BUFFER_OFS
    samplerate: int = SAMPLE_RATE

    @property
    def result_size(self) -> int:
        """Floats per frame in the network's ``result``."""
        return self.num_shapes_skin + self.num_shapes_tongue + self.result_jaw_size + self.result_eyes_size

    @property
    def emotion_len(self) -> int:
        return self.implicit_emotion_len + len(self.explicit_emotions)

    @property
    def lookahead_samples(self) -> int:
        """Audio the network needs after a frame's time before that frame can run: the look-ahead's one definition
        (engine, streams, server, bench)."""
        return self.buffer_len - self.buffer_ofs

    @classmethod
    def from_json(cls, obj: Any, source: str = "network_info.json") -> NetworkInfo:
        problems: list[str] = []

        def get(section: dict, key: str, kind: type, where: str):
            if not isinstance(section, dict) or key not in section:
                problems.append(f"{source}: {where}{key} is missing")
                return None
            value = section[key]
            if kind is int and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                problems.append(f"{source}: {where}{key} must be a non-negative integer, got {value!r}")
                return None
            if kind is str and not isinstance(value, str):
                problems.append(f"{source}: {where}{key} must be a string, got {value!r}")
                return None
            if kind is list and not isinstance(value, list):
                problems.append(f"{source}: {where}{key} must be a list, got {type(value).__name__}")
                return None
            return value

        if not isinstance(obj, dict):
            raise PackError([f"{source}: top level must be a JSON object"])
        ident, params, audio = (obj.get(k, {}) for k in ("id", "params", "audio_params"))
        for key, section in (("id", ident), ("params", params), ("audio_params", audio)):
            if not isinstance(section, dict):
                raise PackError([f"{source}: {key} must be a JSON object, got {type(section).__name__}"])
        if ident.get("type") != "regression":
            problems.append(f"{source}: id.type must be 'regression', got {ident.get('type')!r}")
        if ident.get("output", "geometry") != "geometry":
            problems.append(f"{source}: id.output must be 'geometry', got {ident.get('output')!r}")
        values = {
            "actor": get(ident, "actor", str, "id."),
            "version": str(ident.get("version", "2.3")),
            "implicit_emotion_len": get(params, "implicit_emotion_len", int, "params."),
            "explicit_emotions": get(params, "explicit_emotions", list, "params."),
            "default_emotion": get(params, "default_emotion", list, "params."),
            "num_shapes_skin": get(params, "num_shapes_skin", int, "params."),
            "num_verts_skin": get(params, "num_verts_skin", int, "params."),
            "num_shapes_tongue": get(params, "num_shapes_tongue", int, "params."),
            "num_verts_tongue": get(params, "num_verts_tongue", int, "params."),
            "result_jaw_size": get(params, "result_jaw_size", int, "params."),
            "result_eyes_size": get(params, "result_eyes_size", int, "params."),
            "buffer_len": get(audio, "buffer_len", int, "audio_params."),
            "buffer_ofs": get(audio, "buffer_ofs", int, "audio_params."),
            "samplerate": get(audio, "samplerate", int, "audio_params."),
        }
        emotions, default = values["explicit_emotions"], values["default_emotion"]
        if emotions is not None and not all(isinstance(e, str) for e in emotions):
            problems.append(f"{source}: params.explicit_emotions must be a list of names")
        if emotions is not None and default is not None and len(default) != len(emotions):
            problems.append(
                f"{source}: params.default_emotion has {len(default)} values but params.explicit_emotions "
                f"names {len(emotions)}"
            )
        if values["result_jaw_size"] not in (None, JAW_RESULT_SIZE):
            problems.append(f"{source}: params.result_jaw_size must be {JAW_RESULT_SIZE}")
        if values["result_eyes_size"] not in (None, EYES_RESULT_SIZE):
            problems.append(f"{source}: params.result_eyes_size must be {EYES_RESULT_SIZE}")
        if values["samplerate"] not in (None, SAMPLE_RATE):
            problems.append(f"{source}: audio_params.samplerate must be {SAMPLE_RATE}, got {values['samplerate']}")
        if values["buffer_len"] and values["buffer_ofs"] is not None and values["buffer_ofs"] > values["buffer_len"]:
            problems.append(f"{source}: audio_params.buffer_ofs is larger than buffer_len")
        if problems:
            raise PackError(problems)
        return cls(**values)

    def to_json(self) -> dict:
        return {
            "id": {"type": "regression", "actor": self.actor, "version": self.version, "output": "geometry"},
            "params": {
                "implicit_emotion_len": self.implicit_emotion_len,
                "explicit_emotions": list(self.explicit_emotions),
                "default_emotion": list(self.default_emotion),
                "identities": [self.actor],
                "num_shapes_skin": self.num_shapes_skin,
                "num_verts_skin": self.num_verts_skin,
                "num_shapes_tongue": self.num_shapes_tongue,
                "num_verts_tongue": self.num_verts_tongue,
                "result_jaw_size": self.result_jaw_size,
                "result_eyes_size": self.result_eyes_size,
            },
            "audio_params": {
                "buffer_len": self.buffer_len,
                "buffer_ofs": self.buffer_ofs,
                "samplerate": self.samplerate,
            },
        }


# ----------------------------------------------------------------------------------------------------
# blendshape files


@dataclass
class BlendshapeSet:
    """One ``bs_*.npz`` + ``bs_*_config.json`` pair: a neutral, one delta per pose, the solver settings."""

    names: list[str]
    neutral: np.ndarray
    deltas: np.ndarray
    config: dict = field(default_factory=dict)
    frontal_mask: np.ndarray | None = None
    rig_version: str = ""

    @property
    def num_poses(self) -> int:
        return len(self.names)

    @classmethod
    def read(cls, npz_path: Path, config_path: Path | None) -> BlendshapeSet:
        arrays = read_npz(npz_path)
        problems: list[str] = []
        if "poseNames" not in arrays:
            raise PackError([f"{npz_path}: poseNames is missing"])
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in arrays["poseNames"].tolist()]
        if not names or names[0] != "neutral":
            problems.append(f"{npz_path}: poseNames[0] must be 'neutral', got {names[:1]}")
        neutral = arrays.get("neutral")
        if neutral is None or neutral.ndim != 2 or neutral.shape[1] != 3:
            problems.append(f"{npz_path}: neutral must be a [V, 3] array")
            raise PackError(problems)
        deltas = []
        for name in names[1:]:
            delta = arrays.get(name)
            if delta is None:
                problems.append(f"{npz_path}: pose {name!r} is listed in poseNames but has no array")
            elif delta.shape != neutral.shape:
                problems.append(f"{npz_path}: pose {name!r} has shape {delta.shape}, neutral has {neutral.shape}")
            else:
                deltas.append(delta.astype(np.float32))
        mask = arrays.get("frontalMask")
        if mask is not None:
            mask = mask.astype(np.int64).reshape(-1)
            if mask.size and (mask.min() < 0 or mask.max() >= neutral.shape[0]):
                problems.append(f"{npz_path}: frontalMask has vertex indices outside 0..{neutral.shape[0] - 1}")
        config: dict = {}
        if config_path is not None:
            raw = read_json(config_path)
            config = raw.get("blendshape_params", raw) if isinstance(raw, dict) else None
            if not isinstance(config, dict):
                raise PackError([f"{config_path}: expected a JSON object with a blendshape_params object"])
            num = config.get("numPoses")
            if num is not None and num != len(names) - 1:
                problems.append(
                    f"{config_path}: blendshape_params.numPoses is {num}, {npz_path.name} has {len(names) - 1} poses"
                )
            for key in (
                "bsSolveActivePoses",
                "bsSolveCancelPoses",
                "bsSolveSymmetryPoses",
                "bsWeightMultipliers",
                "bsWeightOffsets",
            ):
                if key in config and not isinstance(config[key], list):
                    problems.append(f"{config_path}: blendshape_params.{key} must be a list")
                elif key in config and len(config[key]) != len(names) - 1:
                    problems.append(
                        f"{config_path}: blendshape_params.{key} has {len(config[key])} values for "
                        f"{len(names) - 1} poses"
                    )
        if problems:
            raise PackError(problems)
        rig = arrays.get("rig_version")
        return cls(
            names=names[1:],
            neutral=neutral.astype(np.float32),
            deltas=np.stack(deltas) if deltas else np.zeros((0,) + neutral.shape, np.float32),
            config=config,
            frontal_mask=mask,
            rig_version=str(rig.tolist()) if rig is not None else "",
        )

    def write(self, npz_path: Path, config_path: Path) -> None:
        arrays: dict[str, np.ndarray] = {
            "poseNames": np.array(["neutral", *self.names], dtype="S"),
            "neutral": self.neutral.astype(np.float32),
            "rig_version": np.array(self.rig_version or "facecast-1.0"),
        }
        for name, delta in zip(self.names, self.deltas, strict=True):
            arrays[name] = delta.astype(np.float32)
        if self.frontal_mask is not None:
            arrays["frontalMask"] = self.frontal_mask.astype(np.int32)
        write_npz(npz_path, arrays)
        config = {"numPoses": len(self.names), **{k: v for k, v in self.config.items() if k != "numPoses"}}
        write_json(config_path, {"blendshape_params": config})


# ----------------------------------------------------------------------------------------------------
# the pack


@dataclass
class ModelPack:
    """Everything in one regression model folder, validated."""

    root: Path
    network_info: NetworkInfo
    network_path: Path
    model_config: dict
    model_data: dict[str, np.ndarray]
    emotion_db: dict[str, np.ndarray]
    skin_blendshapes: BlendshapeSet | None = None
    tongue_blendshapes: BlendshapeSet | None = None
    trt_info: dict | None = None
    chunk_network_path: Path | None = None
    """facecast's extension: a graph that animates several frames from one encoder pass (``chunkNetworkPath``)."""
    chunk_frames: int = 0
    """The most frames per pass that graph was trained for (``chunkFrames``); 0 without one."""

    @property
    def actor(self) -> str:
        return self.network_info.actor

    @property
    def implicit_emotion(self) -> np.ndarray:
        """The implicit emotion vector the model config selects (``source_shot`` / ``source_frame``)."""
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in self.emotion_db["emo_spec_names"].tolist()]
        shot = self.model_config.get("source_shot", names[0] if names else "")
        frame = self.model_config.get("source_frame", 0)
        if isinstance(frame, bool) or not isinstance(frame, int):
            raise PackError([f"{self.root / 'model_config.json'}: source_frame must be an integer, got {frame!r}"])
        if shot not in names:
            raise PackError(
                [
                    f"{self.root / 'model_config.json'}: source_shot {shot!r} is not in the emotion "
                    f"database (it has {', '.join(names[:5])}{'...' if len(names) > 5 else ''})"
                ]
            )
        i = names.index(shot)
        start, size = int(self.emotion_db["emo_spec_start"][i]), int(self.emotion_db["emo_spec_size"][i])
        if not 0 <= frame < size:
            raise PackError(
                [f"{self.root / 'model_config.json'}: source_frame {frame} is outside shot {shot!r} (0..{size - 1})"]
            )
        return self.emotion_db["emo_db"][start + frame].astype(np.float32)

    def summary(self) -> dict:
        """The facts ``facecast info`` prints."""
        info = self.network_info
        size = self.network_path.stat().st_size if self.network_path.exists() else 0
        skin_bs = self.skin_blendshapes
        tongue_bs = self.tongue_blendshapes
        return {
            "path": str(self.root),
            "actor": info.actor,
            "version": info.version,
            "network": {"file": self.network_path.name, "bytes": size, "result_size": info.result_size},
            "skin": {"pca_shapes": info.num_shapes_skin, "vertices": info.num_verts_skin},
            "tongue": {"pca_shapes": info.num_shapes_tongue, "vertices": info.num_verts_tongue},
            "emotions": list(info.explicit_emotions),
            "implicit_emotion": {
                "length": info.implicit_emotion_len,
                "frames": int(self.emotion_db["emo_db"].shape[0]),
                "source_shot": self.model_config.get("source_shot"),
                "source_frame": self.model_config.get("source_frame"),
            },
            "blendshapes": {
                "skin": skin_bs.num_poses if skin_bs else 0,
                "tongue": tongue_bs.num_poses if tongue_bs else 0,
            },
            "window_samples": info.buffer_len,
            "lookahead_ms": 1000.0 * info.lookahead_samples / info.samplerate,
            "chunk_network": {"file": self.chunk_network_path.name, "frames_per_pass": self.chunk_frames}
            if self.chunk_network_path is not None
            else None,  # fmt: skip
        }


def _check_model_data(pack_files: dict[str, Path], info: NetworkInfo, data: dict[str, np.ndarray]) -> list[str]:
    src = pack_files["modelDataPath"]
    problems = [f"{src}: array {name} is missing" for name in REQUIRED_MODEL_DATA if name not in data]
    if problems:
        return problems

    def expect(name: str, shape: tuple[int, ...]) -> None:
        if tuple(data[name].shape) != shape:
            problems.append(
                f"{src}: {name} has shape {tuple(data[name].shape)}, expected {shape} "
                f"(from {pack_files['networkInfoPath'].name})"
            )

    ks, vs, kt, vt = info.num_shapes_skin, info.num_verts_skin, info.num_shapes_tongue, info.num_verts_tongue
    expect("shapes_matrix_skin", (ks, vs, 3))
    for name in ("shapes_mean_skin", "lip_open_pose_delta", "eye_close_pose_delta"):
        expect(name, (vs, 3))
    expect("shapes_matrix_tongue", (kt, vt, 3))
    expect("shapes_mean_tongue", (vt, 3))
    expect("neutral_jaw", (info.result_jaw_size // 3, 3))
    sac = data["saccade_rot_matrix"]
    if sac.ndim != 2 or sac.shape[1] != 2 or sac.shape[0] < 1:
        problems.append(f"{src}: saccade_rot_matrix has shape {sac.shape}, expected [N, 2]")
    for name, array in data.items():
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            problems.append(f"{src}: {name} holds NaN or infinite values")
    return problems


def _check_emotion_db(path: Path, info: NetworkInfo, db: dict[str, np.ndarray]) -> list[str]:
    missing = [n for n in ("emo_db", "emo_spec_names", "emo_spec_start", "emo_spec_size") if n not in db]
    if missing:
        return [f"{path}: array {n} is missing" for n in missing]
    problems = []
    for name in ("emo_spec_names", "emo_spec_start", "emo_spec_size"):
        if db[name].ndim != 1:
            problems.append(f"{path}: {name} must be a 1-D array, got shape {db[name].shape}")
    for name in ("emo_spec_start", "emo_spec_size"):
        if db[name].dtype.kind not in "iu":
            problems.append(f"{path}: {name} must hold integers, got {db[name].dtype}")
    if problems:
        return problems
    emo = db["emo_db"]
    if emo.ndim != 2 or emo.shape[1] != info.implicit_emotion_len:
        problems.append(f"{path}: emo_db has shape {emo.shape}, expected [frames, {info.implicit_emotion_len}]")
    n = len(db["emo_spec_names"])
    if len(db["emo_spec_start"]) != n or len(db["emo_spec_size"]) != n:
        problems.append(f"{path}: emo_spec_names, emo_spec_start and emo_spec_size differ in length")
    elif n and emo.ndim == 2:
        ends = db["emo_spec_start"].astype(np.int64) + db["emo_spec_size"].astype(np.int64)
        if db["emo_spec_start"].min() < 0 or ends.max() > emo.shape[0]:
            problems.append(f"{path}: a shot's frames run outside emo_db's {emo.shape[0]} rows")
    return problems


def load_pack(path: str | os.PathLike) -> ModelPack:
    """Read and validate a pack folder (or its ``model.json``); every problem found is reported at once."""
    path = Path(path).expanduser()
    model_json = path if path.is_file() else path / MODEL_JSON
    if not path.exists():
        raise PackError([f"{path}: no such model folder"])
    root = model_json.parent
    try:
        spec = read_json(model_json)
    except FileFormatError as exc:
        raise PackError(exc.problems) from None
    if not isinstance(spec, dict):
        raise PackError([f"{model_json}: top level must be a JSON object"])
    if "modelConfigPaths" in spec:
        raise PackError([f"{model_json}: a multi-identity (diffusion) model; facecast runs regression models"])
    files = {key: resolve_inside(root, spec.get(key, default), key) for key, default in DEFAULT_FILES.items()}
    network = files["networkPath"]
    if network.suffix == ".trt" or not network.exists():
        onnx_path = network.with_suffix(".onnx")
        if onnx_path.exists():  # NVIDIA's model.json names a TensorRT engine that is built locally
            files["networkPath"] = onnx_path
    problems: list[str] = []
    info = None
    try:
        info = NetworkInfo.from_json(read_json(files["networkInfoPath"]), str(files["networkInfoPath"]))
    except FileFormatError as exc:
        problems.extend(exc.problems)
    if not files["networkPath"].is_file():
        problems.append(f"{files['networkPath']}: network file is missing")

    def attempt(fn, *args):
        try:
            return fn(*args)
        except FileFormatError as exc:
            problems.extend(exc.problems)
            return None

    config_raw = attempt(read_json, files["modelConfigPath"])
    model_config = {}
    if config_raw is not None:
        if isinstance(config_raw, dict) and isinstance(config_raw.get("config", config_raw), dict):
            model_config = config_raw.get("config", config_raw)
        else:
            problems.append(f"{files['modelConfigPath']}: expected an object with a 'config' object")
    data = attempt(read_npz, files["modelDataPath"]) or {}
    db = attempt(read_npz, files["emotionDatabasePath"]) or {}
    if info is not None and data:
        problems.extend(_check_model_data(files, info, data))
    if info is not None and db:
        problems.extend(_check_emotion_db(files["emotionDatabasePath"], info, db))

    blendshapes: dict[str, BlendshapeSet | None] = {"skin": None, "tongue": None}
    bs_paths = spec.get("blendshapePaths") or {}
    if not isinstance(bs_paths, dict):
        problems.append(f"{model_json}: blendshapePaths must be a JSON object")
        bs_paths = {}
    for part, bs_spec in bs_paths.items():
        if part not in blendshapes or not isinstance(bs_spec, dict):
            problems.append(f"{model_json}: blendshapePaths.{part} must be 'skin' or 'tongue' with config and data")
            continue
        try:
            data_path = resolve_inside(root, bs_spec.get("data", ""), f"blendshapePaths.{part}.data")
            cfg_path = (
                resolve_inside(root, bs_spec["config"], f"blendshapePaths.{part}.config")
                if bs_spec.get("config")
                else None
            )
            bs = BlendshapeSet.read(data_path, cfg_path)
        except FileFormatError as exc:
            problems.extend(exc.problems)
            continue
        verts = (info.num_verts_skin if part == "skin" else info.num_verts_tongue) if info else None
        if verts is not None and bs.neutral.shape[0] != verts:
            problems.append(
                f"{data_path}: neutral has {bs.neutral.shape[0]} vertices, network_info.json "
                f"num_verts_{part} is {verts}"
            )
        blendshapes[part] = bs
    chunk_path, chunk_frames = None, 0
    if spec.get("chunkNetworkPath"):
        try:
            chunk_path = resolve_inside(root, str(spec["chunkNetworkPath"]), "chunkNetworkPath")
        except FileFormatError as exc:
            problems.extend(exc.problems)
        else:
            if not chunk_path.is_file():
                problems.append(f"{chunk_path}: chunk network file is missing")
        try:  # the most frames per pass the graph was trained for: the wire name stays in the pack's JSON
            chunk_frames = check_frames_per_pass(spec.get("chunkFrames"), "chunkFrames")
        except ValueError as exc:
            problems.append(f"{model_json}: {exc}")
    trt_info = None
    trt_path = root / "trt_info.json"
    if trt_path.exists():
        trt_info = attempt(read_json, trt_path)
    if problems:
        raise PackError(problems)
    return ModelPack(
        root=root,
        network_info=info,
        network_path=files["networkPath"],
        model_config=model_config,
        model_data=data,
        emotion_db=db,
        skin_blendshapes=blendshapes["skin"],
        tongue_blendshapes=blendshapes["tongue"],
        trt_info=trt_info,
        chunk_network_path=chunk_path,
        chunk_frames=chunk_frames,
    )


def default_trt_info(max_batch: int = 128, opt_batch: int = 10) -> dict:
    """The ``trt_info.json`` NVIDIA's training framework writes (profiles for trtexec)."""
    return {
        "trt_build_param": {
            "cuda_in_graphics": ["--memPoolSize=tacticSharedMem:0.046875"],
            "batch": [
                "--minShapes=input:1x1x8320,emotion:1x1x26",
                "--optShapes=input:{OPT_BATCH_SIZE}x1x8320,emotion:{OPT_BATCH_SIZE}x1x26",
                "--maxShapes=input:{MAX_BATCH_SIZE}x1x8320,emotion:{MAX_BATCH_SIZE}x1x26",
            ],
        },
        "defaults": {"MAX_BATCH_SIZE": max_batch, "OPT_BATCH_SIZE": opt_batch},
    }


def write_pack(
    root: str | os.PathLike,
    *,
    network_info: NetworkInfo,
    network_onnx: str | os.PathLike,
    model_config: dict,
    model_data: dict[str, np.ndarray],
    emotion_db: dict[str, np.ndarray],
    skin_blendshapes: BlendshapeSet | None = None,
    tongue_blendshapes: BlendshapeSet | None = None,
    trt_info: dict | None = None,
    chunk_onnx: str | os.PathLike | None = None,
    chunk_frames: int = 0,
) -> Path:
    """Write the official file set into ``root``; ``network_onnx`` is copied in unless already there.

    ``chunk_onnx`` adds facecast's chunk graph (``network_chunk.onnx``, trained for up to ``chunk_frames``)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    network_onnx = Path(network_onnx)
    target = root / "network.onnx"
    if network_onnx.resolve() != target.resolve():
        copy_file(network_onnx, target)
    write_json(root / "network_info.json", network_info.to_json())
    write_json(root / "model_config.json", {"config": model_config})
    write_npz(root / "model_data.npz", {k: np.asarray(v) for k, v in model_data.items()})
    write_npz(root / "implicit_emo_db.npz", emotion_db)
    write_json(root / "trt_info.json", trt_info or default_trt_info())
    spec: dict[str, Any] = {
        "networkInfoPath": "network_info.json",
        "networkPath": "network.trt",
        "modelConfigPath": "model_config.json",
        "modelDataPath": "model_data.npz",
        "emotionDatabasePath": "implicit_emo_db.npz",
    }
    paths = {}
    for part, bs in (("skin", skin_blendshapes), ("tongue", tongue_blendshapes)):
        if bs is not None:
            bs.write(root / f"bs_{part}.npz", root / f"bs_{part}_config.json")
            paths[part] = {"config": f"bs_{part}_config.json", "data": f"bs_{part}.npz"}
    if paths:
        spec["blendshapePaths"] = paths
    if chunk_onnx is not None:
        chunk_frames = check_frames_per_pass(chunk_frames, "chunk_frames")  # a chunk network needs at least 1
        chunk_target = root / "network_chunk.onnx"
        if Path(chunk_onnx).resolve() != chunk_target.resolve():
            copy_file(chunk_onnx, chunk_target)
        spec["chunkNetworkPath"] = chunk_target.name
        spec["chunkFrames"] = chunk_frames
    write_json(root / MODEL_JSON, spec)
    return root
