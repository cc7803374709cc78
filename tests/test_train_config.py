"""Training configs: TOML loading, validation messages naming file and key, and the CLI wiring."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from facecast.train.config import ConfigError, load_config, parse_config

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_config.toml"


def test_example_config_loads_with_paths_resolved():
    cfg = load_config(EXAMPLE)
    assert cfg.network.encoder == "wav2vec2" and cfg.network.num_layers == 4
    assert cfg.train.lr == pytest.approx(2e-4) and cfg.train.lr_gamma == pytest.approx(0.994)
    assert cfg.train.losses.motion == 10.0 and cfg.train.losses.lip_distance == 100.0
    assert cfg.dataset.root == (EXAMPLE.parent.parent / "data" / "claire")
    assert cfg.deploy.model_config == {"input_strength": 1.0}


def test_relative_paths_and_defaults(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[dataset]\nroot = "ds"\n[train]\nmax_steps = 5\n[[train.muted_shots]]\nsource_shot = "a"\n')
    cfg = load_config(path)
    assert cfg.dataset.root == tmp_path / "ds"
    assert cfg.train.out_dir == tmp_path / "runs" / "train"  # defaults are relative to the config too
    assert cfg.train.muted_shots[0].frames == 120 and cfg.train.max_steps == 5


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[train]\nlr = 'fast'\n", "train.lr"),
        ("[train]\nbatchsize = 3\n", "train.batchsize"),
        ("[network]\nencoder = 'hubert'\n", "network.encoder"),
        ("[train.losses]\nmse = true\n", "train.losses.mse"),
        ("[[train.muted_shots]]\nframes = 3\n", "train.muted_shots[0].source_shot"),
        ("[network]\nbuffer_ofs = 9000\n", "network.buffer_ofs"),
        ("[dataset.emotions]\nshot1 = 'happy'\n", "dataset.emotions.shot1"),
        ("[train.refine]\nsteps = -1\n", "train.refine.steps"),
        ("[train.refine.losses]\nlip_gap = 3.0\n", "train.refine.losses.lip_gap"),
        ("[deploy]\ncentre_rest = 'yes'\n", "deploy.centre_rest"),
    ],
)
def test_invalid_values_name_file_and_key(tmp_path, text, key):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and key in str(err.value)


def test_default_model_config_refines_the_lips():
    cfg = load_config(Path(__file__).resolve().parents[1] / "models" / "default.toml")
    refine = cfg.train.refine_losses()
    assert cfg.train.refine.steps > 0 and cfg.train.losses.lip_shape is None
    assert refine.lip_shape > 0 and refine.lip_distance > cfg.train.losses.lip_distance
    assert refine.quiet_jitter == cfg.train.losses.quiet_jitter
    assert cfg.deploy.model_config == {"quiet_hold": 1.0, "lower_face_strength": 1.4, "skin_strength": 1.1}
    assert cfg.deploy.centre_rest


def test_unreadable_config(tmp_path):
    with pytest.raises(ConfigError, match="missing"):
        load_config(tmp_path / "none.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[train\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)


def test_yaml_config_when_pyyaml_is_installed(tmp_path):
    pytest.importorskip("yaml")
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  batch_size: 7\nnetwork:\n  encoder: whisper\n  num_layers: 2\n")
    cfg = load_config(path)
    assert cfg.train.batch_size == 7 and cfg.network.encoder == "whisper"


def test_to_dict_round_trips():
    cfg = parse_config({"train": {"batch_size": 3}}, base=Path("/x"))
    again = parse_config(cfg.to_dict(), base=Path("/elsewhere"))
    assert again.train.batch_size == 3 and again.train.out_dir == Path("/x/runs/train")


def test_cli_register_adds_commands_without_importing_torch():
    code = (
        "import argparse, sys\n"
        "from facecast.cli.train import register\n"
        "p = argparse.ArgumentParser(); register(p.add_subparsers(dest='cmd'))\n"
        "a = p.parse_args(['train', 'c.toml', '--resume'])\n"
        "b = p.parse_args(['deploy', 'c.toml', '-o', 'out'])\n"
        "assert a.resume and b.output == 'out' and callable(a.func)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_reports_config_errors_with_exit_code_2(tmp_path, capsys):
    from facecast.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepochs = 0\n")
    assert main(["train", str(bad)]) == 2
    assert "train.epochs" in capsys.readouterr().err
    parser = argparse.ArgumentParser()
    from facecast.cli.train import register

    register(parser.add_subparsers(dest="cmd"))
    assert parser.parse_args(["eval", "c.toml", "--json"]).json
