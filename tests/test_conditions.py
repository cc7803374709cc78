"""Tests for the listening conditions of the lip-sync evaluation (facecast.evaluation.conditions, issue 24).

Each test asserts the property that makes the condition what it claims: band limits in the spectrum, the
codec's delay removed, the length kept, the SNR measured, the RT60 of the generated room, the tempo factor and
the pitch under a speed change.
"""

from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pytest

from facecast.evaluation import conditions as C
from facecast.evaluation.align import Alignment, Phone, Word
from facecast.evaluation.conditions import (
    ALL_CONDITIONS,
    Condition,
    degrade,
    degrade_utterances,
    estimate_rt60,
    parse_condition,
    parse_conditions,
    time_stretch,
)
from facecast.evaluation.corpus import Utterance
from facecast.synth import augment as aug
from facecast.synth.augment import active_rms, find_delay, impulse_response

SR = 16000
needs_av = pytest.mark.skipif(importlib.util.find_spec("av") is None, reason="PyAV is not installed")
needs_sox = pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed (apt-get install sox)")


def _speechlike(seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """Wide-band test signal: a 140 Hz pulse train with noise, syllable-rate amplitude modulation."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    pulses = sum(np.sin(2 * np.pi * 140 * k * t) / k**0.5 for k in range(1, 50) if 140 * k < SR / 2)
    x = 0.6 * pulses / 7 + 0.1 * rng.standard_normal(n)
    return (x * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t))).astype(np.float32) * 0.5


def _band_db(x: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return float(10 * np.log10(spec[(f >= lo) & (f < hi)].mean() + 1e-30))


def test_parse_all_and_errors() -> None:
    conds = parse_conditions("all")
    assert conds[0] == Condition("clean") and len(conds) == len(ALL_CONDITIONS)
    assert [c.name for c in parse_conditions("opus:6,opus:6,speed")] == ["clean", "opus:6", "speed:1.25"]
    assert parse_condition("telephone:alaw").value == "alaw"
    for bad in ("fax", "opus:x", "amr:9", "speed:3", "telephone:ulaw", "clean:1"):
        with pytest.raises(ValueError):
            parse_condition(bad)


@needs_av
@pytest.mark.parametrize("law", ["mulaw", "alaw"])
def test_telephone_band_limits_and_length(law: str) -> None:
    x = _speechlike()
    y = degrade(x, Condition("telephone", law), seed=1)
    assert len(y) == len(x)
    inband = _band_db(y, 500, 3000)
    assert inband - _band_db(y, 20, 150) > 25  # below the 300 Hz edge
    assert inband - _band_db(y, 4000, 8000) > 40  # 8 kHz sampling and the 3400 Hz edge
    assert abs(_band_db(y, 500, 3000) - _band_db(x, 500, 3000)) < 3  # the band itself passes
    assert abs(find_delay(x, y, SR)) <= 1


@needs_av
def test_mulaw_and_alaw_differ() -> None:
    x = _speechlike(0.5)
    mu, a = degrade(x, Condition("telephone", "mulaw")), degrade(x, Condition("telephone", "alaw"))
    assert not np.allclose(mu, a)


@needs_av
@pytest.mark.parametrize("spec", ["amr:12.2", "amr:4.75", "opus:6", "opus:12", "mp3:32"])
def test_codecs_keep_length_and_timing(spec: str) -> None:
    x = _speechlike()
    y = degrade(x, parse_condition(spec), seed=2)
    assert len(y) == len(x) and np.isfinite(y).all()
    assert abs(find_delay(x, y, SR)) <= 2  # the codec's own delay was removed
    assert np.corrcoef(x, y)[0, 1] > 0.3  # AMR drops everything above 4 kHz
    if spec.startswith("amr"):
        assert _band_db(y, 300, 3000) - _band_db(y, 4500, 8000) > 30  # narrowband: 8 kHz sampling


@needs_av
def test_lower_bitrate_is_worse() -> None:
    x = _speechlike()

    def snr(spec: str) -> float:
        y = degrade(x, parse_condition(spec))
        return 10 * np.log10(np.sum(x**2) / np.sum((x - y) ** 2))

    assert snr("opus:12") > snr("opus:6")
    assert snr("amr:12.2") > snr("amr:4.75")


@needs_sox
def test_gsm_narrowband_same_length() -> None:
    x = _speechlike()
    y = degrade(x, Condition("gsm", 13.0))
    assert len(y) == len(x)
    assert _band_db(y, 500, 3000) - _band_db(y, 4500, 8000) > 30
    assert abs(find_delay(x, y, SR)) <= 2
    assert np.corrcoef(aug.telephone_band(x, SR), y)[0, 1] > 0.3


def test_find_delay_recovers_a_shift() -> None:
    x = _speechlike(0.8)
    y = np.concatenate([np.zeros(123, np.float32), x])[: len(x)]
    assert find_delay(x, y, SR) == 123
    fixed, lag = aug.undelay(x, y, SR)
    assert lag == 123 and len(fixed) == len(x)


@pytest.mark.parametrize("rt60", [0.3, 0.6, 1.0])
def test_reverb_rt60_from_the_generated_ir(rt60: float) -> None:
    ir = impulse_response(SR, rt60, np.random.default_rng(5), wet=0.5)
    assert estimate_rt60(ir, SR) == pytest.approx(rt60, rel=0.15)
    x = _speechlike(1.0)
    y = degrade(x, Condition("reverb", rt60), seed=5)
    assert len(y) == len(x)
    assert abs(find_delay(x, y, SR)) <= 1  # the direct path stays at lag 0


def test_reverb_longer_rooms_smear_more() -> None:
    click = np.zeros(SR, np.float32)
    click[100] = 1.0
    tails = [np.sum(degrade(click, Condition("reverb", r), seed=3)[100 + SR // 10 :] ** 2) for r in (0.3, 1.0)]
    assert tails[1] > 3 * tails[0]


@pytest.mark.parametrize("kind", ["babble", "talker", "music"])
@pytest.mark.parametrize("snr", [5.0, 20.0])
def test_noise_mixed_at_measured_snr(kind: str, snr: float, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    fake = tuple(_speechlike(1.0 + 0.3 * i, seed=i) * rng.uniform(0.2, 1) for i in range(5))
    monkeypatch.setattr(C, "babble_sources", lambda: fake)
    x = _speechlike(2.0)
    y = degrade(x, Condition(kind, snr), seed=9)
    assert len(y) == len(x)
    noise = y - x
    measured = 20 * np.log10(active_rms(x, SR) / np.sqrt(np.mean(noise.astype(np.float64) ** 2)))
    assert measured == pytest.approx(snr, abs=0.1)
    assert np.array_equal(y, degrade(x, Condition(kind, snr), seed=9))  # seeded
    assert not np.array_equal(y, degrade(x, Condition(kind, snr), seed=10))


def test_talker_is_one_voice_and_babble_several(monkeypatch: pytest.MonkeyPatch) -> None:
    t = np.arange(SR) / SR
    tones = tuple((0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32) for f in (300, 700, 1100, 1500, 1900, 2300))
    monkeypatch.setattr(C, "babble_sources", lambda: tones)
    x = _speechlike(2.0)

    def voices(kind: str) -> int:
        noise = degrade(x, Condition(kind, 10.0), seed=4) - x
        spec = np.abs(np.fft.rfft(noise.astype(np.float64))) ** 2
        f = np.fft.rfftfreq(len(noise), 1 / SR)
        power = [spec[np.abs(f - tone) < 20].sum() for tone in (300, 700, 1100, 1500, 1900, 2300)]
        return sum(p > 0.05 * spec.sum() for p in power)

    assert voices("talker") == 1
    assert voices("babble") >= 2
    assert parse_condition("talker").value == 10.0 and "one other" in C.describe(parse_condition("talker:5"))


def test_music_is_tonal_and_rhythmic() -> None:
    m = C.synth_music(4 * SR, SR, np.random.default_rng(1))
    spec = np.abs(np.fft.rfft(m))
    assert spec.max() > 20 * np.median(spec)  # notes: strong spectral peaks
    env = np.convolve(m.astype(np.float64) ** 2, np.ones(400) / 400, "same")[::160]
    env = env - env.mean()
    ac = np.correlate(env, env, "full")[len(env) - 1 :]
    assert ac[20:100].max() > 0.15 * ac[0]  # a beat between 0.2 and 1 s (noise: about 0)


@pytest.mark.parametrize("factor", [0.8, 1.25])
def test_speed_duration_and_pitch(factor: float) -> None:
    t = np.arange(SR) / SR
    tone = (0.5 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    y = time_stretch(tone, factor, SR)
    assert len(y) == round(len(tone) / factor)
    mid = y[len(y) // 4 : 3 * len(y) // 4]
    f = np.fft.rfftfreq(8 * len(mid), 1 / SR)[np.argmax(np.abs(np.fft.rfft(mid * np.hanning(len(mid)), 8 * len(mid))))]
    assert f == pytest.approx(200, rel=0.02)
    assert np.sqrt(np.mean(mid**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)  # no comb-filter dips


def test_speed_scales_the_phone_timings() -> None:
    phones = [Phone("SIL", 0.0, 0.4), Phone("B", 0.4, 0.5), Phone("AA", 0.5, 1.0)]
    utt = Utterance("u", "x", _speechlike(1.0), "ba", Alignment([Word("ba", 0.0, 1.0, tuple(phones))], 1.0))
    (fast,) = degrade_utterances([utt], Condition("speed", 1.25))
    assert fast.duration == pytest.approx(0.8, abs=1e-3)
    edges = [t for p in fast.alignment.phones for t in (p.start, p.end)]
    assert edges == pytest.approx([0, 0.32, 0.32, 0.4, 0.4, 0.8])
    # the onset of the louder part moves with the timings: energy envelope of a burst at 0.5 s
    burst = np.zeros(SR, np.float32)
    burst[SR // 2 : SR // 2 + 1600] = _speechlike(0.1)
    y = time_stretch(burst, 1.25, SR)
    onset = np.argmax(np.abs(y) > 0.05) / SR
    assert onset == pytest.approx(0.5 / 1.25, abs=0.02)


def test_degrade_utterances_seeded_per_clip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(C, "babble_sources", lambda: (_speechlike(1.0, 3),))
    al = Alignment([Word("<sil>", 0, 1.0, (Phone("SIL", 0, 1.0),))], 1.0)
    utts = [Utterance(n, "x", _speechlike(1.0), None, al) for n in ("a", "b")]
    one = degrade_utterances(utts, Condition("music", 10.0))
    two = degrade_utterances(utts, Condition("music", 10.0))
    assert np.array_equal(one[0].audio, two[0].audio)
    assert not np.array_equal(one[0].audio, one[1].audio)
    assert np.array_equal(utts[0].audio, _speechlike(1.0))  # the clean clips are untouched


@pytest.mark.skipif(shutil.which("flite") is None and shutil.which("espeak-ng") is None, reason="no TTS here")
def test_babble_sources_are_several_talkers() -> None:
    sources = C.babble_sources()
    assert len(sources) >= 4 and all(len(s) > SR for s in sources)
    assert len({round(float(np.sqrt(np.mean(s**2))), 4) for s in sources}) == len(sources)
