"""Shared fixtures: packs made by code (random weights, exported by facecast's own exporter)."""

from __future__ import annotations

import warnings

import pytest

warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch.onnx")


@pytest.fixture(scope="session")
def small_pack(tmp_path_factory):
    """A complete 1-layer official-layout pack on a small mesh."""
    from facecast.models.testing import make_pack

    return make_pack(tmp_path_factory.mktemp("small_pack"), num_layers=1, seed=1)


@pytest.fixture(scope="session")
def small_model(small_pack):
    from facecast import load_model

    return load_model(small_pack, device="cpu", threads=2)


@pytest.fixture(scope="session")
def chunk_pack(tmp_path_factory):
    """A 1-layer Whisper-encoder pack (70 ms look-ahead) with a chunk network for up to 4 frames per pass."""
    import torch

    from facecast.models.testing import make_pack
    from facecast.network.regression import NetworkConfig, RegressionNetwork

    torch.manual_seed(3)
    cfg = NetworkConfig(encoder="whisper", num_layers=1, num_shapes_skin=12, num_shapes_tongue=4, buffer_ofs=7200,
                        chunk_frames=4)  # fmt: skip
    return make_pack(tmp_path_factory.mktemp("chunk_pack"), network=RegressionNetwork(cfg).eval(), seed=3)
