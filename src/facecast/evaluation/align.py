"""Forced alignment of speech to its transcript with pocketsphinx 5.1.1 (its bundled en-us model).

Two passes, as pocketsphinx documents: ``set_align_text`` decodes the word sequence (with optional silences
between words), then ``set_alignment`` re-decodes it for phone boundaries. Times come in 10 ms frames.

    aligner = Aligner()
    alignment = aligner.align(audio_16k, "he was not an ill disposed young man")
    [(p.name, p.start, p.end) for p in alignment.phones]     # CMU phones and SIL, in seconds

Clips without a transcript get :func:`energy_alignment`: silence vs speech from the loudness alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from facecast.constants import SAMPLE_RATE
from facecast.evaluation.phones import SILENCE, SPEECH, normalize_phone

_FRAME = 0.01  # pocketsphinx frame, seconds
_SILENCE_WORDS = frozenset({"<s>", "</s>", "<sil>"})


class AlignmentError(RuntimeError):
    """Alignment failed: pocketsphinx missing, words not in its dictionary, or no path through the audio."""


@dataclass(frozen=True)
class Phone:
    """One phone: a stress-less CMU phone, ``SIL``, ``NSN`` (noise filler) or ``SPN`` (speech); seconds."""

    name: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Word:
    """One aligned word (``<sil>`` for silences) with its phones."""

    name: str
    start: float
    end: float
    phones: tuple[Phone, ...]


@dataclass
class Alignment:
    """Words and phones over a clip of ``duration`` seconds (phones are contiguous and in time order)."""

    words: list[Word]
    duration: float

    @property
    def phones(self) -> list[Phone]:
        return [p for w in self.words for p in w.phones]

    def phone_at(self, times: np.ndarray) -> np.ndarray:
        """The phone name at each time (object array); ``SIL`` outside the aligned span."""
        phones = self.phones
        idx = phone_index(phones, np.atleast_1d(times))
        return np.array([p.name for p in phones] + [SILENCE], dtype=object)[idx]


def phone_index(phones: list[Phone], times: np.ndarray) -> np.ndarray:
    """Index of the phone whose span [start, end) contains each time, -1 where none does."""
    t = np.asarray(times, np.float64)
    if not phones:
        return np.full(len(t), -1)
    starts = np.array([p.start for p in phones])
    ends = np.array([p.end for p in phones])
    idx = np.searchsorted(starts, t, side="right") - 1
    ok = (idx >= 0) & (t < ends[np.clip(idx, 0, None)])
    return np.where(ok, idx, -1)


def normalize_transcript(text: str) -> list[str]:
    """Lower-case words, punctuation dropped (apostrophes kept): the tokens the dictionary is asked about."""
    return [w for w in re.sub(r"[^a-z' ]+", " ", text.lower().replace("-", " ")).split() if w.strip("'")]


def to_pcm16(audio: np.ndarray, seed: int = 0) -> bytes:
    """16-bit PCM with +-1 LSB of deterministic dither: exact digital silence (TTS pauses) breaks the decoder."""
    x = np.round(np.asarray(audio, np.float64).reshape(-1) * 32767.0)
    x += np.random.default_rng(seed).integers(-1, 2, size=x.shape)
    return np.clip(x, -32768, 32767).astype("<i2").tobytes()


ALIGN_OPTIONS = {"bestpath": False, "beam": 1e-80, "pbeam": 1e-80, "wbeam": 1e-80}
"""pocketsphinx 5.1.1 settings that make its two-pass alignment reliable: the Viterbi backtrace (``bestpath``
off; the lattice path can give a phone fewer frames than its HMM states) and equal, wide beams (a word beam
narrower than the state beam prunes the grammar's final state); the problems behind pocketsphinx PRs #464, #500."""

_RETRY_SHIFTS = (0, 40, 80)  # samples of silence prepended on a retry (moves the 10 ms frame grid)


class Aligner:
    """A pocketsphinx decoder kept loaded for aligning many clips (16 kHz mono float audio)."""

    def __init__(self, **decoder_options) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise AlignmentError('forced alignment needs pocketsphinx: pip install "facecast[eval]"') from exc
        options = {**ALIGN_OPTIONS, **decoder_options}
        self._decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL", **options)

    def missing_words(self, transcript: str) -> list[str]:
        """Transcript words that the pronouncing dictionary does not know."""
        return [w for w in normalize_transcript(transcript) if self._decoder.lookup_word(w) is None]

    def align(self, audio: np.ndarray, transcript: str) -> Alignment:
        """Align 16 kHz mono float audio to its transcript; raises :class:`AlignmentError` on failure.

        A failed decode is retried with the audio shifted by a few samples (a different frame grid and dither),
        and the times are shifted back.
        """
        words = normalize_transcript(transcript)
        if not words:
            raise AlignmentError("empty transcript")
        missing = self.missing_words(transcript)
        if missing:
            raise AlignmentError(f"words not in the pocketsphinx dictionary: {', '.join(missing)}")
        x = np.asarray(audio, np.float32).reshape(-1)
        duration = len(x) / SAMPLE_RATE
        error = None
        for attempt, shift in enumerate(_RETRY_SHIFTS):
            pcm = to_pcm16(np.concatenate([np.zeros(shift, np.float32), x]), seed=attempt)
            try:
                entries = self._decode(" ".join(words), pcm)
            except RuntimeError as exc:
                error = exc
                continue
            return Alignment(_words(entries, duration, shift / SAMPLE_RATE), duration)
        raise AlignmentError(f"pocketsphinx found no alignment for {' '.join(words)!r}: {error}")

    def _decode(self, text: str, pcm: bytes) -> list[tuple[str, list[tuple[str, int, int]]]]:
        d = self._decoder
        d.set_align_text(text)
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        d.set_alignment()
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        alignment = d.get_alignment()  # entries point into this object: copy them while it lives
        return [(w.name, [(p.name, p.start, p.duration) for p in w]) for w in alignment]


def _words(entries: list[tuple[str, list[tuple[str, int, int]]]], duration: float, offset: float) -> list[Word]:
    out = []
    for word, entry_phones in entries:
        name = re.sub(r"\(\d+\)$", "", word)
        silent = name in _SILENCE_WORDS
        phones = []
        for phone, first, frames in entry_phones:
            label = SILENCE if silent else normalize_phone(phone)
            start = min(max(first * _FRAME - offset, 0.0), duration)
            end = min(max((first + frames) * _FRAME - offset, 0.0), duration)
            if end > start:
                phones.append(Phone(label, start, end))
        if phones:
            word_name = "<sil>" if silent else name
            out.append(Word(word_name, phones[0].start, phones[-1].end, tuple(phones)))
    return out


def align_speech(audio: np.ndarray, transcript: str) -> Alignment:
    """One-off alignment (loads the model each call; use :class:`Aligner` for many clips)."""
    return Aligner().align(audio, transcript)


def energy_alignment(
    audio: np.ndarray, floor_db: float = -30.0, hop: float = 0.01, min_speech: float = 0.05
) -> Alignment:
    """Silence vs speech for a clip with no transcript: 10 ms frames quieter than ``floor_db`` below the loud
    frames (99th percentile) are ``SIL``, the rest ``SPN``; speech blips shorter than ``min_speech`` are silence."""
    x = np.asarray(audio, np.float64).reshape(-1)
    step = max(1, int(round(hop * SAMPLE_RATE)))
    n = len(x) // step
    duration = len(x) / SAMPLE_RATE
    if n == 0:
        return Alignment([], duration)
    rms = np.sqrt((x[: n * step].reshape(n, step) ** 2).mean(axis=1) + 1e-20)
    level = 20 * np.log10(rms)
    speech = level > np.percentile(level, 99) + floor_db
    runs = _runs(speech)
    for value, a, b in runs:  # drop short speech blips
        if value and (b - a) * hop < min_speech:
            speech[a:b] = False
    words = []
    for value, a, b in _runs(speech):
        end = duration if b == n else b * hop
        label = SPEECH if value else SILENCE
        phone = Phone(label, a * hop, end)
        words.append(Word("<speech>" if value else "<sil>", phone.start, phone.end, (phone,)))
    return Alignment(words, duration)


def _runs(mask: np.ndarray) -> list[tuple[bool, int, int]]:
    """(value, start, end) of each run of equal values."""
    if len(mask) == 0:
        return []
    edges = np.flatnonzero(np.diff(mask.astype(np.int8))) + 1
    bounds = np.concatenate([[0], edges, [len(mask)]])
    return [(bool(mask[a]), int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


__all__ = [
    "ALIGN_OPTIONS",
    "Aligner",
    "Alignment",
    "AlignmentError",
    "Phone",
    "Word",
    "align_speech",
    "energy_alignment",
    "normalize_transcript",
    "phone_index",
    "to_pcm16",
]
