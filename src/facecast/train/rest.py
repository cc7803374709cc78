"""Rest centring: make a trained network output the character's neutral for silence (a facecast deploy option).

A regression network trained on a corpus whose pauses rest at the neutral still answers silence with a small pose
of its own (the mean of what it could not fit): on the default model the lips sat 0.12 mm apart from the neutral
in every pause. Rest centring removes that pose from the network's output biases, so that a buffer of digital
silence with the deployed emotion input (the source shot's frame, no explicit emotion) gives exactly zero skin,
tongue and jaw coefficients: the neutral face. Every other output moves by the same constant, so correlations and
contrasts are unchanged; the eye columns are left alone (the gaze has no rest pose to centre on).

The shift lives in the ONNX graph's own biases, so a centred pack runs unchanged in the SDK and everywhere else.
"""

from __future__ import annotations

import numpy as np
import torch

from facecast.network.regression import RegressionNetwork


def rest_output(network: RegressionNetwork, emotion: np.ndarray) -> np.ndarray:
    """The network's result [D] for one buffer of digital silence with the emotion input ``emotion`` [E]."""
    param = next(network.parameters())
    audio = torch.zeros(1, 1, network.cfg.buffer_len, dtype=param.dtype, device=param.device)
    row = torch.as_tensor(np.asarray(emotion, np.float32), dtype=param.dtype, device=param.device).reshape(1, 1, -1)
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            out = network(audio, row)
    finally:
        network.train(was_training)
    return out[0, 0].detach().cpu().double().numpy()


def centre_rest(network: RegressionNetwork, emotion: np.ndarray) -> np.ndarray:
    """Shift ``network``'s output biases (in place) so that silence with ``emotion`` gives zero skin, tongue and
    jaw coefficients; returns the offset removed [D] (zeros in the eye columns)."""
    cfg = network.cfg
    offset = rest_output(network, emotion)
    offset[cfg.result_size - cfg.eyes_size :] = 0.0
    skin, tongue = cfg.num_shapes_skin, cfg.num_shapes_tongue
    skin_jaw_eyes = np.concatenate([offset[:skin], offset[skin + tongue :]])
    with torch.no_grad():
        for bias, shift in (
            (network.out_mapping1.bias, skin_jaw_eyes),
            (network.out_mapping1_tongue.bias, offset[skin : skin + tongue]),
        ):
            bias -= torch.as_tensor(shift, dtype=bias.dtype, device=bias.device)
    return offset


def deployed_emotion(emotion_table: np.ndarray, row: int, explicit_len: int) -> np.ndarray:
    """The emotion input a deployed pack feeds its network by default: the learned implicit row of the source
    frame, then ``explicit_len`` zeros (no explicit emotion)."""
    implicit = np.asarray(emotion_table[row], np.float32).reshape(-1)
    return np.concatenate([implicit, np.zeros(explicit_len, np.float32)])
