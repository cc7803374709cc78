"""Evaluation speech: recorded clips from Debian packages, and held-out TTS sentences, each with phone timings.

* ``pocketsphinx-testdata`` (apt): ``cards/*.wav`` and ``librivox/*.wav`` with the transcripts that ship beside
  them (``cards.transcription``, ``librivox/transcription``); forced-aligned with pocketsphinx. Its headerless
  ``*.raw`` clips ship no transcript and are not used.
* ``alsa-utils`` (apt): ``/usr/share/sounds/alsa/*.wav``, a voice saying channel names. No transcript ships, so
  these clips are segmented into silence and speech by loudness and serve the stillness metric only
  (``Noise.wav`` is noise, not speech, and is skipped).
* Held-out TTS: espeak-ng speaking :data:`HELD_OUT_SENTENCES` with a voice not used for training (default
  ``en+f4``: British English, female variant f4), padded with 0.4 s of silence. The phone timings are exact,
  from libespeak-ng's phoneme events (:mod:`.espeak`, the synthesizer behind ``espeak-ng -w``);
  ``timing="pocketsphinx"`` force-aligns the ``espeak-ng -w`` output instead (on this formant voice
  pocketsphinx misplaces some words; :func:`label_agreement` measures by how much).

The audio is read from where the packages install it, at run time; nothing is copied into the repository.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from facecast.audio import load_audio
from facecast.constants import SAMPLE_RATE
from facecast.evaluation.align import Aligner, Alignment, AlignmentError, energy_alignment
from facecast.evaluation.espeak import espeak_utterance
from facecast.evaluation.phones import phone_class

POCKETSPHINX_TESTDATA = Path("/usr/share/pocketsphinx/test/data")
ALSA_SOUNDS = Path("/usr/share/sounds/alsa")
HELD_OUT_VOICE = "en+f4"
"""British English with the female variant f4. (espeak-ng 1.51 silently drops a variant after ``en-gb``:
``espeak-ng -v en-gb+f4`` speaks the plain male ``en`` voice, and the library refuses the name.)"""

HELD_OUT_SENTENCES: tuple[str, ...] = (
    "Bob may move the map. Please put both boots back by the pool.",
    "My mom bought a blue boat in May. We stopped, and then we hopped aboard.",
    "Father saw a big brown dog. It ran home across the wide lawn.",
    "Put the pot of soup above the stove. Keep the lamp by the bed.",
    "Paul came home with a map of Rome. Maybe we could go by bus.",
    "The baby grabbed a bubble. Tom laughed, and his mother smiled.",
    "Bring me the black box from the top shelf. Be careful, it is heavy.",
    "A cow stood in the warm autumn rain. Sam pulled the boat up the beach.",
)
"""Held-out TTS text (written for facecast): rich in bilabials, open, rounded and spread vowels, with a pause."""


@dataclass
class Utterance:
    """A clip to evaluate: 16 kHz mono float audio, its transcript (or ``None``) and its phone timings."""

    name: str
    corpus: str
    audio: np.ndarray
    transcript: str | None
    alignment: Alignment | None

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE


def with_noise(utts: list[Utterance], snr_db: float, seed: int = 0) -> list[Utterance]:
    """The clips with white Gaussian noise added at ``snr_db`` below each clip's mean power (a robustness check);
    the phone timings are the clean clips'. Seeded per clip name, so a run repeats."""
    out = []
    for utt in utts:
        audio = np.asarray(utt.audio, np.float32)
        power = float(np.mean(audio.astype(np.float64) ** 2)) if len(audio) else 0.0
        rng = np.random.default_rng([seed, *utt.name.encode()])
        noise = rng.standard_normal(len(audio)) * np.sqrt(power / 10.0 ** (snr_db / 10.0))
        out.append(replace(utt, audio=(audio + noise).astype(np.float32)))
    return out


