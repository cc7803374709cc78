"""Tests for the Live Link Face UDP sender (facecast.export.livelink),
checked by an independent decoder (pylivelinkface)."""

from __future__ import annotations

import argparse
import re
import socket
import struct
import time

import numpy as np
import pytest

from facecast.constants import ARKIT_NAMES
from facecast.export.csv import (
    CSV_BLENDSHAPES,
    EYE_LOOK_FULL_DEGREES,
    csv_text,
    eye_look_weights,
    frame_times,
    timecode,
    write_csv,
)
from facecast.export.livelink import (
    UNREAL_BLENDSHAPES,
    LiveLinkSender,
    encode_packet,
    frame_time,
    live_link_values,
)


@pytest.fixture
def receiver():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    yield sock
    sock.close()


def _anim(small_model, seconds: float = 0.5):
    t = np.arange(int(seconds * 16000)) / 16000
    anim = small_model.animate((0.3 * np.sin(2 * np.pi * 160 * t)).astype(np.float32))
    rng = np.random.default_rng(3)
    anim.skin_weights = rng.uniform(0, 1, anim.skin_weights.shape).astype(np.float32)  # every value distinct
    anim.eyes = rng.uniform(-10, 10, anim.eyes.shape).astype(np.float32)
    return anim


def test_packet_layout_by_hand():
    values = np.arange(61, dtype=np.float32) / 100
    packet = encode_packet("0123456789abcdef0123456789abcdef0123", "face", 1234, 0.25, 30000 / 1001, values)
    assert packet[0] == 6
    assert struct.unpack(">i", packet[1:5])[0] == 36 and packet[5:41] == b"0123456789abcdef0123456789abcdef0123"
    assert struct.unpack(">i", packet[41:45])[0] == 4 and packet[45:49] == b"face"
    assert struct.unpack(">ifiiB", packet[49:66]) == (1234, 0.25, 30000, 1001, 61)
    np.testing.assert_array_equal(np.frombuffer(packet[66:], ">f4"), values)
    assert len(packet) == 66 + 61 * 4


def test_unreal_order_names_every_arkit_pose():
    assert len(UNREAL_BLENDSHAPES) == 61
    assert {n[:1].lower() + n[1:] for n in UNREAL_BLENDSHAPES[:52]} == set(ARKIT_NAMES)


def test_frame_time_counts_sample_aligned_times_as_whole_frames():
    assert frame_time(0.0333125, 30.0) == (1, 0.0)  # frame 1's centre sample is 533 of 16000
    frame, sub = frame_time(0.05, 30.0)
    assert frame == 1 and sub == pytest.approx(0.5)


def test_round_trip_through_pylivelinkface(small_model, receiver):
    pll = pytest.importorskip("pylivelinkface", reason="the independent decoder: pip install pylivelinkface")
    anim = _anim(small_model)
    port = receiver.getsockname()[1]
    with LiveLinkSender("127.0.0.1", port, "facecast-test") as sender:
        sent = sender.send(anim, realtime=False, start_frame=100)
        packets = [receiver.recv(4096) for _ in range(sent)]
    assert sent == len(anim)
    decoded = [pll.PyLiveLinkFace.decode(p) for p in packets]
    assert all(ok for ok, _ in decoded)
    faces = [face for _, face in decoded]
    # the decoder reads the id's length byte as a '$' prefix: the app's 36-character UUIDs always give '$'
    assert faces[0].uuid == "$" + sender.device_id and faces[0].name == "facecast-test"
    assert faces[0].fps == 30 and faces[0]._denominator == 1 and faces[0]._version == 6
    frames = [f._frames + f._sub_frame for f in faces]
    np.testing.assert_allclose(frames, 100 + anim.times * 30, atol=1e-2)
    # names and order: pylivelinkface's own FaceBlendShape enum indexes the values
    expected = live_link_values(anim)
    eye_look = {n: np.maximum(anim.weights(n), w) for n, w in eye_look_weights(anim.eyes).items()}
    for name in ARKIT_NAMES:
        index = pll.FaceBlendShape[name[:1].upper() + name[1:]].value
        got = [f.get_blendshape(pll.FaceBlendShape(index)) for f in faces]
        want = eye_look[name] if name.startswith("eyeLook") else anim.weights(name)
        np.testing.assert_allclose(got, want, atol=1e-6, err_msg=name)
    eyes = np.radians(anim.eyes) * [1, -1, 1, 1, -1, 1]  # yaw = -y: negative looks to the character's left
    got = np.array([[f.get_blendshape(pll.FaceBlendShape[n]) for n in ("LeftEyeYaw", "LeftEyePitch", "RightEyeYaw",
                                                                         "RightEyePitch")] for f in faces])  # fmt: skip
    np.testing.assert_allclose(got, eyes[:, [4, 3, 1, 0]], atol=1e-6)
    np.testing.assert_allclose([f._blend_shapes for f in faces], expected, atol=1e-7)


