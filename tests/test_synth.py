"""Synthetic corpus: TTS phone timing, the procedural teacher on the default head, augmentation, the corpus."""

from __future__ import annotations

import argparse
import json
import os
import signal

import numpy as np
import pytest

from facecast.constants import ARKIT_NAMES, TONGUE_NAMES
from facecast.synth import augment as aug
from facecast.synth.phonemes import arpabet_to_ipa, phone_class, phone_units, tidy_phones
from facecast.synth.teacher import TeacherParams, make_units, refine_units, teach
from facecast.synth.tts import Voice, backend_status, synthesize

STATUS = backend_status()


def needs(backend: str):
    return pytest.mark.skipif(STATUS[backend] is not None, reason=STATUS[backend] or "")


def check_phones(audio: np.ndarray, sr: int, phones: list[tuple[str, float, float]], tol: float = 1e-9) -> None:
    """Phones are contiguous, strictly positive in length, in order, and cover the audio exactly."""
    assert len(audio) > 0 and phones
    assert phones[0][1] == 0.0
    assert phones[-1][2] == pytest.approx(len(audio) / sr, abs=tol)
    for (_, s0, e0), (_, s1, e1) in zip(phones, phones[1:], strict=False):
        assert e0 == pytest.approx(s1, abs=1e-12)
        assert e0 > s0 and e1 > s1


# ----------------------------------------------------------------------------------------------------
# phones


def test_phone_classes():
    assert phone_class("p") == phone_class("m") == "bilabial"
    assert phone_class("f") == "labiodental"
    assert phone_class("aː") == "open" and phone_class("uː") == "rounded" and phone_class("iː") == "spread"
    assert [c for c, _ in phone_units("aɪ")] == ["open", "spread"]
    assert phone_units("tʃ") == [("postalveolar", pytest.approx(0.15))]
    assert phone_units("th")[0][0] == "alveolar"  # espeak Mandarin aspiration
    assert phone_units("ʲ") == [] and phone_units("_") == [("sil", 0.0)]
    assert arpabet_to_ipa("pau") == "_" and arpabet_to_ipa("AH0") == "ʌ" and arpabet_to_ipa("ay") == "aɪ"


def test_voice_tags_keep_emotion_labels():
    from facecast.synth.tts import all_voices
    from facecast.train.dataset import SHOT_EMOTIONS, infer_emotion

    tags = [v.tag for v in all_voices()]
    assert len(tags) == len(set(tags)) and "espeak_enus_f3" in tags and "piper_joe" in tags
    assert all(infer_emotion(f"{t}_{e}_00007") == e for t in tags for e in SHOT_EMOTIONS)


def test_tidy_phones_contiguous():
    raw = [("h", 0.05, 0.1), ("", 0.1, 0.12), ("a", 0.12, 0.3), ("(en)", 0.3, 0.3), ("", 0.3, 0.5), ("m", 0.5, 0.6)]
    phones = tidy_phones(raw, 0.7)
    check_phones(np.zeros(7000), 10_000, phones)
    assert [p for p, _, _ in phones] == ["_", "h", "a", "_", "m", "_"]  # 20 ms pause absorbed by "h"


# ----------------------------------------------------------------------------------------------------
# TTS backends


@needs("espeak")
def test_espeak_timing_covers_audio():
    sp = synthesize("Bob bought a map, then he ran home.", Voice("espeak", "en-us+f3"))
    check_phones(sp.audio, sp.sample_rate, sp.phones)
    names = [p for p, _, _ in sp.phones]
    assert "b" in names and "m" in names and "_" in names[1:-1]  # the comma is a pause
    assert sum(phone_class(p) == "bilabial" for p in names) >= 4
    assert np.abs(sp.audio).max() > 0.05


@needs("espeak")
def test_espeak_languages_and_determinism():
    voice = Voice("espeak", "de+m3", "de", rate=1.2, pitch=0.8)
    first = synthesize("Guten Morgen, wie geht es?", voice, seed=4)
    synthesize("Something else entirely.", Voice("espeak", "en-us+f2"), seed=9)
    again = synthesize("Guten Morgen, wie geht es?", voice, seed=4)
    assert np.array_equal(first.audio, again.audio) and first.phones == again.phones
    zh = synthesize("ni3 hao3, wo3 men2 qu4 bei3 jing1.", Voice("espeak", "cmn-latn-pinyin", "cmn"))
    check_phones(zh.audio, zh.sample_rate, zh.phones)
    assert "tɕ" in [p for p, _, _ in zh.phones]


