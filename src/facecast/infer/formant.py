"""A small source-filter formant synthesiser for speech-like test and calibration audio.

A glottal pulse train with a falling, gently wavering pitch (around 120 Hz) drives a cascade of formant
resonators whose targets move through vowels ("a", "i", "u", "o"); lip closures ("m", "b", "p") bring the level
close to silence, stops release with a short noise burst, and "s" adds fricative noise. Deterministic from a
seed, 16 kHz mono. Not a TTS: it has no words, only the acoustics the network's windows see.
"""

from __future__ import annotations

import numpy as np

SR = 16_000
SEED = 20_240_601

# Formant frequencies (Hz) of an adult male voice for each vowel: F1, F2, F3.
VOWELS: dict[str, tuple[float, float, float]] = {
    "a": (730.0, 1090.0, 2440.0),
    "i": (270.0, 2290.0, 3010.0),
    "u": (300.0, 870.0, 2240.0),
    "o": (570.0, 840.0, 2410.0),
    "m": (250.0, 1100.0, 2200.0),  # nasal murmur, radiated through the nose
}
FIXED_FORMANTS = (3300.0, 3750.0)
BANDWIDTHS = (80.0, 100.0, 140.0, 200.0, 250.0)

# (phone, seconds). Phones: vowels, "m" (nasal), "b"/"p" (closure then release), "s", "_" (silence).
SCRIPT: list[tuple[str, float]] = [
    ("_", 0.15),
    ("m", 0.09),
    ("a", 0.26),
    ("b", 0.07),
    ("i", 0.24),
    ("s", 0.15),
    ("u", 0.24),
    ("_", 0.12),
    ("p", 0.08),
    ("o", 0.28),
    ("m", 0.08),
    ("a", 0.22),
    ("b", 0.06),
    ("i", 0.20),
    ("p", 0.08),
    ("u", 0.18),
    ("s", 0.12),
    ("o", 0.24),
    ("_", 0.20),
]


