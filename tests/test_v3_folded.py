"""The v3.0 network with its constant noise folded in: the same prediction as the network, in torch and through
ONNX Runtime, for 2- and 3-step samplers, and the same frames from a folder's folded copy."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from facecast.infer.diffusion import NoiseOptions
from facecast.model import load_model
from facecast.models.diffusion import load_diffusion_model
from facecast.models.testing_v3 import make_v3_pack, tiny_network
from facecast.network.diffusion import DiffusionNetwork
from facecast.network.diffusion_folded import FoldedDiffusion


def _random_network(steps: tuple[int, ...]) -> DiffusionNetwork:
    return tiny_network(seed=1, sample_steps=steps)


@pytest.mark.parametrize("steps", [(999, 0), (999, 400, 0)])
def test_folded_equals_the_network(steps):
    net = _random_network(steps)
    cfg = net.cfg
    noise = torch.randn(1, cfg.num_steps + 1, cfg.frames, cfg.output_size)
    folded = FoldedDiffusion(net, noise)
    batch = 3
    window = torch.randn(batch, cfg.window) * 0.1
    identity = torch.eye(cfg.num_identities)[[0, 2, 1]]
    emotion = torch.rand(batch, cfg.center_frames, cfg.num_emotions)
    latents = torch.randn(cfg.num_steps, cfg.gru_layers, batch, cfg.gru_hidden)
    with torch.no_grad():
        full, states = net(window, identity, emotion, latents, noise.expand(batch, -1, -1, -1))
        got, got_states = folded(window, identity, emotion, latents)
    centre = full[:, cfg.left_truncate : cfg.left_truncate + cfg.center_frames]
    assert got.shape == centre.shape and centre.abs().max() > 0.1
    torch.testing.assert_close(got, centre, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_states, states, atol=1e-6, rtol=1e-6)
    other = FoldedDiffusion(net, torch.randn_like(noise))  # the noise is really folded in
    with torch.no_grad():
        assert (other(window, identity, emotion, latents)[0] - got).abs().max() > 1e-4  # (the fold: 2e-7)


def test_folded_folder_gives_the_same_frames(tmp_path, monkeypatch):
    monkeypatch.setenv("FACECAST_CACHE", str(tmp_path / "cache"))
    pack = make_v3_pack(tmp_path / "pack", seed=8)
    rng = np.random.default_rng(3)
    audio = (0.2 * rng.standard_normal(16000 * 2 + 777)).astype(np.float32)
    for identity, seed in (("James", 0), ("Mark", 5)):
        plain = load_diffusion_model(type(load_model(pack)), pack, identity, seed=seed)
        folded = load_diffusion_model(type(plain), pack, identity, seed=seed, folded=True)
        assert not folded.backend.takes_noise
        ref, got = plain.infer(audio, fps=60).result, folded.infer(audio, fps=60).result
        assert ref.shape == got.shape
        np.testing.assert_allclose(got, ref, atol=2e-5, rtol=1e-5)
    graphs = sorted((tmp_path / "cache" / "v3fold").glob("*.onnx"))
    assert len(graphs) == 2  # one per noise seed, kept in the cache
    assert [i.name for i in onnx.load(str(graphs[0])).graph.input] == ["window", "identity", "emotion", "input_latents"]
    with pytest.raises(ValueError, match="constant noise"):
        load_diffusion_model(type(plain), pack, folded=True, constant_noise=False)
    from facecast.infer.diffusion import NoiseOptions

    with pytest.raises(ValueError, match="seed 5 built in"):  # a folded engine never runs other noise silently
        folded.engine.with_options(noise=NoiseOptions(seed=5, constant=False))
    with pytest.raises(ValueError, match="seed 5 built in"):
        folded.engine.with_options(noise=NoiseOptions(seed=6))


def test_a_fold_that_does_not_reproduce_the_network_is_refused(tmp_path, monkeypatch):
    """A wrong weight import (as a mismatched anonymous initializer would give) is caught before anything runs."""
    from facecast.models import diffusion as models_diffusion
    from facecast.network import onnx_v3
    from facecast.pack_v3 import load_diffusion_pack

    monkeypatch.setenv("FACECAST_CACHE", str(tmp_path / "cache"))
    pack = make_v3_pack(tmp_path / "pack", seed=2)
    real_import = onnx_v3.import_v3_onnx

    def wrong_import(path, sizes=None):
        net = real_import(path, sizes)
        with torch.no_grad():
            net.skin_out[-1].weight.mul_(1.01)
        return net

    monkeypatch.setattr(onnx_v3, "import_v3_onnx", wrong_import)
    with pytest.raises(models_diffusion.FoldError, match="not imported faithfully"):
        models_diffusion.folded_network(load_diffusion_pack(pack))
    assert not list((tmp_path / "cache" / "v3fold").glob("*"))
    monkeypatch.setattr(onnx_v3, "import_v3_onnx", real_import)
    path = models_diffusion.folded_network(load_diffusion_pack(pack))
    assert path.is_file() and models_diffusion.check_folded(load_diffusion_pack(pack), path, _noise(pack)) < 1e-5


def _noise(pack):
    from facecast.infer.diffusion import NoiseOptions, NoiseSource
    from facecast.pack_v3 import load_diffusion_pack

    info = load_diffusion_pack(pack).info
    shape = (1, info.num_diffusion_steps + 1, info.frames_per_window, info.output_size)
    return NoiseSource(shape, NoiseOptions()).next()


def test_fold_option_reaches_every_command(tmp_path, monkeypatch):
    from facecast.audio import save_wav
    from facecast.cli import main
    from facecast.server import ConfigError, ServerConfig, serve

    monkeypatch.setenv("FACECAST_CACHE", str(tmp_path / "cache"))
    pack = make_v3_pack(tmp_path / "pack", seed=4)
    audio = (0.2 * np.random.default_rng(1).standard_normal(20000)).astype(np.float32)
    save_wav(tmp_path / "a.wav", audio)
    outs = {}
    for flag in ("--fold", "--no-fold"):
        assert main(["animate", str(tmp_path / "a.wav"), "-m", str(pack), "-o", str(tmp_path / flag),
                     "--formats", "npz", "--no-blinks", flag]) == 0  # fmt: skip
        with np.load(tmp_path / flag / "a.npz") as data:
            outs[flag] = data["raw_result"].copy()
    np.testing.assert_allclose(outs["--fold"], outs["--no-fold"], atol=2e-5)
    assert len(list((tmp_path / "cache" / "v3fold").glob("*.onnx"))) == 1
    with serve(ServerConfig(port=0, model=str(pack), fold=True)) as srv:
        assert not srv.model.backend.takes_noise
    with pytest.raises(ValueError, match="v3.0 diffusion folders only"):
        load_model(None, fold=True)
    with pytest.raises(ConfigError, match="v3.0 diffusion models only"):
        serve(ServerConfig(port=0, fold=True))


def test_noise_options_reach_every_command(tmp_path, monkeypatch):
    """--noise-seed and --fresh-noise (the SDK's per-window noise) on animate; the server's noise settings."""
    from facecast.audio import save_wav
    from facecast.cli import main
    from facecast.server import ConfigError, ServerConfig, serve

    monkeypatch.setenv("FACECAST_CACHE", str(tmp_path / "cache"))
    pack = make_v3_pack(tmp_path / "pack", seed=4)
    save_wav(tmp_path / "a.wav", (0.2 * np.random.default_rng(1).standard_normal(20000)).astype(np.float32))
    runs = {"seed0": [], "seed3": ["--noise-seed", "3"], "seed3again": ["--noise-seed", "3", "--no-fold"],
            "fresh": ["--fresh-noise"]}  # fmt: skip
    raw = {}
    for name, flags in runs.items():
        assert main(["animate", str(tmp_path / "a.wav"), "-m", str(pack), "-o", str(tmp_path / name),
                     "--formats", "npz", "--no-blinks", *flags]) == 0  # fmt: skip
        with np.load(tmp_path / name / "a.npz") as data:
            raw[name] = data["raw_result"].copy()
    np.testing.assert_allclose(raw["seed3"], raw["seed3again"], atol=2e-5)  # folded or not, the seed's frames
    assert np.abs(raw["seed3"] - raw["seed0"]).max() > 1e-4 and np.abs(raw["fresh"] - raw["seed0"]).max() > 1e-4
    with serve(ServerConfig(port=0, model=str(pack), noise_seed=3, constant_noise=False)) as srv:
        assert srv.model.engine.noise_options == NoiseOptions(3, False) and srv.model.backend.takes_noise
    with pytest.raises(ConfigError, match="noise settings apply to v3.0"):
        serve(ServerConfig(port=0, noise_seed=3))
    with pytest.raises(ConfigError, match="noise_seed"):
        ServerConfig(noise_seed=-1).validate()
