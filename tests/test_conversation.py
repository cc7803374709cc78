"""Conversational shots in the synthetic corpus (issue 24 step 3): faster speech, fillers, long pauses and a
quieter second talker that goes on through them, opt-in (``conversation_share``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from facecast.synth import conversation as conv
from facecast.synth.augment import active_rms
from facecast.synth.corpus import CorpusConfig, _config_json, plan_shot
from facecast.synth.phonemes import SILENCE
from facecast.synth.tts import Voice, backend_status

SR = 16000
ESPEAK = backend_status()["espeak"]
needs_espeak = pytest.mark.skipif(ESPEAK is not None, reason=ESPEAK or "")
VOICES = [Voice("espeak", "en-us+m3"), Voice("espeak", "de+f2", "de"), Voice("flite", "slt"), Voice("piper", "joe")]


def test_plan_is_seeded_and_within_its_ranges() -> None:
    plans = [conv.plan_conversation(np.random.default_rng(s), VOICES[0], 6.0, VOICES) for s in range(40)]
    assert plans[3] == conv.plan_conversation(np.random.default_rng(3), VOICES[0], 6.0, VOICES)
    for p in plans:
        assert conv.RATE[0] <= p.rate <= conv.RATE[1]
        assert len(p.pauses) == len(p.phrases) - 1 >= conv.PAUSES[0]
        assert all(conv.PAUSE_SECONDS[0] <= g <= conv.PAUSE_SECONDS[1] for g in p.pauses)
        assert all(p.phrases) and p.talker != "espeak:en-us+m3"
        if p.talker:
            assert conv.TALKER_SNR_DB[0] <= p.talker_snr_db <= conv.TALKER_SNR_DB[1] and p.talker_text
    talkers = [p.talker for p in plans if p.talker]
    assert 0.4 < len(talkers) / len(plans) < 0.95  # about TALKER_SHARE
    assert len({t.split(":")[0] for t in talkers}) >= 2  # backends drawn first: espeak does not crowd out the rest
    words = " ".join(p.text for p in plans).split()
    fillers = sum(w.rstrip(",") in conv.FILLERS["en"] for w in words)
    assert 0.05 < fillers / len(words) < 0.2
    alone = conv.plan_conversation(np.random.default_rng(0), VOICES[0], 6.0, VOICES[:1])
    assert alone.talker == ""  # nobody else to talk


def test_fillers_follow_the_language() -> None:
    text = conv.add_fillers(np.random.default_rng(1), " ".join(["Wort"] * 200), "de", share=0.3)
    used = {w.rstrip(",") for w in text.split()} - {"Wort"}
    assert used and used <= set(conv.FILLERS["de"])
    parts = conv.split_phrases(np.random.default_rng(2), "a b c d e", 3)
    assert len(parts) == 3 and " ".join(parts) == "a b c d e"
    assert conv.split_phrases(np.random.default_rng(2), "one", 4) == ("one",)


@needs_espeak
def test_speak_joins_phrases_with_silent_pauses() -> None:
    plan = conv.Conversation(1.3, ("Bob bought a map", "and then, uh, he ran home."), (0.8,))
    speech = conv.speak(plan, VOICES[0], seed=4)
    sr, phones = speech.sample_rate, speech.phones
    assert phones[0][1] == 0 and phones[-1][2] == pytest.approx(len(speech.audio) / sr)
    assert all(abs(a[2] - b[1]) < 1e-6 for a, b in zip(phones, phones[1:], strict=False))  # contiguous
    pause = [p for p in phones if p[0] == SILENCE and p[2] - p[1] == pytest.approx(0.8, abs=1 / sr)]
    assert len(pause) == 1
    start, end = (round(t * sr) for t in pause[0][1:])
    assert not np.any(speech.audio[start:end])  # the pause is silent
    assert np.abs(speech.audio[:start]).max() > 0.01 and np.abs(speech.audio[end:]).max() > 0.01


@needs_espeak
def test_talker_is_mixed_below_the_speaker_and_fills_the_pauses() -> None:
    text = "Wir gehen heute in die Stadt und kaufen Brot."
    plan = conv.Conversation(1.2, ("a",), (), "espeak:de+f2", 12.0, text, 0.25)
    n = 3 * SR
    track = conv.talker_track(plan, VOICES, n, SR, seed=1)
    assert len(track) == n and not np.any(track[: int(0.25 * n)])  # silent before its offset
    assert active_rms(track, SR) == pytest.approx(1.0, rel=0.05)
    t = np.arange(n) / SR
    speech = (0.3 * np.sin(2 * np.pi * 150 * t) * (t < 1.0)).astype(np.float32)  # speaks, then pauses
    mixed = conv.mix_talker(speech, track, 12.0, SR)
    talker_level = active_rms(mixed - speech, SR)
    assert 20 * np.log10(active_rms(speech, SR) / talker_level) == pytest.approx(12.0, abs=0.3)
    assert np.abs(mixed[int(1.5 * SR) :]).max() > 0  # heard in the pause
    with pytest.raises(ValueError, match="not among"):
        conv.talker_track(replace(plan, talker="espeak:xx"), VOICES, n, SR, seed=1)


def test_share_zero_keeps_every_plan_and_share_draws_after_the_rest() -> None:
    voices = VOICES[:2]
    base = CorpusConfig(seed=7)
    some = CorpusConfig(seed=7, conversation_share=0.5)
    plans = [(plan_shot(i, base, voices), plan_shot(i, some, voices)) for i in range(30)]
    assert all(a.conversation is None for a, _ in plans)
    changed = [b for _, b in plans if b.conversation is not None]
    assert 5 < len(changed) < 25
    for a, b in plans:
        if b.conversation is None:
            assert a == b  # the conversation draw comes after all the others
        else:
            assert (a.emotion, a.pad, a.augment, a.seeds) == (b.emotion, b.pad, b.augment, b.seeds)
            assert b.text == b.conversation.text and b.voice.rate == b.conversation.rate
    with pytest.raises(ValueError, match="conversation_share"):
        CorpusConfig(conversation_share=2.0).validate()
    assert "conversation_share" not in _config_json(base)  # corpora built before the setting still resume
    assert _config_json(some)["conversation_share"] == 0.5


@needs_espeak
def test_corpus_with_conversations(tmp_path) -> None:
    from facecast.audio import load_audio
    from facecast.synth.corpus import build_corpus

    manifest = build_corpus(tmp_path, minutes=0.2, seed=5, voices=["espeak:en-us+m3", "espeak:en+f2"],
                            workers=1, augment=False, conversation_share=1.0)  # fmt: skip
    shots = manifest["shots"]
    assert shots and all("conversation" in s for s in shots)
    for shot in shots:
        c = shot["conversation"]
        long_pauses = [p for p in shot["phones"] if p[0] == SILENCE and p[2] - p[1] >= conv.PAUSE_SECONDS[0] - 0.01]
        assert len(long_pauses) >= len(c["pauses"])
        assert shot["voice"]["rate"] == c["rate"]
        audio = load_audio(tmp_path / "audio" / f"{shot['name']}.wav")
        start = c["talker_offset"] * shot["seconds"]
        inner = [p for p in long_pauses if start < p[1] and p[2] < shot["seconds"]]
        if inner:
            pause_audio = np.concatenate([audio[round(p[1] * SR) : round(p[2] * SR)] for p in inner])
            # the talker is heard in the pauses exactly when the shot has one (no augmentation here; a TTS voice
            # fades out into its pauses, so the silent case is "far below the speech", not zero)
            ratio = float(np.sqrt(np.mean(pause_audio.astype(np.float64) ** 2))) / active_rms(audio, SR)
            assert (ratio > 0.03) if c["talker"] else (ratio < 0.01), ratio
