"""What ``A2XExportConfigService.GetConfigs`` answers: the effective model and deployment settings as text."""

from __future__ import annotations

import json
import math
from typing import Any

from facecast.model import Model
from facecast.server.config import ServerConfig
from facecast.server.names import NIM_EMOTION_NAMES, nim_pose_name


def effective_configs(model: Model, config: ServerConfig) -> dict[str, dict[str, Any]]:
    """``{name: settings}``: the model's defaults as a stream gets them, and the server's public settings."""
    pipeline = model.pipeline
    info = model.info
    summary = model.pack.summary()
    multipliers, offsets, clamp = {}, {}, False
    for solver in (pipeline.skin, pipeline.tongue):
        if solver is None:
            continue
        for name, mult, off in zip(solver.names, solver.multipliers, solver.offsets, strict=True):
            multipliers[nim_pose_name(name)] = float(mult)
            offsets[nim_pose_name(name)] = float(off)
        clamp = clamp or bool(solver.clamp)
    model_config = {
        "actor": info.actor,
        "model_path": summary["path"],
        "random_weights": bool(model.random_weights),
        "backend": model.backend.name,
        "fps": config.fps,
        "lookahead_ms": summary["lookahead_ms"],
        "face_params": pipeline.default_params.as_dict(camel=True),
        "blendshape_params": {
            "blend_shapes": list(multipliers),
            "bs_weight_multipliers": multipliers,
            "bs_weight_offsets": offsets,
            "enable_clamping_bs_weight": clamp,
        },
        "emotions": [NIM_EMOTION_NAMES.get(e, e) for e in info.explicit_emotions],
        "implicit_emotion": summary["implicit_emotion"],
        "network": {
            "window_samples": info.buffer_len,
            "window_offset": info.buffer_ofs,
            "sample_rate": info.samplerate,
            "result_size": info.result_size,
            "skin_pca_shapes": info.num_shapes_skin,
            "tongue_pca_shapes": info.num_shapes_tongue,
        },
    }
    return {"model_config": model_config, "deployment_config": config.public_dict()}


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
