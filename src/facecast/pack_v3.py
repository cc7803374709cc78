"""The Audio2Face-3D v3.0 (diffusion, multi-identity) model folder on disk: read, validate, write.

Layout (spec v3 section 2): ``model.json`` naming ``network_info.json`` (``id.type == "diffusion"``), the network
(``networkPath``; an absent ``.trt`` falls back to the ``.onnx`` beside it), and per identity, in the order of
``params.identities``: ``modelConfigPaths[i]`` (``model_config_<Id>.json``), ``modelDataPaths[i]``
(``model_data_<Id>.npz``: neutral skin/tongue/jaw, lip-open and eye-close deltas, saccades) and
``blendshapePaths[i]`` (``{skin: {config, data}, tongue: {config, data}}``). The same safety rules as v2.3 packs:
every path resolves inside the folder and is a regular file, no pickle, array headers checked before loading,
values checked after, every problem named with its file and field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facecast.constants import EMOTION_NAMES, EYES_RESULT_SIZE, JAW_RESULT_SIZE, SAMPLE_RATE
from facecast.fileio import FileFormatError, check_regular, copy_file, read_json, read_npz, write_json, write_npz
from facecast.pack import BlendshapeSet, read_model_json
from facecast.pack_checks import MODEL_JSON, PACK_NPZ_BYTES, Array, PackError, npz_check, resolve_inside

__all__ = ["DiffusionInfo", "DiffusionPack", "IdentityData", "describe", "is_diffusion_folder", "load_diffusion_pack",
           "write_diffusion_pack"]  # fmt: skip

MODEL_DATA_ARRAYS = ("neutral_skin", "neutral_tongue", "neutral_jaw", "lip_open_pose_delta", "eye_close_pose_delta",
                     "saccade_rot_matrix")  # fmt: skip
MAX_IDENTITIES = 64
MAX_SIZE = 3_000_000


@dataclass
class DiffusionInfo:
    """``network_info.json`` of a diffusion model."""

    identities: list[str]
    skin_size: int = 72006
    tongue_size: int = 16806
    jaw_size: int = JAW_RESULT_SIZE
    eyes_size: int = EYES_RESULT_SIZE
    num_diffusion_steps: int = 2
    num_gru_layers: int = 2
    gru_latent_dim: int = 256
    num_frames_left_truncate: int = 15
    num_frames_right_truncate: int = 15
    num_frames_center: int = 30
    emotions: list[str] = field(default_factory=lambda: list(EMOTION_NAMES))
    default_emotion: list[float] = field(default_factory=lambda: [0.0] * len(EMOTION_NAMES))
    buffer_len: int = 16000
    padding_left: int = 16000
    padding_right: int = 16000
    samplerate: int = SAMPLE_RATE
    version: str = "3.0"

    @property
    def frames_per_window(self) -> int:
        return self.num_frames_left_truncate + self.num_frames_center + self.num_frames_right_truncate

    @property
    def fps(self) -> float:
        """Native frame rate: the window's frames over its duration (60)."""
        return self.frames_per_window * self.samplerate / self.buffer_len

    @property
    def stride(self) -> int:
        """Samples between windows: the kept frames' span (8000)."""
        return self.num_frames_center * self.buffer_len // self.frames_per_window

    @property
    def output_size(self) -> int:
        return self.skin_size + self.tongue_size + self.jaw_size + self.eyes_size

    @property
    def lookahead_seconds(self) -> tuple[float, float]:
        """The least and most future audio a kept frame waits for (its window must be complete)."""
        f, sr = self.frames_per_window, self.samplerate
        first = (self.num_frames_left_truncate + self.num_frames_center - 1) * self.buffer_len / f
        last = self.num_frames_left_truncate * self.buffer_len / f
        return (self.buffer_len - first) / sr, (self.buffer_len - last) / sr

    @classmethod
    def from_json(cls, obj: Any, source: str = "network_info.json") -> DiffusionInfo:
        if not isinstance(obj, dict):
            raise PackError([f"{source}: top level must be a JSON object"])
        sections = {k: obj.get(k, {}) for k in ("id", "params", "audio_params")}
        for key, section in sections.items():
            if not isinstance(section, dict):
                raise PackError([f"{source}: {key} must be a JSON object, got {type(section).__name__}"])
        ident, params, audio = sections.values()
        problems: list[str] = []
        if ident.get("type") != "diffusion":
            problems.append(f"{source}: id.type must be 'diffusion', got {ident.get('type')!r}")
        if ident.get("output", "geometry") != "geometry":
            problems.append(f"{source}: id.output must be 'geometry', got {ident.get('output')!r}")
        values: dict[str, Any] = {"version": str(ident.get("version", "3.0"))}
        ints = {"params": ("skin_size", "tongue_size", "jaw_size", "eyes_size", "num_diffusion_steps",
                           "num_gru_layers", "gru_latent_dim", "num_frames_left_truncate",
                           "num_frames_right_truncate", "num_frames_center"),
                "audio_params": ("buffer_len", "padding_left", "padding_right", "samplerate")}  # fmt: skip
        for where, keys in ints.items():
            for key in keys:
                value = sections[where].get(key)
                if key not in sections[where]:
                    problems.append(f"{source}: {where}.{key} is missing")
                elif isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SIZE:
                    problems.append(f"{source}: {where}.{key} must be an integer from 0 to {MAX_SIZE}, got {value!r}")
                else:
                    values[key] = value
        names = params.get("identities")
        if not isinstance(names, list) or not names or len(names) > MAX_IDENTITIES:
            problems.append(f"{source}: params.identities must list 1 to {MAX_IDENTITIES} names, got {names!r:.80}")
        elif not all(isinstance(n, str) and n and n.isprintable() for n in names) or len(set(names)) != len(names):
            problems.append(f"{source}: params.identities must be distinct non-empty names, got {names!r:.80}")
        else:
            values["identities"] = list(names)
        emotions = params.get("emotions", list(EMOTION_NAMES))
        if emotions != list(EMOTION_NAMES):
            problems.append(f"{source}: params.emotions must be the 10 Audio2Face emotions, got {emotions!r:.120}")
        default = params.get("default_emotion", [0.0] * len(EMOTION_NAMES))
        ok = isinstance(default, list) and len(default) == len(EMOTION_NAMES)
        if not ok or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in default):
            problems.append(f"{source}: params.default_emotion must be 10 numbers from 0 to 1, got {default!r:.80}")
        else:
            values["default_emotion"] = [float(v) for v in default]
        if not problems:
            info = cls(**values)
            problems.extend(info.problems(source))
            if not problems:
                return info
        raise PackError(problems)

    def problems(self, source: str) -> list[str]:
        """Consistency of the sizes with the SDK's loop."""
        out = []
        if self.jaw_size != JAW_RESULT_SIZE or self.eyes_size != EYES_RESULT_SIZE:
            out.append(f"{source}: params.jaw_size must be 15 and eyes_size 4, got {self.jaw_size}, {self.eyes_size}")
        for key in ("skin_size", "tongue_size"):
            if getattr(self, key) < 3 or getattr(self, key) % 3:
                out.append(f"{source}: params.{key} must be a positive multiple of 3, got {getattr(self, key)}")
        if min(self.num_diffusion_steps, self.num_gru_layers, self.gru_latent_dim, self.num_frames_center) < 1:
            out.append(f"{source}: params num_diffusion_steps, num_gru_layers, gru_latent_dim and "
                       "num_frames_center must be at least 1")  # fmt: skip
        if self.samplerate != SAMPLE_RATE:
            out.append(f"{source}: audio_params.samplerate must be {SAMPLE_RATE}, got {self.samplerate}")
        f = self.frames_per_window
        if f * self.samplerate != 60 * self.buffer_len or (self.num_frames_center * self.buffer_len) % f:
            out.append(f"{source}: audio_params.buffer_len {self.buffer_len} must hold the {f} frames of a window at "
                       "60 fps with a whole-sample stride")  # fmt: skip
        return out

    def to_json(self) -> dict:
        return {
            "id": {"type": "diffusion", "output": "geometry", "version": self.version},
            "params": {
                "emotions": list(self.emotions), "default_emotion": list(self.default_emotion),
                "identities": list(self.identities), "skin_size": self.skin_size, "tongue_size": self.tongue_size,
                "jaw_size": self.jaw_size, "eyes_size": self.eyes_size,
                "num_diffusion_steps": self.num_diffusion_steps, "num_gru_layers": self.num_gru_layers,
                "gru_latent_dim": self.gru_latent_dim, "num_frames_left_truncate": self.num_frames_left_truncate,
                "num_frames_right_truncate": self.num_frames_right_truncate,
                "num_frames_center": self.num_frames_center,
            },
            "audio_params": {"buffer_len": self.buffer_len, "padding_left": self.padding_left,
                             "padding_right": self.padding_right, "samplerate": self.samplerate},
        }  # fmt: skip