@needs("espeak")
def test_espeak_speaks_in_a_helper_that_is_restarted_and_stopped():
    from facecast.synth import espeak

    args = ("Bob may move the map.", "en-us+f3")
    first = espeak.synthesize_espeak(*args, seed=4)
    assert espeak._ENGINE is None  # this process never initialises (and never forks) an engine of its own
    old = espeak.helper()
    os.kill(old.pid, signal.SIGKILL)
    old._proc.wait()
    again = espeak.synthesize_espeak(*args, seed=4)  # a dead helper is started again
    assert espeak.helper().pid != old.pid
    assert np.array_equal(first[0], again[0]) and first[2] == again[2]
    stuck = espeak.helper()
    stuck.timeout = 1e-4
    with pytest.raises(RuntimeError, match="did not answer"):
        espeak.synthesize_espeak("Bob may move the map, and then the mop, and then the mat. " * 8, "en-us+f3")
    assert not stuck.alive()
    third = espeak.synthesize_espeak(*args, seed=4)
    assert espeak.helper().alive() and np.array_equal(first[0], third[0])


@pytest.mark.parametrize(
    "voice",
    [
        pytest.param(Voice("festival", "kal_diphone"), marks=needs("festival")),
        pytest.param(Voice("flite", "slt"), marks=needs("flite")),
        pytest.param(Voice("piper", "joe"), marks=needs("piper")),
    ],
    ids=["festival", "flite", "piper"],
)
def test_other_backends_timing(voice):
    sp = synthesize("Maybe the bus will stop here.", voice, seed=2)
    check_phones(sp.audio, sp.sample_rate, sp.phones)
    assert sum(phone_class(p) == "bilabial" for p, _, _ in sp.phones) >= 3  # m, b, p
    if voice.backend == "piper":
        again = synthesize("Maybe the bus will stop here.", voice, seed=2)
        assert np.array_equal(sp.audio, again.audio)


def test_missing_backend_is_reported(monkeypatch):
    import facecast.synth.tts as tts

    monkeypatch.setattr(tts.shutil, "which", lambda name: None)
    reason = tts.backend_status()["flite"]
    assert reason is not None and "apt-get install flite" in reason
    with pytest.raises(tts.BackendUnavailable, match="flite"):
        tts.synthesize("hello", Voice("flite", "slt"))


# ----------------------------------------------------------------------------------------------------
# teacher on the default character


@pytest.fixture(scope="module")
def character():
    from facecast.characters import AnnyNotFoundError, build_default_character

    try:
        return build_default_character()
    except AnnyNotFoundError as exc:
        pytest.skip(str(exc))


def _gaps(character, curves) -> np.ndarray:
    from facecast.characters import apply_weights, lip_gap

    posed = apply_weights(character, curves.arkit, curves.tongue)
    return lip_gap(character, posed["skin"]) - lip_gap(character, character.skin.vertices)


HAND_PHONES = [("_", 0.0, 0.2), ("p", 0.2, 0.28), ("a", 0.28, 0.5), ("m", 0.5, 0.58), ("a", 0.58, 0.8),
               ("b", 0.8, 0.86), ("u", 0.86, 1.0), ("_", 1.0, 1.3)]  # fmt: skip


