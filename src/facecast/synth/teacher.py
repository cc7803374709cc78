"""A procedural teacher: timed phones (+ the clean audio) -> ARKit-52 and tongue-16 weight curves at 30 fps.

Rules, in the order they are applied:

1. **Units.** Each phone is split into articulatory units (:func:`facecast.synth.phonemes.phone_units`): a
   diphthong into its two vowels, a syllabic ``əl`` into vowel + consonant; vowels take more of the phone's time
   than consonants. Modifier-only phones (``ʲ``) extend the unit before them.
2. **Closure timing from the audio.** A stop's silent closure often sits at the end of the phone before it
   (espeak-ng marks the burst). When the audio just before a consonant is quiet (30 dB below the speech level),
   the consonant is moved to start there (at most 120 ms earlier). A bilabial's lips are closed from its start
   to its release: the end of its quiet part (the burst), or, for voiced ``b`` / ``m`` without a quiet part,
   20 ms before its end. The closed plateau is made at least 1.05 frames long, so every bilabial has a frame
   with the lips shut.
3. **Coarticulation by dominance functions** (Cohen & Massaro). Articulators (jaw, pucker, funnel, spread,
   upper / lower lip, tongue tip out and the 16 tongue poses) are grouped (jaw, rounding, lips, tongue). Every unit
   has, per group, a target and a dominance ``alpha * exp(-d / tau)``, with ``d`` the distance outside the middle
   half of the unit and separate ``tau`` before (anticipation) and after (carry-over) it. A frame's value is the
   dominance-weighted mean of all targets. Rounded vowels and r/w have strong, long-reaching rounding (look-ahead
   of about 150 ms through the consonants before them, which barely specify rounding); consonants dominate the
   tongue, vowels the jaw.
4. **Targets.** Jaw opening follows vowel openness (``0.08 + 0.32 * openness``), scaled by the vowel's loudness
   relative to the utterance (power 0.35, within 0.75-1.3), a per-shot articulation scale and a small per-vowel
   jitter. Rounded vowels: pucker for close ones (u), funnel for open ones (ɔ); spread vowels: mouthStretch +
   a little mouthSmile; alveolars: tongue tip up; velars: tongue back up; dentals: tongue between the teeth;
   postalveolars: funnelled lips; a short silence between words: near rest with the lips slightly parted (jaw
   0.03); a **pause** (a silence of at least ``PAUSE_S``, 150 ms): the character's neutral, dominating its whole
   span with a steep edge (strength 6, 20 ms), so the mouth is at rest when the sound stops and stays still.
5. **Bilabial and labiodental contacts** are separate curves (max of raised-cosine trapezoids: 60 ms anticipatory
   ramp, plateau, 50 ms release). Closure sets mouthClose = closure x jawOpen (ARKit's "jaw open, lips
   together"), adds mouthPress (``closure_press``; ``closure_roll`` also rolls the lips in, off by default), and
   fades out every lip-opening shape (funnel, upper-lip up, lower-lip down, shrug upper, jaw forward), so the lips
   meet whatever the jaw and the emotion do. The labiodental contact rolls the lower lip in under the upper teeth.
6. **Emotion overlay** (:mod:`facecast.synth.emotions`): brow / eye / cheek / mouth-corner weights, a jaw offset
   and an articulation scale, times the shot's intensity, breathing slowly. Loud stressed vowels sometimes get a
   small brow raise.
7. **Eyes.** Blinks from :func:`facecast.face.blinks.generate_blinks` (rate per emotion) are OR-ed into eyeBlink; the
   gaze is the emotion's bias plus small random fixations (:func:`fixations`: holds of 0.4-2.5 s, jumps of a
   few degrees, 2-frame saccades), turned into eyeLook weights with the character's degrees per weight.

Calibration on the default head (:mod:`facecast.characters`, measured with its lip-pair landmarks, relative to
the neutral pose, where the lips touch): bilabial closures 0.03-0.15 cm *below* the neutral gap (lips pressed;
more with a smile), open vowels 0.5-1.1 cm above it, short silences about +0.06 cm (slightly parted), pauses 0.
ARKit's jawOpen (+2.22 cm at weight 1) and mouthClose (-2.22 cm) cancel exactly, which is what rule 5 relies on;
``tests/test_synth.py`` checks closures and openings on TTS speech.

All randomness comes from ``params.seed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facecast.constants import ARKIT_NAMES, DEFAULT_FPS, TONGUE_NAMES
from facecast.face.blinks import BlinkParams, generate_blinks
from facecast.synth.emotions import STYLES, emotion_overlay
from facecast.synth.phonemes import VOWEL_CLASSES, phone_units

ART: tuple[str, ...] = ("jaw", "pucker", "funnel", "spread", "upper", "lower", "tongue_out", *TONGUE_NAMES)
_GROUP_OF = {"jaw": 0, "pucker": 1, "funnel": 1, "spread": 2, "upper": 2, "lower": 2}
GROUPS = ("jaw", "round", "lips", "tongue")
_A = {name: k for k, name in enumerate(ARKIT_NAMES)}
_OPENING = ("mouthFunnel", "mouthUpperUpLeft", "mouthUpperUpRight", "mouthLowerDownLeft", "mouthLowerDownRight",
            "mouthShrugUpper", "jawForward")  # fmt: skip

# Degrees of eye turn per unit eyeLook weight on the default head (fitted by facecast.characters).
DEFAULT_LOOK_DEG = {"down": 11.3, "up": 9.9, "in": 15.2, "out": 14.8}

# (alpha, tau_before, tau_after) per group: jaw, round, lips, tongue.
_VOWEL_DOM = ((1.0, 0.06, 0.06), (0.6, 0.06, 0.05), (1.0, 0.06, 0.06), (0.5, 0.05, 0.05))
_CONS_DOM = ((0.6, 0.04, 0.04), (0.08, 0.04, 0.04), (0.3, 0.04, 0.04), (1.0, 0.03, 0.03))
DOMINANCE: dict[str, tuple] = {
    "sil": ((0.5, 0.08, 0.08), (0.4, 0.1, 0.1), (0.4, 0.08, 0.08), (0.4, 0.08, 0.08)),
    "pause": ((6.0, 0.02, 0.02),) * 4,
    "bilabial": ((0.7, 0.04, 0.04), (0.2, 0.04, 0.04), (0.6, 0.04, 0.04), (0.2, 0.03, 0.03)),
    "labiodental": ((0.7, 0.04, 0.04), (0.2, 0.04, 0.04), (0.8, 0.04, 0.04), (0.2, 0.03, 0.03)),
    "dental": _CONS_DOM,
    "alveolar": _CONS_DOM,
    "postalveolar": ((0.6, 0.04, 0.04), (0.8, 0.08, 0.06), (0.5, 0.04, 0.04), (1.0, 0.03, 0.03)),
    "velar": _CONS_DOM,
    "glottal": ((0.05, 0.03, 0.03),) * 4,
    "open": _VOWEL_DOM,
    "mid": _VOWEL_DOM,
    "spread": _VOWEL_DOM,
    "rounded": ((1.0, 0.06, 0.06), (1.0, 0.15, 0.08), (1.0, 0.06, 0.06), (0.5, 0.05, 0.05)),
    "rw": ((0.6, 0.04, 0.04), (1.0, 0.12, 0.08), (0.5, 0.04, 0.04), (0.8, 0.03, 0.03)),
}
JAW_RAISING = ("alveolar", "postalveolar", "dental", "labiodental")
"""Consonants that need a raised jaw (the incisors close for sibilants, the lower lip reaches the teeth);
``TeacherParams.consonant_jaw`` sets how strongly they hold the jaw against the vowels around them."""
CORE_FRACTION = {"pause": 1.0}
"""Share of a unit's span (centred) over which its dominance is full; 0.5 (the middle half) when not listed."""
PAUSE_S = 0.15
"""A silence at least this long is a pause: the mouth rests (the character's neutral) through all of it."""


