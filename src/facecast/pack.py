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
from facecast.fileio import FileFormatError, check_regular, copy_file, read_json, read_npz, write_json, write_npz
from facecast.pack_checks import (
    MODEL_JSON,
    PACK_NPZ_BYTES,
    REQUIRED_MODEL_DATA,
    PackError,
    blendshape_arrays,
    blendshape_bytes,
    blendshape_config_problems,
    blendshape_value_problems,
    emotion_db_arrays,
    emotion_db_problems,
    model_data_arrays,
    model_data_problems,
    network_info_problems,
    npz_check,
    pose_names,
    poses,
    resolve_inside,
)
from facecast.timing import check_frames_per_pass

__all__ = ["MODEL_JSON", "REQUIRED_MODEL_DATA", "BlendshapeSet", "ModelPack", "NetworkInfo", "PackError",
           "load_pack", "resolve_inside", "write_pack"]  # fmt: skip
DEFAULT_FILES = {
    "networkInfoPath": "network_info.json",
    "networkPath": "network.onnx",
    "modelConfigPath": "model_config.json",
    "modelDataPath": "model_data.npz",
    "emotionDatabasePath": "implicit_emo_db.npz",
}


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
        problems.extend(network_info_problems(values, source))
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
    def read(
        cls, npz_path: Path, config_path: Path | None, *, verts: int | None = None, follow: bool = True
    ) -> BlendshapeSet:
        """Read a blendshape file pair; ``verts`` bounds the vertex count (from ``network_info.json``), and
        ``follow=False`` refuses symbolic links (for paths already resolved inside a pack)."""
        arrays_spec, pose_spec = blendshape_arrays(verts)
        check = npz_check(npz_path, arrays_spec, extra=pose_spec, extra_what="a [V, 3] pose")
        try:
            arrays = read_npz(npz_path, max_bytes=blendshape_bytes(verts), check=check, follow=follow)
        except FileFormatError as exc:
            raise PackError(exc.problems) from None
        names, problems = pose_names(npz_path, arrays["poseNames"])
        neutral = arrays["neutral"]
        deltas = {n: arrays[n] for n in names[1:] if n in arrays and arrays[n].shape == neutral.shape}
        if missing := [n for n in names[1:] if n not in arrays]:
            has = "has" if len(missing) == 1 else "have"
            problems.append(f"{npz_path}: {poses(missing)} listed in poseNames but {has} no array")
        if wrong := [n for n in names[1:] if n in arrays and n not in deltas]:
            first = f"{wrong[0]!r} has {arrays[wrong[0]].shape}"
            problems.append(f"{npz_path}: {poses(wrong)} not of neutral's shape {neutral.shape} ({first})")
        problems.extend(blendshape_value_problems(npz_path, neutral, deltas))
        mask = arrays.get("frontalMask")
        if mask is not None:
            mask = mask.astype(np.int64).reshape(-1)
            if mask.size and (mask.min() < 0 or mask.max() >= neutral.shape[0]):
                problems.append(f"{npz_path}: frontalMask has vertex indices outside 0..{neutral.shape[0] - 1}")
        config: dict = {}
        if config_path is not None:
            raw = read_json(config_path, follow=follow)
            config = raw.get("blendshape_params", raw) if isinstance(raw, dict) else None
            if not isinstance(config, dict):
                raise PackError([f"{config_path}: expected a JSON object with a blendshape_params object"])
            problems.extend(blendshape_config_problems(config_path, npz_path.name, config, len(names) - 1))
        if problems:
            raise PackError(problems)
        deltas_list = [deltas[n].astype(np.float32) for n in names[1:]]
        rig = arrays.get("rig_version")
        return cls(
            names=names[1:],
            neutral=neutral.astype(np.float32),
            deltas=np.stack(deltas_list) if deltas_list else np.zeros((0,) + neutral.shape, np.float32),
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


def _network_file(root: Path, spec: dict, files: dict[str, Path]) -> Path:
    """The network graph: ``networkPath``, or the ``.onnx`` beside a ``.trt`` (resolved inside the pack too)."""
    network, named = files["networkPath"], spec.get("networkPath", DEFAULT_FILES["networkPath"])
    if network.suffix == ".trt" or not network.exists():
        try:  # NVIDIA's model.json names a TensorRT engine that is built locally
            onnx = resolve_inside(root, str(Path(named).with_suffix(".onnx")), "the .onnx beside networkPath")
        except ValueError as exc:  # a PackError, or a name with no stem
            if isinstance(exc, PackError):
                raise
            return network
        if os.path.lexists(onnx):
            return onnx
    return network


def read_model_json(path: str | os.PathLike) -> tuple[Path, Path, dict]:
    """(folder, its ``model.json``, the parsed object) of a model folder or its ``model.json``, checked: the file
    inside the folder, a regular file, a JSON object; else :class:`PackError`."""
    path = Path(path).expanduser()
    if not os.path.lexists(path):
        raise PackError([f"{path}: no such model folder"])
    root = path if path.is_dir() else path.parent
    name = MODEL_JSON if path.is_dir() else path.name
    model_json = resolve_inside(root, name, name)
    try:
        spec = read_json(model_json, follow=False)
    except FileFormatError as exc:
        raise PackError(exc.problems) from None
    if not isinstance(spec, dict):
        raise PackError([f"{model_json}: top level must be a JSON object"])
    return root, model_json, spec


def load_pack(path: str | os.PathLike) -> ModelPack:
    """Read and validate a pack folder (or its ``model.json``); every problem found is reported at once.

    Every file, fallbacks included, must resolve inside the pack folder and be a regular file; arrays are checked
    from their headers before they are loaded, and values (finite, in range, of the right kind) after."""
    root, model_json, spec = read_model_json(path)
    if "modelConfigPaths" in spec:
        raise PackError([f"{model_json}: a multi-identity (diffusion) model; facecast runs regression models"])
    files = {key: resolve_inside(root, spec.get(key, default), key) for key, default in DEFAULT_FILES.items()}
    files["networkPath"] = _network_file(root, spec, files)
    trt_path = resolve_inside(root, "trt_info.json", "trt_info.json")
    problems: list[str] = []

    def attempt(fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FileFormatError as exc:
            problems.extend(exc.problems)
            return None

    raw_info = attempt(read_json, files["networkInfoPath"], follow=False)
    info = attempt(NetworkInfo.from_json, raw_info, str(files["networkInfoPath"])) if raw_info is not None else None
    attempt(check_regular, files["networkPath"], follow=False)
    config_raw = attempt(read_json, files["modelConfigPath"], follow=False)
    model_config = {}
    if config_raw is not None:
        if isinstance(config_raw, dict) and isinstance(config_raw.get("config", config_raw), dict):
            model_config = config_raw.get("config", config_raw)
        else:
            problems.append(f"{files['modelConfigPath']}: expected an object with a 'config' object")
    note = f" (from {files['networkInfoPath'].name})" if info is not None else ""
    npz = {"max_bytes": PACK_NPZ_BYTES, "follow": False}
    data_path, db_path = files["modelDataPath"], files["emotionDatabasePath"]
    data = attempt(read_npz, data_path, check=npz_check(data_path, model_data_arrays(info), note=note), **npz) or {}
    db = attempt(read_npz, db_path, check=npz_check(db_path, emotion_db_arrays(info)), **npz) or {}
    if data:
        problems.extend(model_data_problems(data_path, data))
    if db:
        problems.extend(emotion_db_problems(db_path, db))

    blendshapes: dict[str, BlendshapeSet | None] = {"skin": None, "tongue": None}
    bs_paths = spec.get("blendshapePaths") or {}
    if not isinstance(bs_paths, dict):
        problems.append(f"{model_json}: blendshapePaths must be a JSON object")
        bs_paths = {}
    for part, bs_spec in bs_paths.items():
        if part not in blendshapes or not isinstance(bs_spec, dict):
            problems.append(f"{model_json}: blendshapePaths.{part} must be 'skin' or 'tongue' with config and data")
            continue
        verts = (info.num_verts_skin if part == "skin" else info.num_verts_tongue) if info else None
        try:
            bs_data = resolve_inside(root, bs_spec.get("data", ""), f"blendshapePaths.{part}.data")
            cfg_path = (
                resolve_inside(root, bs_spec["config"], f"blendshapePaths.{part}.config")
                if bs_spec.get("config")
                else None
            )
            bs = BlendshapeSet.read(bs_data, cfg_path, verts=verts, follow=False)
        except FileFormatError as exc:
            problems.extend(exc.problems)
            continue
        if verts is not None and bs.neutral.shape[0] != verts:
            problems.append(
                f"{bs_data}: neutral has {bs.neutral.shape[0]} vertices, network_info.json num_verts_{part} is {verts}"
            )
        blendshapes[part] = bs
    chunk_path, chunk_frames = None, 0
    if spec.get("chunkNetworkPath"):
        try:
            chunk_path = resolve_inside(root, str(spec["chunkNetworkPath"]), "chunkNetworkPath")
            check_regular(chunk_path, follow=False)
        except FileFormatError as exc:
            missing = chunk_path is not None and not os.path.lexists(chunk_path)
            problems.append(f"{chunk_path}: chunk network file is missing" if missing else exc.problems[0])
        try:  # the most frames per pass the graph was trained for: the wire name stays in the pack's JSON
            chunk_frames = check_frames_per_pass(spec.get("chunkFrames"), "chunkFrames")
        except ValueError as exc:
            problems.append(f"{model_json}: {exc}")
    trt_info = None
    if os.path.lexists(trt_path):
        trt_info = attempt(read_json, trt_path, follow=False)
        if trt_info is not None and not isinstance(trt_info, dict):
            problems.append(f"{trt_path}: top level must be a JSON object")
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
