"""Facial settings of the 10 Audio2Face emotions for the procedural teacher.

Each emotion is a set of ARKit weights at full intensity (brows, cheeks, mouth corners, eyes) plus how it
changes speaking: a jaw offset, an articulation scale (how wide the mouth moves), a gaze bias in degrees
(+x looks down) and a blink rate. The overlay is scaled by the shot's intensity and breathes slowly over time
(+-15 %), so a shot never holds a frozen expression. ``outofbreath`` adds a panting jaw rhythm.
These are our own settings, chosen to read clearly on the default head; they are not measured data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facecast.constants import ARKIT_NAMES, EMOTION_NAMES


def _both(stem: str, value: float) -> dict[str, float]:
    return {f"{stem}Left": value, f"{stem}Right": value}


@dataclass(frozen=True)
class EmotionStyle:
    """One emotion at intensity 1."""

    weights: dict[str, float] = field(default_factory=dict)
    jaw: float = 0.0
    articulation: float = 1.0
    gaze_down_deg: float = 0.0
    blink_rate: float = 17.0
    pant_hz: float = 0.0


STYLES: dict[str, EmotionStyle] = {
    "neutral": EmotionStyle(),
    "amazement": EmotionStyle(
        {"browInnerUp": 0.8, **_both("browOuterUp", 0.7), **_both("eyeWide", 0.6), "mouthFunnel": 0.1},
        jaw=0.08, articulation=1.1, gaze_down_deg=-3.0, blink_rate=9.0,
    ),
    "anger": EmotionStyle(
        {**_both("browDown", 0.8), **_both("eyeSquint", 0.35), **_both("noseSneer", 0.35),
         **_both("mouthFrown", 0.25), **_both("mouthStretch", 0.15), **_both("cheekSquint", 0.2)},
        articulation=1.15, gaze_down_deg=-1.0, blink_rate=14.0,
    ),
    "cheekiness": EmotionStyle(
        {"mouthSmileLeft": 0.6, "mouthSmileRight": 0.25, "mouthDimpleLeft": 0.3, "browOuterUpLeft": 0.4,
         "eyeSquintRight": 0.2, "cheekSquintLeft": 0.3, "mouthLeft": 0.15},
        articulation=1.05, blink_rate=18.0,
    ),
    "disgust": EmotionStyle(
        {**_both("noseSneer", 0.7), **_both("mouthUpperUp", 0.3), **_both("browDown", 0.5),
         **_both("eyeSquint", 0.4), **_both("mouthFrown", 0.3), **_both("cheekSquint", 0.3),
         "mouthShrugLower": 0.2},
        articulation=0.95, gaze_down_deg=1.0, blink_rate=15.0,
    ),
    "fear": EmotionStyle(
        {"browInnerUp": 0.9, **_both("browOuterUp", 0.3), **_both("eyeWide", 0.7), **_both("mouthStretch", 0.4),
         **_both("mouthFrown", 0.1)},
        jaw=0.04, articulation=0.95, gaze_down_deg=-2.0, blink_rate=25.0,
    ),
    "grief": EmotionStyle(
        {"browInnerUp": 0.8, **_both("mouthFrown", 0.6), **_both("mouthStretch", 0.3), **_both("eyeSquint", 0.3),
         **_both("cheekSquint", 0.2), **_both("mouthLowerDown", 0.15), "mouthShrugLower": 0.3},
        articulation=0.85, gaze_down_deg=8.0, blink_rate=12.0,
    ),
    "joy": EmotionStyle(
        {**_both("mouthSmile", 0.7), **_both("cheekSquint", 0.5), **_both("eyeSquint", 0.3),
         **_both("mouthDimple", 0.2), **_both("browOuterUp", 0.15)},
        articulation=1.05, blink_rate=17.0,
    ),
    "outofbreath": EmotionStyle(
        {"browInnerUp": 0.3, **_both("mouthStretch", 0.1), **_both("eyeSquint", 0.1), **_both("noseSneer", 0.1)},
        jaw=0.12, articulation=0.9, blink_rate=22.0, pant_hz=0.45,
    ),
    "pain": EmotionStyle(
        {**_both("browDown", 0.6), "browInnerUp": 0.5, **_both("eyeSquint", 0.7), **_both("eyeBlink", 0.2),
         **_both("cheekSquint", 0.6), **_both("noseSneer", 0.4), **_both("mouthStretch", 0.4),
         **_both("mouthUpperUp", 0.2)},
        articulation=0.9, gaze_down_deg=3.0, blink_rate=20.0,
    ),
    "sadness": EmotionStyle(
        {"browInnerUp": 0.6, **_both("mouthFrown", 0.5), **_both("eyeBlink", 0.1), "mouthShrugLower": 0.2},
        articulation=0.8, gaze_down_deg=6.0, blink_rate=12.0,
    ),
}  # fmt: skip
"""Emotion name -> style; ``neutral`` plus the 10 A2F emotions."""

assert set(STYLES) == {"neutral", *EMOTION_NAMES}
assert all(name in ARKIT_NAMES for s in STYLES.values() for name in s.weights)


def slow_wobble(num_frames: int, fps: float, rng: np.random.Generator, depth: float = 0.15) -> np.ndarray:
    """A smooth factor around 1 (two slow sinusoids, 0.07-0.3 Hz, random phases), within 1 +- ``depth``."""
    t = np.arange(num_frames) / fps
    freqs = rng.uniform(0.07, 0.3, 2)
    phases = rng.uniform(0, 2 * np.pi, 2)
    wave = 0.5 * (np.sin(2 * np.pi * freqs[0] * t + phases[0]) + np.sin(2 * np.pi * freqs[1] * t + phases[1]))
    return 1.0 + depth * wave


def emotion_overlay(
    emotion: str, intensity: float, num_frames: int, fps: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(ARKit weights to add [F, 52], jaw opening to add [F]) of ``emotion`` at ``intensity`` in [0, 1]."""
    if emotion not in STYLES:
        raise ValueError(f"unknown emotion {emotion!r}; expected neutral or one of {', '.join(EMOTION_NAMES)}")
    style = STYLES[emotion]
    level = float(np.clip(intensity, 0.0, 1.0)) * slow_wobble(num_frames, fps, rng)
    add = np.zeros((num_frames, len(ARKIT_NAMES)), np.float64)
    for name, value in style.weights.items():
        add[:, ARKIT_NAMES.index(name)] = value * level
    jaw = style.jaw * level
    if style.pant_hz > 0:
        t = np.arange(num_frames) / fps
        jaw = jaw + 0.05 * level * (0.5 + 0.5 * np.sin(2 * np.pi * style.pant_hz * t + rng.uniform(0, 2 * np.pi)))
    return add, jaw