def _targets(cls: str, openness: float) -> dict[str, float]:
    """Articulator targets of one unit."""
    vowel_jaw = 0.08 + 0.32 * openness
    table: dict[str, dict[str, float]] = {
        "sil": {"jaw": 0.03, "lower": 0.05},
        "pause": {},
        "bilabial": {"jaw": 0.06},
        "labiodental": {"jaw": 0.05, "upper": 0.1},
        "dental": {"jaw": 0.1, "tongue_out": 0.25, "tongueTipUp": 0.2, "tongueStretch": 0.4},
        "alveolar": {"jaw": 0.07, "spread": 0.1, "tongueTipUp": 0.8, "tongueUp": 0.2},
        "postalveolar": {"jaw": 0.06, "funnel": 0.45, "pucker": 0.25, "upper": 0.1, "tongueTipUp": 0.5,
                         "tongueUp": 0.5, "tongueRollUp": 0.3},
        "velar": {"jaw": 0.1, "tongueUp": 0.7, "tongueIn": 0.4, "tongueTipDown": 0.3},
        "glottal": {"jaw": 0.15},
        "open": {"jaw": vowel_jaw, "lower": 0.35 * openness, "upper": 0.15, "tongueDown": 0.6, "tongueTipDown": 0.2},
        "mid": {"jaw": vowel_jaw, "lower": 0.15, "tongueDown": 0.25},
        "spread": {"jaw": vowel_jaw, "spread": 0.6, "upper": 0.1, "tongueUp": 0.45, "tongueWide": 0.3,
                   "tongueTipDown": 0.3},
        "rounded": {"jaw": 0.8 * vowel_jaw, "pucker": 0.1 + 0.7 * (1 - openness), "funnel": 0.2 + 0.5 * openness,
                    "tongueIn": 0.4, "tongueUp": 0.3 * (1 - openness)},
        "rw": {"jaw": 0.07, "pucker": 0.5, "funnel": 0.25, "tongueRollUp": 0.3, "tongueTipUp": 0.3, "tongueIn": 0.3},
    }  # fmt: skip
    return table[cls]