def read_transcriptions(path: Path) -> dict[str, str]:
    """Sphinx transcription file lines ``<s> words </s> (id)`` as {id: words}."""
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^\s*(?:<s>)?(.*?)(?:</s>)?\s*\(([^()]+)\)\s*$", line)
        if m and m.group(1).strip():
            out[m.group(2).strip()] = m.group(1).strip()
    return out


def pocketsphinx_testdata(root: Path = POCKETSPHINX_TESTDATA, aligner: Aligner | None = None) -> list[Utterance]:
    """The recorded clips of ``pocketsphinx-testdata`` that ship a transcript, forced-aligned (``alignment`` is
    ``None`` for a clip pocketsphinx cannot align)."""
    sets = [("cards", root / "cards" / "cards.transcription"), ("librivox", root / "librivox" / "transcription")]
    found = [(name, tr) for name, tr in sets if tr.is_file()]
    if not found:
        return []
    aligner = aligner or Aligner()
    out = []
    for folder, transcription in found:
        for key, text in sorted(read_transcriptions(transcription).items()):
            wav = transcription.parent / f"{key}.wav"
            if not wav.is_file():
                continue
            audio = load_audio(wav)
            try:
                alignment = aligner.align(audio, text)
            except AlignmentError:
                alignment = None
            out.append(Utterance(f"{folder}/{key}", "recorded", audio, text, alignment))
    return out


def alsa_sounds(root: Path = ALSA_SOUNDS) -> list[Utterance]:
    """The ``alsa-utils`` voice clips (no transcript): silence vs speech by loudness, for the stillness metric."""
    if not root.is_dir():
        return []
    out = []
    for wav in sorted(root.glob("*.wav")):
        if wav.stem.lower() == "noise":
            continue
        audio = load_audio(wav)
        out.append(Utterance(f"alsa/{wav.stem}", "alsa", audio, None, energy_alignment(audio)))
    return out


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def synthesize_espeak(text: str, voice: str = HELD_OUT_VOICE, pad: float = 0.4) -> np.ndarray:
    """``espeak-ng -v VOICE -w`` as 16 kHz float audio with ``pad`` seconds of silence before and after."""
    if not espeak_available():
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "tts.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), text], check=True, capture_output=True)
        audio = load_audio(wav)
    silence = np.zeros(int(round(pad * SAMPLE_RATE)), np.float32)
    return np.concatenate([silence, audio, silence])


def tts_corpus(
    voice: str = HELD_OUT_VOICE,
    sentences: tuple[str, ...] = HELD_OUT_SENTENCES,
    timing: str = "events",
    aligner: Aligner | None = None,
) -> list[Utterance]:
    """Held-out TTS speech: each sentence pair spoken by ``voice``, with phone timings from the synthesizer's
    events (``timing="events"``) or from pocketsphinx (``timing="pocketsphinx"``)."""
    if timing not in ("events", "pocketsphinx"):
        raise ValueError(f"unknown timing {timing!r}; choose events or pocketsphinx")
    out = []
    for i, text in enumerate(sentences):
        name = f"tts-{voice}/{i:02d}"
        if timing == "events":
            audio, alignment = espeak_utterance(text, voice)
        else:
            aligner = aligner or Aligner()
            audio = synthesize_espeak(text, voice)
            alignment = aligner.align(audio, text)
        out.append(Utterance(name, f"tts:{voice}", audio, text, alignment))
    return out


def label_agreement(reference: Alignment, other: Alignment, step: float = 0.01) -> float:
    """Fraction of ``step``-spaced times at which two alignments put the same mouth class (SIL, bilabial, open
    vowel, other): how far forced alignment is from exact timings."""
    end = min(reference.duration, other.duration)
    times = np.arange(0.0, end, step)
    a = [phone_class(p) for p in reference.phone_at(times)]
    b = [phone_class(p) for p in other.phone_at(times)]
    return float(np.mean([x == y for x, y in zip(a, b, strict=True)])) if len(times) else float("nan")
