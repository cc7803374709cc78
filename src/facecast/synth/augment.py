"""Audio augmentation for the synthetic corpus that never moves the speech in time.

* noise: white, pink (1/f, shaped in the frequency domain) or babble (other utterances summed at random
  offsets), mixed at a signal-to-noise ratio measured over the active speech;
* reverberation: a synthetic impulse response, direct path at lag 0 then an exponentially decaying Gaussian
  tail (decay set by RT60) with a few sparse early reflections, mixed wet/dry; the output is cut to the input's
  length;
* EQ: random low / high shelves and peaks (RBJ biquads) and optional low- / high-pass (telephone-like band limits),
  run forward and backward (zero phase, so no group delay; gains are halved to compensate for the double pass);
* gain: a level change of -30 to +3 dB (recordings come at any level: the network must not read loudness as
  articulation), then the peak is kept below full scale.

Every operation keeps the length, and none delays the signal, so the TTS phone timing still holds.
Everything is a pure function of the parameters and the seed. Pitch and rate variety comes from the TTS.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import signal

NOISE_KINDS = ("none", "white", "pink", "babble")


@dataclass(frozen=True)
class EqBand:
    """One filter: ``kind`` in lowshelf / highshelf / peak / lowpass / highpass, centre or corner in Hz, gain dB,
    Q (the pass filters are 4th-order Butterworth, 8th with the forward-backward pass)."""

    kind: str
    freq: float
    gain_db: float = 0.0
    q: float = 0.707


@dataclass(frozen=True)
class AugmentParams:
    """What :func:`augment` does; :func:`random_params` draws one."""

    noise: str = "none"
    snr_db: float = 30.0
    reverb_rt60: float = 0.0
    reverb_wet: float = 0.0
    eq: tuple[EqBand, ...] = field(default_factory=tuple)
    gain_db: float = 0.0

    def to_json(self) -> dict:
        out = asdict(self)
        out["eq"] = [asdict(b) for b in self.eq]
        return out


def random_params(rng: np.random.Generator, clean_share: float = 0.2, babble: bool = True) -> AugmentParams:
    """Random augmentation settings; a ``clean_share`` of draws only changes the gain."""
    gain = float(rng.uniform(-30.0, 3.0))
    if rng.uniform() < clean_share:
        return AugmentParams(gain_db=gain)
    kinds = ["none", "white", "pink", "babble"] if babble else ["none", "white", "pink"]
    noise = str(rng.choice(kinds, p=[0.25, 0.2, 0.3, 0.25] if babble else [0.3, 0.3, 0.4]))
    snr = float(rng.uniform(5.0, 35.0) if noise != "babble" else rng.uniform(8.0, 25.0))
    rt60, wet = 0.0, 0.0
    if rng.uniform() < 0.5:
        rt60, wet = float(rng.uniform(0.15, 0.9)), float(rng.uniform(0.1, 0.5))
    bands = []
    for _ in range(int(rng.integers(0, 4))):
        kind = str(rng.choice(["lowshelf", "highshelf", "peak"]))
        freq = {"lowshelf": (80.0, 400.0), "highshelf": (2000.0, 6000.0), "peak": (200.0, 5000.0)}[kind]
        bands.append(
            EqBand(
                kind, float(np.exp(rng.uniform(*np.log(freq)))), float(rng.uniform(-9, 9)), float(rng.uniform(0.5, 2))
            )
        )
    if rng.uniform() < 0.15:
        bands.append(EqBand("lowpass", float(rng.uniform(3400.0, 7000.0))))
    return AugmentParams(noise, snr, rt60, wet, tuple(bands), gain)


# ----------------------------------------------------------------------------------------------------
# noise


def white_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(n).astype(np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with a 1/f power spectrum, unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(max(n, 2)))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spectrum / np.sqrt(f), max(n, 2))[:n]
    return (x / max(float(np.sqrt(np.mean(x**2))), 1e-12)).astype(np.float32)


def babble_noise(sources: list[np.ndarray], n: int, rng: np.random.Generator, talkers: int = 4) -> np.ndarray:
    """Several talkers: each a random source, looped, started at a random offset, at unit RMS, summed."""
    out = np.zeros(n, np.float64)
    usable = [s for s in sources if len(s) > 0]
    if not usable:
        return pink_noise(n, rng)
    for _ in range(talkers):
        src = usable[int(rng.integers(len(usable)))].astype(np.float64)
        src = src / max(float(np.sqrt(np.mean(src**2))), 1e-12)
        start = int(rng.integers(len(src)))
        reps = int(np.ceil((n + start) / len(src)))
        out += float(rng.uniform(0.5, 1.0)) * np.tile(src, reps)[start : start + n]
    return (out / max(float(np.sqrt(np.mean(out**2))), 1e-12)).astype(np.float32)


def active_rms(x: np.ndarray, sr: int, floor_db: float = -40.0) -> float:
    """RMS over the 20 ms frames within ``floor_db`` of the loudest frame (the speech, not the pauses)."""
    hop = max(1, int(0.02 * sr))
    frames = x[: len(x) // hop * hop].reshape(-1, hop) if len(x) >= hop else x.reshape(1, -1)
    power = np.mean(frames.astype(np.float64) ** 2, axis=1)
    if not len(power) or power.max() <= 0:
        return 0.0
    active = power[power >= power.max() * 10 ** (floor_db / 10)]
    return float(np.sqrt(active.mean()))


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float, sr: int) -> np.ndarray:
    """``speech + k * noise`` with k set so that the active speech is ``snr_db`` above the noise."""
    s = active_rms(speech, sr)
    nrms = float(np.sqrt(np.mean(noise.astype(np.float64) ** 2)))
    if s <= 0 or nrms <= 0:
        return speech.astype(np.float32)
    k = s / nrms * 10 ** (-snr_db / 20)
    return (speech + k * noise).astype(np.float32)


# ----------------------------------------------------------------------------------------------------
# reverberation


def impulse_response(sr: int, rt60: float, rng: np.random.Generator, wet: float = 0.3) -> np.ndarray:
    """Direct path (1 at lag 0) plus a decaying tail whose energy is ``wet / (1 - wet)`` of the direct path's."""
    length = max(2, int(min(rt60 * 1.2, 2.0) * sr))
    t = np.arange(length) / sr
    tail = rng.standard_normal(length) * np.exp(-6.91 * t / max(rt60, 1e-3))
    onset = int(0.003 * sr)
    tail[:onset] = 0.0
    for _ in range(6):  # sparse early reflections within 5-40 ms
        k = int(rng.uniform(0.005, 0.04) * sr)
        if k < length:
            tail[k] += float(rng.uniform(-0.6, 0.6)) * np.sqrt(max(rt60, 1e-3) * sr) * 0.05
    energy = float(np.sum(tail**2))
    wet = float(np.clip(wet, 0.0, 0.95))
    if energy > 0:
        tail *= np.sqrt(wet / (1.0 - wet) / energy)
    tail[0] = 1.0
    return tail.astype(np.float64)


