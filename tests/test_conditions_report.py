"""Tests for issue 24's report side: conditions and languages in ``facecast evaluate-lipsync``."""

from __future__ import annotations

import pytest

from facecast.evaluation import languages as L
from facecast.evaluation.espeak import libespeak_available
from facecast.evaluation.languages import ipa_to_cmu_multilingual
from facecast.evaluation.phones import NOISE

needs_libespeak = pytest.mark.skipif(not libespeak_available(), reason="libespeak-ng is not installed")


def test_multilingual_ipa_mapping() -> None:
    assert ipa_to_cmu_multilingual("ʁ") == ("R",)
    assert ipa_to_cmu_multilingual("y") == ("UW",) and ipa_to_cmu_multilingual("ø") == ("OW",)
    assert ipa_to_cmu_multilingual("β") == ("V",)  # an approximant: not counted as a lip closure
    assert ipa_to_cmu_multilingual("tː") == ("T",) and ipa_to_cmu_multilingual("ts") == ("T", "S")
    assert ipa_to_cmu_multilingual("ɑ̃") == ("AA",) and ipa_to_cmu_multilingual("pʲ") == ("P",)
    assert ipa_to_cmu_multilingual("ˈoʊ") == ("OW",)  # the English table first
    assert ipa_to_cmu_multilingual("ʘ") == (NOISE,) and ipa_to_cmu_multilingual("") == ()


def test_voices_are_held_out_from_training() -> None:
    from facecast.synth.tts import ESPEAK_LANGUAGES, ESPEAK_VARIANTS

    assert L.HELD_OUT_VARIANT not in ESPEAK_VARIANTS
    assert set(L.TRAINED_LANGUAGES) <= set(ESPEAK_LANGUAGES.values())
    assert not set(L.UNSEEN_LANGUAGES) & set(ESPEAK_LANGUAGES.values())
    assert len(L.ALL_LANGUAGES) >= 8 and set(L.SENTENCES) == set(L.ALL_LANGUAGES)


@needs_libespeak
def test_every_language_speaks_with_mapped_phones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(L, "SENTENCES", {k: v[:1] for k, v in L.SENTENCES.items()})
    for lang in L.ALL_LANGUAGES:
        (utt,) = L.language_corpus(lang)
        names = [p.name for p in utt.alignment.phones]
        assert L.unmapped_share([utt]) < 0.02, lang
        assert {"P", "B", "M"} & set(names), lang
        assert utt.alignment.duration == pytest.approx(utt.duration, abs=0.01)
    with pytest.raises(ValueError):
        L.language_corpus("xx")


@needs_libespeak
def test_report_with_conditions_and_languages(small_model, monkeypatch: pytest.MonkeyPatch) -> None:
    from facecast.evaluation.report import evaluate_lipsync, report_markdown

    monkeypatch.setattr(L, "SENTENCES", {**L.SENTENCES, "fi": ("Pappa paistaa pullaa.",)})
    report = evaluate_lipsync(small_model, corpora=[], peers=["loudness"], n_boot=5, conditions="speed:1.25",
                              languages=["fi"])  # fmt: skip
    assert list(report["corpora"]) == ["lang:fi"] and list(report["conditions"]) == ["speed:1.25"]
    clean = report["corpora"]["lang:fi"]["seconds"]
    fast = report["conditions"]["speed:1.25"]["corpora"]["lang:fi"]["seconds"]
    assert fast == pytest.approx(clean / 1.25, abs=0.01)
    md = report_markdown(report)
    assert "## lang:fi in listening conditions" in md and "| speed:1.25 |" in md and "| fi |" in md
    assert "Finnish" in md and "unseen language" in md


def test_cli_refuses_bad_conditions_and_languages(capsys: pytest.CaptureFixture[str]) -> None:
    from facecast.cli import main

    assert main(["evaluate-lipsync", "--conditions", "fax"]) == 2
    assert "unknown condition" in capsys.readouterr().err
    assert main(["evaluate-lipsync", "--languages", "de,xx"]) == 2
    assert "unknown language xx" in capsys.readouterr().err
