"""Chunks: several frames from one encoder pass (network, ONNX graph, engine, stream, int8, training samples)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facecast import load_model
from facecast.infer.engine import NetworkOutput
from facecast.network.regression import NetworkConfig, RegressionNetwork
from facecast.timing import FEATURE_HOP, block_length, chunk_length, chunk_span, frame_targets


def _speechy(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 2.7 * t)
    return (0.3 * envelope * np.sin(2 * np.pi * 140 * t) + 0.03 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def network() -> RegressionNetwork:
    torch.manual_seed(0)
    cfg = NetworkConfig(encoder="whisper", num_layers=2, num_shapes_skin=10, num_shapes_tongue=3, buffer_ofs=7200,
                        chunk_frames=8)  # fmt: skip
    return RegressionNetwork(cfg).eval()


def test_chunk_sizes_by_hand():
    assert chunk_length(0, 8320) == 8320  # one window is one chunk
    assert chunk_length(533, 8320) == 8960  # 8853 rounded up to 320s
    assert chunk_span(1, 30.0) == 0 and chunk_span(2, 30.0) == 534 and chunk_span(4, 30.0) == 1600
    # every block of 4 frames at 30 fps fits: its last window starts at most chunk_span samples in
    spans = [frame_targets(4 * m, 4, 30.0) for m in range(100)]
    assert max(int(s[-1] - s[0]) for s in spans) <= chunk_span(4, 30.0)
    assert block_length(16, 30.0, 8320) % FEATURE_HOP == 0
    with pytest.raises(ValueError, match="Whisper encoder"):
        NetworkConfig(encoder="wav2vec2", chunk_frames=4)


def test_one_frame_chunk_is_the_window_network(network):
    x = torch.from_numpy(np.stack([_speechy(0.52, s)[:8320] for s in range(3)]))
    emotion = torch.randn(3, 1, 26)
    with torch.no_grad():
        windows = network(x[:, None], emotion)
        chunked = network.forward_chunks(x, torch.zeros(3, 1, dtype=torch.int64), emotion)
    assert torch.equal(windows, chunked)


def test_autocorrelation_over_a_chunk_matches_numpy(network):
    x = _speechy(1.0)[: 320 * 40]
    got = network.autocorr.over_chunk(torch.from_numpy(x)[None])[0, 0].numpy()
    window = np.hanning(640)
    want = []
    for i in range(len(x) // 320 - 1):
        seg = x[320 * i : 320 * i + 640].astype(np.float64)
        seg = (seg - seg.mean()) * window
        want.append([np.dot(seg[: 640 - k], seg[k:]) / 640 for k in range(32)])
    assert got.shape == (39, 32)
    assert np.abs(got - np.array(want)).max() < 1e-5


def test_frames_read_interpolated_features_at_their_window(network):
    """A frame at offset o reads the chunk's 50 Hz features at o / 320 + i, linear between neighbours."""
    offsets = np.array([0, 533, 1067, 1600, 2133], np.int64)
    audio = _speechy(1.0)[: chunk_length(int(offsets[-1]), 8320)]
    emotion = torch.randn(1, len(offsets), 26)
    with torch.no_grad():
        got = network.forward_chunks(torch.from_numpy(audio)[None], torch.from_numpy(offsets)[None], emotion)[0]
        feats = network.chunk_features(torch.from_numpy(audio)[None])[0].numpy()
        want = []
        for j, o in enumerate(offsets):
            pos = o / 320 + np.arange(25)
            lo = np.floor(pos).astype(int)
            w = (pos - lo)[:, None]
            rows = feats[lo] * (1 - w) + feats[np.minimum(lo + 1, len(feats) - 1)] * w
            x = torch.from_numpy(rows.T.astype(np.float32))[None, :, :, None]
            want.append(network.decode(x, emotion[0, j : j + 1])[0].numpy())
    assert np.abs(got.numpy() - np.array(want)).max() < 1e-5