def reverberate(x: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """Convolve with ``ir`` (direct path at lag 0) and keep the input's length, so nothing shifts."""
    y = signal.fftconvolve(x.astype(np.float64), ir)[: len(x)]
    return y.astype(np.float32)


# ----------------------------------------------------------------------------------------------------
# EQ


def biquad(band: EqBand, sr: int) -> np.ndarray:
    """Second-order sections [1, 6] of one band (RBJ audio-EQ formulas)."""
    nyquist = sr / 2
    f0 = float(np.clip(band.freq, 10.0, nyquist * 0.95))
    if band.kind in ("lowpass", "highpass"):
        return signal.butter(4, f0, btype=band.kind[:-4], fs=sr, output="sos")
    a = 10 ** (band.gain_db / 40)
    w0 = 2 * np.pi * f0 / sr
    cw, sw = np.cos(w0), np.sin(w0)
    alpha = sw / (2 * max(band.q, 1e-3))
    if band.kind == "peak":
        b = [1 + alpha * a, -2 * cw, 1 - alpha * a]
        den = [1 + alpha / a, -2 * cw, 1 - alpha / a]
    elif band.kind in ("lowshelf", "highshelf"):
        sa = 2 * np.sqrt(a) * alpha
        sign = 1 if band.kind == "lowshelf" else -1
        b = [
            a * ((a + 1) - sign * (a - 1) * cw + sa),
            sign * 2 * a * ((a - 1) - sign * (a + 1) * cw),
            a * ((a + 1) - sign * (a - 1) * cw - sa),
        ]
        den = [(a + 1) + sign * (a - 1) * cw + sa, -sign * 2 * ((a - 1) + sign * (a + 1) * cw),
               (a + 1) + sign * (a - 1) * cw - sa]  # fmt: skip
    else:
        raise ValueError(f"unknown EQ band kind {band.kind!r}")
    return np.concatenate([np.array(b) / den[0], np.array(den) / den[0]])[None, :]


def equalize(x: np.ndarray, bands: tuple[EqBand, ...] | list[EqBand], sr: int) -> np.ndarray:
    """Apply the bands with zero phase (forward-backward; each band's gain halved for the double pass)."""
    if not bands or len(x) < 16:
        return x.astype(np.float32)
    halved = [EqBand(b.kind, b.freq, b.gain_db / 2, b.q) for b in bands]
    sos = np.concatenate([biquad(b, sr) for b in halved])
    return signal.sosfiltfilt(sos, x.astype(np.float64), padlen=min(len(x) - 1, 3 * 6 * len(sos))).astype(np.float32)


# ----------------------------------------------------------------------------------------------------


def augment(
    audio: np.ndarray,
    sr: int,
    params: AugmentParams,
    seed: int,
    babble_sources: list[np.ndarray] | None = None,
) -> np.ndarray:
    """The augmented audio: same length, no delay, deterministic from ``params`` and ``seed``."""
    rng = np.random.default_rng(seed)
    x = np.asarray(audio, np.float32)
    n = len(x)
    if params.reverb_rt60 > 0 and params.reverb_wet > 0:
        x = reverberate(x, impulse_response(sr, params.reverb_rt60, rng, params.reverb_wet))
    if params.noise != "none":
        if params.noise == "white":
            noise = white_noise(n, rng)
        elif params.noise == "pink":
            noise = pink_noise(n, rng)
        elif params.noise == "babble":
            noise = babble_noise(babble_sources or [], n, rng)
        else:
            raise ValueError(f"unknown noise kind {params.noise!r}; expected one of {', '.join(NOISE_KINDS)}")
        x = mix_at_snr(x, noise, params.snr_db, sr)
    x = equalize(x, params.eq, sr)
    x = x * np.float32(10 ** (params.gain_db / 20))
    peak = float(np.max(np.abs(x))) if n else 0.0
    if peak > 0.99:
        x = x * np.float32(0.99 / peak)
    assert len(x) == n
    return x.astype(np.float32)
