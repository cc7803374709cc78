"""Output gains that give a trained model back the range of the curves it was trained on.

A regression network trained with an L2 loss predicts the average of what the audio leaves open, so the shapes
that audio conveys least come out smaller than the teacher made them: lip rounding most (on held-out synthetic
speech the default model's ``mouthPucker`` and ``mouthFunnel`` vary half as much as the teacher's). Per pose, the
gain is the teacher's standard deviation over the model's, measured on a synthetic corpus made by ``facecast
synth`` (its ``meta/<shot>.npz`` hold the teacher's ARKit curves); it goes into the pack's
``bs_skin_config.json`` as the SDK's own per-pose ``bsWeightMultipliers``, so every runtime applies it.

Measured with the pack's current multipliers in place: the new multiplier is the old one times the gain, and
calibrating a calibrated pack again gives gains of 1.

The jaw (:func:`jaw_gain`, ``--jaw``): the network's A2F jaw transform and its skin are trained on the same teacher
but come out at different amplitudes (the default model's jaw opened the lower teeth half as far as its solved
``jawOpen`` does), so a rig that takes the jaw from one and the lips from the other would show teeth and lips
disagreeing. The jaw gain is the factor on the pack's ``lower_teeth_strength`` (``model_config.json``) that makes
the A2F jaw drop the lower teeth as far as the solved ARKit jaw shapes drop them on the character.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from facecast.fileio import read_json, read_npz, write_json
from facecast.models.builtin import apply_multipliers  # noqa: F401  (re-exported)

ROUNDING_POSES: tuple[str, ...] = ("mouthPucker", "mouthFunnel")
"""The poses calibrated by default: lip rounding, which the network under-predicts most."""

MIN_STD = 1e-3
"""By default, a pose that varies less than this (in weight) in the model's output or the teacher's is refused."""


@dataclass(frozen=True)
class PoseGain:
    """One pose's calibration: the gain and what it was measured from."""

    name: str
    gain: float
    model_std: float
    teacher_std: float
    correlation: float
    frames: int


@dataclass(frozen=True)
class Shot:
    """A synthetic shot: its audio, emotion and the teacher's ARKit curves."""

    name: str
    audio: np.ndarray
    emotion: dict[str, float] | None
    arkit: np.ndarray
    arkit_names: tuple[str, ...]


def corpus_shots(corpus_dir: str | os.PathLike, max_shots: int | None = None) -> Iterator[Shot]:
    """The shots of a ``facecast synth`` corpus, in name order (``max_shots`` keeps the first ones)."""
    from facecast.audio import load_audio

    root = Path(corpus_dir)
    manifest = root / "corpus.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"{root} is not a facecast synth corpus (no corpus.json)")
    names = read_json(manifest).get("arkit_names")
    if not isinstance(names, list) or not names:
        raise ValueError(f"{manifest} lists no arkit_names")
    records = sorted(p for p in (root / "meta").glob("*.json") if not p.name.startswith("_"))
    if not records:
        raise FileNotFoundError(f"{root / 'meta'} holds no shots")
    for path in records[:max_shots]:
        rec = read_json(path)
        emotion = rec.get("emotion", "neutral")
        yield Shot(
            name=rec["name"],
            audio=load_audio(root / "audio" / f"{rec['name']}.wav"),
            emotion=None if emotion == "neutral" else {emotion: float(rec.get("intensity", 1.0))},
            arkit=np.asarray(read_npz(path.with_suffix(".npz"))["arkit"], np.float64),
            arkit_names=tuple(names),
        )