def smooth(x: np.ndarray, seconds: float) -> np.ndarray:
    """Moving-average smoothing with edge padding, to turn step targets into glides."""
    n = max(1, int(round(seconds * SR)))
    kernel = np.ones(n) / n
    padded = np.pad(x, (n // 2, n - 1 - n // 2), mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def control_tracks(rng: np.random.Generator, script: list[tuple[str, float]]) -> dict[str, np.ndarray]:
    """Per-sample targets for voicing, noise levels and formant frequencies."""
    total = sum(int(round(d * SR)) for _, d in script)
    voice = np.zeros(total)
    asp = np.zeros(total)
    fric = np.zeros(total)
    formants = np.zeros((3, total))
    bursts: list[tuple[int, float]] = []
    last_vowel = "a"
    start = 0
    for i, (phone, dur) in enumerate(script):
        n = int(round(dur * SR))
        seg = slice(start, start + n)
        nxt = next((p for p, _ in script[i + 1 :] if p in "aiuo"), last_vowel)
        if phone in "aiuo":
            voice[seg] = 1.0
            formants[:, seg] = np.array(VOWELS[phone])[:, None]
            last_vowel = phone
        elif phone == "m":
            voice[seg] = 0.12
            formants[:, seg] = np.array(VOWELS["m"])[:, None]
        elif phone in "bp":
            voice[seg] = 0.02 if phone == "b" else 0.0  # a faint voice bar for "b", none for "p"
            formants[:, seg] = np.array(VOWELS[nxt])[:, None] * np.array([[0.5], [0.9], [1.0]])
            bursts.append((start + n, 0.5 if phone == "p" else 0.3))
            if phone == "p":  # aspiration after the release, before voicing starts
                asp[start + n : start + n + int(0.04 * SR)] = 0.25
        elif phone == "s":
            fric[seg] = 0.08
            formants[:, seg] = np.array(VOWELS[nxt])[:, None]
        else:
            formants[:, seg] = np.array(VOWELS[last_vowel])[:, None]
        start += n
    tracks = {
        "voice": smooth(voice, 0.015),
        "asp": smooth(asp, 0.008),
        "fric": smooth(fric, 0.02),
        "formants": np.stack([smooth(f, 0.035) for f in formants]),
    }
    burst = np.zeros(total)
    for at, level in bursts:
        m = int(0.008 * SR)
        burst[at : at + m] = level * np.exp(-np.arange(min(m, total - at)) / (0.002 * SR))
    tracks["burst"] = burst
    tracks["noise"] = rng.standard_normal(total)
    return tracks


def glottal_source(n: int, rng: np.random.Generator) -> np.ndarray:
    """Differentiated Rosenberg glottal pulses with a falling, wavering pitch around 120 Hz."""
    t = np.arange(n) / SR
    dur = n / SR
    f0 = 132.0 - 24.0 * t / dur  # declination over the utterance
    f0 *= 1.0 + 0.05 * np.sin(2 * np.pi * 0.9 * t) + 0.03 * np.sin(2 * np.pi * 2.3 * t + 1.0)
    f0 *= 1.0 + 0.004 * smooth(rng.standard_normal(n), 0.01)  # slight jitter
    phase = np.cumsum(f0 / SR) % 1.0
    t_open, t_close = 0.40, 0.16
    flow = np.where(
        phase < t_open,
        0.5 * (1.0 - np.cos(np.pi * phase / t_open)),
        np.where(phase < t_open + t_close, np.cos(np.pi * (phase - t_open) / (2 * t_close)), 0.0),
    )
    return np.diff(flow, prepend=0.0) * 8.0  # lip radiation ~ differentiation


def resonate(x: np.ndarray, freq: np.ndarray | float, bw: float) -> np.ndarray:
    """A two-pole resonator with unity gain at 0 Hz and a (possibly time-varying) centre frequency."""
    n = x.size
    freq = np.broadcast_to(np.asarray(freq, dtype=float), (n,))
    r = np.exp(-np.pi * bw / SR)
    a1 = 2.0 * r * np.cos(2.0 * np.pi * freq / SR)
    a2 = -r * r
    gain = 1.0 - a1 - a2
    y = np.zeros(n)
    y1 = y2 = 0.0
    for k in range(n):
        y0 = gain[k] * x[k] + a1[k] * y1 + a2 * y2
        y[k] = y0
        y2, y1 = y1, y0
    return y


def synthesise(seed: int = SEED, script: list[tuple[str, float]] | None = None) -> np.ndarray:
    """Speech-like float32 audio at 16 kHz (peak 0.7) for ``script`` (default: about 3 s of "mabisu pomabipuso")."""
    rng = np.random.default_rng(seed)
    c = control_tracks(rng, SCRIPT if script is None else script)
    n = c["voice"].size
    source = glottal_source(n, rng) * c["voice"]
    source += 0.02 * c["noise"] * c["voice"]  # breathiness
    source += c["noise"] * c["asp"]  # aspiration goes through the vocal tract too
    tract = source
    for i, bw in enumerate(BANDWIDTHS):
        freq = c["formants"][i] if i < 3 else FIXED_FORMANTS[i - 3]
        tract = resonate(tract, freq, bw)
    hiss = np.diff(c["noise"], prepend=0.0)  # high-passed noise for "s" and the stop bursts
    fric = resonate(hiss, 5200.0, 1800.0) * c["fric"] + resonate(hiss, 3000.0, 2500.0) * c["burst"]
    out = tract + 0.6 * fric + 3e-4 * rng.standard_normal(n)  # faint room noise floor
    fade = int(0.01 * SR)
    out[:fade] *= np.linspace(0.0, 1.0, fade)
    out[-fade:] *= np.linspace(1.0, 0.0, fade)
    out *= 0.7 / np.max(np.abs(out))
    return out.astype(np.float32)


def random_script(seconds: float, seed: int = 0) -> list[tuple[str, float]]:
    """A random phone sequence of about ``seconds`` (vowels, nasals, stops, fricatives and pauses)."""
    rng = np.random.default_rng(seed)
    script: list[tuple[str, float]] = [("_", 0.1)]
    total = 0.1
    while total < seconds:
        phone = str(rng.choice(list("aiuoaiuombps_"), p=[0.1] * 8 + [0.05, 0.05, 0.04, 0.04, 0.02]))
        dur = float(rng.uniform(0.15, 0.3) if phone in "aiuo" else rng.uniform(0.05, 0.15))
        script.append((phone, dur))
        total += dur
    script.append(("_", 0.1))
    return script
