"""Face post-processing parameters: the keys of ``model_config.json`` (spec 4.4) and their ranges.

``FaceParams`` holds every animator parameter of an Audio2Face-3D regression model in snake_case, with the
Mark v2.3 values as defaults. It reads ``model_config.json`` dictionaries, accepts overrides in snake_case or
in the NIM's camelCase (``FaceParameters.float_params`` names, spec 12) and checks the SDK validator ranges.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class FaceParamError(ValueError):
    """A face parameter has an unknown name, a non-numeric value or a value outside its range."""


@dataclass(frozen=True)
class FaceParams:
    """Animator parameters of spec 4.4; defaults are the Mark v2.3 ``model_config.json`` values.

    ``blink_offset`` is the SDK's external blink control (not in ``model_config.json``): 0 = eyes open,
    1 = the full ``eye_close_pose_delta``. ``quiet_hold`` is facecast's (:mod:`facecast.face.quiet`): how much the
    pose eases to rest and is held still while the audio is silent, 0 (off, the SDK's behaviour) to 1.
    ``source_shot`` and ``source_frame`` pick the implicit emotion and are not face parameters. Instances are
    immutable: use :meth:`with_overrides` to change values.
    """

    input_strength: float = 1.3
    upper_face_smoothing: float = 0.001
    lower_face_smoothing: float = 0.0023
    upper_face_strength: float = 1.0
    lower_face_strength: float = 1.4
    face_mask_level: float = 0.6
    face_mask_softness: float = 0.0085
    skin_strength: float = 1.1
    blink_strength: float = 1.0
    lower_teeth_strength: float = 1.3
    lower_teeth_height_offset: float = -0.1
    lower_teeth_depth_offset: float = 0.0
    lip_open_offset: float = -0.03
    tongue_strength: float = 1.5
    tongue_height_offset: float = 0.2
    tongue_depth_offset: float = 0.13
    eyeballs_strength: float = 1.0
    saccade_strength: float = 0.9
    right_eye_rot_x_offset: float = 0.0
    right_eye_rot_y_offset: float = -2.0
    left_eye_rot_x_offset: float = 0.0
    left_eye_rot_y_offset: float = 2.0
    eyelid_open_offset: float = 0.06
    eye_saccade_seed: int = 0
    blink_offset: float = 0.0
    quiet_hold: float = 0.0

    @classmethod
    def from_model_config(cls, cfg: Mapping[str, Any]) -> FaceParams:
        """Read ``{"config": {...}}`` or the inner dict; skip unknown keys, keep defaults for missing ones."""
        if not isinstance(cfg, Mapping):
            raise FaceParamError(f"model_config must be a JSON object, got {type(cfg).__name__}")
        inner = cfg.get("config", cfg)
        if not isinstance(inner, Mapping):
            raise FaceParamError(f"model_config 'config' must be a JSON object, got {type(inner).__name__}")
        values = {key: _coerce(key, inner[key]) for key in PARAM_NAMES if key in inner}
        return dataclasses.replace(cls(), **values).validate()

    def with_overrides(self, overrides: Mapping[str, Any]) -> FaceParams:
        """Return a validated copy with ``overrides`` (snake_case or NIM camelCase names) applied."""
        values: dict[str, Any] = {}
        for name, value in overrides.items():
            key = _ALIASES.get(name)
            if key is None:
                raise FaceParamError(
                    f"unknown face parameter {name!r}; valid names (snake_case or camelCase): "
                    + ", ".join(f"{n}/{_camel(n)}" for n in PARAM_NAMES)
                )
            values[key] = _coerce(name, value)
        return dataclasses.replace(self, **values).validate()

    def validate(self) -> FaceParams:
        """Check every value against :data:`PARAM_RANGES`: return ``self`` or raise ``FaceParamError``."""
        for name in PARAM_NAMES:
            value = getattr(self, name)
            lo, hi, _ = PARAM_RANGES[name]
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise FaceParamError(f"face parameter {name} must be a finite number, got {value!r}")
            if not lo <= value <= hi:
                raise FaceParamError(f"face parameter {name} = {value!r} is outside its range [{lo}, {hi}]")
            if name == "eye_saccade_seed" and int(value) != value:
                raise FaceParamError(f"face parameter eye_saccade_seed = {value!r} must be an integer")
        return self

    @classmethod
    def neutral(cls) -> FaceParams:
        """Values that pass the network's pose through unchanged: strengths 1, offsets 0 (smoothing and the face
        mask as in the defaults)."""
        return cls().with_overrides(NEUTRAL_OVERRIDES)

    def model_config(self, source_shot: str, source_frame: int = 0) -> dict[str, Any]:
        """The ``model_config.json`` ``config`` values: the SDK's keys (not ``blink_offset``, an external
        control; ``quiet_hold`` only when set) plus the implicit emotion's ``source_shot`` and ``source_frame``."""
        config: dict[str, Any] = {n: getattr(self, n) for n in PARAM_NAMES if n not in ("blink_offset", "quiet_hold")}
        if self.quiet_hold:
            config["quiet_hold"] = self.quiet_hold
        return {**config, "source_shot": source_shot, "source_frame": int(source_frame)}

    def as_dict(self, camel: bool = False) -> dict[str, float | int]:
        """All parameters as a dict, keyed in snake_case or (``camel=True``) NIM camelCase."""
        return {(_camel(n) if camel else n): getattr(self, n) for n in PARAM_NAMES}


