"""int8 inference: a quantised network stays close to fp32 and runs through the normal engine."""

from __future__ import annotations

import numpy as np
import onnx

from facecast.infer.quantize import accuracy, calibration_data, int8_network
from facecast.pack import load_pack


def test_int8_network_is_close_and_cached(small_pack, tmp_path, monkeypatch):
    monkeypatch.setenv("FACECAST_CACHE", str(tmp_path / "cache"))
    pack = load_pack(small_pack)
    path = int8_network(pack)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    mtime = path.stat().st_mtime_ns
    assert int8_network(pack) == path and path.stat().st_mtime_ns == mtime  # reused, not rebuilt
    held_out, emotion = calibration_data(pack.network_info, pack.implicit_emotion, count=40, seed=99)
    report = accuracy(pack.network_path, path, held_out, emotion)
    assert report["frames"] == 40
    assert report["pose_rmse_over_std"] < 0.05


def test_load_model_int8(small_pack, tmp_path, monkeypatch):
    from facecast import load_model

    monkeypatch.setenv("FACECAST_CACHE", str(tmp_path / "cache"))
    clip = (np.random.default_rng(0).standard_normal(12000) * 0.2).astype(np.float32)
    fp32 = load_model(small_pack, device="cpu").infer(clip)
    int8 = load_model(small_pack, device="cpu", precision="int8").infer(clip)
    assert int8.result.shape == fp32.result.shape
    rel = np.sqrt(((int8.result - fp32.result) ** 2).mean()) / fp32.result.std()
    assert 0 < rel < 0.05