@dataclass
class IdentityData:
    """One identity's files: face parameters, neutral geometry and deltas, blendshapes."""

    name: str
    model_config: dict
    model_data: dict[str, np.ndarray]
    skin_blendshapes: BlendshapeSet | None = None
    tongue_blendshapes: BlendshapeSet | None = None


@dataclass
class DiffusionPack:
    """Everything in one v3.0 model folder, validated."""

    root: Path
    info: DiffusionInfo
    network_path: Path
    identities: list[IdentityData]
    trt_info: dict | None = None

    @property
    def network_info(self) -> DiffusionInfo:
        return self.info

    @property
    def actor(self) -> str:
        return self.identities[0].name

    @property
    def identity_names(self) -> list[str]:
        return [i.name for i in self.identities]

    def identity(self, name: str | None = None) -> tuple[int, IdentityData]:
        """The identity called ``name`` (case-insensitive; ``None``: the first) and its index."""
        if name is None:
            return 0, self.identities[0]
        for i, ident in enumerate(self.identities):
            if ident.name.lower() == str(name).lower():
                return i, ident
        raise ValueError(f"{self.root}: no identity {name!r}; this model has {', '.join(self.identity_names)}")

    def summary(self) -> dict:
        """The facts ``facecast info`` prints."""
        info = self.info
        size = self.network_path.stat().st_size if self.network_path.exists() else 0
        early, late = info.lookahead_seconds
        return {
            "path": str(self.root),
            "kind": "diffusion",
            "version": info.version,
            "identities": self.identity_names,
            "network": {"file": self.network_path.name, "bytes": size, "outputs_per_frame": info.output_size},
            "sizes": {"skin": info.skin_size, "tongue": info.tongue_size, "jaw": info.jaw_size, "eyes": info.eyes_size},
            "diffusion_steps": info.num_diffusion_steps,
            "gru": {"layers": info.num_gru_layers, "latent_dim": info.gru_latent_dim},
            "window": {"samples": info.buffer_len, "stride": info.stride, "frames": info.frames_per_window,
                       "kept": [info.num_frames_left_truncate,
                                info.num_frames_left_truncate + info.num_frames_center]},
            "fps": info.fps,
            "lookahead_ms": [1000 * early, 1000 * late],
            "blendshapes": {i.name: {"skin": i.skin_blendshapes.num_poses if i.skin_blendshapes else 0,
                                     "tongue": i.tongue_blendshapes.num_poses if i.tongue_blendshapes else 0}
                            for i in self.identities},
        }  # fmt: skip