def pose_gains(
    model,
    shots: Iterator[Shot] | Sequence[Shot],
    poses: Sequence[str] = ROUNDING_POSES,
    progress: Callable[[str], None] | None = None,
    min_std: float = MIN_STD,
) -> dict[str, PoseGain]:
    """Per pose: std(teacher) / std(model) over all frames of ``shots``, animated by ``model`` with each shot's
    emotion and no blinks."""
    model_rows: dict[str, list[np.ndarray]] = {p: [] for p in poses}
    teacher_rows: dict[str, list[np.ndarray]] = {p: [] for p in poses}
    for shot in shots:
        anim = model.animate(shot.audio, emotion=shot.emotion, blinks=False)
        skin = tuple(anim.skin_names)
        for pose in poses:
            if pose not in skin:
                raise ValueError(f"the model has no skin pose {pose!r}")
            if pose not in shot.arkit_names:
                raise ValueError(f"the corpus has no teacher curve for {pose!r}")
        n = min(len(anim.skin_weights), len(shot.arkit))
        for pose in poses:
            model_rows[pose].append(np.asarray(anim.skin_weights[:n, skin.index(pose)], np.float64))
            teacher_rows[pose].append(shot.arkit[:n, shot.arkit_names.index(pose)])
        if progress is not None:
            progress(shot.name)
    out = {}
    for pose in poses:
        if not model_rows[pose]:
            raise ValueError("no shots to calibrate on")
        m, t = np.concatenate(model_rows[pose]), np.concatenate(teacher_rows[pose])
        m_std, t_std = float(m.std()), float(t.std())
        if m_std < min_std or t_std < min_std:
            raise ValueError(
                f"{pose} barely moves (model std {m_std:.2g}, teacher std {t_std:.2g}): it cannot be calibrated"
            )
        corr = float(np.corrcoef(m, t)[0, 1])
        out[pose] = PoseGain(pose, t_std / m_std, m_std, t_std, corr, len(m))
    return out


def skin_config_path(pack_dir: str | os.PathLike) -> Path:
    """The pack's skin solver config (``blendshapePaths.skin.config`` of its ``model.json``)."""
    from facecast.pack import MODEL_JSON, resolve_inside

    root = Path(pack_dir)
    if root.is_file():
        root = root.parent
    spec = read_json(root / MODEL_JSON)
    skin = (spec.get("blendshapePaths") or {}).get("skin") if isinstance(spec, dict) else None
    if not isinstance(skin, dict) or not skin.get("config"):
        raise ValueError(f"{root} has no skin blendshape config to calibrate")
    return resolve_inside(root, skin["config"], "blendshapePaths.skin.config")


def write_multipliers(pack_dir: str | os.PathLike, gains: dict[str, PoseGain]) -> dict[str, float]:
    """Multiply the pack's ``bsWeightMultipliers`` by the gains; returns the new multipliers of those poses."""
    from facecast.pack import load_pack

    bs = load_pack(pack_dir).skin_blendshapes
    if bs is None:
        raise ValueError(f"{pack_dir} has no skin blendshapes to calibrate")
    for pose in gains:
        if pose not in bs.names:
            raise ValueError(f"{pack_dir} has no skin pose {pose!r}")
    old = bs.config.get("bsWeightMultipliers", [1.0] * len(bs.names))
    new = {pose: round(float(old[bs.names.index(pose)]) * g.gain, 4) for pose, g in gains.items()}
    path = skin_config_path(pack_dir)
    doc = read_json(path)
    if "blendshape_params" in doc:
        doc["blendshape_params"] = apply_multipliers(doc["blendshape_params"], bs.names, new)
    else:
        doc = apply_multipliers(doc, bs.names, new)
    write_json(path, doc)
    return new


def gains_json(gains: dict[str, PoseGain]) -> dict[str, dict]:
    """The gains as plain JSON."""
    return {name: {k: v for k, v in asdict(g).items() if k != "name"} for name, g in gains.items()}


MIN_DROP_STD_CM = 0.01
"""A jaw whose teeth drop varies less than this (cm, 0.1 mm) over the corpus is refused."""
MIN_JAW_CORRELATION = 0.8
"""The A2F jaw and the ARKit jaw shapes must move the teeth together at least this well to be matched by a gain."""


@dataclass(frozen=True)
class JawGain:
    """The jaw's calibration: the factor on ``lower_teeth_strength`` and what it was measured from."""

    gain: float
    correlation: float
    frames: int
    arkit_drop_std_cm: float  # how far the solved ARKit jaw shapes move the lower teeth (std over frames)


