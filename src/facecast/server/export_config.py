"""What ``A2XExportConfigService.GetConfigs`` answers: the effective settings as NVIDIA's NIM documents its three
deployment-time files (snake_case), with no local path in them.

- ``stylization_config``: what an artist tunes: ``face_params``, ``blendshape_parameters`` (multipliers and offsets
  by the NIM's pose names, clamping), ``a2e`` (emotions and their post-processing defaults) and ``a2f`` (the model's
  id and whether tongue shapes are sent).
- ``deployment_config``: what DevOps sets: streams, frame rate, limits, authentication and TLS as set/unset.
- ``advanced_config``: the rest: the network's window, look-ahead, frames per pass, batching and backend.

A model is named by its folder's name (or ``builtin``), never by its path; TLS and token files are reduced to which
kind of security is on.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from facecast.infer.a2e import A2EPostProcessParams
from facecast.model import Model
from facecast.server.config import ServerConfig
from facecast.server.names import NIM_EMOTION_NAMES, nim_pose_name

CONFIG_NAMES = ("stylization_config", "deployment_config", "advanced_config")


def model_id(model: Model, config: ServerConfig) -> str:
    """The model's name for clients: its folder's name, or ``builtin`` for the built-in model."""
    return Path(config.model).name if config.model else "builtin"


def effective_configs(model: Model, config: ServerConfig) -> dict[str, dict[str, Any]]:
    """``{name: settings}`` for :data:`CONFIG_NAMES`, as a stream gets them."""
    pipeline = model.pipeline
    multipliers, offsets, clamp = {}, {}, False
    for solver in (pipeline.skin, pipeline.tongue):
        if solver is None:
            continue
        for name, mult, off in zip(solver.names, solver.multipliers, solver.offsets, strict=True):
            multipliers[nim_pose_name(name)] = float(mult)
            offsets[nim_pose_name(name)] = float(off)
        clamp = clamp or bool(solver.clamp)
    info = model.info
    emotions = info.emotions if model.is_diffusion else info.explicit_emotions
    post = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(A2EPostProcessParams()).items()}
    stylization = {
        "face_params": pipeline.default_params.as_dict(),
        "blendshape_parameters": {
            "enable_clamping_bs_weight": clamp,
            "multipliers": multipliers,
            "offsets": offsets,
        },
        "a2e": {
            "emotions": [NIM_EMOTION_NAMES.get(e, e) for e in emotions],
            "post_processing_params": post,
        },
        "a2f": {
            "inference_model_id": model_id(model, config),
            "actor": model.identity if model.is_diffusion else info.actor,
            "enable_tongue_blendshapes": pipeline.tongue is not None,
            "random_weights": bool(model.random_weights),
        },
    }
    deployment = config.public_dict()
    deployment["model"] = model_id(model, config)
    advanced = {
        "network": _network_settings(model),
        "backend": model.backend.name,
        "precision": config.precision,
    }
    return {"stylization_config": stylization, "deployment_config": deployment, "advanced_config": advanced}


def _network_settings(model: Model) -> dict[str, Any]:
    """The network's windowing and sizes, as the advanced config shows them."""
    info = model.info
    if model.is_diffusion:
        early, late = info.lookahead_seconds
        return {
            "kind": "diffusion",
            "identities": list(info.identities),
            "identity": model.identity,
            "window_samples": info.buffer_len,
            "stride_samples": info.stride,
            "sample_rate": info.samplerate,
            "native_fps": info.fps,
            "kept_frames": [info.num_frames_left_truncate, info.num_frames_left_truncate + info.num_frames_center],
            "lookahead_ms": [1000.0 * early, 1000.0 * late],
            "diffusion_steps": info.num_diffusion_steps,
            "result_size": info.output_size,
        }
    return {
        "kind": "regression",
        "window_samples": info.buffer_len,
        "window_offset": info.buffer_ofs,
        "sample_rate": info.samplerate,
        "lookahead_ms": 1000.0 * info.lookahead_samples / info.samplerate,
        "result_size": info.result_size,
        "skin_pca_shapes": info.num_shapes_skin,
        "tongue_pca_shapes": info.num_shapes_tongue,
        "frames_per_pass": model.frames_per_pass,
        "context_frames": model.engine.context_frames,
    }


def render(settings: dict[str, Any], fmt: str) -> str:
    """``settings`` as ``"yaml"`` or ``"json"`` text."""
    if fmt == "json":
        return json.dumps(settings, indent=2) + "\n"
    if fmt == "yaml":
        return "\n".join(_yaml_lines(settings, 0)) + "\n"
    raise ValueError(f"unknown config format {fmt!r}; choose yaml or json")


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        return text.replace("e", ".0e") if "e" in text and "." not in text else text  # YAML 1.1 needs the dot
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return json.dumps(str(value))  # a JSON string is a valid YAML double-quoted scalar


def _yaml_lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            name = json.dumps(str(key))
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{name}:")
                lines.extend(_yaml_lines(item, indent + 2))
            else:
                lines.append(f"{pad}{name}: {_yaml_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)) and item:
                sub = _yaml_lines(item, indent + 2)
                lines.append(f"{pad}- {sub[0].lstrip()}")
                lines.extend(sub[1:])
            else:
                lines.append(f"{pad}- {_yaml_scalar(item)}")
    return lines