def describe(summary: dict) -> list[str]:
    """``facecast info``'s lines for a diffusion model's :meth:`DiffusionPack.summary`."""
    net, w, gru = summary["network"], summary["window"], summary["gru"]
    sizes = ", ".join(f"{k} {v}" for k, v in summary["sizes"].items())
    bs = "; ".join(f"{k}: {v['skin']} skin, {v['tongue']} tongue" for k, v in summary["blendshapes"].items())
    early, late = summary["lookahead_ms"]
    return [
        summary["path"],
        f"  kind         diffusion (version {summary['version']}), identities {', '.join(summary['identities'])}",
        f"  network      {net['file']}, {net['bytes'] / 1e6:.1f} MB, {net['outputs_per_frame']} deltas per frame",
        f"  sizes        {sizes}",
        f"  diffusion    {summary['diffusion_steps']} steps; GRU {gru['layers']} layers x {gru['latent_dim']}",
        f"  window       {w['samples']} samples, stride {w['stride']}, {w['frames']} frames of which "
        f"{w['kept'][0]}..{w['kept'][1] - 1} kept",
        f"  frame rate   {summary['fps']:g} fps native (--fps resamples)",
        f"  look-ahead   {early:.0f} to {late:.0f} ms (a window must be complete)",
        f"  blendshapes  {bs}",
    ]