PARAM_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(FaceParams))
"""Every face parameter name, snake_case, in declaration order."""

NEUTRAL_OVERRIDES: dict[str, float] = {
    **{n: 1.0 for n in PARAM_NAMES if n.endswith("_strength")},
    **{n: 0.0 for n in PARAM_NAMES if n.endswith("_offset")},
}
"""What :meth:`FaceParams.neutral` changes: every strength 1, every offset 0."""

_STRENGTH = (0.0, 2.0, "SDK")
_OFFSET = (-3.0, 3.0, "SDK")
_EYE_OFFSET = (-10.0, 10.0, "SDK")

PARAM_RANGES: dict[str, tuple[float, float, str]] = {
    "input_strength": (0.0, 4.0, "facecast's choice: the SDK has no validator for it"),
    "upper_face_smoothing": (0.0, 0.1, "SDK"),
    "lower_face_smoothing": (0.0, 0.1, "SDK"),
    "upper_face_strength": _STRENGTH,
    "lower_face_strength": _STRENGTH,
    "face_mask_level": (0.0, 1.0, "SDK"),
    "face_mask_softness": (0.001, 0.5, "SDK"),
    "skin_strength": _STRENGTH,
    "blink_strength": _STRENGTH,
    "lower_teeth_strength": _STRENGTH,
    "lower_teeth_height_offset": _OFFSET,
    "lower_teeth_depth_offset": _OFFSET,
    "lip_open_offset": (-0.2, 0.2, "SDK"),
    "tongue_strength": (0.0, 3.0, "SDK"),
    "tongue_height_offset": _OFFSET,
    "tongue_depth_offset": _OFFSET,
    "eyeballs_strength": _STRENGTH,
    "saccade_strength": _STRENGTH,
    "right_eye_rot_x_offset": _EYE_OFFSET,
    "right_eye_rot_y_offset": _EYE_OFFSET,
    "left_eye_rot_x_offset": _EYE_OFFSET,
    "left_eye_rot_y_offset": _EYE_OFFSET,
    "eyelid_open_offset": (-1.0, 1.0, "SDK"),
    "eye_saccade_seed": (0, 4999, "SDK (integer: a row of the 5000-row saccade table)"),
    "blink_offset": (0.0, 1.0, "SDK"),
    "quiet_hold": (0.0, 1.0, "facecast's extension: the SDK has no quiet hold"),
}
"""(low, high, source) of every parameter, inclusive; source says whether the SDK or facecast set it."""


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


CAMEL_NAMES: dict[str, str] = {_camel(n): n for n in PARAM_NAMES}
"""NIM camelCase name -> snake_case name (``lowerFaceSmoothing`` -> ``lower_face_smoothing``, ...)."""

_ALIASES: dict[str, str] = {**{n: n for n in PARAM_NAMES}, **CAMEL_NAMES}


def _coerce(name: str, value: Any) -> float | int:
    """A JSON/proto value as float (int for the saccade seed); non-numbers raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise FaceParamError(f"face parameter {name} must be a number, got {value!r}")
    key = _ALIASES.get(name, name)
    if key == "eye_saccade_seed":
        if not math.isfinite(value) or int(value) != value:
            raise FaceParamError(f"face parameter {name} = {value!r} must be an integer")
        return int(value)
    return float(value)