@pytest.mark.parametrize("emotion", ["neutral", "joy", "amazement"])
def test_teacher_closes_lips_on_bilabials(character, emotion):
    params = TeacherParams(emotion=emotion, intensity=1.0, seed=3)
    curves = teach(HAND_PHONES, 39, params)
    assert curves.arkit.shape == (39, len(ARKIT_NAMES)) and curves.tongue.shape == (39, len(TONGUE_NAMES))
    gap = _gaps(character, curves)
    t = np.arange(39) / 30.0
    for start, end in ((0.2, 0.28), (0.5, 0.58), (0.8, 0.86)):
        near = (t > start - 0.03) & (t < end + 0.03)
        assert gap[near].min() < 0.02, (start, gap[near])  # lips meet (cm, relative to the neutral)
    for start, end in ((0.28, 0.5), (0.58, 0.8)):
        inside = (t >= start) & (t < end)
        assert gap[inside].max() > 0.5  # an open vowel opens the mouth by more than 5 mm
    if emotion == "neutral":
        rest = gap[t < 0.08]
        assert np.all(np.abs(rest) < 0.02)  # a pause (>= PAUSE_S): the mouth rests at the neutral
    assert np.array_equal(curves.arkit, teach(HAND_PHONES, 39, params).arkit)


def test_teacher_lip_press_presses_the_lips_past_rest(character):
    from facecast.characters import lip_gap

    neutral_gap = lip_gap(character, character.skin.vertices)
    t = np.arange(39) / 30.0
    spans = ((0.2, 0.28), (0.5, 0.58), (0.8, 0.86))

    def closures(**press) -> np.ndarray:
        gap = _gaps(character, teach(HAND_PHONES, 39, TeacherParams(seed=3, **press)))
        return np.array([gap[(t > a - 0.03) & (t < b + 0.03)].min() for a, b in spans]) / neutral_gap

    touching, pressed = closures(), closures(closure_press=0.5, closure_roll=0.08)
    assert np.all(touching < 0.1)  # the default: the lips meet
    assert np.all(pressed <= -0.3) and np.all(pressed < touching - 0.1)  # pressed past rest by 0.6 mm or more
    same = teach(HAND_PHONES, 39, TeacherParams(seed=3, closure_press=0.35, closure_roll=0.0)).arkit
    assert np.array_equal(same, teach(HAND_PHONES, 39, TeacherParams(seed=3)).arkit)


def test_teacher_consonant_jaw_raises_the_jaw_between_vowels() -> None:
    from facecast.synth.teacher import DOMINANCE, JAW_RAISING, dominance_table

    phones = [("_", 0.0, 0.2), ("ɑ", 0.2, 0.35), ("s", 0.35, 0.45), ("ɑ", 0.45, 0.6), ("t", 0.6, 0.67),
              ("ɑ", 0.67, 0.85), ("f", 0.85, 0.95), ("ɑ", 0.95, 1.1), ("_", 1.1, 1.4)]  # fmt: skip
    jaw = ARKIT_NAMES.index("jawOpen")
    t = np.arange(42) / 30.0

    def jaw_at(params: TeacherParams) -> np.ndarray:
        curve = teach(phones, 42, params).arkit[:, jaw]
        return np.array([curve[np.argmin(np.abs(t - 0.5 * (a + b)))] for _, a, b in phones[2:8:2]])

    table, held = jaw_at(TeacherParams(seed=1)), jaw_at(TeacherParams(seed=1, consonant_jaw=1.5))
    assert np.all(held < table - 0.02)  # s, t, f: the jaw rises further towards their own target
    assert dominance_table(None) is DOMINANCE
    changed = dominance_table(1.5)
    assert all(changed[c][0][0] == 1.5 and changed[c][1:] == DOMINANCE[c][1:] for c in JAW_RAISING)
    assert all(changed[c] == DOMINANCE[c] for c in DOMINANCE if c not in JAW_RAISING)


def test_teacher_rests_in_pauses_but_not_in_short_silences(character):
    from facecast.synth.teacher import PAUSE_S

    def gaps(pause: float) -> tuple[np.ndarray, np.ndarray]:
        phones = [("a", 0.0, 0.3), ("_", 0.3, 0.3 + pause), ("a", 0.3 + pause, 0.6 + pause)]
        frames = int((0.6 + pause) * 30)
        return _gaps(character, teach(phones, frames, TeacherParams(seed=0))), np.arange(frames) / 30.0

    gap, t = gaps(0.4)  # a pause: the mouth closes to the neutral and stays there
    inside = (t >= 0.3 + 0.04) & (t <= 0.7 - 0.04)
    assert np.all(np.abs(gap[inside]) < 0.02), gap[inside]
    assert np.ptp(gap[inside]) < 0.02  # still: it moves less than 0.2 mm
    gap, t = gaps(0.5 * PAUSE_S)  # a short silence between words: the mouth only half closes
    inside = (t >= 0.3) & (t <= 0.3 + 0.5 * PAUSE_S)
    assert gap[inside].min() > 0.1, gap[inside]


