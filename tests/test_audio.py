"""Tests for facecast.audio: loading, downmixing, resampling, PCM16 conversion and wav writing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from facecast import audio
from facecast.audio import (
    AudioError,
    duration_seconds,
    float_to_pcm16,
    float_to_pcm16_bytes,
    load_audio,
    pcm16_to_float,
    resample,
    save_wav,
    to_mono,
)
from facecast.constants import SAMPLE_RATE

RATES = [8000, 22050, 44100, 48000]

# (extension, soundfile format, subtype, lossy)
FORMATS = [
    ("wav", "WAV", "PCM_16", False),
    ("flac", "FLAC", "PCM_16", False),
    ("ogg", "OGG", "VORBIS", True),
    ("mp3", "MP3", "MPEG_LAYER_III", True),
]


def _tones(n: int, sr: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """A [n, channels] signal with a different low tone per channel, and its (freqs, amps) table."""
    freqs = 180.0 + 45.0 * np.arange(channels)
    amps = 0.5 / (1.0 + 0.25 * np.arange(channels))
    t = np.arange(n) / sr
    x = (amps * np.sin(2 * np.pi * freqs * t[:, None])).astype(np.float32)
    return x, np.stack([freqs, amps])


def _expected_mono(params: np.ndarray, n_out: int, sr_out: int) -> np.ndarray:
    freqs, amps = params
    t = np.arange(n_out) / sr_out
    return (amps * np.sin(2 * np.pi * freqs * t[:, None])).mean(axis=1)


def _write(path: Path, x: np.ndarray, sr: int, fmt: str, subtype: str) -> None:
    try:
        sf.write(path, x, sr, format=fmt, subtype=subtype)
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError) as exc:
        if fmt == "MP3":
            pytest.skip(f"this soundfile/libsndfile cannot write mp3: {exc}")
        raise


# --------------------------------------------------------------------------------------------- loading


@pytest.mark.parametrize("channels", [1, 2, 8])
@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize(("ext", "fmt", "subtype", "lossy"), FORMATS, ids=[f[0] for f in FORMATS])
def test_load_round_trip(tmp_path, ext, fmt, subtype, lossy, sr, channels):
    if fmt == "MP3" and channels > 2:
        pytest.skip("mp3 holds at most 2 channels")
    n = int(0.5 * sr)
    x, params = _tones(n, sr, channels)
    path = tmp_path / f"clip.{ext}"
    _write(path, x, sr, fmt, subtype)

    y = load_audio(path)

    assert y.dtype == np.float32
    assert y.ndim == 1
    assert y.flags.c_contiguous
    assert abs(y.size - round(n * SAMPLE_RATE / sr)) <= 1
    expected = _expected_mono(params, y.size, SAMPLE_RATE)
    edge = int(0.01 * SAMPLE_RATE)  # filter edge effects at the very start and end
    core, ref = y[edge:-edge], expected[edge:-edge]
    if lossy:
        corr = np.corrcoef(core, ref)[0, 1]
        assert corr > 0.98, corr
        rms_y, rms_ref = np.sqrt(np.mean(core**2)), np.sqrt(np.mean(ref**2))
        assert abs(rms_y / rms_ref - 1.0) < 0.1
    else:
        # 16-bit quantisation plus resampler error stays well below -50 dB of full scale.
        assert np.max(np.abs(core - ref)) < 3e-3


def test_load_accepts_str_and_path_and_other_rates(tmp_path):
    sr = 22050
    x, params = _tones(sr, sr, 2)
    path = tmp_path / "clip.flac"
    sf.write(path, x, sr, subtype="PCM_24")
    a = load_audio(str(path))
    b = load_audio(path)
    np.testing.assert_array_equal(a, b)
    c = load_audio(path, sample_rate=8000)
    assert abs(c.size - 8000) <= 1
    expected = _expected_mono(params, c.size, 8000)
    assert np.max(np.abs(c[80:-80] - expected[80:-80])) < 2e-3


def test_load_same_rate_is_exact(tmp_path):
    ints = np.array([0, 1, -1, 32767, -32768, 1234, -4321, 0], dtype=np.int16)
    path = tmp_path / "exact.wav"
    sf.write(path, ints, SAMPLE_RATE, subtype="PCM_16")
    y = load_audio(path)
    np.testing.assert_array_equal(y, ints.astype(np.float32) / 32768.0)


def test_load_downmix_averages_channels(tmp_path):
    sr = SAMPLE_RATE
    t = np.arange(sr) / sr
    s = 0.4 * np.sin(2 * np.pi * 300 * t)
    # Anti-phase stereo cancels when averaged; taking one channel would not.
    path = tmp_path / "antiphase.wav"
    sf.write(path, np.stack([s, -s], axis=1), sr, subtype="FLOAT")
    assert np.max(np.abs(load_audio(path))) < 1e-6
    # A signal only in the right channel comes out at half level.
    path2 = tmp_path / "right.wav"
    sf.write(path2, np.stack([np.zeros_like(s), s], axis=1), sr, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path2), 0.5 * s, atol=1e-6)


# ---------------------------------------------------------------------------------------------- errors


def _assert_audio_error(path: Path, fragment: str | None = None) -> str:
    with pytest.raises(AudioError) as info:
        load_audio(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "\n" not in msg
    assert msg.endswith(".")
    if fragment is not None:
        assert fragment in msg.lower()
    assert isinstance(info.value, ValueError)
    return msg


def test_error_missing_file(tmp_path):
    _assert_audio_error(tmp_path / "nope.wav", "does not exist")


def test_error_directory(tmp_path):
    d = tmp_path / "folder.wav"
    d.mkdir()
    _assert_audio_error(d, "directory")


def test_error_empty_file(tmp_path):
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    _assert_audio_error(p, "empty")


def test_error_zero_frames(tmp_path):
    p = tmp_path / "noframes.wav"
    sf.write(p, np.zeros(0, dtype=np.float32), SAMPLE_RATE)
    assert p.stat().st_size > 0
    _assert_audio_error(p, "no audio frames")


def test_error_truncated_header(tmp_path):
    full = tmp_path / "full.wav"
    sf.write(full, np.zeros(1000, dtype=np.float32), SAMPLE_RATE)
    p = tmp_path / "truncated.wav"
    p.write_bytes(full.read_bytes()[:20])
    _assert_audio_error(p, "corrupt")


def test_error_text_file_renamed(tmp_path):
    p = tmp_path / "notes.wav"
    p.write_text("This is a text file, not audio.\n" * 20)
    _assert_audio_error(p, "not in a supported format")


def test_error_random_bytes_mp3(tmp_path):
    p = tmp_path / "noise.mp3"
    p.write_bytes(np.random.default_rng(3).bytes(4096))
    _assert_audio_error(p)


def test_error_corrupt_flac(tmp_path):
    good = tmp_path / "good.flac"
    sf.write(good, 0.3 * np.sin(np.arange(16000) * 0.05), SAMPLE_RATE)
    p = tmp_path / "bad.flac"
    p.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _assert_audio_error(p, "corrupt")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_error_non_finite_samples(tmp_path, bad):
    x = np.zeros(100, dtype=np.float32)
    x[37] = bad
    p = tmp_path / "nonfinite.wav"
    sf.write(p, x, SAMPLE_RATE, subtype="FLOAT")
    _assert_audio_error(p, "nan or infinite")


def test_load_rejects_bad_arguments(tmp_path):
    with pytest.raises(TypeError):
        load_audio(3)  # type: ignore[arg-type]  # a file descriptor is not a path
    p = tmp_path / "ok.wav"
    sf.write(p, np.zeros(10, dtype=np.float32), SAMPLE_RATE)
    with pytest.raises(ValueError):
        load_audio(p, sample_rate=0)


# ------------------------------------------------------------------------------------------ resampling


def test_resample_sine_accuracy():
    sr_in, n = 44100, 88200
    amp = 0.6
    x = (amp * np.sin(2 * np.pi * 440.0 * np.arange(n) / sr_in)).astype(np.float32)
    y = resample(x, sr_in, 16000)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(y.size - round(n * 16000 / sr_in)) <= 1
    core = y[200:-200].astype(np.float64)
    spec = np.abs(np.fft.rfft(core * np.hanning(core.size), n=16000 * 8))
    peak_hz = np.argmax(spec) * 16000 / (16000 * 8)
    assert abs(peak_hz - 440.0) < 1.0
    rms = np.sqrt(np.mean(core**2))
    assert abs(rms / (amp / np.sqrt(2)) - 1.0) < 0.01


def test_resample_removes_content_above_new_nyquist():
    sr_in = 44100
    x = (0.8 * np.sin(2 * np.pi * 7000.0 * np.arange(sr_in) / sr_in)).astype(np.float32)
    y = resample(x, sr_in, 8000)  # 7 kHz would alias to 1 kHz without the anti-alias filter
    assert np.sqrt(np.mean(y[100:-100] ** 2)) < 1e-3


@pytest.mark.parametrize(("sr_in", "sr_out"), [(8000, 16000), (16000, 48000), (48000, 22050), (16000, 8000)])
def test_resample_lengths(sr_in, sr_out):
    for n in (1000, 12345):
        y = resample(np.zeros(n, dtype=np.float32), sr_in, sr_out)
        assert abs(y.size - round(n * sr_out / sr_in)) <= 1


def test_resample_same_rate_is_copy():
    x = np.linspace(-1, 1, 50, dtype=np.float32)
    y = resample(x, 16000, 16000)
    np.testing.assert_array_equal(x, y)
    y[0] = 5.0
    assert x[0] == -1.0
    z = resample(np.arange(4, dtype=np.float64), 8000, 8000)
    assert z.dtype == np.float32


def test_resample_empty_and_invalid():
    assert resample(np.zeros(0, dtype=np.float32), 44100, 16000).shape == (0,)
    x = np.zeros(10, dtype=np.float32)
    for bad in (0, -16000, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            resample(x, bad, 16000)
        with pytest.raises(ValueError):
            resample(x, 16000, bad)
    with pytest.raises(TypeError):
        resample(x, "16000", 8000)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        resample(np.zeros((10, 2), dtype=np.float32), 16000, 8000)


# ---------------------------------------------------------------------------------------------- to_mono


def test_to_mono():
    one = np.array([0.1, -0.2, 0.3], dtype=np.float64)
    out = to_mono(one)
    assert out.dtype == np.float32 and out.shape == (3,)
    np.testing.assert_allclose(out, one, rtol=1e-6)
    col = to_mono(one[:, None])
    np.testing.assert_allclose(col, one, rtol=1e-6)
    stereo = np.array([[1.0, 0.0], [0.5, -0.5], [0.2, 0.4]], dtype=np.float32)
    np.testing.assert_allclose(to_mono(stereo), [0.5, 0.0, 0.3], atol=1e-7)
    eight = np.tile(np.arange(8, dtype=np.float32), (4, 1))
    np.testing.assert_allclose(to_mono(eight), np.full(4, 3.5))
    fortran = np.asfortranarray(stereo)
    assert to_mono(fortran).flags.c_contiguous
    with pytest.raises(ValueError):
        to_mono(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError):
        to_mono(np.zeros((5, 0)))


def test_to_mono_does_not_alias_input():
    x = np.ones(4, dtype=np.float32)
    y = to_mono(x)
    y[0] = 7.0
    assert x[0] == 1.0


# ------------------------------------------------------------------------------------------------ pcm16


def test_pcm16_to_float_known_values():
    raw = b"\x00\x80" + b"\xff\x7f" + b"\x00\x00" + b"\x01\x00" + b"\xff\xff"
    y = pcm16_to_float(raw)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, np.array([-32768, 32767, 0, 1, -1]) / 32768.0)
    assert y.min() >= -1.0 and y.max() < 1.0
    np.testing.assert_array_equal(pcm16_to_float(bytearray(raw)), y)
    np.testing.assert_array_equal(pcm16_to_float(np.frombuffer(raw, dtype="<i2")), y)
    np.testing.assert_array_equal(pcm16_to_float(np.frombuffer(raw, dtype="<i2").astype(">i2")), y)


def test_pcm16_to_float_errors():
    with pytest.raises(ValueError):
        pcm16_to_float(b"\x00\x01\x02")
    with pytest.raises(TypeError):
        pcm16_to_float(np.zeros(4, dtype=np.float32))
    with pytest.raises(TypeError):
        pcm16_to_float("abcd")  # type: ignore[arg-type]


def test_float_to_pcm16_scaling_clipping_rounding():
    x = np.array([0.0, 1.0, -1.0, 1.5, -2.0, 0.5, 0.4 / 32767, 0.6 / 32767, -0.6 / 32767])
    y = float_to_pcm16(x)
    assert y.dtype == np.int16
    np.testing.assert_array_equal(y, [0, 32767, -32767, 32767, -32767, 16384, 0, 1, -1])
    assert float_to_pcm16_bytes(np.array([1.0, -1.0, 0.0])) == b"\xff\x7f\x01\x80\x00\x00"
    with pytest.raises(ValueError):
        float_to_pcm16(np.array([0.0, np.nan]))


def test_pcm16_round_trip():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 1.0, 5000).astype(np.float32)
    back = pcm16_to_float(float_to_pcm16_bytes(x))
    assert back.shape == x.shape
    # Half a 1/32767 rounding step plus up to 1/32768 from the 32767-out vs 32768-in scales.
    assert np.max(np.abs(back - x)) <= 0.5 / 32767 + 1.0 / 32768 + 1e-7
    ints = rng.integers(-32767, 32768, 5000).astype(np.int16)
    again = float_to_pcm16(pcm16_to_float(ints.tobytes()) * (32768.0 / 32767.0))
    np.testing.assert_array_equal(again, ints)


# --------------------------------------------------------------------------------------------- save_wav


def test_save_wav_writes_pcm16_and_leaves_no_temp(tmp_path):
    x = (0.5 * np.sin(np.arange(3200) * 0.07)).astype(np.float32)
    target = tmp_path / "out.wav"
    save_wav(target, x, 22050)
    assert sorted(os.listdir(tmp_path)) == ["out.wav"]
    info = sf.info(target)
    assert info.format == "WAV" and info.subtype == "PCM_16"
    assert info.samplerate == 22050 and info.channels == 1 and info.frames == x.size
    data, _ = sf.read(target, dtype="int16")
    np.testing.assert_array_equal(data, float_to_pcm16(x))
    # Overwriting replaces the old file and still leaves nothing else behind.
    save_wav(str(target), x[:100])
    assert sf.info(target).frames == 100 and sf.info(target).samplerate == SAMPLE_RATE
    assert sorted(os.listdir(tmp_path)) == ["out.wav"]


def test_save_wav_load_audio_round_trip(tmp_path):
    x = (0.3 * np.sin(2 * np.pi * 250 * np.arange(SAMPLE_RATE) / SAMPLE_RATE)).astype(np.float32)
    save_wav(tmp_path / "rt.wav", x)
    y = load_audio(tmp_path / "rt.wav")
    assert y.shape == x.shape
    assert np.max(np.abs(y - x)) < 5e-5


def test_save_wav_stereo(tmp_path):
    x = np.stack([np.full(10, 0.25), np.full(10, -0.25)], axis=1)
    save_wav(tmp_path / "st.wav", x)
    assert sf.info(tmp_path / "st.wav").channels == 2


def test_save_wav_failure_keeps_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "keep.wav"
    target.write_bytes(b"original")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(audio.sf, "write", boom)
    with pytest.raises(OSError, match="disk full"):
        save_wav(target, np.zeros(10, dtype=np.float32))
    assert target.read_bytes() == b"original"
    assert sorted(os.listdir(tmp_path)) == ["keep.wav"]


def test_save_wav_replace_failure_cleans_temp(tmp_path):
    target = tmp_path / "is_a_dir.wav"
    target.mkdir()
    (target / "inside").write_text("x")
    with pytest.raises(OSError):
        save_wav(target, np.zeros(10, dtype=np.float32))
    assert sorted(os.listdir(tmp_path)) == ["is_a_dir.wav"]
    assert (target / "inside").read_text() == "x"


def test_save_wav_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError):
        save_wav(tmp_path / "nan.wav", np.array([0.0, np.nan]))
    with pytest.raises(ValueError):
        save_wav(tmp_path / "rate.wav", np.zeros(4), 0)
    with pytest.raises(ValueError):
        save_wav(tmp_path / "shape.wav", np.zeros((2, 2, 2)))
    assert os.listdir(tmp_path) == []


def test_duration_seconds():
    assert duration_seconds(np.zeros(24000), 16000) == 1.5
    assert duration_seconds(np.zeros((8000, 2)), 8000) == 1.0
    assert duration_seconds(np.zeros(SAMPLE_RATE)) == 1.0
    with pytest.raises(ValueError):
        duration_seconds(np.zeros(10), 0)
