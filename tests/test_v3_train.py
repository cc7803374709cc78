"""Training the v3.0 diffusion network (spec v3 section 5) on several identities, deploying its folder."""

from __future__ import annotations

import numpy as np
import pytest

from facecast.train.config import ConfigError, parse_config
from facecast.train.diffusion_data import frames_at, load_diffusion_data, segment
from facecast.train.synthetic import make_synthetic_dataset

pytest.importorskip("torch")

TINY = {"audio_dim": 16, "skin_embed": 16, "tongue_embed": 6, "jaw_embed": 6, "eyes_embed": 4, "step_dim": 8,
        "identity_dim": 4, "emotion_dim": 4, "gru_hidden": 12, "skin_head": 16, "tongue_head": 8, "jaw_head": 8,
        "eyes_head": 8}  # fmt: skip
SCALE = [1.1, 0.95, 1.0]


def tiny_config(root, work, **diffusion):
    section = {"identities": [{"name": "Claire"}, {"name": "James", "scale": SCALE}], "hubert": "tiny",
               "sizes": TINY, "windows": 2, "batch_size": 2, "grad_accum": 1, "lr": 1e-2, "steps": 40,
               "timesteps": "sampler", "muted_seconds": 0.5}  # fmt: skip
    section.update(diffusion)
    data = {
        "dataset": {"root": str(root), "actor": "synth"},
        "network": {"kind": "diffusion"},
        "diffusion": section,
        "train": {"out_dir": str(work / "train"), "threads": 2, "log_every": 10, "checkpoint_every": 1000},
        "deploy": {"out_dir": str(work / "deploy")},
    }
    return parse_config(data, "<test>", work)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("v3ds") / "ds", num_shots=3, seconds=1.6, seed=2)


def test_identities_derived_by_scale(dataset, tmp_path):
    data = load_diffusion_data(tiny_config(dataset, tmp_path))
    assert data.names == ["Claire", "James"]
    claire, james = data.identities
    skin = data.skin_size
    assert len(claire.shots) == 4 and claire.shots[-1].name == "muted"  # 3 shots + the muted one
    a = claire.model_data["neutral_skin"].reshape(-1, 3)
    b = james.model_data["neutral_skin"].reshape(-1, 3)
    assert np.allclose(b, a * SCALE)
    da, db = claire.shots[0].targets, james.shots[0].targets
    assert np.abs(da[:, :skin]).max() > 0 and np.allclose(
        db[:, :skin].reshape(len(db), -1, 3), da[:, :skin].reshape(len(da), -1, 3) * SCALE, atol=1e-5
    )
    assert np.allclose(db[:, -4:], da[:, -4:])  # eye rotations are angles: unscaled
    assert np.allclose(james.bs_skin.deltas, claire.bs_skin.deltas * SCALE)
    assert not claire.shots[-1].targets.any()


def test_frames_at_60_fps_and_segments(dataset, tmp_path):
    shot = load_diffusion_data(tiny_config(dataset, tmp_path)).identities[0].shots[0]
    frames = frames_at(shot, 30.0, np.array([-3, 0, 1, 2, shot.native_frames]))
    assert not frames[0].any() and not frames[-1].any()  # outside the clip: the neutral face
    assert np.allclose(frames[1], shot.targets[0]) and np.allclose(frames[3], shot.targets[1])
    assert np.allclose(frames[2], (shot.targets[0] + shot.targets[1]) / 2)
    seg = segment(shot, 30, 2)  # kept frames 30..89: windows from sample 30 * 800 / 3 - 4000 = 4000
    assert np.array_equal(seg[0], shot.audio[4000:20000]) and np.array_equal(seg[1, :8000], shot.audio[12000:20000])
    assert not seg[1, len(shot.audio) - 12000 :].any()


def test_train_deploy_animate_two_identities(dataset, tmp_path):
    import facecast
    from facecast.pack_v3 import load_diffusion_pack
    from facecast.train.pipeline import run_deploy, run_train

    cfg = tiny_config(dataset, tmp_path)
    result = run_train(cfg)
    losses = _losses(result.checkpoint)
    assert result.steps == 40 and len(losses) == 40 and np.isfinite(losses).all()
    before, after = result.summary["held_loss_before"], result.summary["held_loss_after"]
    assert after < 0.75 * before  # the loss on fixed segments, noise and steps falls (to 0.54-0.62 in trials)
    out = run_deploy(cfg)
    pack = load_diffusion_pack(out)
    assert pack.identity_names == ["Claire", "James"] and pack.info.skin_size == load_diffusion_data(cfg).skin_size
    audio = (0.2 * np.sin(np.arange(24000) / 16000 * 2 * np.pi * 220)).astype(np.float32)
    anims = {n: facecast.load_model(out, identity=n).animate(audio, fps=30, blinks=False) for n in pack.identity_names}
    for anim in anims.values():
        assert anim.skin_weights.shape == (45, 52) and np.isfinite(anim.skin_weights).all()
    raw = {n: facecast.load_model(out, identity=n).infer(audio, fps=60).result for n in pack.identity_names}
    assert np.abs(raw["Claire"]).max() > 0 and np.abs(raw["Claire"] - raw["James"]).max() > 1e-6
    resumed = run_train(tiny_config(dataset, tmp_path, steps=42), resume=True)  # continues from step 40
    assert resumed.steps == 42 and len(_losses(resumed.checkpoint)) == 42


def _losses(path):
    from facecast.train.diffusion_train import load_diffusion_checkpoint

    return load_diffusion_checkpoint(path).losses


