"""Serving a v3.0 diffusion folder: NVIDIA's stub client streams, the server gives the offline frames, windows of
concurrent streams (other identities' folders too) share network calls, and the configs describe the model."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

grpc = pytest.importorskip("grpc")
pytest.importorskip("nvidia_audio2face_3d")

from nvidia_audio2face_3d import a2x_export_config_pb2, a2x_export_config_pb2_grpc  # noqa: E402
from test_server import _assert_success, _clip, _header, _messages, _run, _wait, _weights  # noqa: E402

from facecast.audio import float_to_pcm16_bytes, pcm16_to_float  # noqa: E402
from facecast.cli import main  # noqa: E402
from facecast.emotion import EmotionTrack  # noqa: E402
from facecast.model import load_model  # noqa: E402
from facecast.models.testing_v3 import make_v3_pack  # noqa: E402
from facecast.server import ConfigError, ServerConfig, serve  # noqa: E402


@pytest.fixture(scope="module")
def pack_dir(tmp_path_factory):
    return make_v3_pack(tmp_path_factory.mktemp("v3s") / "pack", seed=9)


@pytest.fixture(scope="module")
def server(pack_dir):
    srv = serve(ServerConfig(port=0, model=str(pack_dir), identity="James", max_streams=6, batch_wait_ms=20.0))
    yield srv
    srv.stop()


def _expected(model, pcm: bytes, emotion=None, fps: float = 30.0) -> np.ndarray:
    anim = model.animate(pcm16_to_float(pcm), fps=fps, emotion=emotion, blinks=False)
    return np.concatenate([anim.skin_weights, anim.tongue_weights], axis=1)


def test_stream_gives_the_offline_frames(server, pack_dir):
    pcm = float_to_pcm16_bytes(_clip(2.3, seed=4))
    emotions = [(0.0, {"Joy": 0.5}), (1.2, {"Anger": 1.0})]
    answers = _run(server.address, _messages(pcm, emotions=emotions))
    track = EmotionTrack().add(0.0, {"joy": 0.5}).add(1.2, {"anger": 1.0})
    expected = _expected(load_model(pack_dir, identity="James"), pcm, track)
    _assert_success(answers, len(expected))
    assert np.abs(_weights(answers) - expected).max() < 1e-5
    other = _expected(load_model(pack_dir, identity="Claire"), pcm, track)
    assert np.abs(_weights(answers) - other).max() > 1e-4  # the configured identity, not the first
    frames = [a.animation_data for a in answers[1:-2]]
    assert b"".join(f.audio.audio_buffer for f in frames) == pcm


def test_concurrent_streams_share_network_calls(server, pack_dir):
    clips = [float_to_pcm16_bytes(_clip(seconds, seed=i)) for i, seconds in enumerate((1.7, 2.6, 0.9, 3.1))]
    calls_before, windows_before = server.scheduler.stats.batches, server.scheduler.stats.windows
    with ThreadPoolExecutor(len(clips)) as pool:
        results = list(pool.map(lambda pcm: _run(server.address, _messages(pcm)), clips))
    model = load_model(pack_dir, identity="James")
    for pcm, answers in zip(clips, results, strict=True):
        expected = _expected(model, pcm)
        _assert_success(answers, len(expected))
        assert np.abs(_weights(answers) - expected).max() < 1e-5
    calls = server.scheduler.stats.batches - calls_before
    windows = server.scheduler.stats.windows - windows_before
    assert server.scheduler.stats.largest_batch > 1 and calls < windows  # windows of different streams joined
    assert _wait(lambda: server.active_streams == 0 and server.scheduler.num_lanes == 0)


def test_other_rate_and_fps(pack_dir):
    with serve(ServerConfig(port=0, model=str(pack_dir), fps=60.0)) as srv:
        audio = _clip(1.4, rate=22050, seed=2)
        pcm = float_to_pcm16_bytes(audio)
        answers = _run(srv.address, _messages(pcm, rate=22050, header=_header(22050)))
        first = load_model(pack_dir)  # no identity configured: the first
        frames = sum(1 for a in answers if a.WhichOneof("stream_part") == "animation_data")
        assert frames == int(np.ceil(1.4 * 60))
        _assert_success(answers, frames)
        assert first.identity == "Claire"


def test_configs_describe_the_v3_model(server):
    request_type = a2x_export_config_pb2.ConfigsTypeRequest
    with grpc.insecure_channel(server.address) as channel:
        stub = a2x_export_config_pb2_grpc.A2XExportConfigServiceStub(channel)
        stylization, deployment, advanced = (json.loads(c.content) for c in
                                             stub.GetConfigs(request_type(config_type=request_type.JSON)))  # fmt: skip
    network = advanced["network"]
    assert network["kind"] == "diffusion" and network["identity"] == "James"
    assert network["identities"] == ["Claire", "James", "Mark"]
    assert network["kept_frames"] == [15, 45] and network["stride_samples"] == 8000
    assert stylization["a2f"]["actor"] == "James" and deployment["identity"] == "James"


def test_bad_settings_are_refused(pack_dir, small_pack):
    with pytest.raises(ValueError, match="no identity 'Zed'"):
        serve(ServerConfig(port=0, model=str(pack_dir), identity="Zed"))
    with pytest.raises(ConfigError, match="v3.0 diffusion models only"):
        serve(ServerConfig(port=0, model=str(small_pack), identity="James"))
    assert main(["serve", "-m", str(pack_dir), "--identity", "Zed", "--grpc", "0"]) == 2
    assert threading.active_count() < 50


def test_live_viewer_streams_a_v3_model(pack_dir):
    """``facecast serve --http``'s viewer on a v3.0 model: its info and a live WebSocket stream of every frame."""
    pytest.importorskip("websockets", minversion="13")
    from websockets.sync.client import connect

    from facecast.web import serve_http

    model = load_model(pack_dir, identity="Mark")
    audio = _clip(1.3, seed=6)
    viewer = serve_http(model)
    try:
        with connect(f"ws://127.0.0.1:{viewer.port}/ws", open_timeout=30) as ws:
            ws.send(json.dumps({"type": "start", "sample_rate": 16000}))
            ready = json.loads(ws.recv(timeout=30))
            assert ready["type"] == "ready" and ready["lookahead"] == pytest.approx(0.75)
            ws.send(float_to_pcm16_bytes(audio))
            ws.send(json.dumps({"type": "stop"}))
            frames = []
            while True:
                msg = json.loads(ws.recv(timeout=60))
                assert msg["type"] != "error", msg
                if msg["type"] == "frames":
                    frames.append(np.array(msg["skin"]))
                if msg["type"] == "end":
                    break
        offline = model.animate(pcm16_to_float(float_to_pcm16_bytes(audio)), blinks=False)
        assert sum(len(f) for f in frames) == len(offline)
    finally:
        viewer.stop()
