"""Face post-processing (spec 4.4, 5.5-5.8) against values worked by hand."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.signal import lfilter
from scipy.spatial.transform import Rotation

from facecast.face.postprocess import (
    CAMEL_NAMES,
    PARAM_NAMES,
    PARAM_RANGES,
    FaceModelData,
    FaceParamError,
    FaceParams,
    FacePostProcessor,
    FaceStreamState,
    _smooth2,
    face_mask_lower,
    smoothing_alpha,
)

MARK = {
    "input_strength": 1.3, "lower_face_smoothing": 0.0023, "upper_face_smoothing": 0.001,
    "lower_face_strength": 1.4, "upper_face_strength": 1.0, "face_mask_level": 0.6,
    "face_mask_softness": 0.0085, "skin_strength": 1.1, "blink_strength": 1.0, "eyelid_open_offset": 0.06,
    "lip_open_offset": -0.03, "tongue_strength": 1.5, "tongue_height_offset": 0.2,
    "tongue_depth_offset": 0.13, "lower_teeth_strength": 1.3, "lower_teeth_height_offset": -0.1,
    "lower_teeth_depth_offset": 0.0, "eyeballs_strength": 1.0, "saccade_strength": 0.9,
    "right_eye_rot_x_offset": 0.0, "right_eye_rot_y_offset": -2.0, "left_eye_rot_x_offset": 0.0,
    "left_eye_rot_y_offset": 2.0, "eye_saccade_seed": 0,
}  # fmt: skip

# The NIM FaceParameters float_params keys of spec 12.
NIM_NAMES = {
    "lowerFaceSmoothing": "lower_face_smoothing", "upperFaceSmoothing": "upper_face_smoothing",
    "lowerFaceStrength": "lower_face_strength", "upperFaceStrength": "upper_face_strength",
    "faceMaskLevel": "face_mask_level", "faceMaskSoftness": "face_mask_softness",
    "skinStrength": "skin_strength", "blinkStrength": "blink_strength",
    "eyelidOpenOffset": "eyelid_open_offset", "lipOpenOffset": "lip_open_offset",
    "blinkOffset": "blink_offset", "tongueStrength": "tongue_strength",
    "tongueHeightOffset": "tongue_height_offset", "tongueDepthOffset": "tongue_depth_offset",
}  # fmt: skip

NO_SMOOTHING = {"lower_face_smoothing": 0.0, "upper_face_smoothing": 0.0}


def random_data(seed: int = 0, vs: int = 40, ks: int = 6, vt: int = 12, kt: int = 3, rows: int = 5000):
    rng = np.random.default_rng(seed)
    return {
        "shapes_matrix_skin": rng.normal(size=(ks, vs, 3)),
        "shapes_mean_skin": rng.normal(size=(vs, 3)),
        "lip_open_pose_delta": rng.normal(size=(vs, 3)),
        "eye_close_pose_delta": rng.normal(size=(vs, 3)),
        "shapes_matrix_tongue": rng.normal(size=(kt, vt, 3)),
        "shapes_mean_tongue": rng.normal(size=(vt, 3)),
        "neutral_jaw": rng.normal(size=(5, 3)),
        "saccade_rot_matrix": rng.normal(size=(rows, 2)),
        "blink_keys": np.zeros(3),  # an optional extra: ignored
    }


def two_vertex_data() -> dict:
    """Vertex 0 at y=0 (lower face), vertex 1 at y=1 (upper face); one skin shape, one tongue shape."""
    data = random_data(vs=2, ks=1, vt=2, kt=1, rows=3)
    data["shapes_mean_skin"] = np.array([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    data["shapes_matrix_skin"] = np.array([[[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]])
    data["eye_close_pose_delta"] = np.array([[0.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    data["lip_open_pose_delta"] = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    data["shapes_mean_tongue"] = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    data["shapes_matrix_tongue"] = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    data["saccade_rot_matrix"] = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])
    return data


# ---------------------------------------------------------------------------------------------- FaceParams


def test_defaults_are_the_mark_values():
    params = FaceParams()
    assert {k: getattr(params, k) for k in MARK} == MARK
    assert params.blink_offset == 0.0
    assert params.quiet_hold == 0.0  # facecast's extension is off unless a model turns it on
    assert set(PARAM_NAMES) == set(MARK) | {"blink_offset", "quiet_hold"}


def test_from_model_config_wrapped_or_inner_ignores_unknown_keys():
    extra = {"source_shot": "g2a_neutral", "source_frame": 33, "x": "y"}
    cfg = {"config": {**MARK, "skin_strength": 0.7, **extra}}
    wrapped = FaceParams.from_model_config(cfg)
    inner = FaceParams.from_model_config(cfg["config"])
    assert wrapped == inner
    assert wrapped.skin_strength == 0.7
    assert FaceParams.from_model_config({"config": {"tongue_strength": 2}}).tongue_strength == 2.0
    assert FaceParams.from_model_config({"tongue_strength": 2}).skin_strength == 1.1  # default kept


def test_from_model_config_rejects_non_numeric_known_keys():
    with pytest.raises(FaceParamError, match="skin_strength"):
        FaceParams.from_model_config({"config": {"skin_strength": "1.1"}})
    with pytest.raises(FaceParamError, match="blink_strength"):
        FaceParams.from_model_config({"blink_strength": True})
    with pytest.raises(FaceParamError, match="eye_saccade_seed"):
        FaceParams.from_model_config({"eye_saccade_seed": 2.5})
    assert FaceParams.from_model_config({"eye_saccade_seed": 12.0}).eye_saccade_seed == 12


def test_overrides_by_nim_camel_case_names():
    for camel, snake in NIM_NAMES.items():
        lo, hi, _ = PARAM_RANGES[snake]
        value = lo + 0.25 * (hi - lo)
        assert getattr(FaceParams().with_overrides({camel: value}), snake) == pytest.approx(value)
    p = FaceParams().with_overrides(
        {"inputStrength": 2, "lowerTeethStrength": 0.5, "rightEyeRotXOffset": -4, "eyeSaccadeSeed": 77,
         "eyeballsStrength": 0.3, "saccade_strength": 0.1}
    )  # fmt: skip
    assert (p.input_strength, p.lower_teeth_strength, p.right_eye_rot_x_offset) == (2.0, 0.5, -4.0)
    assert (p.eye_saccade_seed, p.eyeballs_strength, p.saccade_strength) == (77, 0.3, 0.1)
    assert set(CAMEL_NAMES.values()) == set(PARAM_NAMES)
    assert FaceParams().with_overrides(p.as_dict(camel=True)) == p


def test_unknown_override_lists_the_valid_names():
    with pytest.raises(FaceParamError) as err:
        FaceParams().with_overrides({"mouthStrength": 1.0})
    assert isinstance(err.value, ValueError)
    message = str(err.value)
    assert "mouthStrength" in message and "lowerFaceSmoothing" in message and "eye_saccade_seed" in message


@pytest.mark.parametrize(
    ("name", "bad", "bounds"),
    [
        ("upper_face_smoothing", 0.11, "[0.0, 0.1]"),
        ("lower_face_smoothing", -0.01, "[0.0, 0.1]"),
        ("skin_strength", 2.5, "[0.0, 2.0]"),
        ("tongue_strength", 3.1, "[0.0, 3.0]"),
        ("face_mask_softness", 0.0005, "[0.001, 0.5]"),
        ("face_mask_level", 1.2, "[0.0, 1.0]"),
        ("eyelid_open_offset", -1.5, "[-1.0, 1.0]"),
        ("lip_open_offset", 0.25, "[-0.2, 0.2]"),
        ("blink_offset", 1.1, "[0.0, 1.0]"),
        ("tongue_depth_offset", 3.5, "[-3.0, 3.0]"),
        ("left_eye_rot_y_offset", -11.0, "[-10.0, 10.0]"),
        ("eye_saccade_seed", 5000, "[0, 4999]"),
        ("input_strength", 4.5, "[0.0, 4.0]"),
    ],
)
def test_range_errors_name_parameter_value_and_range(name, bad, bounds):
    with pytest.raises(FaceParamError) as err:
        FaceParams().with_overrides({name: bad})
    message = str(err.value)
    assert name in message and repr(float(bad) if name != "eye_saccade_seed" else bad) in message
    assert bounds in message
    with pytest.raises(FaceParamError, match=name):
        dataclasses.replace(FaceParams(), **{name: bad}).validate()


def test_range_ends_are_accepted_and_nan_is_not():
    for name, (lo, hi, _) in PARAM_RANGES.items():
        FaceParams().with_overrides({name: lo})
        FaceParams().with_overrides({name: hi})
    with pytest.raises(FaceParamError, match="finite"):
        dataclasses.replace(FaceParams(), skin_strength=float("nan")).validate()


# ---------------------------------------------------------------------------------------------- model data


def test_model_data_accepts_flat_layouts_and_names_missing_arrays():
    data = random_data(vs=4, ks=2)
    flat = {**data}
    flat["shapes_matrix_skin"] = data["shapes_matrix_skin"].reshape(2, 12)
    flat["neutral_jaw"] = data["neutral_jaw"].reshape(15)
    flat["saccade_rot_matrix"] = data["saccade_rot_matrix"].reshape(-1)
    flat["shapes_mean_skin"] = data["shapes_mean_skin"].reshape(-1)
    a, b = FaceModelData.from_mapping(data), FaceModelData.from_mapping(flat)
    assert b.shapes_matrix_skin.shape == (2, 4, 3) and b.saccade_rot_matrix.shape == (5000, 2)
    assert np.array_equal(a.shapes_matrix_skin, b.shapes_matrix_skin) and b.neutral_jaw.dtype == np.float32
    assert a.result_size == 2 + 3 + 15 + 4
    del flat["eye_close_pose_delta"]
    with pytest.raises(ValueError, match="eye_close_pose_delta"):
        FaceModelData.from_mapping(flat)
    with pytest.raises(ValueError, match="lip_open_pose_delta"):
        FaceModelData.from_mapping({**data, "lip_open_pose_delta": np.zeros((5, 3))})


# ---------------------------------------------------------------------------------------------- skin


def test_face_mask_values():
    # y_norm = 0, .25, .5, .75, 1; level .5, softness .1 -> sigmoid(5, 2.5, 0, -2.5, -5)
    expected = [0.9933071, 0.9241418, 0.5, 0.0758582, 0.0066929]
    neutral = np.array([[0.0, y, 0.0] for y in (0.0, 0.25, 0.5, 0.75, 1.0)])
    assert face_mask_lower(neutral, 0.5, 0.1) == pytest.approx(expected, abs=1e-7)
    moved = neutral * [1, 4, 1] + [3, 2, 1]  # y in [2, 6]: only the normalised height matters
    assert face_mask_lower(moved, 0.5, 0.1) == pytest.approx(expected, abs=1e-7)
    data = random_data(vs=5)
    data["shapes_mean_skin"] = neutral
    params = FaceParams().with_overrides({"faceMaskLevel": 0.5, "faceMaskSoftness": 0.1})
    proc = FacePostProcessor(data, params)
    assert proc.face_mask == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match="flat"):
        face_mask_lower(np.zeros((4, 3)), 0.5, 0.1)


def test_skin_formula_by_hand():
    params = FaceParams().with_overrides(
        {**NO_SMOOTHING, "skin_strength": 2.0, "eyelid_open_offset": 0.1, "blink_strength": 0.5,
         "lip_open_offset": 0.2, "upper_face_strength": 1.5, "lower_face_strength": 0.5,
         "face_mask_level": 0.5, "face_mask_softness": 0.001}
    )  # fmt: skip
    proc = FacePostProcessor(two_vertex_data(), params)
    assert proc.face_mask.tolist() == [1.0, 0.0]
    # delta = 3 * basis: v0 (3,0,0), v1 (0,6,0); eye factor = -0.1 + 0.4*0.5 = 0.1; lip factor 0.2
    # d: v0 = (6,0,0) + 0.2*(0,0,1) = (6,0,0.2); v1 = (0,12,0) + 0.1*(0,-1,0) = (0,11.9,0)
    # out: v0 (lower) = 0 + 0.5*d0 = (3,0,0.1); v1 (upper) = (0,1,0) + 1.5*d1 = (0,18.85,0)
    out = proc.skin([[3.0]], blink_offset=[0.4])
    assert out.shape == (1, 2, 3)
    assert out[0] == pytest.approx(np.array([[3.0, 0.0, 0.1], [0.0, 18.85, 0.0]]), abs=1e-5)
    # params.blink_offset is the default; scalar and per-frame arrays work
    proc.params = params.with_overrides({"blinkOffset": 0.4})
    assert proc.skin([[3.0]]) == pytest.approx(out, abs=1e-6)
    two = proc.skin([[3.0], [3.0]], blink_offset=[0.0, 1.0])
    # blink 0 -> eye factor -0.1 -> v1.y = 1 + 1.5*(12 + 0.1) = 19.15; blink 1 -> 0.4 -> 1 + 1.5*11.6 = 18.4
    assert two[:, 1, 1] == pytest.approx([19.15, 18.4], abs=1e-5)
    with pytest.raises(ValueError, match="blink_offset"):
        proc.skin([[3.0]], blink_offset=[1.5])
    with pytest.raises(ValueError, match=r"\[N, 1\]"):
        proc.skin(np.zeros((2, 4)))


def test_smoothing_alpha_is_a_half_life():
    assert smoothing_alpha(1 / 30, 1 / 30) == pytest.approx(0.5)
    assert smoothing_alpha(0.1, 1 / 30) == pytest.approx(1 - 0.5 ** (1 / 3), rel=1e-6)
    assert smoothing_alpha(0.0, 1 / 30) == -1.0


@pytest.mark.parametrize(("fps", "half_life_frames"), [(30.0, 3), (60.0, 6), (100.0, 10)])
def test_step_response_one_stage_and_two_stage_cascade(fps, half_life_frames):
    smoothing = half_life_frames / fps  # 0.1 s
    alpha = smoothing_alpha(smoothing, 1 / fps)
    step = np.ones((40, 1), np.float32)
    step[0] = 0.0  # frame 0 initialises the filters at 0; the step starts at frame 1
    y2, state = _smooth2(step[: half_life_frames + 1], alpha, None)
    assert state[0, 0] == pytest.approx(0.5, abs=1e-6)  # stage 1: half way after one half-life
    y2, _ = _smooth2(step, alpha, None)
    n = np.arange(40)
    r = 1.0 - alpha
    closed_form = 1.0 - r**n * (1.0 + n * alpha)  # cascade of two identical first-order stages
    assert y2[:, 0] == pytest.approx(closed_form, abs=1e-6)
    assert y2[half_life_frames, 0] < 0.5  # the second stage lags the first


def test_step_response_through_the_processor_uses_lower_and_upper_half_lives():
    data = two_vertex_data()
    params = FaceParams().with_overrides(
        {"lower_face_smoothing": 0.1, "upper_face_smoothing": 0.05, "skin_strength": 1.0,
         "eyelid_open_offset": 0.0, "lip_open_offset": 0.0, "upper_face_strength": 1.0,
         "lower_face_strength": 1.0, "face_mask_level": 0.5, "face_mask_softness": 0.001}
    )  # fmt: skip
    proc = FacePostProcessor(data, params, fps=30.0)
    coeffs = np.r_[np.zeros(1), np.ones(20)][:, None]
    out = proc.skin(coeffs)
    lower_x, upper_y = out[:, 0, 0], (out[:, 1, 1] - 1.0) / 2.0  # v0 follows (1,0,0), v1 follows (0,2,0)
    n = np.arange(21)
    for got, smoothing in ((lower_x, 0.1), (upper_y, 0.05)):
        a = 1.0 - 0.5 ** (1 / 30 / smoothing)
        assert got == pytest.approx(1.0 - (1.0 - a) ** n * (1.0 + n * a), abs=1e-5)
    assert proc.state.lower[0, 0] == pytest.approx(1.0 - 0.5 ** (20 / 3), abs=1e-5)  # stage 1 of the lower
    proc.params = params.with_overrides(NO_SMOOTHING)
    proc.reset()
    assert proc.skin(coeffs)[:, 0, 0] == pytest.approx(coeffs[:, 0])  # smoothing 0: no lag


def lfilter_cascade(x: np.ndarray, alpha: float) -> np.ndarray:
    """Reference: the cascade as two linear filters y = alpha·x + (1 - alpha)·y, started at y = x[0]."""
    b, a = [alpha], [1.0, alpha - 1.0]
    x = x.astype(np.float64)
    y1, _ = lfilter(b, a, x, axis=0, zi=(1.0 - alpha) * x[:1])
    y2, _ = lfilter(b, a, y1, axis=0, zi=(1.0 - alpha) * x[:1])
    return y2


def test_smoothing_matches_lfilter_and_chunks_are_bit_identical():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 7)).astype(np.float32)
    alpha = smoothing_alpha(0.07, 1 / 30)
    whole, state = _smooth2(x, alpha, None)
    assert whole.dtype == np.float32 and whole.shape == (60, 7)
    np.testing.assert_allclose(whole, lfilter_cascade(x, alpha), rtol=1e-5, atol=1e-6)
    assert np.array_equal(whole[0], x[0])  # the first frame initialises both stages
    parts, st = [], None
    for lo, hi in [(0, 1), (1, 2), (2, 17), (17, 18), (18, 60)]:
        y, st = _smooth2(x[lo:hi], alpha, st)
        parts.append(y)
    assert np.array_equal(np.concatenate(parts), whole)
    assert np.array_equal(st, state)
    passthrough, off_state = _smooth2(x, smoothing_alpha(0.0, 1 / 30), None)
    assert np.array_equal(passthrough, x) and np.array_equal(off_state, np.stack([x[-1], x[-1]]))


# ---------------------------------------------------------------------------------------------- tongue, jaw


def test_tongue_formula_by_hand():
    overrides = {"tongueStrength": 2.5, "tongueHeightOffset": -0.4, "tongueDepthOffset": 0.3}
    out = FacePostProcessor(two_vertex_data(), FaceParams().with_overrides(overrides)).tongue([[2.0], [0.0]])
    # v0 = 0 + 2.5*2*(1,0,0) + (0,-.4,.3) = (5,-.4,.3); v1 = (1,1,1) + 5*(0,1,0) + (0,-.4,.3) = (1,5.6,1.3)
    assert out[0] == pytest.approx(np.array([[5.0, -0.4, 0.3], [1.0, 5.6, 1.3]]), abs=1e-6)
    assert out[1] == pytest.approx(np.array([[0.0, -0.4, 0.3], [1.0, 0.6, 1.3]]), abs=1e-6)


def test_jaw_recovers_a_known_rigid_motion_and_is_column_major():
    data = random_data(seed=5)
    params = FaceParams()  # Mark: strength 1.3, offsets (0, -0.1, 0.0)
    proc = FacePostProcessor(data, params)
    src = data["neutral_jaw"]
    rots = Rotation.random(8, random_state=7).as_matrix()
    trans = np.random.default_rng(8).normal(size=(8, 3))
    offset = np.array([0.0, -0.1, 0.0])
    targets = np.einsum("nrc,pc->npr", rots, src) + trans[:, None, :]
    deltas = ((targets - src - offset) / 1.3).reshape(8, 15)
    m = proc.jaw(deltas)
    assert m.shape == (8, 4, 4)
    assert np.abs(m[:, :3, :3] - rots).max() < 1e-5
    assert np.abs(m[:, :3, 3] - trans).max() < 1e-5
    assert np.array_equal(m[:, 3], np.tile([0.0, 0.0, 0.0, 1.0], (8, 1)))
    flat = proc.jaw_column_major(deltas)
    assert flat.shape == (8, 16)
    assert np.abs(flat[:, 12:15] - trans).max() < 1e-5  # translation is the 4th column: floats 12..14
    assert np.abs(flat[:, 0:3] - rots[:, :, 0]).max() < 1e-5  # first column of R first
    assert np.array_equal(flat[:, [3, 7, 11, 15]], np.tile([0.0, 0.0, 0.0, 1.0], (8, 1)))


def test_jaw_at_rest_is_the_teeth_offset():
    params = FaceParams().with_overrides({"lowerTeethDepthOffset": 0.25})
    proc = FacePostProcessor(random_data(seed=2), params)
    m = proc.jaw(np.zeros((1, 15)))[0]
    assert np.abs(m[:3, :3] - np.eye(3)).max() < 1e-5
    assert m[:3, 3] == pytest.approx([0.0, -0.1, 0.25], abs=1e-6)


def test_jaw_reflection_fix_follows_the_sdk():
    data = random_data(seed=4)
    proc = FacePostProcessor(data, FaceParams().with_overrides({"lowerTeethHeightOffset": 0.0}))
    src = data["neutral_jaw"]
    mirrored = src * [-1.0, 1.0, 1.0]  # a reflection: no rotation fits it exactly
    m = proc.jaw(((mirrored - src) / 1.3).reshape(1, 15))[0].astype(np.float64)
    rot = m[:3, :3]
    assert np.linalg.det(rot) == pytest.approx(1.0, abs=1e-5)
    assert rot @ rot.T == pytest.approx(np.eye(3), abs=1e-5)
    h = (src - src.mean(0)).T @ (mirrored - mirrored.mean(0))
    u, _, vt = np.linalg.svd(h)
    raw = vt.T @ u.T
    assert np.linalg.det(raw) == pytest.approx(-1.0)
    assert rot == pytest.approx(raw * [1.0, 1.0, -1.0], abs=1e-5)  # SDK: third column negated
    assert m[:3, 3] == pytest.approx(mirrored.mean(0) - rot @ src.mean(0), abs=1e-5)


# ---------------------------------------------------------------------------------------------- eyes


def eye_params(**extra) -> FaceParams:
    return FaceParams().with_overrides(
        {"eyeballsStrength": 2.0, "saccadeStrength": 0.5, "rightEyeRotXOffset": 1.0,
         "rightEyeRotYOffset": -2.0, "leftEyeRotXOffset": 3.0, "leftEyeRotYOffset": 4.0, **extra}
    )  # fmt: skip


def test_eyes_formula_by_hand_with_seed_and_wrap():
    proc = FacePostProcessor(two_vertex_data(), eye_params(eyeSaccadeSeed=1))  # 3-row table
    out = proc.eyes(np.tile([0.1, 0.2, 0.3, 0.4], (4, 1)))
    # frame 0: row (1+0)%3 = 1 -> (.3,.4): right (1+.2+.15, -2+.4+.2) = (1.35,-1.4); left (3+.6+.15, 4+.8+.2)
    assert out[0] == pytest.approx([1.35, -1.4, 0.0, 3.75, 5.0, 0.0], abs=1e-6)
    # frame 1: row 2 -> (.5,.6): right (1.45,-1.3); left (3.85, 5.1)
    assert out[1] == pytest.approx([1.45, -1.3, 0.0, 3.85, 5.1, 0.0], abs=1e-6)
    # frame 2: row (1+2)%3 = 0 -> (.1,.2): right (1.25,-1.5); frame 3: row 1 again
    assert out[2] == pytest.approx([1.25, -1.5, 0.0, 3.65, 4.9, 0.0], abs=1e-6)
    assert np.array_equal(out[3], out[0])


@pytest.mark.parametrize(
    ("fps", "rows"),
    [(30.0, [0, 1, 2, 3, 4, 5, 6, 7]), (60.0, [0, 0, 1, 1, 2, 2, 3, 3]), (24.0, [0, 1, 2, 3, 5, 6, 7, 8])],
)
def test_saccades_step_at_30_fps_whatever_the_frame_rate(fps, rows):
    data = random_data()
    table = data["saccade_rot_matrix"].astype(np.float32)
    params = FaceParams().with_overrides({"saccadeStrength": 1.0, "eyeballsStrength": 0.0})
    proc = FacePostProcessor(data, params, fps)
    out = proc.eyes(np.zeros((8, 4)))
    assert np.array_equal(out[:, 0], table[rows, 0] + np.float32(0.0))  # right x offset 0
    assert np.array_equal(out[:, 4], table[rows, 1] + np.float32(2.0))  # left y offset +2


def test_saccade_seed_wraps_at_the_table_end():
    data = random_data()
    table = data["saccade_rot_matrix"].astype(np.float32)
    overrides = {"saccadeStrength": 1.0, "eyeSaccadeSeed": 4999, "rightEyeRotYOffset": 0}
    params = FaceParams().with_overrides(overrides)
    out = FacePostProcessor(data, params).eyes(np.zeros((3, 4)))
    assert np.array_equal(out[:, 1], table[[4999, 0, 1], 1])


def test_eyes_chunked_and_reset():
    proc = FacePostProcessor(random_data(), eye_params(eyeSaccadeSeed=10), fps=60.0)
    net = np.random.default_rng(1).normal(size=(25, 4))
    whole = proc.eyes(net)
    proc.reset()
    chunks = np.concatenate([proc.eyes(net[lo:hi]) for lo, hi in [(0, 1), (1, 2), (2, 11), (11, 25)]])
    assert np.array_equal(chunks, whole)
    proc.reset()
    assert np.array_equal(proc.eyes(net[:5]), whole[:5])
    no_saccade = FacePostProcessor(random_data(), eye_params(saccadeStrength=0.0)).eyes(net)
    assert no_saccade[:, 0] == pytest.approx(1.0 + 2.0 * net[:, 0], abs=1e-5)


# ---------------------------------------------------------------------------------------------- process


def test_process_whole_vs_chunks_and_separate_streams():
    data = random_data(seed=9)
    params = FaceParams().with_overrides({"lowerFaceSmoothing": 0.08, "upperFaceSmoothing": 0.03})
    proc = FacePostProcessor(data, params, fps=30.0)
    rng = np.random.default_rng(10)
    result = rng.normal(size=(30, proc.result_size)).astype(np.float32)
    blink = rng.uniform(size=30)
    whole = proc.process(result, blink_offset=blink)
    assert len(whole) == 30 and whole.skin.shape == (30, 40, 3) and whole.tongue.shape == (30, 12, 3)
    assert whole.jaw.shape == (30, 4, 4) and whole.eyes.shape == (30, 6)
    proc.reset()
    cuts = [(0, 1), (1, 2), (2, 13), (13, 14), (14, 30)]
    parts = [proc.process(result[lo:hi], blink[lo:hi]) for lo, hi in cuts]
    for name in ("skin", "tongue", "jaw", "eyes"):
        joined = np.concatenate([getattr(p, name) for p in parts])
        # equal up to float32 GEMM rounding (BLAS may sum a 1-row product differently from a block)
        np.testing.assert_allclose(joined, getattr(whole, name), rtol=1e-5, atol=1e-5)
    assert np.array_equal(np.concatenate([p.eyes for p in parts]), whole.eyes)
    # Two interleaved streams with their own states equal two separate runs.
    a, b = proc.new_state(), FaceStreamState()
    other = rng.normal(size=(30, proc.result_size)).astype(np.float32)
    first = [proc.process(result[i : i + 10], blink[i : i + 10], state=a) for i in (0, 10, 20)]
    second = [proc.process(other[i : i + 10], state=b) for i in (0, 10, 20)]
    np.testing.assert_allclose(np.concatenate([p.skin for p in first]), whole.skin, rtol=1e-5, atol=1e-5)
    proc.reset()
    alone = proc.process(other).skin
    np.testing.assert_allclose(np.concatenate([p.skin for p in second]), alone, rtol=1e-5, atol=1e-5)


def test_process_splits_the_result_row():
    data = random_data(seed=11)
    proc = FacePostProcessor(data, FaceParams().with_overrides(NO_SMOOTHING))
    row = np.random.default_rng(12).normal(size=(2, proc.result_size))
    pose = proc.process(row)
    fresh = FacePostProcessor(data, proc.params)
    assert np.array_equal(pose.skin, fresh.skin(row[:, :6]))
    assert np.array_equal(pose.tongue, fresh.tongue(row[:, 6:9]))
    assert np.array_equal(pose.jaw, fresh.jaw(row[:, 9:24]))
    assert np.array_equal(pose.eyes, fresh.eyes(row[:, 24:]))
    assert np.array_equal(pose.jaw_column_major, fresh.jaw_column_major(row[:, 9:24]))
    with pytest.raises(ValueError, match="network result"):
        proc.process(row[:, :-1])
    empty = proc.process(np.zeros((0, proc.result_size)))
    assert len(empty) == 0 and empty.skin.shape == (0, 40, 3) and empty.jaw.shape == (0, 4, 4)
    fresh.reset()
    single = fresh.process(row[0])  # one frame as a 1-D row
    assert single.skin.shape == (1, 40, 3) and np.array_equal(single.eyes, pose.eyes[:1])