def test_diffusion_config_errors():
    with pytest.raises(ConfigError, match="network.kind"):
        parse_config({"network": {"kind": "gan"}})
    with pytest.raises(ConfigError, match="distinct"):
        parse_config({"diffusion": {"identities": [{"name": "A"}, {"name": "a"}]}})
    with pytest.raises(ConfigError, match=r"identities\[0\]"):
        parse_config({"diffusion": {"identities": [{"name": "A", "scale": [1, 0, 1]}]}})


def test_cli_train_deploy_and_fine_tune(dataset, tmp_path, capsys):
    """``facecast preprocess | train | deploy CONFIG`` with ``network.kind = "diffusion"``; ``eval`` is refused;
    ``diffusion.init_from`` starts from a deployed folder's weights."""
    from facecast.cli import main
    from facecast.pack_v3 import load_diffusion_pack

    text = f"""
[dataset]
root = "{dataset}"
[network]
kind = "diffusion"
[diffusion]
hubert = "tiny"
steps = 3
lr = 0.01
windows = 1
grad_accum = 1
identities = [{{name = "Ada"}}, {{name = "Bo", scale = [0.9, 1.0, 1.1]}}]
[diffusion.sizes]
{chr(10).join(f"{k} = {v}" for k, v in TINY.items())}
[train]
threads = 2
[deploy]
out_dir = "v3"
"""
    config = tmp_path / "v3.toml"
    config.write_text(text)
    assert main(["preprocess", str(config)]) == 0
    assert "2 identities (Ada, Bo), 6 shots" in capsys.readouterr().out
    assert main(["train", str(config)]) == 0
    assert "trained 3 steps" in capsys.readouterr().out
    assert main(["deploy", str(config)]) == 0
    assert load_diffusion_pack(tmp_path / "v3").identity_names == ["Ada", "Bo"]
    assert main(["eval", str(config)]) == 2
    assert "evaluate-lipsync" in capsys.readouterr().err
    from facecast.train.config import load_config
    from facecast.train.diffusion_data import load_diffusion_data
    from facecast.train.diffusion_train import DiffusionLoss, build_network, held_loss, load_diffusion_checkpoint

    cfg = load_config(config)
    data = load_diffusion_data(cfg)
    trained = load_diffusion_checkpoint(tmp_path / "runs" / "train" / "checkpoints" / "latest.pt").network
    fresh = build_network(cfg, data)
    cfg.diffusion.init_from = tmp_path / "v3"
    tuned = build_network(cfg, data)  # NVIDIA's folder layout in, the same weights out
    loss = DiffusionLoss(cfg, data, tuned.cfg, tuned.delta_scale.numpy())
    reference = held_loss(trained, loss, data, cfg)
    assert held_loss(tuned, loss, data, cfg) == pytest.approx(reference, rel=1e-4)
    assert abs(held_loss(fresh, loss, data, cfg) - reference) > 0.01 * reference


def test_hubert_checkpoint_in_hugging_face_layout(tmp_path):
    """A HuBERT state dict named as Hugging Face's (weight-normed positional conv) loads to the same outputs."""
    import torch

    from facecast.network.hubert import HubertConfig, HubertModel
    from facecast.train.hubert_weights import load_hubert_checkpoint

    torch.manual_seed(0)
    source = HubertModel(HubertConfig.tiny()).eval()
    names = {"conv_layers.": "feature_extractor.conv_layers.", "projection_norm.": "feature_projection.layer_norm.",
             "projection.": "feature_projection.projection.", "encoder_norm.": "encoder.layer_norm.",
             "layers.": "encoder.layers.", "pos_conv.": "encoder.pos_conv_embed.conv."}  # fmt: skip
    hf = {"hubert.masked_spec_embed": torch.zeros(16)}
    for key, value in source.state_dict().items():
        prefix = next(p for p in names if key.startswith(p))
        name = "hubert." + names[prefix] + key[len(prefix) :]
        for dense in ("intermediate_dense", "output_dense"):
            name = name.replace(f".{dense}.", f".feed_forward.{dense}.")
        if key == "pos_conv.weight":
            g = value.norm(dim=(0, 1), keepdim=True)
            hf[name.replace("weight", "weight_g")], hf[name.replace("weight", "weight_v")] = g, value / g * 3.0
        else:
            hf[name] = value
    torch.save(hf, tmp_path / "pytorch_model.bin")
    target = load_hubert_checkpoint(HubertModel(HubertConfig.tiny()).eval(), tmp_path / "pytorch_model.bin")
    audio = torch.randn(2, 16000)
    with torch.no_grad():
        assert torch.allclose(target(audio), source(audio), atol=1e-5)
    del hf["hubert.encoder.layer_norm.bias"]
    torch.save(hf, tmp_path / "partial.bin")
    with pytest.raises(ValueError, match="encoder_norm.bias"):
        load_hubert_checkpoint(HubertModel(HubertConfig.tiny()), tmp_path / "partial.bin")


def test_example_config():
    from pathlib import Path

    from facecast.train.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[1] / "examples" / "train_v3_config.toml")
    assert cfg.network.kind == "diffusion" and [i.name for i in cfg.diffusion.identities] == ["Claire", "Wide", "Tall"]
    assert cfg.diffusion.identities[2].scale == [0.95, 1.07, 1.02]


def test_pitch_shift_keeps_length_and_moves_the_pitch():
    from facecast.train.diffusion_data import pitch_shift

    t = np.arange(24000) / 16000
    tone = np.sin(2 * np.pi * 220 * t).astype(np.float32)
    for semitones in (2.0, -2.0):
        shifted = pitch_shift(tone, semitones)
        assert shifted.shape == tone.shape
        spectrum = np.abs(np.fft.rfft(shifted[4000:20000] * np.hanning(16000)))
        assert np.fft.rfftfreq(16000, 1 / 16000)[spectrum.argmax()] == pytest.approx(220 * 2 ** (semitones / 12), abs=2)
    assert pitch_shift(tone, 0.0) is tone
