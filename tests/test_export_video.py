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
