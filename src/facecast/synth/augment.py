"""Audio augmentation for the synthetic corpus that never moves the speech in time.

* noise: white, pink (1/f, shaped in the frequency domain) or babble (other utterances summed at random
  offsets), mixed at a signal-to-noise ratio measured over the active speech;
* reverberation: a synthetic impulse response, direct path at lag 0 then an exponentially decaying Gaussian
  tail (decay set by RT60) with a few sparse early reflections, mixed wet/dry; the output is cut to the input's
  length;
* EQ: random low / high shelves and peaks (RBJ biquads) and optional low- / high-pass (telephone-like band limits),
  run forward and backward (zero phase, so no group delay; gains are halved to compensate for the double pass);
* channel (opt-in, ``channel_share``): a telephone band with G.711, GSM, AMR-NB, Opus or MP3 (PyAV; GSM via sox),
  its delay measured by cross-correlation and removed;
* gain: a level change of -30 to +3 dB (recordings come at any level: the network must not read loudness as
  articulation), then the peak is kept below full scale.

Every operation keeps the length, and none delays the signal, so the TTS phone timing still holds.
Everything is a pure function of the parameters and the seed. Pitch and rate variety comes from the TTS.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import signal

from facecast.audio import resample

NOISE_KINDS = ("none", "white", "pink", "babble")
CHANNEL_KINDS = ("telephone", "gsm", "amr", "opus", "mp3")
CHANNELS: tuple[str, ...] = (
    "telephone:mulaw", "telephone:alaw", "gsm:13", "amr:4.75", "amr:7.95", "amr:12.2", "opus:6", "opus:8", "opus:12",
    "mp3:32",
)  # fmt: skip
"""The channels :func:`random_params` draws from when asked to (``channel_share``)."""
TELEPHONE_BAND = (300.0, 3400.0)
MAX_DELAY = 0.15


class ChannelUnavailable(RuntimeError):
    """A channel's codec or tool is not installed here."""


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
    channel: str = "none"  # a CHANNELS entry: telephone band and codec, after the EQ

    def to_json(self) -> dict:
        out = asdict(self)
        out["eq"] = [asdict(b) for b in self.eq]
        if self.channel == "none":
            out.pop("channel")  # manifests of corpora built without channels stay as they were
        return out


def random_params(
    rng: np.random.Generator, clean_share: float = 0.2, babble: bool = True, channel_share: float = 0.0
) -> AugmentParams:
    """Random augmentation settings; a ``clean_share`` of draws only changes the gain; a ``channel_share`` of the
    others also passes a telephone channel or speech codec (:data:`CHANNELS`). With ``channel_share=0`` the draws
    are exactly those of earlier versions (no extra random number is taken)."""
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
    channel = "none"
    if channel_share > 0 and rng.uniform() < channel_share:
        channel = CHANNELS[int(rng.integers(len(CHANNELS)))]
    return AugmentParams(noise, snr, rt60, wet, tuple(bands), gain, channel)


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
# channels: telephone band, speech codecs (shared with facecast.evaluation.conditions)


def telephone_band(x: np.ndarray, sr: int) -> np.ndarray:
    """Zero-phase 300-3400 Hz band-pass (8th-order Butterworth edges), same length."""
    return equalize(x, (EqBand("highpass", TELEPHONE_BAND[0]), EqBand("lowpass", TELEPHONE_BAND[1])), sr)


def find_delay(reference: np.ndarray, degraded: np.ndarray, sr: int, max_delay: float = MAX_DELAY) -> int:
    """The lag (samples, within ``max_delay``) at which ``degraded`` best matches ``reference``."""
    m = int(max_delay * sr)
    n = min(len(reference), len(degraded))
    if n < 16:
        return 0
    corr = signal.correlate(degraded[: n + m].astype(np.float64), reference[:n].astype(np.float64), "full",
                            method="fft")  # fmt: skip
    zero = n - 1
    window = corr[max(zero - m, 0) : zero + m + 1]
    return int(np.argmax(window)) - min(m, zero)


def undelay(reference: np.ndarray, degraded: np.ndarray, sr: int) -> tuple[np.ndarray, int]:
    """``degraded`` shifted by its measured delay and cut or padded to ``reference``'s length."""
    lag = find_delay(reference, degraded, sr)
    y = degraded[lag:] if lag >= 0 else np.concatenate([np.zeros(-lag, np.float32), degraded])
    n = len(reference)
    y = np.concatenate([y, np.zeros(max(0, n - len(y)), np.float32)])[:n]
    return y.astype(np.float32), lag


