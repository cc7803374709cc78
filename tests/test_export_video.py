"""MP4 writer: the default character rendered with the animation's audio."""

from __future__ import annotations

import pytest
from exporthelpers import make_animation, skip_without_anny

from facecast.export import WRITERS
from facecast.export.video import write_mp4


def test_mp4_has_every_frame_and_the_audio(tmp_path):
    av = pytest.importorskip("av", reason="PyAV is needed to write MP4")
    skip_without_anny()
    anim = make_animation(5, fps=25.0, audio=True)
    path = write_mp4(anim, tmp_path / "clip.mp4", size=64)
    with av.open(str(path)) as container:
        kinds = {s.type: s for s in container.streams}
        assert set(kinds) == {"video", "audio"}
        assert sum(1 for _ in container.decode(video=0)) == 5
    assert WRITERS["mp4"] == (".mp4", write_mp4)


def test_mp4_refuses_an_empty_animation(tmp_path):
    anim = make_animation(1)
    anim.times = anim.times[:0]
    with pytest.raises(ValueError, match="empty"):
        write_mp4(anim, tmp_path / "x.mp4")


def test_mp4_keeps_the_input_sample_rate_and_takes_the_preview_options(tmp_path):
    av = pytest.importorskip("av", reason="PyAV is needed to write MP4")
    skip_without_anny()
    import numpy as np

    from facecast.audio import save_wav

    wav = tmp_path / "speech.wav"
    save_wav(wav, (0.1 * np.sin(np.arange(44100 // 5) / 7.0)).astype(np.float32), 44100)
    anim = make_animation(6, fps=30.0, audio=True)
    path = write_mp4(anim, tmp_path / "clip.mp4", size=48, views="profile", background="#ffffff", audio=wav)
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.width, video.height) == (48, 48)  # one view
        assert audio.rate == 44100  # not resampled to 16 kHz
        first = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert first[:3, :3].min() > 235  # the white background
    with pytest.raises(ValueError, match="choose from"):
        write_mp4(anim, tmp_path / "bad.mp4", views="sideways")
