"""Streaming gives the frames of offline mode, each as soon as its window is complete."""

from __future__ import annotations

import numpy as np
import pytest

from facecast.infer.stream import StreamClosedError


def _clip(n=16000 * 2 + 777, seed=5):
    return (np.random.default_rng(seed).standard_normal(n) * 0.2).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_chunks_match_offline(small_model, seed):
    audio = _clip()
    offline = small_model.infer(audio)
    session = small_model.stream()
    rng = np.random.default_rng(seed)
    pieces, pos = [], 0
    while pos < len(audio):
        size = int(rng.choice([1, 37, 160, 533, 1600, 4000, 9000]))
        chunk = audio[pos : pos + size]
        pos += size
        out = session.push(chunk)
        # every emitted frame's window lies inside the audio received so far
        assert np.all(out.target_samples + 4160 <= pos)
        pieces.append(out)
    pieces.append(session.close())
    frames = np.concatenate([p.frame_index for p in pieces])
    result = np.concatenate([p.result for p in pieces])
    assert frames.tolist() == list(range(len(offline)))
    assert np.abs(result - offline.result).max() < 1e-5


def test_frames_come_out_as_soon_as_ready(small_model):
    session = small_model.stream()
    assert session.lookahead_seconds == pytest.approx(0.26)
    assert len(session.push(np.zeros(4159, np.float32))) == 0
    out = session.push(np.zeros(1, np.float32))  # 4160 samples: frame 0's window (-4160 .. 4160) is complete
    assert out.frame_index.tolist() == [0]
    out = session.push(np.zeros(533, np.float32))  # frame 1 centred on 533 needs 4693 samples
    assert out.frame_index.tolist() == [1]
    tail = session.close()
    assert tail.frame_index.tolist() == list(range(2, 9))  # centres 1066 .. 4266 lie inside the 4693 samples
    with pytest.raises(StreamClosedError):
        session.push(np.zeros(10, np.float32))
    assert len(session.close()) == 0


def test_stream_keeps_bounded_memory(small_model):
    session = small_model.stream()
    for _ in range(30):
        session.push(np.zeros(16000, np.float32))
    assert len(session._buffer) < 8320 + 16000 + 600
    assert session.frames_emitted == pytest.approx(30 * 30 - 7, abs=1)


def test_resampling_stream_approximates_offline(small_model):
    import soxr

    audio48 = _clip(48000 * 2, seed=9)
    offline = small_model.infer(soxr.resample(audio48, 48000, 16000, quality="HQ").astype(np.float32))
    session = small_model.stream(sample_rate=48000)
    parts = [session.push(audio48[i : i + 4800]) for i in range(0, len(audio48), 4800)] + [session.close()]
    result = np.concatenate([p.result for p in parts])
    assert len(result) == len(offline)
    scale = np.abs(offline.result).max()
    assert np.abs(result - offline.result).max() < 0.05 * scale


def test_nan_chunk_rejected(small_model):
    with pytest.raises(ValueError, match="NaN"):
        small_model.stream().push(np.array([0.0, np.nan], np.float32))
