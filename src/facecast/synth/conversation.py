"""Conversational shots for the synthetic corpus: faster speech, hesitations and a competing talker.

Read speech from a TTS voice is fluent and alone. Conversation is not: people speak faster, hesitate ("uh",
"um") and stop for a while mid-utterance, and another voice is often heard at a lower level, also while the
speaker pauses. A conversational shot therefore

* speaks at a rate factor of 1.1 to 1.6 (read shots: 0.8 to 1.25);
* puts fillers of the shot's language between some words;
* splits the text into phrases spoken separately and joined by pauses of 0.3 to 1.5 s (silence phones, so the
  teacher's face rests there);
* mixes in, most of the time, one other voice saying other words 6 to 20 dB below the speaker's active speech,
  running through the pauses. The teacher follows the speaker alone, so the network learns that a quieter
  voice is not the face's own speech.

Everything is drawn from the shot's random generator (:func:`plan_conversation`), so a corpus stays a pure
function of its seed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from facecast.audio import resample
from facecast.synth.augment import active_rms
from facecast.synth.phonemes import SILENCE
from facecast.synth.text import make_text
from facecast.synth.tts import Speech, Voice, synthesize

FILLERS: dict[str, tuple[str, ...]] = {
    "en": ("uh", "um", "er", "hmm", "well"),
    "de": ("äh", "ähm", "hm", "also"),
    "fr": ("euh", "ben", "bah", "hein"),
    "es": ("eh", "este", "pues", "bueno"),
    "it": ("ehm", "cioè", "allora", "beh"),
    "pt": ("é", "hum", "então", "tipo"),
    "nl": ("eh", "uhm", "nou", "dus"),
    "pl": ("yyy", "eee", "no", "jakby"),
    "cmn": ("嗯", "那个", "就是"),
}
"""Hesitation words per corpus language (spoken by the TTS voice like any other word)."""

RATE = (1.1, 1.6)
FILLER_SHARE = 0.12  # of word boundaries
PAUSES = (1, 3)  # long pauses per shot (inclusive)
PAUSE_SECONDS = (0.3, 1.5)
TALKER_SHARE = 0.7
TALKER_SNR_DB = (6.0, 20.0)


@dataclass(frozen=True)
class Conversation:
    """How a conversational shot is spoken: ``phrases`` in turn with ``pauses`` (s) between them, at ``rate``,
    with ``talker`` (``BACKEND:NAME``, or empty for none) ``talker_snr_db`` below the speaker."""

    rate: float
    phrases: tuple[str, ...]
    pauses: tuple[float, ...]
    talker: str = ""
    talker_snr_db: float = 0.0
    talker_text: str = ""
    talker_offset: float = 0.0  # share of the shot before the talker starts, 0 to 0.5

    @property
    def text(self) -> str:
        return " ".join(self.phrases)

    def to_json(self) -> dict:
        return asdict(self)


def add_fillers(rng: np.random.Generator, text: str, language: str, share: float = FILLER_SHARE) -> str:
    """``text`` with a filler (and a comma) before about ``share`` of its words."""
    fillers = FILLERS.get(language, FILLERS["en"])
    words = text.split()
    out = []
    for k, word in enumerate(words):
        if k and rng.uniform() < share:
            out.append(str(fillers[int(rng.integers(len(fillers)))]) + ",")
        out.append(word)
    return " ".join(out)


def split_phrases(rng: np.random.Generator, text: str, count: int) -> tuple[str, ...]:
    """``text`` cut at ``count - 1`` random word boundaries into phrases of at least one word each."""
    words = text.split()
    count = max(1, min(count, len(words)))
    cuts = sorted(rng.choice(np.arange(1, len(words)), size=count - 1, replace=False)) if count > 1 else []
    bounds = [0, *[int(c) for c in cuts], len(words)]
    return tuple(" ".join(words[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True))


def plan_conversation(rng: np.random.Generator, voice: Voice, seconds: float, voices: list[Voice]) -> Conversation:
    """Draw a conversational shot of about ``seconds`` of speech for ``voice``; the talker is another of
    ``voices`` (a backend drawn first, then its voice; none when ``voice`` is the only one)."""
    rate = float(rng.uniform(*RATE))
    text = add_fillers(rng, make_text(rng, voice.language, seconds, rate), voice.language)
    phrases = split_phrases(rng, text, int(rng.integers(PAUSES[0], PAUSES[1] + 1)) + 1)
    pauses = tuple(float(rng.uniform(*PAUSE_SECONDS)) for _ in phrases[1:])
    others = [v for v in voices if (v.backend, v.name) != (voice.backend, voice.name)]
    if not others or rng.uniform() >= TALKER_SHARE:
        return Conversation(rate, phrases, pauses)
    backends = sorted({v.backend for v in others})  # a backend first, so espeak's many variants do not crowd out
    backend = backends[int(rng.integers(len(backends)))]
    pool = [v for v in others if v.backend == backend]
    talker = pool[int(rng.integers(len(pool)))]
    snr = float(rng.uniform(*TALKER_SNR_DB))
    talk_seconds = seconds + sum(pauses) + 1.0
    talker_text = make_text(rng, talker.language, talk_seconds, 1.0)
    offset = float(rng.uniform(0.0, 0.5))
    return Conversation(rate, phrases, pauses, f"{talker.backend}:{talker.name}", snr, talker_text, offset)


def speak(conversation: Conversation, voice: Voice, seed: int) -> Speech:
    """The speaker's phrases joined by the planned pauses (silence phones there), at the planned rate."""
    voice = replace(voice, rate=conversation.rate)
    pieces: list[np.ndarray] = []
    phones: list[tuple[str, float, float]] = []
    sample_rate = 0
    t = 0.0
    for k, phrase in enumerate(conversation.phrases):
        speech = synthesize(phrase, voice, seed=seed + k)
        if sample_rate and speech.sample_rate != sample_rate:
            raise RuntimeError(f"{voice.backend}:{voice.name} changed sample rate between phrases")
        sample_rate = speech.sample_rate
        pieces.append(np.asarray(speech.audio, np.float32))
        phones += [(p, s + t, e + t) for p, s, e in speech.phones]
        t += len(speech.audio) / sample_rate
        if k < len(conversation.pauses):
            gap = round(conversation.pauses[k] * sample_rate)
            pieces.append(np.zeros(gap, np.float32))
            phones.append((SILENCE, t, t + gap / sample_rate))
            t += gap / sample_rate
    return Speech(np.concatenate(pieces), sample_rate, phones)


