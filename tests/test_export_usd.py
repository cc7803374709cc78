"""USD writer: UsdSkel blend shapes and joints read back through pxr (UsdSkel.Cache, BakeSkinning), point cache."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from exporthelpers import make_animation, make_character, skip_without_anny

from facecast.characters import apply_weights
from facecast.constants import ARKIT_NAMES, TONGUE_NAMES
from facecast.export import WRITERS, write
from facecast.export.gltf import character_jaw
from facecast.export.usd import JOINTS, write_usd

pxr = pytest.importorskip("pxr", reason="usd-core is not installed (pip install usd-core)")
from pxr import Gf, Usd, UsdGeom, UsdSkel  # noqa: E402

N = 12
FPS = 24.0


@pytest.fixture(scope="module")
def tiny():
    return make_character(seed=5)


@pytest.fixture(scope="module")
def anim():
    return make_animation(N, fps=FPS, seed=2)


@pytest.fixture(scope="module")
def usda(tmp_path_factory, tiny, anim):
    return write_usd(anim, tmp_path_factory.mktemp("usd") / "tiny.usda", character=tiny)


_CACHES = []  # a query is only valid while its UsdSkel.Cache and stage live


def _anim_query(stage):
    cache = UsdSkel.Cache()
    _CACHES.append((stage, cache))
    root = UsdSkel.Root(stage.GetPrimAtPath("/facecast_head"))
    cache.Populate(root, Usd.PrimDefaultPredicate)
    skel = cache.GetSkelQuery(UsdSkel.Skeleton(stage.GetPrimAtPath("/facecast_head/Skeleton")))
    return skel.GetAnimQuery()


def test_stage_timing_and_names(usda):
    stage = Usd.Stage.Open(str(usda))
    assert stage.GetTimeCodesPerSecond() == FPS and stage.GetFramesPerSecond() == FPS
    assert (stage.GetStartTimeCode(), stage.GetEndTimeCode()) == (0.0, N - 1.0)
    assert UsdGeom.GetStageUpAxis(stage) == "Y" and UsdGeom.GetStageMetersPerUnit(stage) == 0.01
    query = _anim_query(stage)
    assert list(query.GetBlendShapeOrder()) == list(ARKIT_NAMES) + list(TONGUE_NAMES)
    assert list(query.GetJointOrder()) == list(JOINTS)
    assert query.GetBlendShapeWeightTimeSamples() == [float(i) for i in range(N)]


def test_blend_shape_weights_round_trip(usda, anim):
    query = _anim_query(Usd.Stage.Open(str(usda)))
    expected = np.concatenate([anim.skin_weights, anim.tongue_weights], axis=1)
    for frame in (0, 5, N - 1):
        np.testing.assert_allclose(np.array(query.ComputeBlendShapeWeights(frame)), expected[frame], rtol=1e-6)


def test_blend_shapes_are_sparse_and_named(usda, tiny):
    stage = Usd.Stage.Open(str(usda))
    skin = UsdSkel.BindingAPI(stage.GetPrimAtPath("/facecast_head/Geom/skin"))
    names = list(skin.GetBlendShapesAttr().Get())
    moving = [n for k, n in enumerate(ARKIT_NAMES) if np.any(tiny.arkit_deltas["skin"][k] != 0)]
    assert names == moving
    shape = UsdSkel.BlendShape(stage.GetPrimAtPath(f"/facecast_head/Geom/skin/{names[0]}"))
    idx = np.array(shape.GetPointIndicesAttr().Get())
    offsets = np.array(shape.GetOffsetsAttr().Get())
    dense = tiny.arkit_deltas["skin"][ARKIT_NAMES.index(names[0])]
    assert len(idx) < len(dense)
    np.testing.assert_allclose(offsets, dense[idx], rtol=1e-6)
    tongue = UsdSkel.BindingAPI(stage.GetPrimAtPath("/facecast_head/Geom/tongue"))
    assert set(TONGUE_NAMES) <= set(tongue.GetBlendShapesAttr().Get())


def test_skinned_file_matches_apply_weights(usda, tiny, anim, tmp_path):
    copy = tmp_path / "baked.usda"  # baking edits the (shared) layer in memory: work on a copy
    shutil.copy(usda, copy)
    stage = Usd.Stage.Open(str(copy))
    assert UsdSkel.BakeSkinning(UsdSkel.Root(stage.GetPrimAtPath("/facecast_head")), Gf.Interval(0, N - 1))
    expected = apply_weights(tiny, anim.skin_weights, anim.tongue_weights, character_jaw(tiny, anim), anim.eyes)
    for name in tiny.parts:
        mesh = UsdGeom.Mesh(stage.GetPrimAtPath(f"/facecast_head/Geom/{name}"))
        for frame in (0, 7, N - 1):
            points = np.array(mesh.GetPointsAttr().Get(frame))
            xf = np.array(mesh.ComputeLocalToWorldTransform(frame))  # rigid bindings bake into the transform
            np.testing.assert_allclose(points @ xf[:3, :3] + xf[3, :3], expected[name][frame], atol=1e-5)


def test_jaw_joint_reproduces_the_jaw_matrix(usda, tiny, anim):
    jaw = character_jaw(tiny, anim)  # the jaw the ARKit weights give the teeth, not the network's
    assert not np.allclose(jaw, anim.jaw, atol=1e-3)
    stage = Usd.Stage.Open(str(usda))
    query = _anim_query(stage)
    bind = np.array(UsdSkel.Skeleton(stage.GetPrimAtPath("/facecast_head/Skeleton")).GetBindTransformsAttr().Get()[1])
    point = np.array([0.5, -4.0, 5.0, 1.0])
    for frame in (2, 9):
        local = np.array(query.ComputeJointLocalTransforms(frame)[1])  # row vectors: p @ inv(bind) @ local
        np.testing.assert_allclose((point @ np.linalg.inv(bind) @ local)[:3], (jaw[frame] @ point)[:3], atol=1e-5)


def test_point_cache_variant(tmp_path, tiny, anim):
    path = write_usd(anim, tmp_path / "cache.usdc", character=tiny, geometry=True)
    stage = Usd.Stage.Open(str(path))
    assert not any(p.IsA(UsdSkel.Skeleton) for p in stage.Traverse())
    expected = apply_weights(tiny, anim.skin_weights, anim.tongue_weights, character_jaw(tiny, anim), anim.eyes)
    for name in tiny.parts:
        points = UsdGeom.Mesh(stage.GetPrimAtPath(f"/facecast_head/{name}")).GetPointsAttr()
        assert points.GetTimeSamples() == [float(i) for i in range(N)]
        for frame in (0, N - 1):
            np.testing.assert_allclose(np.array(points.Get(frame)), expected[name][frame], atol=1e-5)


def test_registered_writer_and_bad_suffix(tmp_path, tiny, anim):
    assert WRITERS["usd"][0] in (".usda", ".usdc")
    with pytest.raises(ValueError, match="USD files end in"):
        write_usd(anim, tmp_path / "x.txt", character=tiny)
    assert list(tmp_path.iterdir()) == []


def test_default_character_usd(tmp_path):
    skip_without_anny()
    anim = make_animation(5, fps=30.0)
    (path,) = write(anim, tmp_path / "clip", ["usd"])
    query = _anim_query(Usd.Stage.Open(str(path)))
    np.testing.assert_allclose(np.array(query.ComputeBlendShapeWeights(3))[:52], anim.skin_weights[3], rtol=1e-6)


def test_sample_exact_frame_times_snap_to_whole_time_codes(tmp_path, tiny):
    anim = make_animation(N, fps=30.0)
    anim.times = np.floor(np.arange(N) * 16000 / 30.0) / 16000  # as the engine reports them: whole audio samples
    assert anim.times[1] != pytest.approx(1 / 30, abs=1e-6)
    query = _anim_query(Usd.Stage.Open(str(write_usd(anim, tmp_path / "snap.usdc", character=tiny))))
    assert query.GetBlendShapeWeightTimeSamples() == [float(i) for i in range(N)]


def test_every_mesh_has_a_preview_surface_and_display_colour(usda):
    from pxr import UsdShade

    stage = Usd.Stage.Open(str(usda))
    meshes = [p for p in stage.Traverse() if p.IsA(UsdGeom.Mesh)]
    assert meshes
    for prim in meshes:
        mesh = UsdGeom.Mesh(prim)
        assert len(mesh.GetDisplayColorPrimvar().Get()) >= 1
        material, _ = UsdShade.MaterialBindingAPI(prim).ComputeBoundMaterial()
        assert material, prim.GetPath()
        shader = material.ComputeSurfaceSource()[0]
        assert shader.GetIdAttr().Get() == "UsdPreviewSurface"
        color = shader.GetInput("diffuseColor").Get()
        assert 0.0 <= min(color) and max(color) <= 1.0


def test_eyes_have_sclera_iris_and_pupil_subsets(usda):
    from pxr import UsdShade

    stage = Usd.Stage.Open(str(usda))
    for part in ("eye_right", "eye_left"):
        prim = stage.GetPrimAtPath(f"/facecast_head/Geom/{part}")
        subsets = UsdGeom.Subset.GetGeomSubsets(UsdGeom.Imageable(prim), UsdGeom.Tokens.face, "materialBind")
        names = {s.GetPrim().GetName(): s for s in subsets}
        assert "pupil" in names and "sclera" in names
        count = len(UsdGeom.Mesh(prim).GetFaceVertexCountsAttr().Get())
        assert sum(len(s.GetIndicesAttr().Get()) for s in subsets) == count  # a partition of the faces
        assert UsdGeom.Subset.ValidateSubsets(subsets, count, UsdGeom.Tokens.partition)[0]
        pupil, _ = UsdShade.MaterialBindingAPI(names["pupil"].GetPrim()).ComputeBoundMaterial()
        assert max(pupil.ComputeSurfaceSource()[0].GetInput("diffuseColor").Get()) < 0.1
        colors = np.array(UsdGeom.Mesh(prim).GetDisplayColorPrimvar().Get())
        assert UsdGeom.Mesh(prim).GetDisplayColorPrimvar().GetInterpolation() == "uniform" and len(colors) == count


def test_time_codes_fps_and_audio_prim(tmp_path, tiny):
    from pxr import UsdMedia

    sf = pytest.importorskip("soundfile")
    anim = make_animation(N, fps=FPS, seed=7, audio=True)
    path = write_usd(anim, tmp_path / "out" / "voice.usdc", character=tiny)
    stage = Usd.Stage.Open(str(path))
    assert stage.GetTimeCodesPerSecond() == FPS and stage.GetFramesPerSecond() == FPS
    assert stage.GetStartTimeCode() == 0 and stage.GetEndTimeCode() == N - 1
    audio = UsdMedia.SpatialAudio(stage.GetPrimAtPath("/facecast_head/Audio"))
    assert audio and audio.GetAuralModeAttr().Get() == "nonSpatial"
    asset = audio.GetFilePathAttr().Get()
    assert asset.path == "./voice_audio.wav" and audio.GetStartTimeAttr().Get() == 0
    data, rate = sf.read(str(path.parent / "voice_audio.wav"))
    assert rate == 16000 and len(data) == len(anim.audio)
    given = tmp_path / "speech.wav"
    sf.write(given, anim.audio, 16000)
    other = write_usd(anim, tmp_path / "out" / "given.usda", character=tiny, audio=given)
    other_stage = Usd.Stage.Open(str(other))
    prim = other_stage.GetPrimAtPath("/facecast_head/Audio")
    assert UsdMedia.SpatialAudio(prim).GetFilePathAttr().Get().path == given.resolve().as_posix()
    anim.audio = None
    silent = write_usd(anim, tmp_path / "silent.usda", character=tiny)
    assert not Usd.Stage.Open(str(silent)).GetPrimAtPath("/facecast_head/Audio")


def test_openusd_validators_find_nothing(tmp_path, tiny):
    validation = pytest.importorskip("pxr.UsdValidation", reason="this usd-core has no UsdValidation")
    anim = make_animation(N, fps=FPS, seed=8, audio=True)
    stage = Usd.Stage.Open(str(write_usd(anim, tmp_path / "v.usda", character=tiny)))
    validators = validation.ValidationRegistry().GetOrLoadAllValidators()
    assert len(validators) > 10
    errors = validation.ValidationContext(validators).Validate(stage)
    assert not errors, [(e.GetName(), e.GetMessage()) for e in errors]
