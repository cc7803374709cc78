"""The regression network: parameter counts, ONNX export under ONNX Runtime, and import of official-style graphs."""

from __future__ import annotations

import random

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from facecast.network.onnx_io import OnnxImportError, export_onnx, import_onnx
from facecast.network.regression import NetworkConfig, RegressionNetwork, count_parameters
from facecast.network.wav2vec2 import num_feature_frames


def test_parameter_counts_match_official_networks():
    claire = count_parameters(RegressionNetwork(NetworkConfig.claire()))
    mark = count_parameters(RegressionNetwork(NetworkConfig.mark()))
    assert abs(claire - 39_440_199) / 39_440_199 < 1e-3
    assert abs(mark - 18_273_204) / 18_273_204 < 1e-3


def test_window_gives_25_feature_frames():
    assert num_feature_frames(8320) == 25


def test_output_layout_and_shape():
    net = RegressionNetwork(NetworkConfig(num_layers=1, num_shapes_skin=7, num_shapes_tongue=3)).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 1, 8320), torch.zeros(2, 1, 26))
        two = net(torch.randn(3, 2, 8320), torch.zeros(3, 2, 26))
    assert out.shape == (2, 1, 7 + 3 + 15 + 4)
    assert two.shape == (3, 2, 29)


def test_frames_are_independent_of_batch_neighbours():
    net = RegressionNetwork(NetworkConfig(num_layers=1, num_shapes_skin=5, num_shapes_tongue=2)).eval()
    x, e = torch.randn(4, 1, 8320), torch.randn(4, 1, 26)
    with torch.no_grad():
        full = net(x, e)
        single = torch.cat([net(x[i : i + 1], e[i : i + 1]) for i in range(4)])
    assert torch.allclose(full, single, atol=1e-5)


def test_emotion_changes_output():
    net = RegressionNetwork(NetworkConfig(num_layers=1, num_shapes_skin=5, num_shapes_tongue=2)).eval()
    x = torch.randn(1, 1, 8320)
    e0, e1 = torch.zeros(1, 1, 26), torch.zeros(1, 1, 26)
    e1[0, 0, 16 + 6] = 1.0  # joy
    with torch.no_grad():
        assert not torch.allclose(net(x, e0), net(x, e1))


def _perturbed(cfg: NetworkConfig, seed: int) -> RegressionNetwork:
    torch.manual_seed(seed)
    net = RegressionNetwork(cfg).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.02)
        net.autocorr.window.mul_(torch.linspace(0.9, 1.1, net.autocorr.window.numel()))  # not the default window
    return net


def _anonymise(src, dst, extra=("emo_linear1.weight", "autocorr.window")) -> int:
    """Rename every anonymous (and a few named) initializers to random numbers and shuffle their order."""
    model = onnx.load(str(src))
    rng = random.Random(7)
    renamed = {}
    for init in model.graph.initializer:
        if init.name.startswith("onnx::") or init.name in extra:
            renamed[init.name] = str(rng.randint(2000, 99999))
            init.name = renamed[init.name]
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name in renamed:
                node.input[i] = renamed[name]
    inits = list(model.graph.initializer)
    rng.shuffle(inits)
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)
    onnx.save(model, str(dst))
    return len(renamed)


