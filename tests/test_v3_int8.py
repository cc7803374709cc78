"""int8 for v3.0 folders: the dynamic-int8 copy is built once, measured against fp32 on held-out speech of every
identity, cached with its report, and refused (fp32 runs, with a warning) above the limit."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from facecast.emotion import EmotionTrack
from facecast.infer import quantize_v3
from facecast.infer.diffusion import DiffusionEngine, NoiseOptions, OnnxDiffusionRunner
from facecast.infer.quantize import _speech
from facecast.model import load_model
from facecast.models.testing_v3 import make_v3_pack
from facecast.pack_v3 import load_diffusion_pack


@pytest.fixture(scope="module")
def pack_dir(tmp_path_factory):
    return make_v3_pack(tmp_path_factory.mktemp("v3q") / "pack", seed=6)


@pytest.fixture
def every_matmul(monkeypatch, tmp_path):
    """The tiny network's layers are all small: quantise every MatMul with a constant weight; a fresh cache."""
    monkeypatch.setattr(quantize_v3, "MIN_WEIGHT", 0)
    monkeypatch.setattr(quantize_v3, "HELD_OUT_SECONDS", 2.0)
    monkeypatch.setenv("FACECAST_CACHE", str(tmp_path / "cache"))


def test_int8_copy_is_built_measured_and_cached(pack_dir, every_matmul, monkeypatch):
    monkeypatch.setattr(quantize_v3, "LIMIT", 1.0)
    model = load_model(pack_dir, precision="int8", identity="Mark", fold=False)  # (the folded copy: test_v3_folded)
    pack = load_diffusion_pack(pack_dir)
    report = quantize_v3.int8_diffusion_report(pack)
    assert report["status"] == "built" and report["int8_layers"] > 0 and 0 < report["int8_weight_fraction"] <= 1
    graph = quantize_v3._paths(pack.network_path)[1]
    ops = {node.op_type for node in onnx.load(str(graph)).graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops
    # the stored error, computed again here from the two graphs on the same held-out speech
    refs, gots = [], []
    for index in range(3):
        audio = _speech(2.0, 2 + index)
        emotion = np.zeros(10, np.float32)
        emotion[index] = 0.8
        track = EmotionTrack().add(0.0, np.zeros(10, np.float32)).add(1.0, emotion)
        for path, out in ((pack.network_path, refs), (graph, gots)):
            engine = DiffusionEngine(OnnxDiffusionRunner(path, device="cpu"), pack.info, index, 1.0, NoiseOptions())
            out.append(engine.run(audio, 60.0, track).result)
    ref, got = np.concatenate(refs), np.concatenate(gots)
    expected = np.sqrt(((got - ref) ** 2).mean()) / ref.std()
    assert report["error"] == pytest.approx(expected, rel=1e-3, abs=1e-5) and report["error"] > 0
    assert quantize_v3.describe_v3(report).startswith(f"{report['error']:.2%} error (built")
    # the int8 model animates, and a second load reuses the cache
    stamp = graph.stat().st_mtime_ns
    anim = model.animate(audio, blinks=False)
    assert np.isfinite(anim.skin_weights).all()
    load_model(pack_dir, precision="int8", fold=False)
    assert graph.stat().st_mtime_ns == stamp


def test_int8_copy_above_the_limit_is_refused(pack_dir, every_matmul, monkeypatch, capsys):
    monkeypatch.setattr(quantize_v3, "LIMIT", 0.0)
    model = load_model(pack_dir, precision="int8", fold=False)
    assert "refused" in capsys.readouterr().err
    report = quantize_v3.int8_diffusion_report(load_diffusion_pack(pack_dir))
    assert report["status"] == "refused" and report["error"] > 0
    assert not quantize_v3._paths(model.pack.network_path)[1].exists()
    audio = _speech(1.0, 5)
    fp32 = load_model(pack_dir, fold=False).infer(audio).result
    np.testing.assert_array_equal(model.infer(audio).result, fp32)  # fp32 runs instead
    with pytest.raises(ValueError, match="unknown precision"):
        load_model(pack_dir, precision="int4")


def test_fp16_copy_for_gpus_is_measured_the_same_way(pack_dir, every_matmul, monkeypatch):
    """fp16 is wired for CUDA; here its copy is built and measured on the CPU provider (the device it would run on
    is named in the report)."""
    monkeypatch.setattr(quantize_v3, "LIMIT", 1.0)
    pack = load_diffusion_pack(pack_dir)
    path = quantize_v3.int8_diffusion_network(pack, precision="fp16", device="cpu")
    report = quantize_v3.int8_diffusion_report(pack, precision="fp16")
    assert path != pack.network_path and report["precision"] == "fp16" and report["measured_on"] == "cpu"
    types = {t.data_type for t in onnx.load(str(path)).graph.initializer}
    assert onnx.TensorProto.FLOAT16 in types
    assert 0 < report["error"] < 0.02  # half precision on a tiny network: rounding only
    with pytest.raises(ValueError, match="for GPUs"):
        load_model(pack_dir, precision="fp16", device="cpu")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(ValueError, match="no CUDA provider"):
            load_model(pack_dir, precision="fp16")  # auto on a machine without a GPU
    with pytest.raises(ValueError, match="v3.0 folders on a GPU"):
        load_model(None, precision="fp16")
