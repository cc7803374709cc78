"""Plain pip: the wheel, installed with no extras into a fresh venv, animates with the built-in model.

Builds the wheel (``python -m build``), installs it into a new virtual environment (PyPI must be reachable), and
runs the commands a new user runs first. Skipped with ``FACECAST_SKIP_WHEEL=1`` (for quick local runs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from facecast.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "hello.wav"

pytestmark = pytest.mark.skipif(os.environ.get("FACECAST_SKIP_WHEEL") == "1", reason="FACECAST_SKIP_WHEEL=1")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("build", reason="python -m build is needed (pip install build)")
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "-o", str(out), str(ROOT)], check=True,
                   capture_output=True, timeout=600)  # fmt: skip
    (found,) = out.glob("facecast-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["FACECAST_CACHE"] = str(root / "cache")
    pip = subprocess.run([str(root / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], env=env,
                         capture_output=True, text=True, timeout=900)  # fmt: skip
    if pip.returncode != 0:
        pytest.fail(f"pip install of the wheel failed: {pip.stderr[-2000:]}")
    return {"root": root, "env": env, "bin": root / "bin"}


def run(venv: dict, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv["bin"] / "facecast"), *args], env=venv["env"], cwd=cwd, capture_output=True,
                          text=True, timeout=600)  # fmt: skip


def test_wheel_carries_the_builtin_model_and_head_and_stays_small(wheel):
    assert wheel.stat().st_size < 40e6
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("facecast/models/default/decoder.npz", "facecast/models/default/graph.onnx",
                   "facecast/characters/data/default_head.npz", "facecast/web/static/index.html"):  # fmt: skip
        assert needed in names
    assert not any(n.startswith("tests/") or "/__pycache__/" in n for n in names)


def test_no_extras_means_no_torch_grpc_or_anny(venv):
    python = str(venv["bin"] / "python")
    code = "import importlib.util as u; print([m for m in ('torch', 'grpc', 'anny', 'av') if u.find_spec(m)])"
    out = subprocess.run([python, "-c", code], env=venv["env"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    check = subprocess.run([python, "-m", "pip", "check"], env=venv["env"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout


def test_version_and_help_of_every_command(venv):
    import facecast

    version = run(venv, "--version")
    assert version.returncode == 0 and version.stdout.strip() == f"facecast {facecast.__version__}"
    top = run(venv, "--help")
    assert top.returncode == 0
    for name in COMMANDS:
        assert name in top.stdout
        result = run(venv, name, "--help")
        assert result.returncode == 0, f"{name} --help: {result.stderr}"
        assert f"facecast {name}" in result.stdout


def test_animate_and_info_with_the_builtin_model(venv, tmp_path):
    result = run(venv, "animate", str(EXAMPLE), "-o", str(tmp_path / "out"), "--formats", "json,csv")
    assert result.returncode == 0, result.stderr
    doc = json.loads((tmp_path / "out" / "hello.json").read_text())
    assert doc["random_weights"] is False and doc["num_frames"] > 30
    header = (tmp_path / "out" / "hello.csv").read_text().splitlines()[0].split(",")
    assert header[:2] == ["Timecode", "BlendShapeCount"] and "JawOpen" in header
    info = run(venv, "info", "--json")
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["actor"] == "facecast"


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["serve"], "server"),
        (["animate", str(EXAMPLE), "--formats", "mp4", "-o", "out"], "preview"),
        (["animate", str(EXAMPLE), "--formats", "usd", "-o", "out"], "usd"),
        (["plot", str(EXAMPLE), "-o", "plot.png"], "plot"),
        (["animate", str(EXAMPLE), "--backend", "torch", "-o", "out"], "train"),
    ],
)
def test_a_missing_extra_exits_2_naming_it(venv, tmp_path, args, extra):
    result = run(venv, *args, cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f'pip install "facecast[{extra}]"' in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_every_extra_resolves_with_plain_pip(venv, wheel, tmp_path):
    """``pip install "facecast[all]" torch==2.13.0`` resolves with no side steps: no conflict (gRPC's health
    service and onnx agree on protobuf), the CPU torch wheel, protobuf 6 for NVIDIA's ACE stubs."""
    report = tmp_path / "report.json"
    command = [str(venv["bin"] / "python"), "-m", "pip", "install", "--dry-run", "-q", "--ignore-installed",
               "--report", str(report), f"facecast[all] @ {wheel.as_uri()}", "torch==2.13.0"]  # fmt: skip
    result = subprocess.run(command, env=venv["env"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    versions = {
        i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.loads(report.read_text())["install"]
    }
    for extra_package in ("av", "grpcio", "nvidia-audio2face-3d", "usd-core", "websockets", "matplotlib", "ray",
                          "piper-tts", "pocketsphinx", "meshopt"):  # fmt: skip
        assert extra_package in versions, extra_package
    assert versions["torch"].startswith("2.13.0") and versions["protobuf"].startswith("6.")
    assert "grpcio-health-checking" not in versions
