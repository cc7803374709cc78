"""The v3.0 network in torch: parameter count, ONNX export with NVIDIA's interface, ORT parity, weight import
(named and anonymous), and the batched track path against the graph run window by window."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from facecast.infer.diffusion import TorchDiffusionRunner
from facecast.model import load_model
from facecast.models.testing_v3 import make_v3_pack, tiny_network
from facecast.network.diffusion import DiffusionConfig, count_parameters
from facecast.network.onnx_v3 import INPUTS, OUTPUTS, OnnxV3ImportError, dummy_inputs, export_v3_onnx, import_v3_onnx

NVIDIA_PARAMETERS = 179_664_830


def test_default_configuration_has_nvidias_parameter_count():
    count = count_parameters()  # on the meta device: nothing allocated
    assert abs(count - NVIDIA_PARAMETERS) <= 0.001 * NVIDIA_PARAMETERS
    assert count_parameters(DiffusionConfig(skin_size=72009)) - count == 3 * 512 + 3 * 512 + 3


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    net = tiny_network(seed=5)
    return net, export_v3_onnx(net, tmp_path_factory.mktemp("net") / "network.onnx")


def _inputs(cfg, batch, seed):
    rng = np.random.default_rng(seed)
    arrays = [t.numpy() for t in dummy_inputs(cfg, batch)]
    arrays[0] = (rng.standard_normal(arrays[0].shape) * 0.3).astype(np.float32)
    arrays[1] = np.eye(cfg.num_identities, dtype=np.float32)[rng.integers(0, cfg.num_identities, batch)]
    arrays[2] = rng.uniform(0, 1, arrays[2].shape).astype(np.float32)
    arrays[3] = rng.standard_normal(arrays[3].shape).astype(np.float32)
    arrays[4] = rng.standard_normal(arrays[4].shape).astype(np.float32)
    return arrays


def test_export_has_nvidias_interface_and_matches_torch(exported):
    net, path = exported
    model = onnx.load(str(path))
    assert model.opset_import[0].version == 14
    assert [i.name for i in model.graph.input] == list(INPUTS) and [o.name for o in model.graph.output] == list(OUTPUTS)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):  # the batch is dynamic
        arrays = _inputs(net.cfg, batch, batch)
        got = sess.run(None, dict(zip(INPUTS, arrays, strict=True)))
        with torch.no_grad():
            want = net(*map(torch.from_numpy, arrays))
        assert got[0].shape == (batch, 60, net.cfg.output_size) and got[1].shape == (2, 2, batch, net.cfg.gru_hidden)
        assert np.abs(got[0] - want[0].numpy()).max() < 1e-4 and np.abs(got[1] - want[1].numpy()).max() < 1e-4
        assert np.abs(want[0].numpy()).max() > 0.1  # the output is not trivially small


def test_import_recovers_the_weights_by_name_and_by_structure(exported, tmp_path):
    net, path = exported
    arrays = _inputs(net.cfg, 2, 9)
    with torch.no_grad():
        want = net(*map(torch.from_numpy, arrays))[0].numpy()
        named = import_v3_onnx(path)
        assert np.abs(named(*map(torch.from_numpy, arrays))[0].numpy() - want).max() < 1e-4
    model = onnx.load(str(path))  # anonymous weights, as in a constant-folded graph
    renamed = {}
    for i, tensor in enumerate(model.graph.initializer):
        renamed[tensor.name] = tensor.name = f"onnx::Anon_{i}"
    for node in model.graph.node:
        for j, name in enumerate(node.input):
            node.input[j] = renamed.get(name, name)
    anon = tmp_path / "anon.onnx"
    onnx.save(model, str(anon))
    with torch.no_grad():
        again = import_v3_onnx(anon)
        assert np.abs(again(*map(torch.from_numpy, arrays))[0].numpy() - want).max() < 1e-4
    sd, sd2 = net.state_dict(), again.state_dict()
    assert all(torch.equal(sd[k], sd2[k]) for k in sd)
    del model.graph.initializer[-1]
    onnx.save(model, str(anon))
    with pytest.raises(OnnxV3ImportError):
        import_v3_onnx(anon)


def test_torch_backend_and_batched_track_match_onnx_runtime(tmp_path):
    pack = make_v3_pack(tmp_path / "pack", seed=2)
    rng = np.random.default_rng(4)
    audio = (rng.standard_normal(16000 * 3 + 77) * 0.2).astype(np.float32)
    onnx_raw = load_model(pack, identity="Mark").infer(audio, fps=60).result
    torch_model = load_model(pack, identity="Mark", backend="torch")
    assert isinstance(torch_model.engine.runner, TorchDiffusionRunner)
    batched = torch_model.infer(audio, fps=60).result  # all windows at once: HuBERT, embeddings, heads batched
    streamed = torch_model.stream(fps=60)  # window by window through forward
    parts = [streamed.push(audio[i : i + 5000]) for i in range(0, len(audio), 5000)] + [streamed.close()]
    stepwise = np.concatenate([p.result for p in parts])
    assert np.abs(batched - onnx_raw).max() < 1e-4 and np.abs(stepwise - onnx_raw).max() < 1e-4