def teeth_drop(character, arkit: np.ndarray, jaw: np.ndarray | None = None) -> np.ndarray:
    """[N] how far the lower teeth's centroid moves down (cm): under the jaw transforms ``jaw`` [N, 4, 4] when
    given, else under the ARKit weights' jaw shapes (``arkit`` [N, 52], ARKit order; linear in the weights)."""
    from facecast.characters import JAW_SHAPE_INDICES
    from facecast.constants import ARKIT_NAMES

    teeth = np.asarray(character.parts["lower_teeth"].vertices, np.float64)
    centre = teeth.mean(axis=0)
    if jaw is not None:
        m = np.asarray(jaw, np.float64)
        return centre[1] - (m[:, 1, :3] @ centre + m[:, 1, 3])
    ids = JAW_SHAPE_INDICES
    deltas = np.asarray(character.arkit_deltas["lower_teeth"], np.float64).reshape(len(ARKIT_NAMES), -1, 3)
    return -(np.asarray(arkit, np.float64)[:, ids] @ deltas[ids, :, 1].mean(axis=1))


def jaw_gain(model, shots: Iterator[Shot] | Sequence[Shot], character, progress=None) -> JawGain:
    """Least-squares factor g with ``drop(ARKit jaw shapes) ≈ g * drop(A2F jaw)`` over all frames of ``shots``
    (animated with each shot's emotion, no blinks); the teacher curves are not used."""
    from facecast.constants import ARKIT_NAMES

    by_arkit, by_jaw = [], []
    for shot in shots:
        anim = model.animate(shot.audio, emotion=shot.emotion, blinks=False)
        if anim.jaw is None:
            raise ValueError("the model gives no jaw transform to calibrate")
        arkit = np.zeros((len(anim.skin_weights), len(ARKIT_NAMES)))  # (export.csv.arkit_matrix, in float64)
        for j, name in enumerate(anim.skin_names):
            if name in ARKIT_NAMES:
                arkit[:, ARKIT_NAMES.index(name)] = anim.skin_weights[:, j]
        by_arkit.append(teeth_drop(character, arkit))
        by_jaw.append(teeth_drop(character, arkit, np.asarray(anim.jaw)))
        if progress is not None:
            progress(shot.name)
    if not by_jaw:
        raise ValueError("no shots to calibrate on")
    a, b = np.concatenate(by_arkit), np.concatenate(by_jaw)
    if a.std() < MIN_DROP_STD_CM or b.std() < MIN_DROP_STD_CM:
        raise ValueError(
            f"the jaw barely moves on this corpus (teeth drop std {a.std():.2g} cm by the ARKit jaw shapes, "
            f"{b.std():.2g} cm by the A2F jaw): it cannot be calibrated"
        )
    corr = float(np.corrcoef(a, b)[0, 1])
    if corr < MIN_JAW_CORRELATION:
        raise ValueError(
            f"the A2F jaw and the ARKit jaw shapes disagree (correlation {corr:.2f}): a gain cannot match them"
        )
    return JawGain(float(a @ b / (b @ b)), corr, len(a), float(a.std()))


def write_jaw_strength(pack_dir: str | os.PathLike, gain: JawGain) -> float:
    """Multiply the pack's ``lower_teeth_strength`` (``model_config.json``) by the gain; returns the new value."""
    from facecast.face.params import PARAM_RANGES, FaceParams
    from facecast.pack import MODEL_JSON, resolve_inside

    root = Path(pack_dir)
    spec = read_json(root / MODEL_JSON)
    path = resolve_inside(root, spec.get("modelConfigPath", "model_config.json"), "modelConfigPath")
    doc = read_json(path)
    config = doc.get("config", doc)
    old = float(config.get("lower_teeth_strength", FaceParams().lower_teeth_strength))
    lo, hi = PARAM_RANGES["lower_teeth_strength"][:2]
    wanted = old * gain.gain
    config["lower_teeth_strength"] = round(min(max(wanted, lo), hi), 4)
    if config["lower_teeth_strength"] != round(wanted, 4):
        print(f"facecast: warning: the jaw gain asks for lower_teeth_strength {wanted:.4g}, outside its range "
              f"[{lo:g}, {hi:g}]: {config['lower_teeth_strength']:g} written", file=sys.stderr)  # fmt: skip
    write_json(path, doc)
    return config["lower_teeth_strength"]