def is_diffusion_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` (a folder or its model.json) is a multi-identity diffusion model (``modelConfigPaths``)."""
    path = Path(path).expanduser()
    model_json = path / MODEL_JSON if path.is_dir() else path
    try:
        spec = read_json(model_json)
    except (FileFormatError, OSError):
        return False
    return isinstance(spec, dict) and "modelConfigPaths" in spec


def _network_file(root: Path, named: Any) -> Path:
    network = resolve_inside(root, named, "networkPath")
    if network.suffix == ".trt" and not os.path.lexists(network):
        onnx = resolve_inside(root, str(Path(named).with_suffix(".onnx")), "the .onnx beside networkPath")
        if os.path.lexists(onnx):
            return onnx
    return network


def _list(spec: dict, key: str, count: int, source: Path) -> list:
    value = spec.get(key)
    if not isinstance(value, list) or len(value) != count:
        got = len(value) if isinstance(value, list) else type(value).__name__
        raise PackError([f"{source}: {key} must list one entry per identity ({count}), got {got}"])
    return value


def _model_data(path: Path, info: DiffusionInfo) -> tuple[dict[str, np.ndarray], list[str]]:
    s, t = info.skin_size, info.tongue_size
    arrays = {"neutral_skin": Array("f", (s,)), "neutral_tongue": Array("f", (t,)),
              "neutral_jaw": Array("f", (info.jaw_size,)), "lip_open_pose_delta": Array("f", (s,)),
              "eye_close_pose_delta": Array("f", (s,)), "saccade_rot_matrix": Array("f", (None, 2))}  # fmt: skip
    flat = {}
    try:
        data = read_npz(path, max_bytes=PACK_NPZ_BYTES, follow=False, check=_flat_check(path, arrays))
    except FileFormatError as exc:
        return {}, list(exc.problems)
    problems = []
    for name, value in data.items():
        value = value.reshape(-1) if name != "saccade_rot_matrix" else value
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            problems.append(f"{path}: {name} holds NaN or infinite values")
        flat[name] = value.astype(np.float32)
    sac = flat.get("saccade_rot_matrix")
    if sac is not None and len(sac) < 1:
        problems.append(f"{path}: saccade_rot_matrix has no rows, expected [N, 2] with N at least 1")
    return flat, problems


def _flat_check(path: Path, arrays: dict[str, Array]):
    """Headers of model_data arrays, accepting [3V] or [V, 3] layouts."""

    def check(headers):
        fixed = {}
        for name, header in headers.items():
            spec = arrays.get(name)
            if spec is not None and len(spec.shape) == 1 and len(header.shape) == 2 and header.shape[1] == 3:
                spec = Array(spec.kinds, (spec.shape[0] // 3, 3))
            fixed[name] = spec
        specs = {n: fixed.get(n) or s for n, s in arrays.items()}
        return npz_check(path, specs)(headers)

    return check


def load_diffusion_pack(path: str | os.PathLike) -> DiffusionPack:
    """Read and validate a v3.0 folder (or its ``model.json``); every problem found is reported at once."""
    root, model_json, spec = read_model_json(path)
    try:
        info_path = resolve_inside(root, spec.get("networkInfoPath", "network_info.json"), "networkInfoPath")
        info = DiffusionInfo.from_json(read_json(info_path, follow=False), str(info_path))
    except FileFormatError as exc:
        raise PackError(exc.problems) from None
    n = len(info.identities)
    network = _network_file(root, spec.get("networkPath", "network.onnx"))
    configs = _list(spec, "modelConfigPaths", n, model_json)
    datas = _list(spec, "modelDataPaths", n, model_json)
    blends = spec.get("blendshapePaths", [None] * n)
    blends = _list({"blendshapePaths": blends}, "blendshapePaths", n, model_json)
    problems: list[str] = []
    try:
        check_regular(network, follow=False)
    except FileFormatError as exc:
        problems.extend(exc.problems)
    identities = []
    for i, ident in enumerate(info.identities):
        where = f"{model_json}: modelConfigPaths[{i}]"
        config: dict = {}
        try:
            raw = read_json(resolve_inside(root, configs[i], f"modelConfigPaths[{i}]"), follow=False)
            config = raw.get("config", raw) if isinstance(raw, dict) else None
            if not isinstance(config, dict):
                problems.append(f"{where} ({configs[i]}): expected an object with a 'config' object")
                config = {}
        except FileFormatError as exc:
            problems.extend(exc.problems)
        try:
            data, data_problems = _model_data(resolve_inside(root, datas[i], f"modelDataPaths[{i}]"), info)
            problems.extend(data_problems)
        except FileFormatError as exc:
            data = {}
            problems.extend(exc.problems)
        sets: dict[str, BlendshapeSet | None] = {"skin": None, "tongue": None}
        entry = blends[i] or {}
        if not isinstance(entry, dict) or set(entry) - set(sets):
            problems.append(f"{model_json}: blendshapePaths[{i}] must hold 'skin' and/or 'tongue' with config/data")
            entry = {}
        for part, files in entry.items():
            key = f"blendshapePaths[{i}].{part}"
            verts = (info.skin_size if part == "skin" else info.tongue_size) // 3
            try:
                if not isinstance(files, dict):
                    raise PackError([f"{model_json}: {key} must be an object with config and data"])
                npz = resolve_inside(root, files.get("data", ""), f"{key}.data")
                cfg = resolve_inside(root, files["config"], f"{key}.config") if files.get("config") else None
                bs = BlendshapeSet.read(npz, cfg, verts=verts, follow=False)
                if bs.neutral.shape[0] != verts:
                    problems.append(f"{npz}: neutral has {bs.neutral.shape[0]} vertices, network_info.json "
                                    f"{part}_size gives {verts}")  # fmt: skip
                    continue
                sets[part] = bs
            except FileFormatError as exc:
                problems.extend(exc.problems)
        identities.append(IdentityData(ident, config, data, sets["skin"], sets["tongue"]))
    trt_info = None
    trt_path = resolve_inside(root, "trt_info.json", "trt_info.json")
    if os.path.lexists(trt_path):
        try:
            trt_info = read_json(trt_path, follow=False)
        except FileFormatError as exc:
            problems.extend(exc.problems)
    if problems:
        raise PackError(problems)
    return DiffusionPack(root, info, network, identities, trt_info if isinstance(trt_info, dict) else None)


def default_trt_info(max_batch: int = 8, opt_batch: int = 3) -> dict:
    """trt_info.json with the v3.0 defaults (max batch 8, optimal 3)."""
    return {"defaults": {"MAX_BATCH_SIZE": max_batch, "OPT_BATCH_SIZE": opt_batch}}


def write_diffusion_pack(
    root: str | os.PathLike, info: DiffusionInfo, network_onnx: str | os.PathLike, identities: list[IdentityData]
) -> Path:
    """Write the v3.0 file set into ``root`` (``networkPath: network.trt`` as NVIDIA's deploy writes, with
    ``network.onnx`` beside it)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if [i.name for i in identities] != list(info.identities):
        raise ValueError("identities must be given in network_info's order")
    target = root / "network.onnx"
    if Path(network_onnx).resolve() != target.resolve():
        copy_file(Path(network_onnx), target)
    write_json(root / "network_info.json", info.to_json())
    write_json(root / "trt_info.json", default_trt_info())
    spec: dict[str, Any] = {"networkInfoPath": "network_info.json", "networkPath": "network.trt",
                            "modelConfigPaths": [], "modelDataPaths": [], "blendshapePaths": []}  # fmt: skip
    for ident in identities:
        config_name, data_name = f"model_config_{ident.name}.json", f"model_data_{ident.name}.npz"
        write_json(root / config_name, {"config": ident.model_config})
        write_npz(root / data_name, {k: np.asarray(v, np.float32) for k, v in ident.model_data.items()})
        spec["modelConfigPaths"].append(config_name)
        spec["modelDataPaths"].append(data_name)
        paths = {}
        for part, bs in (("skin", ident.skin_blendshapes), ("tongue", ident.tongue_blendshapes)):
            if bs is not None:
                bs.write(root / f"bs_{part}_{ident.name}.npz", root / f"bs_{part}_config_{ident.name}.json")
                paths[part] = {"config": f"bs_{part}_config_{ident.name}.json", "data": f"bs_{part}_{ident.name}.npz"}
        spec["blendshapePaths"].append(paths)
    write_json(root / MODEL_JSON, spec)
    return root