@needs("espeak")
def test_teacher_on_espeak_speech(character):
    sp = synthesize("A papa may buy him a big apple, mom.", Voice("espeak", "en-us"))
    frames = int(np.ceil(len(sp.audio) / sp.sample_rate * 30))
    curves = teach(sp.phones, frames, TeacherParams(seed=1), sp.audio, sp.sample_rate)
    gap = _gaps(character, curves)
    units = make_units(sp.phones)
    refine_units(units, sp.audio, sp.sample_rate, 30.0)
    t = np.arange(frames) / 30.0
    bilabials = [u for u in units if u.cls == "bilabial"]
    assert len(bilabials) >= 7
    for u in bilabials:
        closed = (t >= u.closed[0]) & (t <= u.closed[1])
        assert closed.any() and gap[closed].min() < 0.02
    open_peaks = [gap[(t >= u.start) & (t < u.end)].max() for u in units if u.cls == "open" and u.end - u.start > 0.07]
    assert open_peaks and np.median(open_peaks) > 0.5


def test_teacher_emotions_and_eyes():
    idx = {n: k for k, n in enumerate(ARKIT_NAMES)}
    joy = teach(HAND_PHONES, 39, TeacherParams(emotion="joy", intensity=1.0, blinks=False, gaze=False))
    sad = teach(HAND_PHONES, 39, TeacherParams(emotion="sadness", intensity=1.0, blinks=False, gaze=False))
    assert joy.arkit[:, idx["mouthSmileLeft"]].mean() > 0.4 > sad.arkit[:, idx["mouthSmileLeft"]].mean()
    assert sad.arkit[:, idx["mouthFrownLeft"]].mean() > 0.3
    long = [("_", 0.0, 20.0)]
    eyes = teach(long, 600, TeacherParams(seed=5))
    assert eyes.blink.max() > 0.8 and eyes.arkit[:, idx["eyeBlinkLeft"]].max() > 0.8
    assert np.ptp(eyes.gaze, axis=0).max() > 1.0  # fixations move the eyes


# ----------------------------------------------------------------------------------------------------
# augmentation


def _speechlike(sr: int = 16_000, seconds: float = 2.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(sr * seconds)) / sr
    envelope = (np.sin(2 * np.pi * 3 * t) > 0.3).astype(np.float64)
    return (0.3 * envelope * (np.sin(2 * np.pi * 180 * t) + 0.3 * rng.standard_normal(len(t)))).astype(np.float32)


def test_augment_keeps_length_alignment_and_is_deterministic():
    x = _speechlike()
    params = aug.AugmentParams(
        noise="pink",
        snr_db=20.0,
        reverb_rt60=0.5,
        reverb_wet=0.3,
        eq=(aug.EqBand("lowshelf", 200.0, 6.0), aug.EqBand("peak", 1500.0, -6.0, 1.0), aug.EqBand("lowpass", 4000.0)),
        gain_db=-3.0,
    )
    y = aug.augment(x, 16_000, params, seed=7)
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.array_equal(y, aug.augment(x, 16_000, params, seed=7))
    assert not np.array_equal(y, aug.augment(x, 16_000, params, seed=8))
    lags = np.arange(-200, 201)
    corr = [float(np.dot(x[200:-200], y[200 + k : len(y) - 200 + k])) for k in lags]
    assert lags[int(np.argmax(corr))] == 0  # no delay: the phone timing still holds
    env_x = np.abs(x).reshape(-1, 160).mean(axis=1)
    env_y = np.abs(y).reshape(-1, 160).mean(axis=1)
    assert np.corrcoef(env_x, env_y)[0, 1] > 0.8


