"""The command line: animate and info, and clean errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import soundfile as sf

from facecast.cli import main


def _wav(path, seconds=1.0, sr=22050):
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr)
    return path


def test_animate_writes_pose_files(small_pack, tmp_path, capsys):
    a = _wav(tmp_path / "a.wav", 1.0)
    b = _wav(tmp_path / "b.flac", 0.5, 44100)
    out = tmp_path / "out"
    rc = main(["animate", str(a), str(b), "-m", str(small_pack), "-o", str(out), "--fps", "25",
               "--emotion", "joy=0.5", "--emotion", "anger=1@0.4"])  # fmt: skip
    assert rc == 0
    doc = json.loads((out / "a.json").read_text())
    assert doc["format"] == "facecast.animation/1"
    assert doc["num_frames"] == 25 and doc["fps"] == 25
    assert len(doc["skin"]["weights"][0]) == 52 and doc["skin"]["names"][17] == "jawOpen"
    assert len(doc["tongue"]["weights"][0]) == 16 and len(doc["jaw"][0]) == 16 and len(doc["eyes"][0]) == 6
    names = doc["emotion"]["names"]
    first, last = doc["emotion"]["weights"][0], doc["emotion"]["weights"][-1]
    assert first[names.index("joy")] == 0.5 and first[names.index("anger")] == 0.0
    assert last[names.index("anger")] == 1.0
    rows = (out / "a.csv").read_text().splitlines()
    assert rows[0].startswith("Timecode,BlendShapeCount,EyeBlinkLeft,") and len(rows) == 26
    assert rows[2].split(",")[:2] == ["00:00:00:01.000", "61"]
    with np.load(out / "b.npz") as data:
        assert data["raw_result"].shape == (13, 35)  # 0.5 s at 25 fps: centres 0 .. 0.48 s
        assert data["skin_weights"].shape == (13, 52)
    assert "wrote" in capsys.readouterr().out


def test_animate_pose_format_and_face_params(small_pack, tmp_path, capsys):
    a = _wav(tmp_path / "a.wav", 0.4)
    out = tmp_path / "o"
    assert main(["animate", str(a), "-m", str(small_pack), "-o", str(out), "--formats", "pose",
                 "--face-param", "skinStrength=0.5", "--no-blinks"]) == 0  # fmt: skip
    doc = json.loads((out / "a.pose.json").read_text())
    assert doc["format"] == "facecast.raw_pose/1" and len(doc["skin"][0]) == 12
    assert not (out / "a.json").exists()
    assert main(["animate", str(a), "-m", str(small_pack), "--face-param", "skinStrength=7"]) == 2
    assert "skin_strength" in capsys.readouterr().err
    assert main(["animate", str(a), "-m", str(small_pack), "--formats", "fbx"]) == 2
    assert "unknown output format fbx" in capsys.readouterr().err


def test_animate_bad_audio_exits_2_without_traceback(small_pack, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_text("this is not audio")
    proc = subprocess.run([sys.executable, "-m", "facecast", "animate", str(bad), "-m", str(small_pack)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2
    assert "bad.wav" in proc.stderr and "Traceback" not in proc.stderr


def test_animate_bad_pack_and_emotion(small_pack, tmp_path, capsys):
    a = _wav(tmp_path / "a.wav", 0.2)
    assert main(["animate", str(a), "-m", str(tmp_path / "nope")]) == 2
    assert "no such model folder" in capsys.readouterr().err
    assert main(["animate", str(a), "-m", str(small_pack), "--emotion", "happyness=1"]) == 2
    assert "happyness" in capsys.readouterr().err


def test_info(small_pack, capsys):
    assert main(["info", str(small_pack)]) == 0
    text = capsys.readouterr().out
    assert "testactor" in text and "260 ms" in text and "52 skin" in text
    assert "quiet hold" not in text  # NVIDIA-style packs: off
    assert main(["info", str(small_pack), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["skin"]["vertices"] == 300 and summary["quiet_hold"] == 0.0


def test_info_shows_the_default_models_quiet_hold(capsys):
    from facecast.model import builtin_pack

    assert main(["info", str(builtin_pack())]) == 0
    assert "quiet hold   1: the face holds still in silences" in capsys.readouterr().out


def test_info_names_the_chunk_network(chunk_pack, capsys):
    assert main(["info", str(chunk_pack)]) == 0
    text = capsys.readouterr().out
    assert "70 ms" in text and "network_chunk.onnx: up to 4 frames per encoder pass" in text


def test_inputs_with_the_same_stem_are_refused_before_any_work(tmp_path, capsys, monkeypatch):
    """``animate good.ogg good.mp3`` would write good.json twice and lose the first; refused, naming both."""
    import facecast.model

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the inputs were checked")

    monkeypatch.setattr(facecast.model, "load_model", no_model)
    a = _wav(tmp_path / "good.wav")
    (tmp_path / "sub").mkdir()
    b = _wav(tmp_path / "sub" / "good.flac")
    assert main(["animate", str(a), str(b), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(a) in err[0] and str(b) in err[0]
    assert not (tmp_path / "out").exists()


def test_formats_are_checked_before_any_work(tmp_path, capsys, monkeypatch):
    import facecast.model

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before --formats was checked")

    monkeypatch.setattr(facecast.model, "load_model", no_model)
    a = _wav(tmp_path / "a.wav")
    for spec, says in [("", "names no format"), (",", "names no format"), ("json,xyz", "unknown output format xyz")]:
        assert main(["animate", str(a), "--formats", spec, "-o", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0] and "pose" in err[0]
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "av" else object())
    assert main(["animate", str(a), "--formats", "json,mp4", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'pip install "facecast[preview]"' in err[0]
    assert not (tmp_path / "out").exists()
