"""The lip-sync systems evaluated beside facecast, each giving ARKit-52 weights (ARKIT_NAMES order) per frame.

* ``facecast``: a facecast model (``Model.animate``).
* ``openfacefx``: OpenFaceFX (PyPI, MIT), rule-based, transcript + clip length: ``generate_naive`` (its G2P and
  duration-prior spacing), retargeted with its ``arkit`` preset.
* ``openfacefx-aligned``: OpenFaceFX's accurate path, ``generate_from_alignment`` fed the pocketsphinx phones.
  It shares the metrics' phone timings, so its timing scores are optimistic (an oracle-timed reference).
* ``pylipsync``: uLipSync's MFCC template match (PyPI ``pylipsync``, audio only) giving A/I/U/E/O + silence;
  the vowels are mapped to ARKit shapes by :data:`PYLIPSYNC_TO_ARKIT` (facecast's table).
* ``loudness``: a jaw-follows-loudness baseline (:class:`LoudnessBaseline`).
* ``neutral``: no motion at all, the reference every system should beat.
* ``teacher-aligned`` (an oracle, not in the default list): facecast's own training teacher
  (:func:`facecast.synth.teacher.teach`) fed the pocketsphinx phones and the clip's audio. The built-in model learns
  to imitate these curves from audio, so this is the ceiling of that imitation on the metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from facecast.constants import ARKIT_NAMES, SAMPLE_RATE
from facecast.evaluation.corpus import Utterance
from facecast.evaluation.phones import CMU_PHONES

_INDEX = {name: i for i, name in enumerate(ARKIT_NAMES)}


@dataclass
class SystemOutput:
    """ARKit-52 weights [N, 52] (ARKIT_NAMES order) at ``times`` [N] seconds."""

    weights: np.ndarray
    times: np.ndarray


class LipSyncSystem(Protocol):
    name: str
    needs_transcript: bool

    def animate(self, utt: Utterance, fps: float) -> SystemOutput: ...


def frame_times(num_samples: int, fps: float) -> np.ndarray:
    """Frame times i / fps covering a clip of ``num_samples`` 16 kHz samples."""
    n = max(1, math.ceil(num_samples / SAMPLE_RATE * fps - 1e-9))
    return np.arange(n) / fps


def weights_from_channels(channels: dict[str, tuple[np.ndarray, np.ndarray]], times: np.ndarray) -> np.ndarray:
    """Sample named curves {ARKit name: (key times, values)} at ``times`` (linear, held at the ends)."""
    w = np.zeros((len(times), len(ARKIT_NAMES)), np.float32)
    for name, (t, v) in channels.items():
        if name in _INDEX and len(t):
            w[:, _INDEX[name]] = np.interp(times, t, v)
    return np.clip(w, 0.0, 1.0)


class FacecastSystem:
    """A facecast model (default: the built-in one)."""

    needs_transcript = False

    def __init__(self, model=None, name: str = "facecast") -> None:
        if model is None:
            from facecast.model import load_model

            model = load_model()
        self.model = model
        self.name = name

    def animate(self, utt: Utterance, fps: float) -> SystemOutput:
        anim = self.model.animate(utt.audio, fps=fps, blinks=False)
        w = np.zeros((len(anim), len(ARKIT_NAMES)), np.float32)
        for j, name in enumerate(anim.skin_names):
            if name in _INDEX:
                w[:, _INDEX[name]] = anim.skin_weights[:, j]
        return SystemOutput(w, np.asarray(anim.times, np.float64))


def _openfacefx_segments(utt: Utterance):
    from openfacefx.alignment import PhonemeSegment

    segs = []
    for p in utt.alignment.phones:
        name = p.name if p.name in CMU_PHONES else "sil"
        segs.append(PhonemeSegment(name, p.start, p.end))
    return segs


class OpenFaceFXSystem:
    """OpenFaceFX rule-based curves from the transcript (naive timing) or from the pocketsphinx phones."""

    needs_transcript = True

    def __init__(self, aligned: bool = False) -> None:
        import openfacefx  # noqa: F401  (fail early when missing)

        self.aligned = aligned
        self.name = "openfacefx-aligned" if aligned else "openfacefx"

    def animate(self, utt: Utterance, fps: float) -> SystemOutput:
        import openfacefx
        from openfacefx.retarget import PRESETS, retarget

        if not utt.transcript:
            raise ValueError(f"{utt.name}: openfacefx needs a transcript")
        if self.aligned:
            track = openfacefx.generate_from_alignment(_openfacefx_segments(utt), fps=fps, epsilon=0.0)
        else:
            track = openfacefx.generate_naive(utt.transcript, utt.duration, fps=fps, epsilon=0.0)
        arkit = retarget(track, PRESETS["arkit"])
        channels = {
            c.name: (np.array([k.time for k in c.keys]), np.array([k.value for k in c.keys])) for c in arkit.channels
        }
        times = frame_times(len(utt.audio), fps)
        return SystemOutput(weights_from_channels(channels, times), times)


PYLIPSYNC_TO_ARKIT: dict[str, tuple[tuple[str, float], ...]] = {
    "aa": (("jawOpen", 0.6), ("mouthLowerDownLeft", 0.2), ("mouthLowerDownRight", 0.2)),
    "ee": (("jawOpen", 0.35), ("mouthStretchLeft", 0.3), ("mouthStretchRight", 0.3)),
    "ih": (("jawOpen", 0.2), ("mouthStretchLeft", 0.4), ("mouthStretchRight", 0.4)),
    "oh": (("jawOpen", 0.4), ("mouthFunnel", 0.6), ("mouthPucker", 0.3)),
    "ou": (("jawOpen", 0.15), ("mouthPucker", 0.8), ("mouthFunnel", 0.4)),
}
"""uLipSync vowel (A, E, I, O, U) -> ARKit shapes and gains; silence maps to no shape."""


class PyLipsyncSystem:
    """pylipsync (uLipSync port): per-frame vowel targets from MFCC templates, mapped to ARKit."""

    name = "pylipsync"
    needs_transcript = False

    def __init__(self) -> None:
        from pylipsync import PhonemeAnalyzer

        self.analyzer = PhonemeAnalyzer()

    def animate(self, utt: Utterance, fps: float) -> SystemOutput:
        segs = self.analyzer.extract_phoneme_segments(
            np.asarray(utt.audio, np.float32), SAMPLE_RATE, fps=int(round(fps)), return_seconds=True
        )
        centres = np.array([0.5 * (s.start + s.end) for s in segs])
        arkit: dict[str, np.ndarray] = {}
        for j, seg in enumerate(segs):
            for ph in seg.phonemes:
                for shape, gain in PYLIPSYNC_TO_ARKIT.get(ph.name, ()):
                    arkit.setdefault(shape, np.zeros(len(segs)))[j] += gain * float(ph.target)
        times = frame_times(len(utt.audio), fps)
        return SystemOutput(weights_from_channels({k: (centres, v) for k, v in arkit.items()}, times), times)


@dataclass
class LoudnessBaseline:
    """Jaw follows loudness: jawOpen = max_open * clip((L - (L95 - range_db)) / range_db, 0, 1), where L is the
    RMS level (dB) in a ``window``-second Hann window centred on each frame and L95 the clip's 95th percentile."""

    window: float = 0.04
    range_db: float = 30.0
    max_open: float = 0.5
    name: str = "loudness"
    needs_transcript: bool = False

    def envelope(self, audio: np.ndarray, times: np.ndarray) -> np.ndarray:
        """RMS level in dB at each time."""
        x = np.asarray(audio, np.float64).reshape(-1)
        half = max(1, int(round(self.window * SAMPLE_RATE / 2)))
        win = np.hanning(2 * half + 1)
        win /= win.sum()
        power = np.convolve(x * x, win, mode="same") if len(x) else np.zeros(1)
        at = np.clip(np.round(times * SAMPLE_RATE).astype(int), 0, max(len(power) - 1, 0))
        return 10.0 * np.log10(power[at] + 1e-12)

    def jaw_open(self, audio: np.ndarray, times: np.ndarray) -> np.ndarray:
        level = self.envelope(audio, times)
        top = np.percentile(level, 95)
        return self.max_open * np.clip((level - (top - self.range_db)) / self.range_db, 0.0, 1.0)

    def animate(self, utt: Utterance, fps: float) -> SystemOutput:
        times = frame_times(len(utt.audio), fps)
        w = np.zeros((len(times), len(ARKIT_NAMES)), np.float32)
        w[:, _INDEX["jawOpen"]] = self.jaw_open(utt.audio, times)
        return SystemOutput(w, times)


