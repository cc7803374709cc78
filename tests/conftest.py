"""Shared fixtures: packs made by code (random weights, exported by facecast's own exporter)."""

from __future__ import annotations

import warnings

import pytest

warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch.onnx")


@pytest.fixture(scope="session")
def small_pack(tmp_path_factory):
    """A complete 1-layer official-layout pack on a small mesh."""
    from facecast.testing import make_pack

    return make_pack(tmp_path_factory.mktemp("small_pack"), num_layers=1, seed=1)


@pytest.fixture(scope="session")
def small_model(small_pack):
    from facecast import load_model

    return load_model(small_pack, device="cpu", threads=2)