def test_chunk_graph_in_onnx_runtime_matches_torch(network, tmp_path):
    import onnxruntime as ort

    from facecast.network.onnx_io import export_chunk_onnx

    path = export_chunk_onnx(network, tmp_path / "chunk.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for frames in (1, 5, 8):  # any K and chunk length through one graph
        targets = frame_targets(7, frames, 30.0)
        offsets = np.stack([targets - targets[0]] * 2).astype(np.int64)
        length = block_length(frames, 30.0, 8320)
        audio = np.stack([_speechy(2.0, s)[:length] for s in (1, 2)])
        emotion = np.random.default_rng(frames).standard_normal((2, frames, 26)).astype(np.float32)
        got = session.run(None, {"input": audio, "offsets": offsets, "emotion": emotion})[0]
        with torch.no_grad():
            want = network.forward_chunks(*(torch.from_numpy(a) for a in (audio, offsets, emotion))).numpy()
        assert got.shape == (2, frames, network.cfg.result_size)
        assert np.abs(got - want).max() < 1e-4


def test_engine_blocks_stream_and_offline_agree(chunk_pack):
    model = load_model(chunk_pack, device="cpu")
    single = load_model(chunk_pack, device="cpu", frames_per_pass=1)
    assert model.frames_per_pass == 4 and single.frames_per_pass == 1 and single.engine.uses_blocks
    audio = _speechy(1.7)
    offline = model.infer(audio)
    assert len(offline) == 51
    # results depend on K only: a stream pushed in odd pieces gives the offline frames
    stream = model.stream()
    parts = [stream.push(audio[i : i + 1111]) for i in range(0, len(audio), 1111)]
    parts.append(stream.close())
    assert all(len(p) % 4 == 0 for p in parts[:-1])  # whole blocks until the end
    streamed = NetworkOutput.concatenate(parts, parts[0])
    assert np.array_equal(streamed.frame_index, offline.frame_index)
    assert np.abs(streamed.result - offline.result).max() < 1e-5
    # frames requested on their own are computed within their whole block
    some = model.engine.run_frames(audio, np.arange(5, 11), 30.0)
    assert np.abs(some.result - offline.result[5:11]).max() < 1e-5
    whole, part = model.engine.network_inputs(audio, 0, 51, 30.0), model.engine.network_inputs(audio, 5, 6, 30.0)
    assert (len(whole), len(part), part.skip) == (13, 2, 1)  # blocks 1 and 2 hold frames 5 .. 10
    for got, want in zip(part.arrays, whole.arrays, strict=True):
        assert np.array_equal(got, want[1:3])
    assert np.array_equal(part.emotion, whole.emotion[5:11])
    assert np.abs(model.engine.output(part, model.engine.infer(*part.arrays)).result - some.result).max() < 1e-5
    # one frame per pass hears the same past (3 frames more) from a chunk of its own; blocks differ
    ones_offline = single.infer(audio)
    assert single.engine.context_frames == 3 and model.engine.context_frames == 0
    assert 1e-4 < np.abs(ones_offline.result - offline.result).max()
    ones = model.stream(frames_per_pass=1)
    out = NetworkOutput.concatenate([ones.push(audio[:9000]), ones.push(audio[9000:]), ones.close()], ones_offline)
    assert np.abs(out.result - ones_offline.result).max() < 1e-5
    assert model.stream().lookahead_seconds == pytest.approx((1120 + 1600) / 16000)
    assert ones.lookahead_seconds == pytest.approx(1120 / 16000)  # the context adds no latency


def _by_hand(model, audio: np.ndarray, first: int, count: int, keep: slice) -> np.ndarray:
    """Frames ``first .. first + count - 1`` in one chunk straight through the chunk network, ``keep`` of them."""
    info = model.info
    targets = frame_targets(first, count, 30.0)
    length = block_length(count, 30.0, info.buffer_len)
    chunk = np.zeros(length, np.float32)
    start = int(targets[0]) - info.buffer_ofs
    for i in range(length):
        if 0 <= start + i < len(audio) and i < int(targets[-1] - targets[0]) + info.buffer_len:
            chunk[i] = audio[start + i] * model.engine.input_strength
    emotion = np.zeros((1, count, info.emotion_len), np.float32)
    emotion[..., : info.implicit_emotion_len] = model.engine.implicit_emotion
    out = model.backend.run_chunks(chunk[None], (targets - targets[0])[None], emotion)[0]
    return out[keep]


@pytest.mark.parametrize(("per_pass", "context"), [(1, 3), (2, 2), (1, 1)])
def test_context_frames_are_the_earlier_frames_of_a_longer_chunk(chunk_pack, per_pass, context):
    model = load_model(chunk_pack, device="cpu", frames_per_pass=per_pass, context_frames=context)
    assert (model.frames_per_pass, model.engine.context_frames) == (per_pass, context)
    audio = _speechy(1.2, seed=5)
    got = model.infer(audio).result
    for block in (0, 1, 7, 12):
        first = block * per_pass
        want = _by_hand(model, audio, first - context, per_pass + context, slice(context, None))
        assert np.abs(got[first : first + per_pass] - want).max() < 1e-5
    stream = model.stream()
    parts = [stream.push(audio[i : i + 700]) for i in range(0, len(audio), 700)] + [stream.close()]
    assert np.abs(NetworkOutput.concatenate(parts, parts[0]).result - got).max() < 1e-5


def test_no_context_and_one_frame_per_pass_is_the_window_network(chunk_pack, small_pack):
    windows = load_model(chunk_pack, device="cpu", frames_per_pass=1, context_frames=0)
    assert windows.backend.chunk_path is None and not windows.engine.uses_blocks
    audio = _speechy(1.0, seed=6)
    info = windows.info
    targets = frame_targets(0, 30, 30.0)
    from facecast.timing import extract_windows

    rows = extract_windows(audio, targets - info.buffer_ofs, info.buffer_len, 0, windows.engine.input_strength)
    emotion = np.zeros((30, info.emotion_len), np.float32)
    emotion[:, : info.implicit_emotion_len] = windows.engine.implicit_emotion
    want = windows.backend.run(rows, emotion)
    assert np.abs(windows.infer(audio).result - want).max() < 1e-5
    assert load_model(small_pack, device="cpu").engine.context_frames == 0  # NVIDIA-style pack: no chunk network
    with pytest.raises(ValueError, match="context_frames"):
        load_model(small_pack, device="cpu", context_frames=2)
    with pytest.raises(ValueError, match="context_frames"):
        load_model(chunk_pack, device="cpu", context_frames=-1)


def test_frames_per_pass_is_checked(chunk_pack, small_pack):
    with pytest.raises(ValueError, match="no chunk network"):
        load_model(small_pack, device="cpu", frames_per_pass=4)
    with pytest.raises(ValueError, match="at least 1"):
        load_model(chunk_pack, device="cpu", frames_per_pass=0)
    assert load_model(small_pack, device="cpu").frames_per_pass == 1


def test_int8_chunk_network_is_close_to_fp32(chunk_pack):
    fp32 = load_model(chunk_pack, device="cpu")
    int8 = load_model(chunk_pack, device="cpu", precision="int8")
    assert int8.backend.chunk_path != fp32.backend.chunk_path
    audio = _speechy(1.0, seed=4)
    a, b = fp32.infer(audio).result, int8.infer(audio).result
    assert 0 < np.sqrt(((a - b) ** 2).mean()) / a.std() < 0.2


def test_pack_chunk_entries_are_validated(chunk_pack, tmp_path):
    import json
    import shutil

    from facecast.pack import PackError, load_pack

    pack = load_pack(chunk_pack)
    assert pack.chunk_frames == 4 and pack.chunk_network_path.name == "network_chunk.onnx"
    assert pack.summary()["chunk_network"] == {"file": "network_chunk.onnx", "frames_per_pass": 4}
    broken = tmp_path / "broken"
    shutil.copytree(chunk_pack, broken)
    spec = json.loads((broken / "model.json").read_text())
    spec["chunkFrames"] = "four"
    (broken / "model.json").write_text(json.dumps(spec))
    (broken / "network_chunk.onnx").unlink()
    with pytest.raises(PackError) as err:
        load_pack(broken)
    text = str(err.value)
    assert "chunkFrames must be a whole number" in text and "chunk network file is missing" in text


def test_io_binding_gives_the_plain_results(chunk_pack):
    """I/O binding (on by default for GPU providers) binds inputs and the result itself; here on the CPU."""
    from facecast.infer.backends import OnnxRuntimeBackend
    from facecast.pack import load_pack

    pack = load_pack(chunk_pack)
    plain = OnnxRuntimeBackend(pack.network_path, "cpu", chunk_path=pack.chunk_network_path)
    bound = OnnxRuntimeBackend(pack.network_path, "cpu", chunk_path=pack.chunk_network_path, io_binding=True)
    assert not plain.io_binding and bound.io_binding
    rng = np.random.default_rng(1)
    windows = (0.1 * rng.standard_normal((5, 8320))).astype(np.float32)
    emotion = rng.uniform(0, 1, (5, 26)).astype(np.float32)
    assert np.array_equal(bound.run(windows, emotion), plain.run(windows, emotion))
    targets = frame_targets(8, 4, 30.0)
    offsets = np.stack([targets - targets[0]] * 3)
    chunks = (0.1 * rng.standard_normal((3, block_length(4, 30.0, 8320)))).astype(np.float32)
    emo = rng.uniform(0, 1, (3, 4, 26)).astype(np.float32)
    assert np.array_equal(bound.run_chunks(chunks, offsets, emo), plain.run_chunks(chunks, offsets, emo))