@dataclass(frozen=True)
class TeacherParams:
    """Settings of one shot's teacher curves; every random choice derives from ``seed``."""

    fps: float = DEFAULT_FPS
    emotion: str = "neutral"
    intensity: float = 0.0
    articulation: float = 1.0
    blinks: bool = True
    gaze: bool = True
    fixation_deg: float = 2.5
    seed: int = 0
    closure_press: float = 0.35
    """mouthPress (both sides) at full bilabial contact; more presses the lips past rest."""
    closure_roll: float = 0.0
    """mouthRollUpper / mouthRollLower at full bilabial contact (the lips roll in as they press)."""
    consonant_jaw: float | None = None
    """Jaw dominance of the ``JAW_RAISING`` consonants (None: the table's 0.6-0.7; higher: the jaw rises more
    between vowels, as it does for s, t, n, l, f)."""


@dataclass
class Unit:
    """One articulatory unit: class, vowel openness, time span and (bilabials) the closed-lips span."""

    cls: str
    openness: float
    start: float
    end: float
    closed: tuple[float, float] | None = None
    loudness: float = 1.0


@dataclass
class TeacherCurves:
    """Per-frame teacher output: ARKit [F, 52], tongue [F, 16], gaze [F, 2] (deg, +x down, +y to the left),
    lip contact [F] (1 = lips shut by a bilabial) and blink [F]."""

    arkit: np.ndarray
    tongue: np.ndarray
    gaze: np.ndarray
    closure: np.ndarray
    blink: np.ndarray


# ----------------------------------------------------------------------------------------------------
# units and audio refinement


def make_units(phones: list[tuple[str, float, float]]) -> list[Unit]:
    """Split phones into units (rule 1)."""
    units: list[Unit] = []
    for phone, start, end in phones:
        parts = phone_units(phone)
        if not parts:
            if units:
                units[-1].end = end
            continue
        weights = np.array([1.0 if c in VOWEL_CLASSES else 0.6 for c, _ in parts])
        edges = start + (end - start) * np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
        for (cls, openness), s, e in zip(parts, edges[:-1], edges[1:], strict=True):
            if units and units[-1].cls == cls == "sil":
                units[-1].end = float(e)
            else:
                units.append(Unit(cls, openness, float(s), float(e)))
    return units


def _envelope(audio: np.ndarray, sr: int, hop_s: float = 0.005) -> tuple[np.ndarray, float]:
    """Frame energy in dB relative to the speech level (95th percentile), and the hop in seconds."""
    hop = max(1, int(round(hop_s * sr)))
    n = len(audio) // hop
    if n == 0:
        return np.zeros(0), hop / sr
    power = np.mean(audio[: n * hop].astype(np.float64).reshape(n, hop) ** 2, axis=1)
    db = 10 * np.log10(power + 1e-12)
    return db - np.percentile(db, 95), hop / sr