def _pyav():
    try:
        import av
    except ImportError:
        raise ChannelUnavailable("the codecs need PyAV (pip install 'facecast[preview]')") from None
    return av


def codec_roundtrip(x: np.ndarray, sr: int, codec: str, rate: int, fmt: str, bit_rate: int | None = None,
                    options: dict[str, str] | None = None) -> np.ndarray:  # fmt: skip
    """Encode ``x`` with FFmpeg's ``codec`` at ``rate`` Hz in an in-memory ``fmt`` container (PyAV), decode it
    and return it at ``sr`` (not yet delay-compensated)."""
    av = _pyav()
    if codec not in av.codecs_available:
        raise ChannelUnavailable(f"FFmpeg in PyAV has no {codec} encoder")
    pcm = (np.clip(resample(x, sr, rate), -1.0, 1.0) * 32767).astype(np.int16)
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        if bit_rate:
            stream.bit_rate = bit_rate
        if options:
            stream.options = options
        frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    chunks, got_rate = [], rate
    with av.open(buf, "r") as src:
        for decoded in src.decode(audio=0):
            got_rate = decoded.sample_rate
            arr = decoded.to_ndarray()
            arr = arr.astype(np.float32) / (32768.0 if arr.dtype == np.int16 else 1.0)
            chunks.append(arr.reshape(-1) if arr.shape[0] == 1 else arr.mean(axis=0))
    y = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return resample(y, got_rate, sr)


def sox_gsm_roundtrip(x: np.ndarray) -> np.ndarray:
    """8 kHz audio through GSM 06.10 full rate (13 kbit/s) with sox, back at 8 kHz."""
    sox = shutil.which("sox")
    if sox is None:
        raise ChannelUnavailable("GSM needs sox (apt-get install sox; `make system-deps`)")
    import soundfile as sf

    pcm = np.asarray(x, np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        wav, gsm, back = Path(tmp) / "in.wav", Path(tmp) / "c.gsm", Path(tmp) / "out.wav"
        sf.write(wav, np.clip(pcm, -1, 1), 8000, subtype="PCM_16")
        subprocess.run([sox, "-q", str(wav), str(gsm)], check=True, capture_output=True)
        subprocess.run([sox, "-q", str(gsm), "-e", "signed", "-b", "16", str(back)], check=True, capture_output=True)
        y, rate = sf.read(back, dtype="float32")
    return resample(y, rate, 8000)


def apply_channel(x: np.ndarray, sr: int, spec: str) -> np.ndarray:
    """``x`` through a channel ``KIND:VALUE`` (telephone:mulaw|alaw, gsm:13, amr:KBPS, opus:KBPS, mp3:KBPS), its
    delay removed: same length, no shift."""
    kind, _, value = spec.partition(":")
    x = np.asarray(x, np.float32)
    if kind == "telephone":
        narrow = telephone_band(resample(x, sr, 8000), 8000)
        y = resample(codec_roundtrip(narrow, 8000, f"pcm_{value or 'mulaw'}", 8000, "wav"), 8000, sr)
    elif kind == "gsm":
        y = resample(sox_gsm_roundtrip(telephone_band(resample(x, sr, 8000), 8000)), 8000, sr)
    elif kind == "amr":
        y = codec_roundtrip(x, sr, "libopencore_amrnb", 8000, "amr", int(float(value) * 1000))
    elif kind == "opus":
        y = codec_roundtrip(x, sr, "libopus", 16000, "ogg", int(float(value) * 1000), {"application": "voip"})
    elif kind == "mp3":
        y = codec_roundtrip(x, sr, "libmp3lame", 16000, "mp3", int(float(value) * 1000))
    else:
        raise ValueError(f"unknown channel {spec!r}; expected one of {', '.join(CHANNEL_KINDS)}")
    return undelay(x, y, sr)[0]


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
    if params.channel != "none":
        x = apply_channel(x, sr, params.channel)
    x = x * np.float32(10 ** (params.gain_db / 20))
    peak = float(np.max(np.abs(x))) if n else 0.0
    if peak > 0.99:
        x = x * np.float32(0.99 / peak)
    assert len(x) == n
    return x.astype(np.float32)