def test_realtime_pacing_follows_frame_times(small_model, receiver):
    anim = _anim(small_model, 0.3)
    waits = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    started = time.perf_counter()
    with LiveLinkSender("127.0.0.1", receiver.getsockname()[1]) as sender:
        sender.send(anim, realtime=True, start_frame=0, sleep=sleep)
    elapsed = time.perf_counter() - started
    assert len(waits) >= len(anim) // 2
    assert anim.times[-1] - anim.times[0] - 0.01 <= elapsed < anim.times[-1] + 0.5


def test_sender_rejects_bad_values():
    with pytest.raises(ValueError, match="61 values"):
        encode_packet("id", "s", 0, 0.0, 30, np.zeros(60))
    with pytest.raises(ValueError, match="finite"):
        encode_packet("id", "s", 0, 0.0, 30, np.full(61, np.nan))
    with pytest.raises(ValueError, match="subject"):
        LiveLinkSender(subject="")


def test_livelink_command_sends_every_frame(small_pack, receiver, tmp_path, capsys):
    from facecast.audio import save_wav
    from facecast.cli.livelink import register

    save_wav(tmp_path / "a.wav", (0.2 * np.sin(np.arange(8000) / 16000 * 2 * np.pi * 200)).astype(np.float32))
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    port = receiver.getsockname()[1]
    args = parser.parse_args(["livelink", str(tmp_path / "a.wav"), "--port", str(port), "-m", str(small_pack),
                              "--subject", "cli", "--fast"])  # fmt: skip
    assert args.func(args) == 0
    packets = [receiver.recv(4096) for _ in range(15)]
    assert all(b"cli" in p for p in packets)
    assert "sent 15 frames" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------------
# the Live Link Face CSV

# The header of a real Live Link Face take, as the public capture anim/S07-001.csv of
# github.com/alexdjulin/LiveLinkFace-CSV-Retarget-For-Motionbuilder has it (facts: names and their order).
APP_HEADER = (
    "Timecode,BlendShapeCount,EyeBlinkLeft,EyeLookDownLeft,EyeLookInLeft,EyeLookOutLeft,EyeLookUpLeft,"
    "EyeSquintLeft,EyeWideLeft,EyeBlinkRight,EyeLookDownRight,EyeLookInRight,EyeLookOutRight,EyeLookUpRight,"
    "EyeSquintRight,EyeWideRight,JawForward,JawRight,JawLeft,JawOpen,MouthClose,MouthFunnel,MouthPucker,"
    "MouthRight,MouthLeft,MouthSmileLeft,MouthSmileRight,MouthFrownLeft,MouthFrownRight,MouthDimpleLeft,"
    "MouthDimpleRight,MouthStretchLeft,MouthStretchRight,MouthRollLower,MouthRollUpper,MouthShrugLower,"
    "MouthShrugUpper,MouthPressLeft,MouthPressRight,MouthLowerDownLeft,MouthLowerDownRight,MouthUpperUpLeft,"
    "MouthUpperUpRight,BrowDownLeft,BrowDownRight,BrowInnerUp,BrowOuterUpLeft,BrowOuterUpRight,CheekPuff,"
    "CheekSquintLeft,CheekSquintRight,NoseSneerLeft,NoseSneerRight,TongueOut,HeadYaw,HeadPitch,HeadRoll,"
    "LeftEyeYaw,LeftEyePitch,LeftEyeRoll,RightEyeYaw,RightEyePitch,RightEyeRoll"
)
APP_ROW = re.compile(r"^\d{2}:\d{2}:\d{2}:\d{2}\.\d{3},61(,-?\d+\.\d{10}){61}$")


