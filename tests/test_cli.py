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
    doc = json.loads((out / "a.pose.json").read_text())
    assert doc["format"] == "facecast.raw_pose/1"
    assert doc["num_frames"] == 25 and doc["fps"] == 25
    assert len(doc["skin"][0]) == 12 and len(doc["jaw"][0]) == 15 and len(doc["eyes"][0]) == 4
    names = doc["emotion_names"]
    first, last = doc["explicit_emotion"][0], doc["explicit_emotion"][-1]
    assert first[names.index("joy")] == 0.5 and first[names.index("anger")] == 0.0
    assert last[names.index("anger")] == 1.0
    with np.load(out / "b.pose.npz") as data:
        assert data["result"].shape == (13, 35)  # 0.5 s at 25 fps: centres 0 .. 0.48 s
    assert "wrote" in capsys.readouterr().out


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
    assert main(["info", str(small_pack), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["skin"]["vertices"] == 300