def refine_units(units: list[Unit], audio: np.ndarray | None, sr: int | None, fps: float) -> None:
    """Move consonant starts to their silent closures and set bilabial closed spans (rule 2), in place."""
    env, hop = _envelope(audio, sr) if audio is not None and sr else (np.zeros(0), 0.005)
    quiet = env < -30.0

    def is_quiet(t: float) -> bool:
        k = int(t / hop)
        return 0 <= k < len(quiet) and bool(quiet[k])

    for i, u in enumerate(units):
        if u.cls in VOWEL_CLASSES or u.cls in ("sil", "glottal"):
            continue
        prev = units[i - 1] if i > 0 else None
        if len(env) and prev is not None and prev.cls != "sil":
            t = u.start
            limit = max(u.start - 0.12, prev.start + 0.4 * (prev.end - prev.start))
            while t - hop >= limit and is_quiet(t - hop / 2):
                t -= hop
            if u.start - t >= 0.015:
                prev.end = u.start = t
    for u in units:
        if u.cls != "bilabial":
            continue
        release = u.end - min(0.02, 0.25 * (u.end - u.start))
        if len(env):
            t = u.start
            while t < u.start + 0.7 * (u.end - u.start) and is_quiet(t + hop / 2):
                t += hop
            if t - u.start >= 0.015:
                release = t
        c0, c1 = u.start, release
        min_span = 1.05 / fps
        if c1 - c0 < min_span:
            mid = 0.5 * (c0 + c1)
            c0, c1 = mid - min_span / 2, mid + min_span / 2
        u.closed = (c0, c1)
    if len(env):
        for u in units:
            if u.cls in VOWEL_CLASSES:
                a, b = int(u.start / hop), max(int(u.start / hop) + 1, int(u.end / hop))
                u.loudness = float(np.mean(10 ** (env[a:b] / 10))) if b <= len(env) and b > a else 1.0


# ----------------------------------------------------------------------------------------------------
# curves


def _trapezoid(t: np.ndarray, c0: float, c1: float, ramp_in: float, ramp_out: float) -> np.ndarray:
    """1 on [c0, c1] with raised-cosine ramps of the given lengths before and after, 0 beyond."""
    y = np.zeros_like(t)
    y[(t >= c0) & (t <= c1)] = 1.0
    rise = (t > c0 - ramp_in) & (t < c0)
    y[rise] = 0.5 - 0.5 * np.cos(np.pi * (t[rise] - (c0 - ramp_in)) / ramp_in)
    fall = (t > c1) & (t < c1 + ramp_out)
    y[fall] = 0.5 + 0.5 * np.cos(np.pi * (t[fall] - c1) / ramp_out)
    return y


def dominance_table(consonant_jaw: float | None = None) -> dict[str, tuple]:
    """``DOMINANCE`` with the jaw dominance of the ``JAW_RAISING`` consonants set to ``consonant_jaw``."""
    if consonant_jaw is None:
        return DOMINANCE
    table = dict(DOMINANCE)
    for cls in JAW_RAISING:
        (_, before, after), *rest = table[cls]
        table[cls] = ((consonant_jaw, before, after), *rest)
    return table


def _dominance_blend(
    units: list[Unit], targets: np.ndarray, t: np.ndarray, dominance: dict[str, tuple] = DOMINANCE
) -> np.ndarray:
    """Articulator values [F, len(ART)] from unit targets [U, len(ART)] (rule 3)."""
    starts = np.array([u.start for u in units])
    ends = np.array([u.end for u in units])
    core = np.array([CORE_FRACTION.get(u.cls, 0.5) for u in units])
    centre, half = 0.5 * (starts + ends), 0.5 * core * (ends - starts)
    offset = t[:, None] - centre[None, :]
    outside = np.maximum(np.abs(offset) - half[None, :], 0.0)
    before = offset < 0
    out = np.zeros((len(t), len(ART)))
    group_of = np.array([_GROUP_OF.get(a, 3) for a in ART])
    for g in range(len(GROUPS)):
        dom = np.array([dominance[u.cls][g] for u in units])  # [U, 3]
        tau = np.where(before, dom[None, :, 1], dom[None, :, 2])
        weight = dom[None, :, 0] * np.exp(-outside / tau) + 1e-9
        cols = group_of == g
        out[:, cols] = (weight @ targets[:, cols]) / weight.sum(axis=1, keepdims=True)
    return out


