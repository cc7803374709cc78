"""Listening conditions for the lip-sync evaluation: the audio users really have (issue 24).

Each condition turns a 16 kHz clip into a degraded one of the same length (``speed`` changes the length and
scales the phone timings with it), deterministically from a seed:

* ``telephone[:mulaw|alaw]``: 8 kHz, a 300-3400 Hz band-pass (G.712's band), G.711 mu-law or A-law (FFmpeg's
  ``pcm_mulaw`` / ``pcm_alaw`` through PyAV);
* ``gsm``: GSM 06.10 full rate, 13 kbit/s (sox's built-in libgsm; Debian ``sox``), on the telephone band;
* ``amr[:KBPS]``: AMR narrowband (``libopencore_amrnb`` in PyAV), 4.75-12.2 kbit/s, 8 kHz;
* ``opus[:KBPS]``: Opus (``libopus``, VoIP mode) at 6-12 kbit/s, 16 kHz;
* ``mp3[:KBPS]``: MP3 (``libmp3lame``) at 32 kbit/s, 16 kHz (MPEG-2 layer III);
* ``reverb[:RT60]``: a simulated room, :func:`facecast.synth.augment.impulse_response` (direct path at lag 0,
  exponentially decaying Gaussian tail with early reflections), direct-to-reverberant ratio 0 dB;
* ``babble[:SNR]``: four talkers (other TTS voices saying other sentences) mixed at SNR dB below the active speech;
* ``talker[:SNR]``: one other talker (a conversation partner or a voice in the room), SNR dB below, also heard
  in the speaker's pauses;
* ``music[:SNR]``: synthesised music (chords of decaying harmonic notes, a bass line, kick and hi-hat) at SNR dB;
* ``speed[:FACTOR]``: tempo change with the pitch kept (WSOLA, :func:`time_stretch`); 1.25 = 25 % faster.

A codec's delay is found by cross-correlation with the input (within 150 ms) and removed, so the phone timings
of the clean clip still hold; the lip-sync is measured, not the pipeline latency.
The telephone band and the codecs live in :mod:`facecast.synth.augment` (``apply_channel``), shared with the
training-time augmentation (``channel_share``).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, replace

import numpy as np
from scipy import signal

from facecast.audio import resample
from facecast.constants import SAMPLE_RATE
from facecast.evaluation.align import Alignment, Phone, Word
from facecast.evaluation.corpus import Utterance
from facecast.synth.augment import (
    CHANNEL_KINDS,
    TELEPHONE_BAND,
    ChannelUnavailable,
    apply_channel,
    babble_noise,
    impulse_response,
    mix_at_snr,
    reverberate,
)

KINDS: dict[str, float | str | None] = {
    "clean": None, "telephone": "mulaw", "gsm": 13.0, "amr": 12.2, "opus": 8.0, "mp3": 32.0, "reverb": 0.6,
    "babble": 10.0, "talker": 10.0, "music": 10.0, "speed": 1.25,
}  # fmt: skip
"""Condition kind -> its default parameter."""

ALL_CONDITIONS: tuple[str, ...] = (
    "clean", "telephone", "telephone:alaw", "gsm", "amr:12.2", "amr:4.75", "opus:6", "opus:12", "mp3:32",
    "reverb:0.3", "reverb:1.0", "babble:20", "babble:10", "babble:5", "talker:20", "talker:10", "talker:5",
    "music:20", "music:10", "music:5",
    "speed:0.8", "speed:1.25",
)  # fmt: skip
"""What ``--conditions all`` measures."""

AMR_RATES = (4.75, 5.15, 5.9, 6.7, 7.4, 7.95, 10.2, 12.2)
ConditionUnavailable = ChannelUnavailable
"""A condition's codec or tool is not installed here."""


