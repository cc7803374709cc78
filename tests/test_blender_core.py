"""The Blender add-on's plain-Python part (integrations/blender/facecast_blender/core.py), without Blender:
name matching against facecast's own, reading facecast JSON, keyframes at scene frames, eye and jaw rotations,
the facecast command line."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from exporthelpers import make_animation

from facecast.arkit_names import normalize_arkit_name
from facecast.constants import ARKIT_NAMES, EMOTION_NAMES, TONGUE_NAMES
from facecast.export.glb import quat_to_matrix
from facecast.export.gltf import eye_quaternions
from facecast.export.json import write_json

ADDON = Path(__file__).resolve().parents[1] / "integrations" / "blender" / "facecast_blender"


def _load_core():
    spec = importlib.util.spec_from_file_location("facecast_blender_core", ADDON / "core.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


core = _load_core()


def test_constants_agree_with_facecast():
    assert core.ARKIT_NAMES == ARKIT_NAMES and core.TONGUE_NAMES == TONGUE_NAMES
    assert core.EMOTIONS == EMOTION_NAMES


SPELLINGS = ["jawOpen", "JawOpen", "jaw_open", "JAW_OPEN", "eyeBlink_L", "eyeBlinkLeft", "EyeBlinkRight",
             "blendShape1.mouthSmileLeft", "ARKit_mouthSmile_R", "Head|browInnerUp", "ns:cheekPuff",
             "mouth-smile-left", "browInnerUp_L", "L_eyeBlink", "tongue_tip_up", "Basis", "customWrinkle",
             "eyeLookIn_R", "noseSneer_L", "mouthRollLower", "Key 1", "", "jaw", "eye_L"]  # fmt: skip


@pytest.mark.parametrize("name", SPELLINGS + [n.upper() for n in ARKIT_NAMES] + [n + "_x" for n in ARKIT_NAMES[:5]])
def test_name_matching_agrees_with_facecast(name):
    assert core.arkit_name(name) == normalize_arkit_name(name)


def test_match_shape_keys_maps_keys_to_curves():
    keys = ["Basis", "JawOpen", "eyeBlink_L", "mouthSmile_R", "wrinkle"]
    assert core.match_shape_keys(keys, ["jawOpen", "eyeBlinkLeft", "mouthSmileRight"]) == {
        "JawOpen": "jawOpen", "eyeBlink_L": "eyeBlinkLeft", "mouthSmile_R": "mouthSmileRight"}  # fmt: skip


def test_read_facecast_json_and_keyframes(tmp_path):
    anim = make_animation(10, fps=30.0, seed=3)
    face = core.read_facecast_json(write_json(anim, tmp_path / "a.json"))
    assert len(face) == 10 and face.fps == 30.0 and len(face.eyes) == 10 and len(face.jaw[0]) == 16
    np.testing.assert_allclose(face.curves["jawOpen"], anim.weights("jawOpen"), atol=1e-6)
    frames, values = core.keyframes(face, 30.0, 1)
    assert frames == list(range(1, 11))
    np.testing.assert_allclose(values["eyeBlinkLeft"], anim.weights("eyeBlinkLeft"), atol=1e-6)
    frames24, values24 = core.keyframes(face, 24.0, 0)  # a 24 fps scene: linear interpolation at its frames
    assert frames24 == list(range(0, 8))
    expected = np.interp(np.arange(8) / 24.0, np.arange(10) / 30.0, face.curves["jawOpen"])
    np.testing.assert_allclose(values24["jawOpen"], expected, atol=1e-6)  # (JSON times: 6 decimals)
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a facecast animation"):
        core.read_facecast_json(tmp_path / "bad.json")


def test_eye_rotation_matches_facecast_and_axes():
    angles = np.array([[12.0, -20.0]])
    expected = quat_to_matrix(eye_quaternions(angles))[0]
    np.testing.assert_allclose(core.eye_matrix(12.0, -20.0), expected, atol=1e-12)
    blender = np.array(core.to_blender(core.eye_matrix(20.0, 0.0)))
    gaze = blender @ np.array([0.0, -1.0, 0.0])  # Blender: the face looks down -y, up is +z
    assert gaze[2] < -0.3  # +x looks down
    left = np.array(core.to_blender(core.eye_matrix(0.0, 30.0))) @ np.array([0.0, -1.0, 0.0])
    assert left[0] > 0.4  # +y turns to the character's left, +x in Blender after import
    q = core.quaternion(core.eye_matrix(10.0, 5.0))
    assert math.isclose(sum(v * v for v in q), 1.0, rel_tol=1e-12) and q[0] > 0


def test_find_rig_parts_by_name_and_side():
    found = core.find_rig_parts([("DEF-jaw", 0.0), ("eye.R", -0.03), ("eye.L", 0.03), ("eyelid.L", 0.03),
                                 ("eye_left_mesh", 0.03), ("jawOpen", 0.0)])  # fmt: skip
    assert found == {"jaw": "DEF-jaw", "eye_right": "eye.R", "eye_left": "eye.L"}
    assert core.find_rig_parts([("LeftEye", 0.0)]) == {"eye_left": "LeftEye"}


def test_command_line_and_face_params(tmp_path):
    cmd = core.animate_command("facecast", "a b.wav", tmp_path, 24.0, model="/m", emotion="joy",
                               emotion_strength=0.5, face_params="skin_strength=1.2, lip_open_offset=0",
                               blinks=False)  # fmt: skip
    assert cmd[:3] == ["facecast", "animate", "a b.wav"] and "--no-blinks" in cmd
    assert cmd[cmd.index("--fps") + 1] == "24" and cmd[cmd.index("--emotion") + 1] == "joy=0.5"
    assert [cmd[i + 1] for i, c in enumerate(cmd) if c == "--face-param"] == ["skin_strength=1.2", "lip_open_offset=0"]
    with pytest.raises(ValueError, match="NAME=VALUE"):
        core.parse_face_params("skin_strength")
    with pytest.raises(ValueError, match="unknown emotion"):
        core.animate_command("facecast", "a.wav", tmp_path, 30.0, emotion="bliss")


def test_run_facecast_command_end_to_end(tmp_path):
    sf = pytest.importorskip("soundfile")
    exe = Path(sys.executable).parent / "facecast"
    if not exe.is_file():
        pytest.skip("the facecast command is not installed next to this Python")
    t = np.arange(8000) / 16000
    sf.write(tmp_path / "speech.wav", (0.2 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), 16000)
    face = core.run_facecast(str(exe), tmp_path / "speech.wav", 25.0, face_params="skin_strength=1.0")
    assert face.fps == 25.0 and len(face) in (12, 13) and "jawOpen" in face.curves  # 0.5 s at 25 fps
    assert face.times == pytest.approx([k / 25.0 for k in range(len(face))], abs=1e-6)
    with pytest.raises(RuntimeError, match="not found"):
        core.run_facecast("no-such-facecast", tmp_path / "speech.wav", 30.0)
    with pytest.raises(RuntimeError, match="missing|No such|not"):
        core.run_facecast(str(exe), tmp_path / "nothing.wav", 30.0)


def test_run_server_against_facecast_serve(tmp_path, small_model):
    pytest.importorskip("grpc", reason="grpcio is not installed")
    pytest.importorskip("nvidia_audio2face_3d", reason="nvidia-audio2face-3d is not installed")
    sf = pytest.importorskip("soundfile")
    from facecast.server import ServerConfig, serve

    t = np.arange(6400) / 16000
    clip = (0.3 * np.sin(2 * np.pi * 3 * t) * np.sin(2 * np.pi * 180 * t)).astype(np.float32)
    sf.write(tmp_path / "speech.wav", clip, 16000, subtype="PCM_16")
    server = serve(ServerConfig(port=0, max_streams=2, idle_timeout_seconds=10.0), model=small_model)
    try:
        face = core.run_server(server.address, tmp_path / "speech.wav", face_params="skin_strength=1.0")
    finally:
        server.stop()
    pcm = sf.read(tmp_path / "speech.wav", dtype="float32")[0]
    offline = small_model.animate(pcm, blinks=False)
    assert face.fps == pytest.approx(offline.fps) and len(face) == len(offline)
    assert face.times == pytest.approx([k / face.fps for k in range(len(face))], abs=1e-9)
    np.testing.assert_allclose(face.curves["jawOpen"], offline.weights("jawOpen"), atol=1e-4)
    with pytest.raises(RuntimeError, match="16-bit"):
        sf.write(tmp_path / "float.wav", clip, 16000, subtype="FLOAT")
        core.run_server(server.address, tmp_path / "float.wav")