@pytest.mark.parametrize("num_layers", [1, 4])
def test_torch_onnx_and_reimport_agree(tmp_path, num_layers):
    cfg = NetworkConfig(num_layers=num_layers, num_shapes_skin=16, num_shapes_tongue=4)
    net = _perturbed(cfg, seed=num_layers)
    path = export_onnx(net, tmp_path / "network.onnx")
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["input", "emotion"]
    assert [o.name for o in model.graph.output] == ["result"]
    assert model.opset_import[0].version >= 14
    names = {i.name for i in model.graph.initializer}
    for official in ("combine_weights", "in_scale_autocorr", "freq1.weight", "time5.bias", "out_mapping1.weight",
                     "out_mapping1_tongue.bias", "audio_feature_map.bias",
                     "wave2vec_model.encoder.transformer.layers.0.attention.q_proj.bias"):  # fmt: skip
        assert official in names

    anon = tmp_path / "anon.onnx"
    assert _anonymise(path, anon) > 5
    back = import_onnx(anon)
    assert back.cfg.num_layers == num_layers and back.cfg.num_shapes_skin == 16

    rng = np.random.default_rng(num_layers)
    x = (rng.standard_normal((5, 1, 8320)) * 0.3).astype(np.float32)
    x[0, 0, :3000] = 0.0  # a window padded at the start of a clip
    e = rng.standard_normal((5, 1, 26)).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x), torch.from_numpy(e)).numpy()
        again = back(torch.from_numpy(x), torch.from_numpy(e)).numpy()
    session = ort.InferenceSession(str(anon), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {"input": x, "emotion": e})[0]
    assert onnx_out.shape == (5, 1, cfg.result_size)
    assert np.abs(ref - onnx_out).max() < 1e-4
    assert np.abs(ref - again).max() < 1e-4
    # the import found the (non-default) analysis window instead of falling back to the framework's
    assert torch.allclose(back.autocorr.window, net.autocorr.window)


def test_import_rejects_non_a2f_graph(tmp_path):
    lin = torch.nn.Linear(4, 2)
    path = tmp_path / "other.onnx"
    torch.onnx.export(lin, (torch.zeros(1, 4),), str(path), dynamo=False)
    with pytest.raises(OnnxImportError, match="not an Audio2Face regression graph"):
        import_onnx(path)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf at all" * 10)
    with pytest.raises(OnnxImportError, match="junk.onnx"):
        import_onnx(junk)


def test_import_reports_missing_weights(tmp_path):
    net = _perturbed(NetworkConfig(num_layers=1, num_shapes_skin=4, num_shapes_tongue=2), 3)
    path = export_onnx(net, tmp_path / "n.onnx")
    model = onnx.load(str(path))
    hidden = {"time3.weight": "mystery1", "time3.bias": "mystery2"}  # no named neighbour left to identify it by
    for init in model.graph.initializer:
        init.name = hidden.get(init.name, init.name)
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = hidden.get(name, name)
    onnx.save(model, str(tmp_path / "broken.onnx"))
    with pytest.raises(OnnxImportError, match="time3.weight"):
        import_onnx(tmp_path / "broken.onnx")


def test_load_checkpoint_state_folds_weight_norm():
    from facecast.network.wav2vec2 import Wav2Vec2Model

    src = Wav2Vec2Model(1)
    state = src.state_dict()
    w = state.pop("encoder.transformer.pos_conv_embed.conv.weight")
    g = w.norm(dim=(0, 1), keepdim=True) * 2.0
    state["encoder.transformer.pos_conv_embed.conv.weight_g"] = g
    state["encoder.transformer.pos_conv_embed.conv.weight_v"] = w
    dst = Wav2Vec2Model(1)
    dst.load_checkpoint_state(state)
    assert torch.allclose(dst.encoder.transformer.pos_conv_embed.conv.weight, 2.0 * w, atol=1e-6)
    with pytest.raises(ValueError, match="lacks"):
        Wav2Vec2Model(1).load_checkpoint_state({})


def test_flop_count_by_hand(tmp_path):
    from facecast.network.flops import count_flops

    paths = []
    for layers in (1, 2):
        net = RegressionNetwork(NetworkConfig(num_layers=layers, num_shapes_skin=8, num_shapes_tongue=2))
        paths.append(export_onnx(net, tmp_path / f"n{layers}.onnx"))
    one, two = (sum(count_flops(p).values()) for p in paths)
    # one transformer layer on 25 frames: q, k, v, out (768x768), FFN 768->3072->768, QK^T and AV over 12 heads
    per_layer = 4 * 2 * 25 * 768 * 768 + 2 * 2 * 25 * 768 * 3072 + 2 * (2 * 12 * 25 * 25 * 64)
    assert two - one == per_layer
    # the feature extractor's first convolution alone: 512 channels x 1663 frames x kernel 10
    assert count_flops(paths[0])["Conv"] > 2 * 512 * 1663 * 10