def talker_track(conversation: Conversation, voices: list[Voice], n: int, sr: int, seed: int) -> np.ndarray:
    """The competing talker's audio, ``n`` samples at ``sr``, silent before its offset, unit active RMS."""
    if not conversation.talker:
        return np.zeros(n, np.float32)
    backend, _, name = conversation.talker.partition(":")
    voice = next((v for v in voices if (v.backend, v.name) == (backend, name)), None)
    if voice is None:
        raise ValueError(f"talker voice {conversation.talker!r} is not among this corpus' voices")
    speech = synthesize(conversation.talker_text, voice, seed=seed)
    audio = resample(np.asarray(speech.audio, np.float32), speech.sample_rate, sr)
    level = active_rms(audio, sr)
    if level <= 0:
        return np.zeros(n, np.float32)
    start = int(conversation.talker_offset * n)
    out = np.zeros(n, np.float32)
    part = audio[: n - start] / level
    out[start : start + len(part)] = part
    return out


def mix_talker(speech: np.ndarray, talker: np.ndarray, snr_db: float, sr: int) -> np.ndarray:
    """``speech`` plus ``talker`` (unit active RMS) at ``snr_db`` below the speech's active RMS."""
    level = active_rms(speech, sr)
    if level <= 0 or not np.any(talker):
        return np.asarray(speech, np.float32)
    return (speech + talker * np.float32(level * 10 ** (-snr_db / 20))).astype(np.float32)