@dataclass(frozen=True)
class Condition:
    """One listening condition: ``kind`` (see :data:`KINDS`) and its parameter."""

    kind: str
    value: float | str | None = None

    @property
    def name(self) -> str:
        if self.value is None:
            return self.kind
        return f"{self.kind}:{self.value:g}" if isinstance(self.value, float) else f"{self.kind}:{self.value}"


def parse_condition(spec: str) -> Condition:
    """``KIND`` or ``KIND:VALUE`` (e.g. ``opus:6``, ``telephone:alaw``) as a checked :class:`Condition`."""
    kind, _, raw = spec.strip().partition(":")
    if kind not in KINDS:
        raise ValueError(f"unknown condition {kind!r}; choose from {', '.join(KINDS)} or 'all'")
    default = KINDS[kind]
    if not raw:
        return Condition(kind, default)
    if kind == "clean":
        raise ValueError("condition 'clean' takes no value")
    if kind == "telephone":
        if raw not in ("mulaw", "alaw"):
            raise ValueError(f"telephone law {raw!r}: choose mulaw or alaw")
        return Condition(kind, raw)
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"condition {spec!r}: {raw!r} is not a number") from None
    limits = {"gsm": (13, 13), "amr": (4.75, 12.2), "opus": (6, 64), "mp3": (8, 320), "reverb": (0.1, 3.0),
              "babble": (-10, 60), "talker": (-10, 60), "music": (-10, 60), "speed": (0.5, 2.0)}[kind]  # fmt: skip
    if not limits[0] <= value <= limits[1] or (kind == "amr" and value not in AMR_RATES):
        allowed = ", ".join(f"{r:g}" for r in AMR_RATES) if kind == "amr" else f"{limits[0]:g} to {limits[1]:g}"
        raise ValueError(f"condition {spec!r}: {kind} takes {allowed}")
    return Condition(kind, value)


def parse_conditions(spec: str | list[str] | tuple[str, ...]) -> list[Condition]:
    """A comma list (or ``all``) as conditions, ``clean`` first and each once."""
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    expanded = [c for s in items for c in (ALL_CONDITIONS if s == "all" else (s,))]
    out = [Condition("clean")]
    for s in expanded:
        cond = parse_condition(s)
        if cond not in out:
            out.append(cond)
    return out


def describe(cond: Condition) -> str:
    """One line saying what a condition does."""
    v = f"{cond.value:g}" if isinstance(cond.value, float) else cond.value
    return {
        "clean": "the clips as recorded",
        "telephone": f"8 kHz, {TELEPHONE_BAND[0]:g}-{TELEPHONE_BAND[1]:g} Hz band-pass, G.711 {v}",
        "gsm": "GSM 06.10 full rate 13 kbit/s (sox), 8 kHz telephone band",
        "amr": f"AMR-NB {v} kbit/s (libopencore_amrnb), 8 kHz",
        "opus": f"Opus {v} kbit/s VoIP mode (libopus), 16 kHz",
        "mp3": f"MP3 {v} kbit/s (libmp3lame), 16 kHz",
        "reverb": f"simulated room, RT60 {v} s, direct-to-reverberant ratio 0 dB",
        "babble": f"four TTS talkers at {v} dB SNR",
        "talker": f"one other TTS talker at {v} dB SNR",
        "music": f"synthesised music at {v} dB SNR",
        "speed": f"tempo x{v} with pitch kept (WSOLA), phone timings scaled",
    }[cond.kind]


# ----------------------------------------------------------------------------------------------------
# building blocks


