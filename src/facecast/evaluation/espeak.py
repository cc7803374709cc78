"""espeak-ng speech with exact phone timings, from libespeak-ng's phoneme events (ctypes, no build step).

The library is the synthesizer behind ``espeak-ng -v VOICE -w out.wav`` (the first clip of a process matches
the CLI sample for sample, later ones differ only through the engine's carried-over state) and, initialised
with ``espeakINITIALIZE_PHONEME_EVENTS | espeakINITIALIZE_PHONEME_IPA``, it reports each phoneme's first
sample. A phoneme ends where the next one starts; an empty phoneme is a pause. IPA phonemes become CMU phones
through :data:`IPA_TO_CMU` (two-phone entries split the span evenly).

    audio, alignment = espeak_utterance("Bob may move the map.", "en+f4")   # 16 kHz float, phones in s
"""

from __future__ import annotations

import ctypes
import threading
import unicodedata
from collections.abc import Callable

import numpy as np

from facecast.audio import resample
from facecast.constants import SAMPLE_RATE
from facecast.evaluation.align import Alignment, Phone, Word
from facecast.evaluation.phones import NOISE, SILENCE
from facecast.synth.espeak import _CALLBACK, EspeakUnavailable, find_library

IPA_TO_CMU: dict[str, tuple[str, ...]] = {
    "a": ("AE",), "æ": ("AE",), "aɪ": ("AY",), "aʊ": ("AW",), "e": ("EH",), "ɛ": ("EH",), "eə": ("EH",),
    "eɪ": ("EY",), "i": ("IY",), "iː": ("IY",), "iə": ("IY", "AH"), "ɪə": ("IH", "AH"), "ɪ": ("IH",), "ᵻ": ("IH",),
    "uː": ("UW",), "u": ("UW",), "ʊ": ("UH",), "ʊə": ("UH", "AH"), "ɐ": ("AH",), "ə": ("AH",), "ʌ": ("AH",),
    "ɑː": ("AA",), "ɑ": ("AA",), "ɒ": ("AA",), "ɔː": ("AO",), "ɔ": ("AO",), "ɔɪ": ("OY",), "əʊ": ("OW",),
    "oʊ": ("OW",), "o": ("OW",), "ɜː": ("ER",), "ɚ": ("ER",), "əl": ("AH", "L"), "oːɹ": ("AO", "R"),
    "ɑːɹ": ("AA", "R"), "ɔːɹ": ("AO", "R"), "ɛɹ": ("EH", "R"), "ɪɹ": ("IH", "R"), "ʊɹ": ("UH", "R"),
    "p": ("P",), "b": ("B",), "m": ("M",), "m̩": ("M",), "f": ("F",), "v": ("V",), "θ": ("TH",), "ð": ("DH",),
    "t": ("T",), "d": ("D",), "ɾ": ("T",), "ʔ": ("T",), "n": ("N",), "n̩": ("N",), "l": ("L",), "l̩": ("L",),
    "s": ("S",), "z": ("Z",), "ʃ": ("SH",), "ʒ": ("ZH",), "tʃ": ("CH",), "dʒ": ("JH",), "j": ("Y",),
    "k": ("K",), "ɡ": ("G",), "g": ("G",), "ŋ": ("NG",), "h": ("HH",), "x": ("HH",), "w": ("W",),
    "ɹ": ("R",), "r": ("R",),
}  # fmt: skip
"""espeak-ng's IPA phoneme names (English voices) -> CMU phones."""

_EVENT_WORD, _EVENT_END, _EVENT_PHONEME = 1, 5, 7
_SYNCHRONOUS = 2  # AUDIO_OUTPUT_SYNCHRONOUS
_PHONEME_EVENTS, _PHONEME_IPA = 0x1, 0x2
_POS_CHARACTER = 1


class _Engine:
    """The process-wide libespeak-ng instance (the library is a singleton and not thread-safe)."""

    def __init__(self) -> None:
        self.lib, data = _load_library()
        self.rate = self.lib.espeak_Initialize(_SYNCHRONOUS, 0, data, _PHONEME_EVENTS | _PHONEME_IPA)
        if self.rate <= 0:
            raise RuntimeError("libespeak-ng failed to initialise")
        self.pcm: list[np.ndarray] = []
        self.events: list[tuple[int, int, int, int, str]] = []
        self._callback = _CALLBACK(self._on_synth)  # keep a reference: the library calls it
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lock = threading.Lock()

    def _on_synth(self, wav, n, events) -> int:
        if n > 0:
            self.pcm.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != 0:
            e = events[i]
            name = e.id.string.decode("utf-8", "replace") if e.type == _EVENT_PHONEME else ""
            self.events.append((e.type, e.sample, e.text_position, e.length, name))
            i += 1
        return 0

    def synthesize(self, text: str, voice: str) -> tuple[np.ndarray, list[tuple[int, int, int, int, str]]]:
        """int16 samples at ``self.rate`` and the events (type, sample, text position, length, phoneme)."""
        with self.lock:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(
                    f"unknown espeak-ng voice {voice!r} (see espeak-ng --voices; British English is 'en', "
                    "a variant is added as 'en+f4')"
                )
            self.pcm, self.events = [], []
            data = text.encode()
            self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, 0, None, None)
            self.lib.espeak_Synchronize()
            pcm = np.concatenate(self.pcm) if self.pcm else np.zeros(0, np.int16)
            return pcm, list(self.events)


