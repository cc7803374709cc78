"""Tests for ``facecast plot`` (facecast.export.plot):
PNG size, that the curves drawn are the curves asked for, the CLI."""

from __future__ import annotations

import argparse
import io

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="plotting needs matplotlib (pip install matplotlib)")
Image = pytest.importorskip("PIL.Image", reason="reading the PNGs back needs pillow")

from facecast.audio import save_wav  # noqa: E402
from facecast.export.json import write_json  # noqa: E402
from facecast.export.plot import plot_animation  # noqa: E402


@pytest.fixture(scope="module")
def clip(small_model):
    t = np.arange(16000) / 16000
    audio = (0.4 * np.sin(2 * np.pi * 150 * t) * np.sin(2 * np.pi * 1.5 * t)).astype(np.float32)
    anim = small_model.animate(audio)
    anim.skin_weights[:] = 0.0
    anim.skin_weights[:, anim.skin_names.index("jawOpen")] = 0.5 + 0.5 * np.sin(2 * np.pi * 2 * anim.times)
    anim.skin_weights[:, anim.skin_names.index("mouthClose")] = 0.1
    return anim, audio


def _read(path) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(path.read_bytes())).convert("RGB")).astype(np.int16)


def test_png_has_the_requested_size(clip, tmp_path):
    anim, audio = clip
    path = plot_animation(anim, audio, ["jawOpen"], tmp_path / "a.png", width=900, height=500)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _read(path).shape == (500, 900, 3)
    assert not list(tmp_path.glob(".a.png*")), "no temporary file is left behind"


def test_different_curves_draw_different_pixels(clip, tmp_path):
    anim, audio = clip
    a = _read(plot_animation(anim, audio, ["jawOpen"], tmp_path / "a.png"))
    b = _read(plot_animation(anim, audio, ["mouthClose"], tmp_path / "b.png"))
    again = _read(plot_animation(anim, audio, ["jawOpen"], tmp_path / "c.png"))
    np.testing.assert_array_equal(a, again)  # deterministic
    h = a.shape[0]
    top, bottom = slice(0, h // 3), slice(h // 3 + 10, h)
    assert np.abs(a[top] - b[top]).max() == 0, "the waveform panel does not depend on the curves"
    assert (np.abs(a[bottom] - b[bottom]).max(axis=2) > 60).sum() > 500, "the curve panels differ"
    # jawOpen swings over the panel; mouthClose is a flat line: count rows holding the curve's blue
    blue = np.array([0x1F, 0x77, 0xB4])

    def rows_with_curve(img):
        return int((np.abs(img[bottom] - blue).max(axis=2) < 40).any(axis=1).sum())

    assert rows_with_curve(a) > 4 * rows_with_curve(b)


def test_without_audio_only_the_curves_are_drawn(clip, tmp_path):
    anim, _ = clip
    path = plot_animation(anim, None, ["jawOpen", "mouthClose"], tmp_path / "n.png", width=600, height=300)
    assert _read(path).shape == (300, 600, 3)


def test_unknown_curve_is_a_clear_error(clip, tmp_path):
    anim, audio = clip
    with pytest.raises(ValueError, match="unknown curve jawOpn"):
        plot_animation(anim, audio, ["jawOpn"], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_plot_command_from_audio_and_from_json(small_pack, clip, tmp_path, capsys):
    from facecast.cli.plot import register

    anim, audio = clip
    save_wav(tmp_path / "clip.wav", audio)
    write_json(anim, tmp_path / "clip.json")
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    for source, out in (("clip.wav", "from_audio.png"), ("clip.json", "from_json.png")):
        args = parser.parse_args(["plot", str(tmp_path / source), "--curves", "jawOpen,mouthClose", "-o",
                                  str(tmp_path / out), "-m", str(small_pack), "--size", "800x400"])  # fmt: skip
        assert args.func(args) == 0
        assert _read(tmp_path / out).shape == (400, 800, 3)
    assert "wrote" in capsys.readouterr().out
    args = parser.parse_args(["plot", str(tmp_path / "clip.json"), "--size", "big"])
    with pytest.raises(ValueError, match="--size"):
        args.func(args)