def synth_music(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Seeded music at unit RMS: a 4-chord loop of decaying harmonic notes, a bass line, kick and hi-hat."""
    tempo = float(rng.uniform(90, 130))
    beat = 60.0 / tempo
    t_all = np.arange(n) / sr
    out = np.zeros(n, np.float64)
    root = float(rng.uniform(45, 57))  # MIDI note of the key
    progression = [[0, 4, 7], [-3, 0, 4], [5, 9, 12], [7, 11, 14]]
    order = rng.permutation(4)

    def note(midi: float, start: float, dur: float, amp: float, harmonics: int, decay: float) -> None:
        i0, i1 = int(start * sr), min(n, int((start + dur) * sr))
        if i0 >= n or i1 <= i0:
            return
        t = t_all[i0:i1] - start
        f = 440.0 * 2 ** ((midi - 69) / 12)
        env = np.exp(-t / decay) * np.minimum(1.0, t / 0.01)
        wave = sum(np.sin(2 * np.pi * f * k * t + k) / k for k in range(1, harmonics + 1) if f * k < sr / 2)
        out[i0:i1] += amp * env * wave

    bar = 4 * beat
    for b in range(int(n / sr / bar) + 1):
        chord = progression[order[b % 4]]
        for half in range(2):
            for iv in chord:
                note(root + 12 + iv, b * bar + half * 2 * beat, 2 * beat, 0.3, 6, 0.6)
        for q in range(4):
            note(root - 12 + chord[0], b * bar + q * beat, beat, 0.5, 3, 0.3)
            i0 = int((b * bar + q * beat) * sr)
            k = np.arange(min(int(0.15 * sr), max(n - i0, 0))) / sr
            if q % 2 == 0 and len(k):  # kick: a falling sine
                sweep = 2 * np.pi * (50 + 100 * np.exp(-k / 0.03)) * k
                out[i0 : i0 + len(k)] += 0.9 * np.sin(sweep) * np.exp(-k / 0.08)
        for e in range(8):  # hi-hat: high-passed noise bursts on the eighths
            i0 = int((b * bar + e * beat / 2) * sr)
            m = min(int(0.05 * sr), max(n - i0, 0))
            if m:
                burst = np.diff(rng.standard_normal(m + 1)) * np.exp(-np.arange(m) / sr / 0.01)
                out[i0 : i0 + m] += 0.15 * burst
    return (out / max(float(np.sqrt(np.mean(out**2))), 1e-12)).astype(np.float32)


BABBLE_TEXTS: tuple[str, ...] = (
    "I think we should leave before the traffic gets any worse tonight.",
    "She said the meeting was moved to Thursday afternoon at three.",
    "Could you send me the numbers from last quarter when you have a minute?",
    "The train was late again, so I walked the rest of the way.",
    "We ordered pizza, but nobody remembered to pick it up.",
    "Turn left at the second light and the shop is on your right.",
)
"""Sentences the babble talkers say (written for facecast)."""


@functools.cache
def babble_sources() -> tuple[np.ndarray, ...]:
    """Other talkers at 16 kHz: flite, festival and piper voices (what is installed), else espeak-ng voices."""
    from facecast.synth.tts import Voice, available_voices, synthesize

    wanted = [Voice("flite", "awb"), Voice("flite", "rms"), Voice("flite", "slt"), Voice("piper", "joe"),
              Voice("festival", "cmu_us_slt_arctic_hts"), Voice("flite", "kal16")]  # fmt: skip
    have = {(v.backend, v.name) for v in available_voices()}
    voices = [v for v in wanted if (v.backend, v.name) in have] or [Voice("espeak", n) for n in ("en-us+m3", "en+f2")]
    out = []
    for i, text in enumerate(BABBLE_TEXTS):
        speech = synthesize(text, voices[i % len(voices)], seed=i)
        out.append(resample(speech.audio, speech.sample_rate, SAMPLE_RATE))
    return tuple(out)


def estimate_rt60(ir: np.ndarray, sr: int) -> float:
    """RT60 of an impulse response by Schroeder backward integration: the -5 to -25 dB decay (T20) times 3."""
    edc = np.cumsum((np.asarray(ir, np.float64)[::-1]) ** 2)[::-1]
    db = 10 * np.log10(np.maximum(edc / edc[0], 1e-30))
    t = np.arange(len(db)) / sr
    sel = (db <= -5) & (db >= -25)
    slope = np.polyfit(t[sel], db[sel], 1)[0]
    return float(-60.0 / slope)


def time_stretch(x: np.ndarray, rate: float, sr: int, frame: float = 0.03, tolerance: float = 0.01) -> np.ndarray:
    """WSOLA: ``x`` played ``rate`` times faster with its pitch kept; ``round(len(x) / rate)`` samples.

    Hann frames of ``frame`` s at 50 % overlap; each input frame is moved by up to ``tolerance`` s to the
    position most similar to the natural continuation of the previous one (no phase jumps)."""
    x = np.asarray(x, np.float64)
    n_out = int(round(len(x) / rate))
    size = max(16, int(frame * sr) // 2 * 2)
    hop, tol = size // 2, int(tolerance * sr)
    window = signal.windows.hann(size, sym=False)
    padded = np.concatenate([np.zeros(hop + tol), x, np.zeros(size + 2 * tol + int(hop * rate) + 1)])
    frames = n_out // hop + 2
    out = np.zeros(frames * hop + size)
    prev = None
    for k in range(frames):
        nominal = int(round(k * hop * rate))  # frame start in padded coordinates, before the +tol search offset
        if prev is None:
            start = nominal + tol
        else:
            target = padded[prev + hop : prev + hop + size]
            region = padded[nominal : nominal + size + 2 * tol]
            if len(region) < size + 2 * tol:
                break
            score = signal.correlate(region, target, "valid", method="fft")
            start = nominal + int(np.argmax(score))
        seg = padded[start : start + size]
        out[k * hop : k * hop + len(seg)] += window[: len(seg)] * seg
        prev = start
    return out[hop : hop + n_out].astype(np.float32)


def scale_alignment(alignment: Alignment, factor: float) -> Alignment:
    """Every time divided by ``factor`` (a clip played ``factor`` times faster)."""
    words = []
    for w in alignment.words:
        phones = tuple(Phone(p.name, p.start / factor, p.end / factor) for p in w.phones)
        words.append(Word(w.name, w.start / factor, w.end / factor, phones))
    return Alignment(words, alignment.duration / factor)


# ----------------------------------------------------------------------------------------------------


def degrade(audio: np.ndarray, cond: Condition, seed: int = 0, sr: int = SAMPLE_RATE) -> np.ndarray:
    """``audio`` in condition ``cond``: same length (``speed``: ``round(len / factor)``), float32, seeded."""
    x = np.asarray(audio, np.float32)
    rng = np.random.default_rng(seed)
    kind, v = cond.kind, cond.value
    if kind == "clean" or not len(x):
        return x.copy()
    if kind == "speed":
        return time_stretch(x, float(v), sr)
    if kind == "reverb":
        return reverberate(x, impulse_response(sr, float(v), rng, wet=0.5))
    if kind in ("babble", "talker", "music"):
        if kind == "music":
            noise = synth_music(len(x), sr, rng)
        else:
            noise = babble_noise(list(babble_sources()), len(x), rng, talkers=4 if kind == "babble" else 1)
        return mix_at_snr(x, noise, float(v), sr)
    if kind in CHANNEL_KINDS:
        return apply_channel(x, sr, cond.name)
    raise ValueError(f"unknown condition {kind!r}")


def degrade_utterances(utts: list[Utterance], cond: Condition, seed: int = 0) -> list[Utterance]:
    """The clips in condition ``cond``, seeded per clip name; ``speed`` scales the phone timings too."""
    out = []
    for utt in utts:
        digest = hashlib.sha256(f"{seed}/{cond.name}/{utt.name}".encode()).digest()
        audio = degrade(utt.audio, cond, int.from_bytes(digest[:8], "little"))
        alignment = utt.alignment
        if cond.kind == "speed" and alignment is not None:
            alignment = scale_alignment(alignment, float(cond.value))
        out.append(replace(utt, audio=audio, alignment=alignment))
    return out