def _load_library() -> tuple[ctypes.CDLL, bytes | None]:
    try:
        path, data = find_library()
    except EspeakUnavailable as exc:
        raise RuntimeError(str(exc)) from exc
    return ctypes.CDLL(path), None if data is None else data.encode()


_ENGINE: _Engine | None = None
_ENGINE_LOCK = threading.Lock()


def _engine() -> _Engine:
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = _Engine()
        return _ENGINE


def libespeak_available() -> bool:
    """Whether libespeak-ng can be loaded here."""
    try:
        _engine()
    except RuntimeError:
        return False
    return True


def ipa_to_cmu(phoneme: str) -> tuple[str, ...]:
    """CMU phones for one espeak IPA phoneme: ``()`` for a pause, ``("NSN",)`` when unknown."""
    name = phoneme.replace("ˈ", "").replace("ˌ", "").strip()
    if not name:
        return ()
    if name in IPA_TO_CMU:
        return IPA_TO_CMU[name]
    bare = "".join(c for c in unicodedata.normalize("NFD", name) if not unicodedata.combining(c))
    return IPA_TO_CMU.get(bare, IPA_TO_CMU.get(bare.replace("ː", ""), (NOISE,)))


def event_alignment(
    events: list[tuple[int, int, int, int, str]],
    num_samples: int,
    rate: int,
    text: str = "",
    mapping: Callable[[str], tuple[str, ...]] | None = None,
) -> Alignment:
    """Phones (CMU, SIL for pauses) and words from libespeak-ng events over a clip of ``num_samples``;
    ``mapping`` turns an IPA phoneme into CMU phones (default :func:`ipa_to_cmu`, English)."""
    mapping = mapping or ipa_to_cmu
    phonemes = [(s, name) for kind, s, _, _, name in events if kind == _EVENT_PHONEME]
    word_events = sorted((s, text[max(pos - 1, 0) : max(pos - 1, 0) + length].strip().lower())
                         for kind, s, pos, length, _ in events if kind == _EVENT_WORD)  # fmt: skip
    ends = [s for s, _ in phonemes[1:]] + [num_samples]
    words: list[Word] = []
    current: list[Phone] = []
    state = {"name": "", "next": 0}

    def close() -> None:
        if current:
            words.append(Word(state["name"] or "?", current[0].start, current[-1].end, tuple(current)))
        current.clear()

    for (start, name), end in zip(phonemes, ends, strict=True):
        started = None
        while state["next"] < len(word_events) and word_events[state["next"]][0] <= start:
            started = word_events[state["next"]][1]
            state["next"] += 1
        if started is not None:
            close()
            state["name"] = started
        if end <= start:
            continue
        cmu = mapping(name)
        t0, t1 = start / rate, end / rate
        if not cmu:
            close()
            words.append(Word("<sil>", t0, t1, (Phone(SILENCE, t0, t1),)))
            continue
        step = (t1 - t0) / len(cmu)
        current.extend(Phone(p, t0 + k * step, t0 + (k + 1) * step) for k, p in enumerate(cmu))
    close()
    if phonemes and phonemes[0][0] > 0:
        t = phonemes[0][0] / rate
        words.insert(0, Word("<sil>", 0.0, t, (Phone(SILENCE, 0.0, t),)))
    return Alignment(words, num_samples / rate)


def shift_alignment(alignment: Alignment, offset: float, duration: float) -> Alignment:
    """Move every time by ``offset`` seconds inside a clip of ``duration``, with silence before and after."""
    words = [Word("<sil>", 0.0, offset, (Phone(SILENCE, 0.0, offset),))] if offset > 0 else []
    for w in alignment.words:
        phones = tuple(Phone(p.name, p.start + offset, p.end + offset) for p in w.phones)
        words.append(Word(w.name, w.start + offset, w.end + offset, phones))
    end = alignment.duration + offset
    if duration > end:
        words.append(Word("<sil>", end, duration, (Phone(SILENCE, end, duration),)))
    return Alignment(words, duration)


def espeak_utterance(
    text: str, voice: str = "en+f4", pad: float = 0.4, mapping: Callable[[str], tuple[str, ...]] | None = None
) -> tuple[np.ndarray, Alignment]:
    """Speak ``text``: 16 kHz float audio with ``pad`` s of silence at both ends, and its exact phone timings
    (``mapping``: IPA phoneme -> CMU phones, see :func:`event_alignment`)."""
    engine = _engine()
    pcm, events = engine.synthesize(text, voice)
    if len(pcm) == 0:
        raise RuntimeError(f"espeak-ng produced no audio for {text!r}")
    alignment = event_alignment(events, len(pcm), engine.rate, text, mapping)
    audio = resample(pcm.astype(np.float32) / 32768.0, engine.rate, SAMPLE_RATE)
    silence = np.zeros(int(round(pad * SAMPLE_RATE)), np.float32)
    audio = np.concatenate([silence, audio, silence]).astype(np.float32)
    return audio, shift_alignment(alignment, len(silence) / SAMPLE_RATE, len(audio) / SAMPLE_RATE)