def fixations(num_frames: int, fps: float, rng: np.random.Generator, amplitude_deg: float = 2.5) -> np.ndarray:
    """Gaze offsets [F, 2] in degrees: holds of 0.4-2.5 s, jumps of about ``amplitude_deg``, 2-frame saccades."""
    out = np.zeros((num_frames, 2))
    pos = np.zeros(2)
    k = 0
    while k < num_frames:
        hold = max(1, int(rng.uniform(0.4, 2.5) * fps))
        target = np.clip(rng.normal(0.0, amplitude_deg, 2) * [0.6, 1.0], -3 * amplitude_deg, 3 * amplitude_deg)
        steps = min(2, num_frames - k)
        for s in range(steps):
            out[k + s] = pos + (target - pos) * (s + 1) / (steps + 1)
        pos = target
        out[k + steps : k + hold] = pos
        k += max(hold, steps)
    return out


def gaze_to_arkit(gaze: np.ndarray, look_deg: dict[str, float] = DEFAULT_LOOK_DEG) -> np.ndarray:
    """eyeLook weights [F, 52] for a shared gaze [F, 2] (deg, +x down, +y toward the character's left)."""
    w = np.zeros((len(gaze), len(ARKIT_NAMES)))
    x, y = gaze[:, 0], gaze[:, 1]
    for side in ("Left", "Right"):
        w[:, _A[f"eyeLookDown{side}"]] = np.clip(x / look_deg["down"], 0, 1)
        w[:, _A[f"eyeLookUp{side}"]] = np.clip(-x / look_deg["up"], 0, 1)
    # Looking to the character's left: the left eye turns out, the right eye in.
    w[:, _A["eyeLookOutLeft"]] = np.clip(y / look_deg["out"], 0, 1)
    w[:, _A["eyeLookInLeft"]] = np.clip(-y / look_deg["in"], 0, 1)
    w[:, _A["eyeLookInRight"]] = np.clip(y / look_deg["in"], 0, 1)
    w[:, _A["eyeLookOutRight"]] = np.clip(-y / look_deg["out"], 0, 1)
    return w


def look_degrees(eye_look_rotations: np.ndarray) -> dict[str, float]:
    """Degrees per unit eyeLook weight from a character's ``eye_look_rotations`` [52, 2, 2] (left eye)."""
    r = np.abs(eye_look_rotations[:, 1, :])
    return {
        "down": float(r[_A["eyeLookDownLeft"], 0]),
        "up": float(r[_A["eyeLookUpLeft"], 0]),
        "in": float(r[_A["eyeLookInLeft"], 1]),
        "out": float(r[_A["eyeLookOutLeft"], 1]),
    }


def _set_pair(w: np.ndarray, stem: str, values: np.ndarray) -> None:
    w[:, _A[f"{stem}Left"]] = values
    w[:, _A[f"{stem}Right"]] = values