class NeutralSystem:
    """No motion: every weight 0 (the face at rest)."""

    name = "neutral"
    needs_transcript = False

    def animate(self, utt: Utterance, fps: float) -> SystemOutput:
        times = frame_times(len(utt.audio), fps)
        return SystemOutput(np.zeros((len(times), len(ARKIT_NAMES)), np.float32), times)


class TeacherAlignedSystem:
    """facecast's training teacher fed the forced-aligned phones (an oracle: it shares the metrics' timings)."""

    name = "teacher-aligned"
    needs_transcript = True

    def animate(self, utt: Utterance, fps: float) -> SystemOutput:
        from facecast.synth.phonemes import SILENCE as IPA_SILENCE
        from facecast.synth.phonemes import arpabet_to_ipa
        from facecast.synth.teacher import TeacherParams, teach

        if utt.alignment is None:
            raise ValueError(f"{utt.name}: teacher-aligned needs phone timings")
        phones = [(arpabet_to_ipa(p.name) if p.name in CMU_PHONES else IPA_SILENCE, p.start, p.end)
                  for p in utt.alignment.phones]  # fmt: skip
        times = frame_times(len(utt.audio), fps)
        params = TeacherParams(fps=fps, blinks=False, gaze=False)
        curves = teach(phones, len(times), params, audio=utt.audio, sample_rate=SAMPLE_RATE)
        return SystemOutput(curves.arkit, times)


PEER_NAMES = ("openfacefx", "openfacefx-aligned", "pylipsync", "loudness", "neutral")
"""The peers measured by default."""
ORACLE_NAMES = ("teacher-aligned",)
"""Peers measured only when named: references that share the metrics' phone timings."""


def make_peer(name: str) -> LipSyncSystem:
    """A peer by name (see PEER_NAMES and ORACLE_NAMES); raises ImportError when its package is missing."""
    if name == "openfacefx":
        return OpenFaceFXSystem(aligned=False)
    if name == "openfacefx-aligned":
        return OpenFaceFXSystem(aligned=True)
    if name == "pylipsync":
        return PyLipsyncSystem()
    if name == "loudness":
        return LoudnessBaseline()
    if name == "neutral":
        return NeutralSystem()
    if name == "teacher-aligned":
        return TeacherAlignedSystem()
    raise ValueError(f"unknown peer {name!r}; choose from {', '.join(PEER_NAMES + ORACLE_NAMES)}")