def test_csv_matches_the_apps_layout(small_model, tmp_path):
    anim = _anim(small_model, seconds=1.2)
    data = write_csv(anim, tmp_path / "take.csv").read_bytes()
    assert data.endswith(b"\n") and b"\r" not in data
    lines = data.decode().split("\n")[:-1]
    assert lines[0] == APP_HEADER and len(lines) == len(anim) + 1
    assert all(APP_ROW.match(line) for line in lines[1:])
    assert lines[1].startswith("00:00:00:00.000,61,") and lines[31].startswith("00:00:01:00.000,")
    rows = [line.split(",") for line in lines[1:]]
    header = APP_HEADER.split(",")
    for name in ("jawRight", "jawLeft", "mouthRight", "mouthLeft", "browInnerUp"):
        column = header.index(name[:1].upper() + name[1:])
        np.testing.assert_allclose([float(r[column]) for r in rows], anim.weights(name), atol=1e-7)
    yaw = [float(r[header.index("LeftEyeYaw")]) for r in rows]
    np.testing.assert_allclose(yaw, -np.radians(anim.eyes[:, 4]), atol=1e-7)


def test_timecode_frames_and_subframes():
    assert timecode(0, 30) == "00:00:00:00.000" and timecode(29, 30) == "00:00:00:29.000"
    assert timecode(30 * 3661 + 7, 30) == "01:01:01:07.000" and timecode(1, 60) == "00:00:00:01.000"


def test_eye_look_weights_follow_the_rotations():
    eyes = np.zeros((4, 6), np.float32)
    eyes[1, [0, 3]] = EYE_LOOK_FULL_DEGREES / 2  # both down, half way
    eyes[2, [1, 4]] = 2 * EYE_LOOK_FULL_DEGREES  # both to the character's left, past full
    eyes[3, [0, 3]] = -EYE_LOOK_FULL_DEGREES  # both up
    w = eye_look_weights(eyes)
    assert w["eyeLookDownLeft"][1] == pytest.approx(0.5) and w["eyeLookDownRight"][1] == pytest.approx(0.5)
    assert w["eyeLookInRight"][2] == 1.0 and w["eyeLookOutLeft"][2] == 1.0
    assert w["eyeLookOutRight"][2] == 0.0 and w["eyeLookInLeft"][2] == 0.0
    assert w["eyeLookUpLeft"][3] == 1.0 and w["eyeLookDownLeft"][3] == 0.0
    assert all(v[0] == 0.0 for v in w.values())


def test_csv_eye_look_columns_carry_the_gaze(small_model):
    anim = _anim(small_model)
    anim.skin_weights[:] = 0.0
    anim.eyes[:] = 0.0
    anim.eyes[:, 0] = anim.eyes[:, 3] = 15.0  # looking down
    lines = csv_text(anim).splitlines()
    column = APP_HEADER.split(",").index("EyeLookDownRight")
    assert float(lines[1].split(",")[column]) == pytest.approx(15.0 / EYE_LOOK_FULL_DEGREES)
    assert CSV_BLENDSHAPES.index("JawRight") < CSV_BLENDSHAPES.index("JawLeft")


def test_frame_times_are_exact_multiples(small_model):
    anim = _anim(small_model)
    times = frame_times(anim)
    assert np.array_equal(times, np.arange(len(anim)) / anim.fps)


def test_json_times_are_exact_frame_times(small_model):
    from facecast.export.json import animation_dict

    anim = _anim(small_model)
    assert animation_dict(anim)["time"] == np.round(np.arange(len(anim)) / anim.fps, 6).tolist()
