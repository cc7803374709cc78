"""Audio inputs users have (red-team issue items 15, 16): AAC/M4A and the sound of MP4/MOV/WebM videos decoded with
PyAV; corrupt files, absurd samples and non-UTF-8 names reported as what they are, in one line, without decoder
noise on the terminal."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from facecast import audio_av
from facecast.audio import AudioError, load_audio, stream_audio
from facecast.cli import main

av = pytest.importorskip("av", reason="PyAV (the preview extra) decodes AAC and video sound")

RATE = 44100
TONE_HZ = 220.0


def _tone(seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)


def write_av(path, container: str, codec: str = "aac", rate: int = RATE, video: bool = False, audio: bool = True,
             seconds: float = 2.0, channels: int = 2):  # fmt: skip
    """A file written by FFmpeg through PyAV: a tone (left and right equal), optionally beside a black video."""
    layout = "stereo" if channels == 2 else "mono"
    with av.open(str(path), "w", format=container) as out:
        vs = out.add_stream("mpeg4", rate=25) if video else None
        if vs is not None:
            vs.width, vs.height, vs.pix_fmt = 64, 64, "yuv420p"
        stream = out.add_stream(codec, rate=rate, layout=layout) if audio else None
        if stream is not None:
            data = np.tile(_tone(seconds, rate), (channels, 1))
            for i in range(0, data.shape[1], 1024):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, i : i + 1024]), format="fltp",
                                                   layout=layout)  # fmt: skip
                frame.sample_rate, frame.pts = rate, i
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
        if vs is not None:
            for _ in range(int(seconds * 25)):
                frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
                for packet in vs.encode(frame):
                    out.mux(packet)
            for packet in vs.encode(None):
                out.mux(packet)
    return path


def _tone_level(x: np.ndarray, rate: int = 16000) -> float:
    """Correlation of ``x`` with the best-aligned 220 Hz tone (1 for the tone itself)."""
    t = np.arange(len(x)) / rate
    basis = np.stack([np.sin(2 * np.pi * TONE_HZ * t), np.cos(2 * np.pi * TONE_HZ * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, x, rcond=None)
    fit = basis @ coef
    return float(np.corrcoef(fit, x)[0, 1])


@pytest.mark.parametrize(
    "name, container, codec, video",
    [("a.m4a", "mp4", "aac", False), ("a.aac", "adts", "aac", False), ("clip.mp4", "mp4", "aac", True),
     ("clip.mov", "mov", "aac", True), ("a.webm", "webm", "libopus", False)],
)  # fmt: skip
def test_pyav_formats_decode(tmp_path, name, container, codec, video):
    if codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg build has no {codec} encoder")
    rate = 48000 if codec == "libopus" else RATE
    path = write_av(tmp_path / name, container, codec, rate=rate, video=video)
    x = load_audio(path)
    assert abs(len(x) / 16000 - 2.0) < 0.05  # encoder priming adds at most a few ms
    middle = x[4000:-4000]
    assert _tone_level(middle) > 0.99
    assert 0.25 < np.abs(middle).max() < 0.35  # channels averaged, not summed
    streamed = np.concatenate(list(stream_audio(path, block_seconds=0.25)))
    np.testing.assert_array_equal(streamed[: len(x)], x[: len(streamed)])
    assert abs(len(streamed) - len(x)) <= 16


def test_animate_cli_on_video_sound(tmp_path, small_pack, capsys):
    path = write_av(tmp_path / "take.mov", "mov", video=True, seconds=1.0)
    code = main(["animate", str(path), "-m", str(small_pack), "-o", str(tmp_path / "o"), "--formats", "json", "-q"])
    assert code == 0 and (tmp_path / "o" / "take.json").exists()


def test_video_without_sound(tmp_path):
    path = write_av(tmp_path / "silent.mp4", "mp4", video=True, audio=False)
    with pytest.raises(AudioError, match="no audio stream"):
        load_audio(path)


def test_without_pyav_the_message_says_how_to_get_it(tmp_path, monkeypatch):
    path = write_av(tmp_path / "a.m4a", "mp4")
    monkeypatch.setattr(audio_av, "available", lambda: False)
    with pytest.raises(AudioError, match=r"is MP4/M4A/MOV; decoding it needs PyAV: pip install \"facecast\[preview"):
        load_audio(path)


def test_truncated_m4a_is_reported_not_hung(tmp_path):
    data = write_av(tmp_path / "a.m4a", "mp4").read_bytes()
    (tmp_path / "cut.m4a").write_bytes(data[: len(data) // 3])
    try:
        x = load_audio(tmp_path / "cut.m4a")  # FFmpeg may recover what is there
        assert np.isfinite(x).all()
    except AudioError as exc:
        assert "cut.m4a" in str(exc) and "\n" not in str(exc)


def test_corrupt_mp3_one_line_no_decoder_noise(tmp_path, capfd):
    """A corrupt MP3 (a frame sync then garbage): no "possibly a pipe?", the decoder's own notes kept off the
    terminal (libmpg123 writes them to file descriptor 2) and summarised in the message."""
    path = tmp_path / "bad.mp3"
    path.write_bytes(b"\xff\xfb\x90\x00" + np.random.default_rng(1).integers(0, 256, 5000, np.uint8).tobytes())
    with pytest.raises(AudioError) as info:
        load_audio(path)
    message = str(info.value)
    assert "bad.mp3" in message and "possibly a pipe" not in message and "MP3" in message
    assert capfd.readouterr().err == ""


def test_noise_capture_keeps_other_output(tmp_path, capfd):
    """Python's own writes to stderr while a decoder is quiet are replayed, not lost."""
    from facecast.audio import _quiet_native_stderr

    with _quiet_native_stderr(True) as first_note:
        os.write(2, b"Note: Illegal Audio-MPEG-Header 0x0 at offset 1.\n")
        os.write(2, b"progress 50%\n")
        assert first_note() == "Illegal Audio-MPEG-Header 0x0 at offset 1"
    err = capfd.readouterr().err
    assert "progress 50%" in err and "Illegal" not in err


def test_non_utf8_file_name(tmp_path, small_pack, capsys):
    """A valid file whose name is not UTF-8 is read and animated (was refused as "corrupt")."""
    name = os.fsdecode(b"\xff\xfevoice.wav")
    path = tmp_path / name
    with open(path, "wb") as fh:  # soundfile cannot open such a name itself
        sf.write(fh, _tone(0.5, 16000), 16000, format="WAV")
    assert len(load_audio(path)) == 8000
    code = main(["animate", str(path), "-m", str(small_pack), "-o", str(tmp_path / "o"), "--formats", "json", "-q"])
    assert code == 0 and len(list((tmp_path / "o").glob("*voice.json"))) == 1


def test_too_long_for_memory_is_refused(tmp_path, monkeypatch):
    import facecast.audio

    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(16000 * 3, np.float32), 16000)
    monkeypatch.setattr(facecast.audio, "MAX_LOAD_SECONDS", 2.0)
    with pytest.raises(AudioError, match="longer than"):
        load_audio(path)
    assert sum(len(b) for b in stream_audio(path)) == 48000  # streaming has no such limit
