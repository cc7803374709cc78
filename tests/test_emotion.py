"""Tests for facecast.emotion (explicit keyframes, implicit DB) and facecast.infer.a2e (Audio2Emotion)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facecast.constants import EMOTION_NAMES, IMPLICIT_EMOTION_LEN
from facecast.emotion import EmotionError, EmotionTrack, ImplicitEmotionDB, emotion_vector
from facecast.infer.a2e import A2E_CLASSES, A2EPostProcessor, A2EPostProcessParams, AudioToEmotion

I = {name: i for i, name in enumerate(EMOTION_NAMES)}  # noqa: E741
A2F_OF = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "joy", "sad": "sadness"}


def softmax(xs: list[float]) -> list[float]:
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    s = sum(e)
    return [v / s for v in e]


def to10(a2e: dict[str, float]) -> list[float]:
    """A2E class probabilities (by class name) placed in a plain 10-list."""
    out = [0.0] * 10
    for cls, v in a2e.items():
        out[I[A2F_OF[cls]]] = v
    return out


# ----------------------------------------------------------------------------------------------------
# emotion_vector


def test_emotion_vector_names_case_insensitive_and_nim_spelling() -> None:
    v = emotion_vector({"Joy": 0.5, "OutOfBreath": 1.0, "SADNESS": 0.25, "pain": 0})
    assert v.dtype == np.float32 and v.shape == (10,)
    expected = [0.0] * 10
    expected[I["joy"]] = 0.5
    expected[I["outofbreath"]] = 1.0
    expected[I["sadness"]] = 0.25
    assert v.tolist() == expected
    assert emotion_vector({"out_of_breath": 0.75})[I["outofbreath"]] == 0.75
    assert not emotion_vector({}).any()


@pytest.mark.parametrize(
    ("mapping", "match"),
    [
        ({"happy": 0.5}, "unknown emotion 'happy'.*amazement, anger, cheekiness"),
        ({"joy": 1.5}, r"must be in \[0, 1\]"),
        ({"joy": -0.1}, r"must be in \[0, 1\]"),
        ({"joy": float("nan")}, r"must be in \[0, 1\]"),
        ({"joy": True}, "must be a number"),
        ({"joy": 0.2, "Joy": 0.3}, "given twice"),
    ],
)
def test_emotion_vector_errors(mapping: dict, match: str) -> None:
    with pytest.raises(EmotionError, match=match):
        emotion_vector(mapping)


def test_emotion_error_is_value_error() -> None:
    assert issubclass(EmotionError, ValueError)


# ----------------------------------------------------------------------------------------------------
# EmotionTrack


def test_track_empty_is_neutral() -> None:
    out = EmotionTrack().sample(np.array([0.0, 1.0, 5.0]))
    assert out.shape == (3, 10) and out.dtype == np.float32
    assert not out.any()


def test_track_interpolation_and_clamping() -> None:
    track = EmotionTrack()
    track.add(3.0, {"joy": 1.0, "anger": 0.5})
    track.add(1.0, {"joy": 0.2})  # added out of order
    assert track.times.tolist() == [1.0, 3.0]
    out = track.sample(np.array([0.0, 1.0, 2.0, 2.5, 3.0, 10.0]))
    # joy goes 0.2 -> 1.0 between t=1 and t=3: at 2.0 -> 0.6, at 2.5 -> 0.8; held outside
    np.testing.assert_allclose(out[:, I["joy"]], [0.2, 0.2, 0.6, 0.8, 1.0, 1.0], atol=1e-7)
    # anger goes 0 -> 0.5: at 2.0 -> 0.25, at 2.5 -> 0.375
    np.testing.assert_allclose(out[:, I["anger"]], [0.0, 0.0, 0.25, 0.375, 0.5, 0.5], atol=1e-7)
    others = [i for i in range(10) if i not in (I["joy"], I["anger"])]
    assert not out[:, others].any()


def test_track_single_key_is_constant_and_add_replaces() -> None:
    track = EmotionTrack().add(2.0, [0.1] * 10)
    np.testing.assert_allclose(track.sample([0.0, 2.0, 7.0]), np.full((3, 10), 0.1), atol=1e-7)
    track.add(2.0, {"grief": 1.0})
    assert len(track) == 1
    assert track.sample(0.0)[0].tolist() == emotion_vector({"grief": 1.0}).tolist()


@pytest.mark.parametrize(
    ("time", "value", "match"),
    [
        (-1.0, {"joy": 1.0}, "keyframe time"),
        (float("nan"), {"joy": 1.0}, "keyframe time"),
        (float("inf"), {"joy": 1.0}, "keyframe time"),
        (0.0, [0.5] * 9, "must have 10 values"),
        (0.0, [0.0] * 9 + [1.2], "'sadness' must be in"),
        (0.0, {"Fury": 1.0}, "unknown emotion 'Fury'"),
    ],
)
def test_track_add_errors(time: float, value: object, match: str) -> None:
    with pytest.raises(EmotionError, match=match):
        EmotionTrack().add(time, value)  # type: ignore[arg-type]


def test_track_parse_combines_names_per_time() -> None:
    track = EmotionTrack.parse(["joy=0.8", "anger=1@2.5", "Sadness=0.25@2.5"])
    assert track.times.tolist() == [0.0, 2.5]
    key0 = [0.0] * 10
    key0[I["joy"]] = 0.8
    key1 = [0.0] * 10
    key1[I["anger"]] = 1.0
    key1[I["sadness"]] = 0.25
    np.testing.assert_allclose(track.values, np.array([key0, key1]), atol=1e-7)
    mid = track.sample([1.25])[0]  # halfway
    assert mid[I["joy"]] == pytest.approx(0.4) and mid[I["anger"]] == pytest.approx(0.5)
    assert mid[I["sadness"]] == pytest.approx(0.125)


@pytest.mark.parametrize(
    ("specs", "match"),
    [
        (["joy"], "expected NAME=WEIGHT"),
        (["joy="], "expected NAME=WEIGHT"),
        (["=0.5"], "expected NAME=WEIGHT"),
        (["joy=abc"], "bad weight 'abc'"),
        (["joy=0.5@soon"], "bad time 'soon'"),
        (["joy=1.5"], r"must be in \[0, 1\].*joy=1.5"),
        (["joy=0.5@-1"], "keyframe time"),
        (["happy=0.5"], "unknown emotion 'happy'.*sadness"),
        (["joy=0.5@1", "Joy=0.2@1.0"], "given twice"),
        ("joy=1", "list of specs"),
    ],
)
def test_track_parse_errors(specs: list[str], match: str) -> None:
    with pytest.raises(EmotionError, match=match):
        EmotionTrack.parse(specs)


# ----------------------------------------------------------------------------------------------------
# ImplicitEmotionDB


def _db() -> tuple[ImplicitEmotionDB, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, IMPLICIT_EMOTION_LEN)).astype(np.float32)
    b = rng.normal(size=(10, IMPLICIT_EMOTION_LEN)).astype(np.float32)
    return ImplicitEmotionDB.from_shots({"g2a_neutral": a, "cp1_joy": b}), a, b


def test_implicit_db_round_trip(tmp_path: Path) -> None:
    db, a, b = _db()
    path = tmp_path / "implicit_emo_db.npz"
    db.save(path)
    assert sorted(os.listdir(tmp_path)) == ["implicit_emo_db.npz"]  # no temp file left behind
    with np.load(path, allow_pickle=False) as raw:
        assert sorted(raw.files) == sorted(ImplicitEmotionDB.ARRAYS)
        assert raw["emo_db"].dtype == np.float32 and raw["emo_db"].shape == (50, 16)
        assert raw["emo_spec_names"].dtype.kind == "S"
        assert raw["emo_spec_names"].tolist() == [b"g2a_neutral", b"cp1_joy"]
        assert raw["emo_spec_start"].dtype == np.int32 and raw["emo_spec_start"].tolist() == [0, 40]
        assert raw["emo_spec_size"].dtype == np.int32 and raw["emo_spec_size"].tolist() == [40, 10]
    loaded = ImplicitEmotionDB.load(path)
    assert loaded.shots == ("g2a_neutral", "cp1_joy")
    assert loaded.num_frames == 50 and loaded.shot_size("cp1_joy") == 10
    np.testing.assert_array_equal(loaded.vector("g2a_neutral", 33), a[33])
    np.testing.assert_array_equal(loaded.vector("cp1_joy", 9), b[9])
    v = loaded.vector("cp1_joy", 0)
    v[:] = 0  # a copy: the database is untouched
    np.testing.assert_array_equal(loaded.vector("cp1_joy", 0), b[0])
    db.save(path)  # overwriting works too
    assert ImplicitEmotionDB.load(path).shots == db.shots


def test_implicit_db_vector_errors() -> None:
    db, _, _ = _db()
    with pytest.raises(EmotionError, match="unknown shot 'nope'.*'g2a_neutral', 'cp1_joy'"):
        db.vector("nope", 0)
    with pytest.raises(EmotionError, match=r"frame 40 out of range.*0\.\.39"):
        db.vector("g2a_neutral", 40)
    with pytest.raises(EmotionError, match="out of range"):
        db.vector("g2a_neutral", -1)
    with pytest.raises(EmotionError, match="integer"):
        db.vector("g2a_neutral", 1.0)  # type: ignore[arg-type]


def _good_arrays() -> dict[str, np.ndarray]:
    return {
        "emo_db": np.zeros((12, 16), np.float32),
        "emo_spec_names": np.array([b"a", b"b"]),
        "emo_spec_start": np.array([0, 5], np.int32),
        "emo_spec_size": np.array([5, 7], np.int32),
    }


def test_implicit_db_missing_array(tmp_path: Path) -> None:
    arrays = _good_arrays()
    del arrays["emo_spec_size"]
    path = tmp_path / "db.npz"
    np.savez(path, **arrays)
    with pytest.raises(EmotionError, match=r"db\.npz is missing array\(s\) \['emo_spec_size'\]"):
        ImplicitEmotionDB.load(path)


def _mark_unpickled(path: str) -> str:
    Path(path).write_text("unpickled")
    return "x"


class _Trap:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (_mark_unpickled, (self.path,))


def test_implicit_db_refuses_pickled_object_array(tmp_path: Path) -> None:
    arrays = _good_arrays()
    flag = tmp_path / "flag.txt"
    arrays["emo_spec_names"] = np.array([_Trap(str(flag)), _Trap(str(flag))], dtype=object)
    path = tmp_path / "db.npz"
    np.savez(path, **arrays)  # savez pickles object arrays
    with pytest.raises(EmotionError, match="'emo_spec_names'.*pickled object array"):
        ImplicitEmotionDB.load(path)
    assert not flag.exists()  # nothing was unpickled


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("emo_db", np.zeros((12, 15), np.float32), r"'emo_db'.*shape \[N, 16\].*\[12, 15\]"),
        ("emo_db", np.zeros(12 * 16, np.float32), r"'emo_db'.*shape \[N, 16\]"),
        (
            "emo_spec_size",
            np.array([5, 8], np.int32),
            "shot 'b' has start 5 and size 8, outside 'emo_db' with 12",
        ),
        ("emo_spec_size", np.array([0, 7], np.int32), "shot 'a' has start 0 and size 0"),
        ("emo_spec_start", np.array([0], np.int32), "same length, got 2, 1 and 2"),
        ("emo_spec_start", np.array([0.0, 5.0]), "'emo_spec_start'.*integers"),
        ("emo_spec_names", np.array([b"a", b"a"]), "duplicate shot names"),
    ],
)
def test_implicit_db_bad_arrays(tmp_path: Path, key: str, value: np.ndarray, match: str) -> None:
    arrays = _good_arrays()
    arrays[key] = value
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(EmotionError, match=match) as info:
        ImplicitEmotionDB.load(path)
    assert "bad.npz" in str(info.value)


def test_implicit_db_not_an_npz(tmp_path: Path) -> None:
    path = tmp_path / "junk.npz"
    path.write_bytes(b"definitely not a zip file")
    with pytest.raises(EmotionError, match="junk.npz"):
        ImplicitEmotionDB.load(path)
    with pytest.raises(FileNotFoundError):
        ImplicitEmotionDB.load(tmp_path / "absent.npz")


# ----------------------------------------------------------------------------------------------------
# A2E post-processing, checked against numbers computed here step by step


def test_postprocess_two_frames_defaults_all_emotions() -> None:
    params = A2EPostProcessParams(max_emotions=6)  # contrast 1, blend 0.7, T 0.5, dt 0.033, strength 0.6
    pp = A2EPostProcessor(params)
    out = pp.run(np.array([[1.0, 0.0, 0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 3.0]]))

    # frame 0: softmax, neutral dropped, blend 0.3*e + 0.7*beginning(0), no transition, *0.6
    s = math.e + math.e**2 + 4
    e0 = to10({"angry": math.e / s, "disgust": 1 / s, "fear": 1 / s, "happy": math.e**2 / s, "sad": 1 / s})
    b0 = [0.3 * v for v in e0]
    exp0 = [0.6 * v for v in b0]
    # frame 1: blend with b0, transition w = 0.033 / 0.5 towards b0 (the pre-strength frame-0 value)
    s1 = 5 + math.e**3
    e1 = to10({"angry": 1 / s1, "disgust": 1 / s1, "fear": 1 / s1, "happy": 1 / s1, "sad": math.e**3 / s1})
    b1 = [0.3 * x + 0.7 * y for x, y in zip(e1, b0, strict=True)]
    w = 0.033 / 0.5
    exp1 = [0.6 * (w * x + (1 - w) * y) for x, y in zip(b1, b0, strict=True)]

    assert out.shape == (2, 10) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], exp0, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(out[1], exp1, rtol=1e-6, atol=1e-8)
    assert exp0[I["joy"]] == pytest.approx(0.6 * 0.3 * math.e**2 / s)  # sanity of the hand computation


def test_postprocess_top_n_drops_neutral_first() -> None:
    pp = A2EPostProcessor(A2EPostProcessParams(max_emotions=2, emotion_strength=1.0))
    logits = [2.0, 1.0, 0.0, 3.0, 5.0, -1.0]  # neutral is the largest, but never kept
    out = pp.step(np.array(logits))
    p = softmax(logits)
    expected = to10({"angry": 0.3 * p[0], "happy": 0.3 * p[3]})  # top 2 of the mapped classes
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-9)
    assert np.count_nonzero(out) == 2


def test_postprocess_top_n_ties_zero_lowest_index_first() -> None:
    pp = A2EPostProcessor(A2EPostProcessParams(max_emotions=3, emotion_strength=1.0, live_blend_coef=0.0))
    out = pp.step(np.zeros(6))
    # all six at 1/6; neutral (now 0) goes first, then angry and disgust: fear, happy, sad remain
    np.testing.assert_allclose(out, to10({"fear": 1 / 6, "happy": 1 / 6, "sad": 1 / 6}), rtol=1e-6)


def test_postprocess_contrast() -> None:
    logits = [0.5, -0.2, 0.1, 1.0, 0.0, 0.3]
    pp = A2EPostProcessor(A2EPostProcessParams(emotion_contrast=3.0, max_emotions=6, emotion_strength=1.0))
    p = softmax([3.0 * x for x in logits])
    expected = to10({c: 0.3 * p[i] for i, c in enumerate(A2E_CLASSES) if c != "neutral"})
    np.testing.assert_allclose(pp.step(logits), expected, rtol=1e-6)


def test_postprocess_preferred_beginning_and_carry_over() -> None:
    pref = {"pain": 1.0, "joy": 0.5}
    params = A2EPostProcessParams(
        emotion_contrast=2.0,
        live_blend_coef=0.5,
        enable_preferred_emotion=True,
        preferred_emotion_strength=0.5,
        preferred_emotion=pref,
        emotion_strength=0.8,
        max_emotions=6,
        live_transition_time=0.1,
        fixed_dt=0.05,
        beginning_emotion={"Amazement": 0.4},
    )
    assert params.preferred_emotion[I["pain"]] == 1.0 and params.beginning_emotion[I["amazement"]] == 0.4
    l0 = [0.5, -0.5, 0.0, 1.0, 0.2, 0.0]
    l1 = [-1.0, 0.0, 2.0, 0.0, 0.0, 0.5]
    pp = A2EPostProcessor(params)
    out = pp.run(np.array([l0, l1]))

    pv = [0.0] * 10
    pv[I["pain"]], pv[I["joy"]] = 1.0, 0.5
    beg = [0.0] * 10
    beg[I["amazement"]] = 0.4
    # frame 0: working buffer starts as the beginning emotion; A2E overwrites its 5 emotions
    p0 = softmax([2.0 * x for x in l0])
    work0 = list(beg)
    for i, c in enumerate(A2E_CLASSES):
        if c != "neutral":
            work0[I[A2F_OF[c]]] = p0[i]
    b0 = [0.5 * x + 0.5 * y for x, y in zip(work0, beg, strict=True)]
    c0 = [0.5 * x + 0.5 * y for x, y in zip(b0, pv, strict=True)]
    out0 = [0.8 * x for x in c0]
    # frame 1: the 5 non-A2E emotions keep frame 0's output; blend with b0; preferred; w = 0.05/0.1
    p1 = softmax([2.0 * x for x in l1])
    work1 = list(out0)
    for i, c in enumerate(A2E_CLASSES):
        if c != "neutral":
            work1[I[A2F_OF[c]]] = p1[i]
    b1 = [0.5 * x + 0.5 * y for x, y in zip(work1, b0, strict=True)]
    c1 = [0.5 * x + 0.5 * y for x, y in zip(b1, pv, strict=True)]
    d1 = [0.5 * x + 0.5 * y for x, y in zip(c1, c0, strict=True)]
    out1 = [0.8 * x for x in d1]

    np.testing.assert_allclose(out[0], out0, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(out[1], out1, rtol=1e-6, atol=1e-8)
    # the values worked out by hand for the two non-A2E emotions
    assert out[0, I["amazement"]] == pytest.approx(0.16) and out[0, I["pain"]] == pytest.approx(0.4)
    assert out[1, I["amazement"]] == pytest.approx(0.136) and out[1, I["pain"]] == pytest.approx(0.44)


def test_postprocess_preferred_override_per_frame() -> None:
    params = A2EPostProcessParams(enable_preferred_emotion=True, preferred_emotion_strength=1.0)
    params = params.replace(emotion_strength=1.0)
    pp = A2EPostProcessor(params)
    target = emotion_vector({"grief": 0.7})
    out = pp.step(np.zeros(6), preferred=target)  # strength 1: the preferred emotion replaces everything
    np.testing.assert_allclose(out, target, atol=1e-7)


def test_postprocess_strength_scales_linearly() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(6, 6))
    full = A2EPostProcessor(A2EPostProcessParams(emotion_strength=0.6)).run(logits)
    half = A2EPostProcessor(A2EPostProcessParams(emotion_strength=0.3)).run(logits)
    zero = A2EPostProcessor(A2EPostProcessParams(emotion_strength=0.0)).run(logits)
    assert full.any()
    np.testing.assert_allclose(half * 2, full, rtol=1e-6)
    assert not zero.any()


def test_postprocess_infinite_transition_freezes_after_first_frame_and_reset() -> None:
    pp = A2EPostProcessor(A2EPostProcessParams(live_transition_time=math.inf, max_emotions=6))
    first = pp.step([3.0, 0, 0, 0, 0, 0])
    later = pp.run(np.array([[0, 0, 0, 0, 0, 3.0], [0, 0, 5.0, 0, 0, 0]]))
    np.testing.assert_allclose(later, np.stack([first, first]), rtol=1e-6)  # w = 0: nothing moves
    pp.reset()
    again = pp.step([0, 0, 0, 0, 0, 3.0])
    assert again[I["sadness"]] > again[I["anger"]]  # a fresh first frame follows its own logits


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"emotion_contrast": 0.2}, r"emotion_contrast must be in \[0.3, 3\]"),
        ({"emotion_contrast": 3.5}, "emotion_contrast"),
        ({"live_blend_coef": 1.5}, "live_blend_coef"),
        ({"preferred_emotion_strength": -0.1}, "preferred_emotion_strength"),
        ({"emotion_strength": 1.1}, "emotion_strength"),
        ({"max_emotions": 0}, "max_emotions"),
        ({"max_emotions": 7}, "max_emotions"),
        ({"max_emotions": 2.5}, "max_emotions"),
        ({"live_transition_time": 0.0}, "live_transition_time"),
        ({"fixed_dt": 0.0}, "fixed_dt"),
        ({"preferred_emotion": {"happy": 1.0}}, "unknown emotion 'happy'"),
        ({"beginning_emotion": [2.0] + [0.0] * 9}, "beginning_emotion.*amazement"),
        ({"beginning_emotion": [0.0] * 6}, "beginning_emotion must have 10 values"),
    ],
)
def test_postprocess_params_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(EmotionError, match=match):
        A2EPostProcessParams(**kwargs)


def test_postprocess_bad_logits() -> None:
    pp = A2EPostProcessor()
    with pytest.raises(EmotionError, match="shape"):
        pp.step(np.zeros(5))
    with pytest.raises(EmotionError, match="finite"):
        pp.step([0, 0, float("nan"), 0, 0, 0])
    with pytest.raises(EmotionError, match="shape"):
        pp.run(np.zeros((3, 7)))


# ----------------------------------------------------------------------------------------------------
# AudioToEmotion with a tiny ONNX made here: output = input_values @ M (so every sample position matters)

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

WIN = 1201  # odd on purpose: the window starts at target - 600


def _make_onnx(
    path: Path,
    matrix: np.ndarray,
    *,
    batch: int | str = "batch",
    time: int | str | None = None,
    in_name: str = "input_values",
    out_name: str = "output",
) -> Path:
    n_out = matrix.shape[1]
    n_in = matrix.shape[0] if time is None else time
    x = helper.make_tensor_value_info(in_name, TensorProto.FLOAT, [batch, n_in])
    y = helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [batch, n_out])
    node = helper.make_node("MatMul", [in_name, "M"], [out_name])
    graph = helper.make_graph([node], "tiny_a2e", [x], [y], [numpy_helper.from_array(matrix, name="M")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def matrix() -> np.ndarray:
    return np.random.default_rng(2).normal(scale=0.05, size=(WIN, 6)).astype(np.float32)


def _expected_logits(audio: np.ndarray, targets: list[int], matrix: np.ndarray) -> np.ndarray:
    rows = []
    for t in targets:
        start = t - WIN // 2
        win = [float(audio[start + j]) if 0 <= start + j < len(audio) else 0.0 for j in range(WIN)]
        rows.append(np.array(win, np.float64) @ matrix.astype(np.float64))
    return np.array(rows)


def test_audio_to_emotion_windows_timing_and_track(tmp_path: Path, matrix: np.ndarray) -> None:
    model = _make_onnx(tmp_path / "a2e.onnx", matrix)
    a2e = AudioToEmotion(model, fps=30, inferences_to_skip=1, window_len=WIN, batch_size=2)
    assert a2e.params.fixed_dt == pytest.approx(1 / 30)  # the SDK executor uses 1/fps
    audio = np.random.default_rng(3).uniform(-1, 1, size=5000).astype(np.float32)
    # stride = 16000 / 30 * 2 = 1066.67 samples: floor(k * 1066.67) for k = 0..4 (5333 is past the end)
    targets = [0, 1066, 2133, 3200, 4266]
    assert a2e.targets(len(audio)).tolist() == targets
    times, logits = a2e.logits(audio)
    np.testing.assert_allclose(times, np.array(targets) / 16000.0)
    expected = _expected_logits(audio, targets, matrix)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)
    # a window shifted by one sample would give other logits: the check above pins the timing
    assert not np.allclose(_expected_logits(audio, [t + 1 for t in targets], matrix), expected, atol=1e-3)

    track = a2e.track(audio)
    np.testing.assert_allclose(track.times, np.array(targets) / 16000.0)
    post = A2EPostProcessor(A2EPostProcessParams(fixed_dt=1 / 30)).run(expected)
    np.testing.assert_allclose(track.values, post, rtol=1e-4, atol=1e-6)


def test_audio_to_emotion_uses_the_frame_clock(tmp_path: Path, matrix: np.ndarray) -> None:
    """29.97 fps is 30000/1001 for Audio2Emotion too: with no inference skipped its keys sit on the frame times."""
    from facecast.timing import frame_targets, num_frames

    model = _make_onnx(tmp_path / "a2e.onnx", matrix)
    a2e = AudioToEmotion(model, fps=29.97, window_len=WIN, inferences_to_skip=0)
    assert a2e.stride_samples * 30000 == 16000 * 1001
    assert a2e.targets(20000).tolist() == frame_targets(0, num_frames(20000, 29.97), 29.97).tolist()
    for fps in (0, float("inf"), "30"):
        with pytest.raises(EmotionError, match="fps"):
            AudioToEmotion(model, fps=fps, window_len=WIN, inferences_to_skip=0)


def test_audio_to_emotion_fixed_batch_pads(tmp_path: Path, matrix: np.ndarray) -> None:
    audio = np.random.default_rng(4).uniform(-1, 1, size=3000).astype(np.float32)
    ref = AudioToEmotion(_make_onnx(tmp_path / "dyn.onnx", matrix), window_len=WIN, inferences_to_skip=0)
    _, want = ref.logits(audio)
    assert len(want) == 6  # targets floor(k * 533.33) < 3000: k = 0..5
    for b in (1, 4):
        fixed = AudioToEmotion(
            _make_onnx(tmp_path / f"b{b}.onnx", matrix, batch=b), window_len=WIN, inferences_to_skip=0
        )
        np.testing.assert_allclose(fixed.logits(audio)[1], want, rtol=1e-5, atol=1e-6)


def test_audio_to_emotion_preferred_track(tmp_path: Path, matrix: np.ndarray) -> None:
    params = A2EPostProcessParams(enable_preferred_emotion=True, preferred_emotion_strength=0.5)
    model = _make_onnx(tmp_path / "a.onnx", matrix)
    a2e = AudioToEmotion(model, params, window_len=WIN, inferences_to_skip=1)
    audio = np.random.default_rng(5).uniform(-1, 1, size=4000).astype(np.float32)
    pref = EmotionTrack.parse(["pain=0@0", "pain=1@0.25"])
    track = a2e.track(audio, preferred=pref)
    times, logits = a2e.logits(audio)
    want = A2EPostProcessor(a2e.params).run(logits, pref.sample(times))
    np.testing.assert_allclose(track.values, want, rtol=1e-5, atol=1e-7)
    assert track.values[-1, I["pain"]] > track.values[0, I["pain"]] >= 0.0
    empty = a2e.track(np.zeros(0, np.float32))
    assert len(empty) == 0 and not empty.sample([0.0]).any()


def test_audio_to_emotion_validation(tmp_path: Path, matrix: np.ndarray) -> None:
    short = {"window_len": WIN, "inferences_to_skip": 0}
    with pytest.raises(EmotionError, match=r"expected one input 'input_values'.*\['input'\]"):
        AudioToEmotion(_make_onnx(tmp_path / "n.onnx", matrix, in_name="input"), **short)
    with pytest.raises(EmotionError, match="expected an output 'output'"):
        AudioToEmotion(_make_onnx(tmp_path / "o.onnx", matrix, out_name="logits"), **short)
    with pytest.raises(EmotionError, match=r"must have shape \[batch, 6\]"):
        AudioToEmotion(_make_onnx(tmp_path / "c.onnx", matrix[:, :5]), **short)
    with pytest.raises(EmotionError, match="fixed length of 1201 samples but window_len is 60000"):
        AudioToEmotion(_make_onnx(tmp_path / "t.onnx", matrix))
    with pytest.raises(EmotionError, match="exceeds window_len"):
        AudioToEmotion(_make_onnx(tmp_path / "s.onnx", matrix), window_len=WIN, inferences_to_skip=2)
    with pytest.raises(FileNotFoundError):
        AudioToEmotion(tmp_path / "absent.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(EmotionError, match="cannot load"):
        AudioToEmotion(tmp_path / "junk.onnx")
    a2e = AudioToEmotion(_make_onnx(tmp_path / "ok.onnx", matrix), window_len=WIN, inferences_to_skip=0)
    with pytest.raises(EmotionError, match="mono"):
        a2e.logits(np.zeros((2, 100), np.float32))


def test_runtime_modules_do_not_import_torch() -> None:
    import facecast.infer.a2e

    src = str(Path(facecast.infer.a2e.__file__).resolve().parents[2])
    code = "import sys, facecast.emotion, facecast.infer.a2e as a; a.AudioToEmotion; print('torch' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert res.stdout.strip() == "False"
