"""ARKit (and A2F tongue) curves -> MetaHuman face control curves (``CTRL_expressions_*``).

An approximation written from MetaHuman's face control naming, not taken from Epic's ARKit mapping pose asset:
verify it on your MetaHuman in Unreal (see ``docs/metahuman.md``) and adjust :data:`MAPPING` where your rig
differs. Each source curve feeds one or more controls with a gain; a control fed by several sources gets their
sum, clipped to [0, 1]. ``L``/``R`` are the character's own left and right, as in ARKit's ``Left``/``Right``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facecast.animation import Animation
from facecast.arkit_names import normalize_arkit_name
from facecast.constants import ARKIT_NAMES, TONGUE_NAMES

PREFIX = "CTRL_expressions_"


def _lr(arkit_stem: str, control_stem: str) -> dict[str, tuple[tuple[str, float], ...]]:
    return {f"{arkit_stem}Left": ((f"{control_stem}L", 1.0),), f"{arkit_stem}Right": ((f"{control_stem}R", 1.0),)}


def _quad(control_stem: str, sides: str = "UL UR DL DR") -> tuple[tuple[str, float], ...]:
    return tuple((f"{control_stem}{s}", 1.0) for s in sides.split())


MAPPING: dict[str, tuple[tuple[str, float], ...]] = {
    **_lr("eyeBlink", "eyeBlink"),
    "eyeLookDownLeft": (("eyeLookDownL", 1.0),),
    "eyeLookDownRight": (("eyeLookDownR", 1.0),),
    "eyeLookUpLeft": (("eyeLookUpL", 1.0),),
    "eyeLookUpRight": (("eyeLookUpR", 1.0),),
    "eyeLookInLeft": (("eyeLookRightL", 1.0),),  # the left eye looks in = towards the character's right
    "eyeLookOutLeft": (("eyeLookLeftL", 1.0),),
    "eyeLookInRight": (("eyeLookLeftR", 1.0),),
    "eyeLookOutRight": (("eyeLookRightR", 1.0),),
    **_lr("eyeSquint", "eyeSquintInner"),
    **_lr("eyeWide", "eyeWiden"),
    "jawForward": (("jawFwd", 1.0),),
    "jawLeft": (("jawLeft", 1.0),),
    "jawRight": (("jawRight", 1.0),),
    "jawOpen": (("jawOpen", 1.0),),
    "mouthClose": _quad("mouthLipsTogether"),
    "mouthFunnel": _quad("mouthFunnel"),
    "mouthPucker": _quad("mouthLipsPurse"),
    "mouthLeft": (("mouthLeft", 1.0),),
    "mouthRight": (("mouthRight", 1.0),),
    **_lr("mouthSmile", "mouthCornerPull"),
    **_lr("mouthFrown", "mouthCornerDepress"),
    **_lr("mouthDimple", "mouthDimple"),
    **_lr("mouthStretch", "mouthStretch"),
    "mouthRollLower": (("mouthLowerLipRollInL", 1.0), ("mouthLowerLipRollInR", 1.0)),
    "mouthRollUpper": (("mouthUpperLipRollInL", 1.0), ("mouthUpperLipRollInR", 1.0)),
    "mouthShrugLower": (("jawChinRaiseDL", 1.0), ("jawChinRaiseDR", 1.0)),
    "mouthShrugUpper": (("jawChinRaiseUL", 1.0), ("jawChinRaiseUR", 1.0)),
    "mouthPressLeft": (("mouthPressUL", 1.0), ("mouthPressDL", 1.0)),
    "mouthPressRight": (("mouthPressUR", 1.0), ("mouthPressDR", 1.0)),
    **_lr("mouthLowerDown", "mouthLowerLipDepress"),
    **_lr("mouthUpperUp", "mouthUpperLipRaise"),
    **_lr("browDown", "browDown"),
    "browInnerUp": (("browRaiseInL", 1.0), ("browRaiseInR", 1.0)),
    **_lr("browOuterUp", "browRaiseOuter"),
    "cheekPuff": (("mouthCheekBlowL", 1.0), ("mouthCheekBlowR", 1.0)),
    **_lr("cheekSquint", "eyeCheekRaise"),
    **_lr("noseSneer", "noseWrinkle"),
    "tongueOut": (("tongueOut", 1.0),),
    # A2F's 16 tongue poses (facecast's tongue curves)
    "tongueTipUp": (("tongueTipUp", 1.0),),
    "tongueTipDown": (("tongueTipDown", 1.0),),
    "tongueTipLeft": (("tongueTipLeft", 1.0),),
    "tongueTipRight": (("tongueTipRight", 1.0),),
    "tongueRollUp": (("tongueRollUp", 1.0),),
    "tongueRollDown": (("tongueRollDown", 1.0),),
    "tongueRollLeft": (("tongueRollLeft", 1.0),),
    "tongueRollRight": (("tongueRollRight", 1.0),),
    "tongueUp": (("tongueUp", 1.0),),
    "tongueDown": (("tongueDown", 1.0),),
    "tongueLeft": (("tongueLeft", 1.0),),
    "tongueRight": (("tongueRight", 1.0),),
    "tongueIn": (("tongueIn", 1.0),),
    "tongueStretch": (("tongueOut", 0.5),),
    "tongueWide": (("tongueWide", 1.0),),
    "tongueNarrow": (("tongueNarrow", 1.0),),
}
"""ARKit / A2F tongue name (Apple camelCase) -> ((control without the CTRL_expressions_ prefix, gain), ...)."""

SOURCE_NAMES: tuple[str, ...] = (*ARKIT_NAMES, *TONGUE_NAMES)
CURVE_NAMES: tuple[str, ...] = tuple(
    dict.fromkeys(PREFIX + control for name in SOURCE_NAMES for control, _ in MAPPING[name])
)
"""Every MetaHuman curve the mapping writes, full names, in source order."""


def mapping_matrix() -> np.ndarray:
    """[68, C] gains from SOURCE_NAMES (52 ARKit then 16 tongue) to CURVE_NAMES."""
    out = np.zeros((len(SOURCE_NAMES), len(CURVE_NAMES)), np.float32)
    for i, name in enumerate(SOURCE_NAMES):
        for control, gain in MAPPING[name]:
            out[i, CURVE_NAMES.index(PREFIX + control)] += gain
    return out


def to_metahuman(names: tuple[str, ...] | list[str], weights: np.ndarray) -> np.ndarray:
    """MetaHuman curve values [N, C] (CURVE_NAMES order, clipped to [0, 1]) from weights [N, K] named ``names``
    in any usual ARKit spelling; names that are not ARKit or A2F tongue poses are ignored."""
    w = np.asarray(weights, np.float32)
    if w.ndim != 2 or w.shape[1] != len(names):
        raise ValueError(f"weights must be [N, {len(names)}], got {list(w.shape)}")
    source = np.zeros((len(w), len(SOURCE_NAMES)), np.float32)
    for k, name in enumerate(names):
        canonical = normalize_arkit_name(name)
        if canonical in SOURCE_NAMES:
            source[:, SOURCE_NAMES.index(canonical)] = w[:, k]
    return np.clip(source @ mapping_matrix(), 0.0, 1.0)


def metahuman_curves(anim: Animation) -> dict[str, np.ndarray]:
    """{``CTRL_expressions_*``: [N] values} for an animation's ARKit and tongue curves."""
    names: list[str] = []
    columns: list[np.ndarray] = []
    for curve_names, weights in ((anim.skin_names, anim.skin_weights), (anim.tongue_names, anim.tongue_weights)):
        if weights is not None:
            names += list(curve_names)
            columns.append(np.asarray(weights, np.float32))
    values = to_metahuman(names, np.concatenate(columns, axis=1) if columns else np.zeros((len(anim), 0)))
    return {name: values[:, j] for j, name in enumerate(CURVE_NAMES)}


def metahuman_csv_text(anim: Animation) -> str:
    """The curves as an Unreal Curve Table CSV: a header ``Name`` then the key times (exact frame times k / fps,
    seconds), then one row per ``CTRL_expressions_*`` control with its value at each key (6 decimals)."""
    from facecast.export.csv import frame_times

    curves = metahuman_curves(anim)
    lines = [",".join(["Name", *(f"{t:.6f}" for t in frame_times(anim))])]
    lines += [",".join([name, *(f"{v:.6f}" for v in values)]) for name, values in curves.items()]
    return "\n".join(lines) + "\n"


def write_metahuman_csv(anim: Animation, path: str | Path) -> Path:
    """Write :func:`metahuman_csv_text` atomically (``facecast animate --formats metahuman``); returns the path."""
    from facecast.fileio import atomic_write

    path = Path(path)
    text = metahuman_csv_text(anim)
    atomic_write(path, lambda fh: fh.write(text.encode()))
    return path
