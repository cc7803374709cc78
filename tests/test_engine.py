"""Frame timing, windowing and batched inference against a naive per-window ONNX Runtime loop."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import onnxruntime as ort
import pytest

from facecast.infer.backends import BackendError, OnnxRuntimeBackend, TorchBackend
from facecast.infer.engine import Engine
from facecast.pack import load_pack
from facecast.timing import (
    block_range,
    check_context_frames,
    check_frames_per_pass,
    extract_windows,
    fps_fraction,
    frame_targets,
    frames_ready,
    num_frames,
)


def test_frame_targets_by_hand():
    # floor(k * 16000 / 30): 0, 533.33 -> 533, 1066.67 -> 1066, 1600
    assert frame_targets(0, 4, 30).tolist() == [0, 533, 1066, 1600]
    # 29.97 is NTSC 30000/1001: k=1 -> floor(533.866) = 533, k=30 -> 16016
    assert fps_fraction(29.97) == Fraction(30000, 1001)
    assert frame_targets(30, 1, 29.97).tolist() == [16016]
    assert frame_targets(0, 3, 60).tolist() == [0, 266, 533]
    assert frame_targets(5, 2, 24).tolist() == [3333, 4000]


def test_num_frames_counts_centres_inside_clip():
    assert num_frames(16000, 30) == 30  # centres 0 .. 15466
    assert num_frames(16001, 30) == 31  # centre 16000 is inside
    assert num_frames(1, 30) == 1
    assert num_frames(0, 30) == 0
    with pytest.raises(ValueError):
        num_frames(100, 0)


def test_frame_clock_checks_and_counts():
    assert fps_fraction(Fraction(24000, 1001)) == Fraction(24000, 1001) and fps_fraction(12.5) == Fraction(25, 2)
    with pytest.raises(ValueError, match="fps must be a number"):
        fps_fraction("30")
    assert check_frames_per_pass(4) == 4 and check_context_frames(0) == 0 and check_frames_per_pass(1, chunked=False)
    for value, match in ((0, "at least 1"), (1001, "at most 1000"), (True, "a whole number"), (2.0, "a whole number")):
        with pytest.raises(ValueError, match=f"frames_per_pass must be {match}"):
            check_frames_per_pass(value)
    with pytest.raises(ValueError, match="chunkFrames must be at least 1"):
        check_frames_per_pass(0, "chunkFrames")
    with pytest.raises(ValueError, match="no chunk network"):
        check_frames_per_pass(2, chunked=False)
    with pytest.raises(ValueError, match="no chunk network"):
        check_context_frames(1, chunked=False)
    # frame k is ready once its centre plus the look-ahead has arrived
    assert [frames_ready(n, 4160, 30) for n in (4159, 4160, 4692, 4693)] == [0, 1, 1, 2]
    assert block_range(5, 6, 4) == (1, 3) and block_range(8, 4, 4) == (2, 3) and block_range(3, 1, 1) == (3, 4)
    assert block_range(5, 0, 4) == (1, 1)  # no frames, no blocks


def test_network_inputs_of_a_span_are_those_of_the_whole_clip(small_pack):
    pack = load_pack(small_pack)
    engine = Engine(OnnxRuntimeBackend(pack.network_path, "cpu"), pack.network_info, pack.implicit_emotion, 1.2, 5)
    audio = (np.random.default_rng(5).standard_normal(16000) * 0.2).astype(np.float32)
    ramp = lambda t: np.outer(np.clip(t, 0, 1), np.eye(10)[2])  # noqa: E731
    whole = engine.network_inputs(audio, 0, 30, 30.0, ramp)
    part = engine.network_inputs(audio[1000:], 10, 7, 30.0, ramp, origin=1000)  # held from sample 1000 on
    assert len(whole) == 30 and len(part) == 7 and part.frames.tolist() == list(range(10, 17))
    for got, want in zip(part.arrays, whole.arrays, strict=True):
        assert np.array_equal(got, want[10:17])
    assert np.array_equal(part.targets, frame_targets(10, 7, 30.0))
    assert np.array_equal(part.emotion, whole.emotion[10:17])
    out = engine.output(part, engine.infer(*part.arrays))
    assert np.abs(out.result - engine.run(audio, 30.0, ramp).result[10:17]).max() < 1e-5
    assert len(engine.network_inputs(audio, 4, 0, 30.0)) == 0


def test_extract_windows_zero_pads_and_scales():
    audio = np.arange(1, 11, dtype=np.float32)  # samples 0..9 hold 1..10
    w = extract_windows(audio, np.array([-2, 7]), 5, scale=2.0)
    assert w.tolist() == [[0, 0, 2, 4, 6], [16, 18, 20, 0, 0]]
    # the same windows when the held audio starts at absolute sample 3
    w2 = extract_windows(audio[3:], np.array([5]), 3, origin=3)
    assert w2.tolist() == [[6, 7, 8]]


def _naive(pack, audio, fps, explicit, strength):
    """One ONNX Runtime call per frame, windows cut by hand."""
    sess = ort.InferenceSession(str(pack.network_path), providers=["CPUExecutionProvider"])
    rows = []
    for k in range(num_frames(len(audio), fps)):
        centre = (k * 16000 * fps_fraction(fps).denominator) // fps_fraction(fps).numerator
        window = np.zeros(8320, np.float32)
        for i in range(8320):
            s = centre - 4160 + i
            if 0 <= s < len(audio):
                window[i] = audio[s]
        emotion = np.concatenate([pack.implicit_emotion, explicit]).astype(np.float32)
        out = sess.run(None, {"input": (window * strength)[None, None], "emotion": emotion[None, None]})[0]
        rows.append(out[0, 0])
    return np.array(rows)


@pytest.mark.parametrize("fps,batch", [(30.0, 7), (24.0, 32)])
def test_batched_engine_matches_naive_loop(small_pack, fps, batch):
    pack = load_pack(small_pack)
    rng = np.random.default_rng(3)
    audio = (rng.standard_normal(16000 + 1234) * 0.2).astype(np.float32)
    explicit = np.zeros(10, np.float32)
    explicit[6] = 0.7
    engine = Engine(OnnxRuntimeBackend(pack.network_path, "cpu"), pack.network_info, pack.implicit_emotion, 1.3, batch)
    out = engine.run(audio, fps, explicit)
    ref = _naive(pack, audio, fps, explicit, 1.3)
    assert len(out) == len(ref) == num_frames(len(audio), fps)
    assert np.abs(out.result - ref).max() < 1e-4
    assert out.skin.shape == (len(out), 12) and out.tongue.shape == (len(out), 4)
    assert out.jaw.shape == (len(out), 15) and out.eyes.shape == (len(out), 4)
    assert np.allclose(out.result, np.concatenate([out.skin, out.tongue, out.jaw, out.eyes], axis=1))
    assert np.allclose(out.times, out.target_samples / 16000)
    assert np.allclose(out.explicit_emotion[:, 6], 0.7)


def test_split_sessions_equal_one_session(small_pack):
    """The CPU backend splits a batch over single-threaded sessions run concurrently: same rows, same order."""
    pack = load_pack(small_pack)
    rng = np.random.default_rng(4)
    windows = (rng.standard_normal((11, pack.network_info.buffer_len)) * 0.2).astype(np.float32)
    emotion = rng.uniform(0, 1, (11, pack.network_info.emotion_len)).astype(np.float32)
    one = OnnxRuntimeBackend(pack.network_path, "cpu", threads=1)
    split = OnnxRuntimeBackend(pack.network_path, "cpu", threads=3)
    assert (one.workers, split.workers) == (1, 3)
    ref = one.run(windows, emotion)
    for rows in (slice(0, 11), slice(0, 2), slice(5, 6), slice(0, 0)):
        out = split.run(windows[rows], emotion[rows])
        assert out.shape == ref[rows].shape and np.allclose(out, ref[rows], rtol=0, atol=1e-5)
    with pytest.raises(Exception, match="emotion|dimension|shape|Got invalid"):  # a worker's error reaches the caller
        split.run(windows[:4], emotion[:4, :3])


def test_emotion_track_is_sampled_per_frame(small_pack):
    pack = load_pack(small_pack)
    engine = Engine(OnnxRuntimeBackend(pack.network_path, "cpu"), pack.network_info, pack.implicit_emotion)
    ramp = lambda t: np.outer(np.clip(t, 0, 1), np.eye(10)[1])  # noqa: E731 anger rises over 1 s
    out = engine.run(np.zeros(16000, np.float32), 30, ramp)
    assert np.allclose(out.explicit_emotion[:, 1], np.clip(out.times, 0, 1))
    assert np.allclose(out.emotion[:, :16], pack.implicit_emotion)


def test_torch_backend_matches_onnxruntime(small_pack):
    from facecast.network.onnx_io import import_onnx

    pack = load_pack(small_pack)
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(9000) * 0.3).astype(np.float32)
    ort_engine = Engine(OnnxRuntimeBackend(pack.network_path, "cpu"), pack.network_info, pack.implicit_emotion)
    torch_engine = Engine(TorchBackend(import_onnx(pack.network_path)), pack.network_info, pack.implicit_emotion)
    a, b = ort_engine.run(audio), torch_engine.run(audio)
    assert np.abs(a.result - b.result).max() < 1e-4


def test_unavailable_device_is_a_clear_error(small_pack):
    if "TensorrtExecutionProvider" in ort.get_available_providers():
        pytest.skip("TensorRT is installed here")
    with pytest.raises(BackendError, match="TensorrtExecutionProvider"):
        OnnxRuntimeBackend(small_pack / "network.onnx", "tensorrt")
    with pytest.raises(BackendError, match="unknown device"):
        OnnxRuntimeBackend(small_pack / "network.onnx", "tpu")


def test_non_a2f_onnx_is_refused(tmp_path):
    import torch

    path = tmp_path / "lin.onnx"
    torch.onnx.export(torch.nn.Linear(3, 2), (torch.zeros(1, 3),), str(path), dynamo=False)
    with pytest.raises(BackendError, match="expected inputs input/emotion"):
        OnnxRuntimeBackend(path, "cpu")
