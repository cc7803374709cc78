"""Rest centring: silence with the deployed emotion gives the neutral face; every other output moves by a constant."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facecast.network.regression import NetworkConfig, RegressionNetwork
from facecast.train.rest import centre_rest, deployed_emotion, rest_output


def _network() -> RegressionNetwork:
    torch.manual_seed(5)
    net = RegressionNetwork(NetworkConfig(num_layers=1, num_shapes_skin=5, num_shapes_tongue=2)).eval()
    with torch.no_grad():  # a rest pose far from zero, as a trained network has
        net.out_mapping1.bias.add_(0.5)
        net.out_mapping1_tongue.bias.sub_(0.3)
    return net


def _run(net: RegressionNetwork, audio: np.ndarray, emotion: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = net(torch.from_numpy(audio).reshape(1, 1, -1), torch.from_numpy(emotion).reshape(1, 1, -1))
    return out[0, 0].double().numpy()


def test_centring_zeroes_silence_and_shifts_other_outputs_by_the_offset():
    net = _network()
    cfg = net.cfg
    rng = np.random.default_rng(0)
    emotion = rng.normal(size=cfg.emotion_len).astype(np.float32)
    speech = (0.1 * rng.normal(size=cfg.buffer_len)).astype(np.float32)
    other = rng.normal(size=cfg.emotion_len).astype(np.float32)
    silence = np.zeros(cfg.buffer_len, np.float32)
    before = {key: _run(net, a, e) for key, (a, e) in
              {"rest": (silence, emotion), "speech": (speech, emotion), "other": (silence, other)}.items()}  # fmt: skip
    eyes = slice(cfg.result_size - cfg.eyes_size, None)
    assert np.abs(before["rest"][: eyes.start]).max() > 0.1

    offset = centre_rest(net, emotion)

    assert np.allclose(offset[: eyes.start], before["rest"][: eyes.start]) and np.all(offset[eyes] == 0)
    after = rest_output(net, emotion)
    assert np.abs(after[: eyes.start]).max() < 1e-5  # skin, tongue and jaw at the neutral
    assert np.allclose(after[eyes], before["rest"][eyes])  # the gaze is left alone
    for key in ("speech", "other"):  # a constant shift: speech keeps every contrast
        assert np.allclose(_run(net, *{"speech": (speech, emotion), "other": (silence, other)}[key]),
                           before[key] - offset, atol=1e-5)  # fmt: skip
    assert np.abs(rest_output(net, emotion)[: eyes.start]).max() < 1e-5  # centring is idempotent in effect
    assert np.allclose(centre_rest(net, emotion), 0.0, atol=1e-5)


def test_deployed_emotion_is_the_source_row_then_no_explicit_emotion():
    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    row = deployed_emotion(table, 2, 10)
    assert row.tolist() == [6.0, 7.0, 8.0] + [0.0] * 10
    with pytest.raises(IndexError):
        deployed_emotion(table, 4, 10)
