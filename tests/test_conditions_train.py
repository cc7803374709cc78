"""Training-time channel augmentation (issue 24 step 3): the evaluation's telephone and codec conditions drawn per
synthetic shot, opt-in (``channel_share``) so that ``make default-model`` reproduces the shipped model."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from facecast.synth import augment as aug
from facecast.synth.corpus import CorpusConfig, _config_json

SR = 16000
needs_av = pytest.mark.skipif(importlib.util.find_spec("av") is None, reason="PyAV is not installed")


def test_no_channels_draws_exactly_as_before() -> None:
    for seed in range(40):
        a = aug.random_params(np.random.default_rng(seed))
        b = aug.random_params(np.random.default_rng(seed), channel_share=0.0)
        assert a == b and a.channel == "none" and "channel" not in a.to_json()


def test_channels_are_drawn_per_shot_and_seeded() -> None:
    drawn = [aug.random_params(np.random.default_rng(s), clean_share=0.0, channel_share=1.0) for s in range(60)]
    assert all(p.channel in aug.CHANNELS for p in drawn)
    assert len({p.channel for p in drawn}) >= 6
    again = aug.random_params(np.random.default_rng(7), clean_share=0.0, channel_share=1.0)
    assert again == drawn[7] and drawn[7].to_json()["channel"] == drawn[7].channel
    half = [aug.random_params(np.random.default_rng(s), clean_share=0.0, channel_share=0.3).channel for s in range(200)]
    assert 0.15 < np.mean([c != "none" for c in half]) < 0.45


@needs_av
def test_augment_with_a_channel_keeps_length_and_timing() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    x = (0.2 * np.sin(2 * np.pi * 150 * t) * np.sin(2 * np.pi * 3 * t) + 0.05 * rng.standard_normal(SR)).astype(
        np.float32
    )
    for channel in ("telephone:alaw", "amr:7.95", "opus:8"):
        y = aug.augment(x, SR, aug.AugmentParams(channel=channel), seed=1)
        assert len(y) == len(x) and abs(aug.find_delay(x, y, SR)) <= 2
    y = aug.augment(x, SR, aug.AugmentParams(channel="telephone:mulaw"), seed=1)
    spec = np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(len(y), 1 / SR)
    assert spec[f > 4500].sum() < 1e-4 * spec.sum()
    with pytest.raises(ValueError):
        aug.apply_channel(x, SR, "fax:9600")


def test_corpus_config_channel_share() -> None:
    with pytest.raises(ValueError):
        CorpusConfig(channel_share=1.5).validate()
    assert "channel_share" not in _config_json(CorpusConfig())  # old corpora still resume
    assert _config_json(CorpusConfig(channel_share=0.3))["channel_share"] == 0.3


@pytest.fixture
def synth_settings(monkeypatch) -> dict:
    """The settings ``facecast synth`` hands to ``build_corpus`` (which is replaced: nothing is built)."""
    from facecast.synth import corpus

    seen: dict = {}

    def fake_build(out_dir, **kwargs):
        seen.update(kwargs)
        return {"shots": [], "seconds": 0.0, "backends": {}}

    monkeypatch.setattr(corpus, "build_corpus", fake_build)
    return seen


def test_synth_cli_takes_the_channel_share(synth_settings, tmp_path) -> None:
    from facecast.cli import main

    seen = synth_settings
    assert main(["synth", str(tmp_path / "c"), "--minutes", "1", "--channel-share", "0.3"]) == 0
    assert seen["channel_share"] == 0.3
    with pytest.raises(SystemExit) as info:
        main(["synth", str(tmp_path / "c"), "--channel-share", "1.5"])
    assert info.value.code == 2


def test_corpus_config_lip_press_and_cli(synth_settings, tmp_path) -> None:
    from facecast.cli import main

    for bad in ((1.5, 0.0), (0.5, -0.1), (0.5,)):
        with pytest.raises(ValueError, match="lip_press"):
            CorpusConfig(lip_press=bad).validate()
    assert "lip_press" not in _config_json(CorpusConfig())  # corpora built before the setting still resume
    assert _config_json(CorpusConfig(lip_press=(0.5, 0.08)))["lip_press"] == [0.5, 0.08]
    seen = synth_settings
    assert main(["synth", str(tmp_path / "c"), "--minutes", "1", "--lip-press", "0.5", "0.08"]) == 0
    assert seen["lip_press"] == (0.5, 0.08)
    assert main(["synth", str(tmp_path / "c"), "--minutes", "1"]) == 0
    assert seen["lip_press"] == CorpusConfig().lip_press == (0.35, 0.0)  # the shipped model's teacher


def test_corpus_config_consonant_jaw_and_cli(synth_settings, tmp_path) -> None:
    from facecast.cli import main

    for bad in (0.0, 6.0):
        with pytest.raises(ValueError, match="consonant_jaw"):
            CorpusConfig(consonant_jaw=bad).validate()
    assert "consonant_jaw" not in _config_json(CorpusConfig())  # corpora built before the setting still resume
    assert _config_json(CorpusConfig(consonant_jaw=1.5))["consonant_jaw"] == 1.5
    seen = synth_settings
    assert main(["synth", str(tmp_path / "c"), "--minutes", "1", "--consonant-jaw", "1.5"]) == 0
    assert seen["consonant_jaw"] == 1.5
    assert main(["synth", str(tmp_path / "c"), "--minutes", "1"]) == 0
    assert seen["consonant_jaw"] is None  # the shipped model's teacher
    with pytest.raises(SystemExit) as info:
        main(["synth", str(tmp_path / "c"), "--consonant-jaw", "0"])
    assert info.value.code == 2