def teach(
    phones: list[tuple[str, float, float]],
    num_frames: int,
    params: TeacherParams | None = None,
    audio: np.ndarray | None = None,
    sample_rate: int | None = None,
    look_deg: dict[str, float] | None = None,
) -> TeacherCurves:
    """Teacher curves for ``num_frames`` frames (frame k at time k / fps) from timed IPA phones.

    ``audio`` (the clean TTS audio, any rate) refines stop closures and scales jaw opening by loudness.
    """
    p = params or TeacherParams()
    if p.emotion not in STYLES:
        raise ValueError(f"unknown emotion {p.emotion!r}")
    rng = np.random.default_rng(p.seed)
    t = np.arange(num_frames) / p.fps
    units = make_units(phones)
    if not units or num_frames == 0:
        units = [Unit("sil", 0.0, 0.0, max(num_frames / p.fps, 1e-3))]
    refine_units(units, audio, sample_rate, p.fps)
    for u in units:
        if u.cls == "sil" and u.end - u.start >= PAUSE_S:
            u.cls = "pause"
    style = STYLES[p.emotion]
    scale = p.articulation * (1.0 + (style.articulation - 1.0) * p.intensity)
    vowel_loud = [u.loudness for u in units if u.cls in VOWEL_CLASSES]
    ref = float(np.median(vowel_loud)) if vowel_loud else 1.0
    targets = np.zeros((len(units), len(ART)))
    col = {a: k for k, a in enumerate(ART)}
    for i, u in enumerate(units):
        for name, value in _targets(u.cls, u.openness).items():
            targets[i, col[name]] = value
        if u.cls in VOWEL_CLASSES:
            loud = float(np.clip((u.loudness / max(ref, 1e-12)) ** 0.35, 0.75, 1.3))
            targets[i, col["jaw"]] *= scale * loud * rng.uniform(0.9, 1.1)
        else:
            targets[i, col["jaw"]] *= 0.5 + 0.5 * scale
    art = _dominance_blend(units, targets, t, dominance_table(p.consonant_jaw))
    close = np.zeros(num_frames)
    tuck = np.zeros(num_frames)
    for u in units:
        if u.closed is not None:
            np.maximum(close, _trapezoid(t, *u.closed, 0.06, 0.05), out=close)
        elif u.cls == "labiodental":
            np.maximum(tuck, _trapezoid(t, u.start, u.end - 0.2 * (u.end - u.start), 0.05, 0.05), out=tuck)

    w = np.zeros((num_frames, len(ARKIT_NAMES)))
    w[:, _A["jawOpen"]] = art[:, col["jaw"]]
    w[:, _A["mouthPucker"]] = art[:, col["pucker"]]
    w[:, _A["mouthFunnel"]] = art[:, col["funnel"]]
    _set_pair(w, "mouthStretch", 0.45 * art[:, col["spread"]])
    _set_pair(w, "mouthSmile", 0.2 * art[:, col["spread"]])
    _set_pair(w, "mouthUpperUp", art[:, col["upper"]] + 0.15 * tuck)
    _set_pair(w, "mouthLowerDown", art[:, col["lower"]])
    w[:, _A["mouthRollLower"]] = 0.6 * tuck
    w[:, _A["tongueOut"]] = art[:, col["tongue_out"]]
    tongue = np.clip(art[:, [col[n] for n in TONGUE_NAMES]], 0.0, 1.0)

    # emotion, brow accents
    add, jaw_add = emotion_overlay(p.emotion, p.intensity, num_frames, p.fps, rng)
    w += add
    w[:, _A["jawOpen"]] += jaw_add
    loud_vowels = [u for u in units if u.cls in VOWEL_CLASSES and u.end - u.start > 0.08 and u.loudness > 1.3 * ref]
    for u in loud_vowels:
        if rng.uniform() < 0.5:
            bump = float(rng.uniform(0.1, 0.25)) * _trapezoid(t, u.start, u.end, 0.1, 0.15)
            w[:, _A["browInnerUp"]] += bump
            _set_pair(w, "browOuterUp", w[:, _A["browOuterUpLeft"]] + 0.6 * bump)

    # eyes
    blink = np.zeros(num_frames)
    if p.blinks:
        blink = generate_blinks(num_frames, p.fps, BlinkParams(rate=style.blink_rate, seed=p.seed)).astype(float)
    for side in ("Left", "Right"):
        k = _A[f"eyeBlink{side}"]
        w[:, k] = 1.0 - (1.0 - np.clip(w[:, k], 0, 1)) * (1.0 - blink)
        for stem in ("eyeSquint", "eyeWide"):  # a closing lid overrides squint / wide
            w[:, _A[f"{stem}{side}"]] *= 1.0 - blink
    gaze = np.zeros((num_frames, 2))
    if p.gaze:
        gaze[:, 0] = style.gaze_down_deg * p.intensity
        gaze += fixations(num_frames, p.fps, rng, p.fixation_deg)
        w += gaze_to_arkit(gaze, look_deg or DEFAULT_LOOK_DEG)

    # lip contact wins over everything that would part the lips (rule 5)
    w = np.clip(w, 0.0, 1.0)
    for name in _OPENING:
        w[:, _A[name]] *= 1.0 - close
    w[:, _A["mouthClose"]] = close * w[:, _A["jawOpen"]]
    for side in ("Left", "Right"):
        k = _A[f"mouthPress{side}"]
        w[:, k] = np.maximum(w[:, k], p.closure_press * close)
    for name in ("mouthRollUpper", "mouthRollLower"):
        w[:, _A[name]] = np.maximum(w[:, _A[name]], p.closure_roll * close)
    return TeacherCurves(
        arkit=np.clip(w, 0.0, 1.0).astype(np.float32),
        tongue=tongue.astype(np.float32),
        gaze=gaze.astype(np.float32),
        closure=close.astype(np.float32),
        blink=blink.astype(np.float32),
    )