def test_augment_noise_kinds_and_snr():
    x = _speechlike()
    for kind in ("white", "pink", "babble"):
        p = aug.AugmentParams(noise=kind, snr_db=10.0)
        y = aug.augment(x, 16_000, p, seed=1, babble_sources=[_speechlike(seconds=1.3)])
        noise = y - x
        snr = 20 * np.log10(aug.active_rms(x, 16_000) / np.sqrt(np.mean(noise.astype(np.float64) ** 2)))
        assert snr == pytest.approx(10.0, abs=0.5), kind
    drawn = [aug.random_params(np.random.default_rng(s)) for s in range(30)]
    assert len({d.noise for d in drawn}) == 4 and any(d.reverb_rt60 > 0 for d in drawn)
    assert json.dumps(drawn[0].to_json())


# ----------------------------------------------------------------------------------------------------
# corpus


@needs("espeak")
def test_tiny_corpus_loads_and_is_deterministic(tmp_path, character):
    from facecast.synth.corpus import build_corpus, load_manifest
    from facecast.train.dataset import load_dataset

    kwargs = dict(minutes=0.12, seed=11, voices=["espeak"], languages=["en", "de"], workers=1)
    first = build_corpus(tmp_path / "a", **kwargs)
    shots = first["shots"]
    assert 1 <= len(shots) <= 4 and first["seconds"] >= 0.12 * 60
    ds = load_dataset(tmp_path / "a")
    assert sorted(s.name for s in ds.shots) == sorted(s["name"] for s in shots)
    for src in ds.shots:
        assert src.name.split("_")[-2] == src.emotion  # emotion label from the shot name
        skin, tongue = ds.skin(src), ds.tongue(src)
        assert skin.shape == (src.num_frames, len(character.skin.vertices), 3)
        assert tongue.shape[0] == src.num_frames and ds.jaw_deltas(src).shape == (src.num_frames, 15)
    assert ds.bs_skin is not None and ds.bs_skin.num_poses == 52 and ds.bs_tongue.num_poses == 16
    manifest = load_manifest(tmp_path / "a" / "corpus.json")
    for shot in manifest["shots"]:
        phones = [tuple(p) for p in shot["phones"]]
        check_phones(np.zeros(round(shot["seconds"] * 16_000)), 16_000, phones, tol=1e-6)  # stored to 1 us
        assert shot["arkit"].shape == (shot["num_frames"], 52) and shot["voice"]["backend"] == "espeak"
    second = build_corpus(tmp_path / "b", **kwargs)
    assert [s["name"] for s in second["shots"]] == [s["name"] for s in shots]
    for name in ("corpus.json", f"audio/{shots[0]['name']}.wav", f"cache/skin/{shots[-1]['name']}.npy"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    wav = tmp_path / "a" / "audio" / f"{shots[0]['name']}.wav"
    stamp = wav.stat().st_mtime_ns
    build_corpus(tmp_path / "a", **kwargs)  # resume: nothing to redo
    assert wav.stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="other settings"):
        build_corpus(tmp_path / "a", **{**kwargs, "seed": 12})


@needs("espeak")
def test_corpus_stops_after_shots_fail_in_a_row(tmp_path, monkeypatch, character):
    import facecast.synth.corpus as corpus

    real, calls = corpus.render_shot, []

    def first_then_fail(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            return real(*args, **kwargs)
        raise RuntimeError("tts broke")

    monkeypatch.setattr(corpus, "render_shot", first_then_fail)
    with pytest.warns(UserWarning, match="tts broke"), pytest.raises(RuntimeError, match="in a row failed"):
        corpus.build_corpus(tmp_path, minutes=5, seed=11, voices=["espeak"], languages=["en"], workers=1)
    assert len(calls) == 1 + corpus.MAX_FAILURES
    finished = [p for p in (tmp_path / "meta").glob("*.json") if p.name != corpus.SETTINGS_FILE]
    assert len(finished) == 1  # the finished shot is kept for a resume


def test_cli_registers_synth():
    from facecast.cli.synth import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["synth", "out", "--minutes", "2", "--voices", "espeak", "piper:joe", "--seed", "3"])
    assert (args.out_dir, args.minutes, args.voices, args.seed, args.workers) == (
        "out",
        2.0,
        ["espeak", "piper:joe"],
        3,
        2,
    )
    assert callable(args.func)
