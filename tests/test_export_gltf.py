"""GLB writer: read back with pygltflib (and trimesh), structure, weights, timing, jaw and eye transforms."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from exporthelpers import (
    accessor_array,
    animation_tracks,
    make_animation,
    make_character,
    posed_world_vertices,
    skip_without_anny,
)

from facecast.characters import JAW_SHAPES, apply_weights
from facecast.constants import ARKIT_NAMES, TONGUE_NAMES
from facecast.export import WRITERS, write
from facecast.export.glb import matrix_to_quat, quat_to_matrix, unpack_glb
from facecast.export.gltf import character_jaw, eye_quaternions, eye_zones, write_gltf

pygltflib = pytest.importorskip("pygltflib", reason="pygltflib is needed to read the GLB back")

N = 14


@pytest.fixture(scope="module")
def tiny():
    return make_character(seed=3)


@pytest.fixture(scope="module")
def anim():
    return make_animation(N, fps=30.0, seed=1)


@pytest.fixture(scope="module")
def glb(tmp_path_factory, tiny, anim):
    path = write_gltf(anim, tmp_path_factory.mktemp("gltf") / "tiny.glb", character=tiny)
    gltf = pygltflib.GLTF2.load(str(path))
    return path, gltf, gltf.binary_blob()


def _node(gltf, name: str) -> int:
    return [n.name for n in gltf.nodes].index(name)


def test_glb_container_and_buffer_views_are_consistent(glb):
    path, gltf, blob = glb
    data = path.read_bytes()
    magic, version, total = struct.unpack_from("<III", data)
    assert (magic, version, total) == (0x46546C67, 2, len(data))
    doc, binary = unpack_glb(data)
    assert doc["asset"]["version"] == "2.0" and "audio" in doc["asset"]["extras"]
    assert len(gltf.buffers) == 1 and gltf.buffers[0].byteLength == len(blob) == len(binary)
    for view in gltf.bufferViews:
        assert view.byteOffset % 4 == 0 and view.byteOffset + view.byteLength <= len(blob)
    sizes = {5123: 2, 5125: 4, 5126: 4}
    widths = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}
    for acc in gltf.accessors:
        if acc.bufferView is not None:
            need = (acc.byteOffset or 0) + acc.count * sizes[acc.componentType] * widths[acc.type]
            assert need <= gltf.bufferViews[acc.bufferView].byteLength
        if acc.sparse is not None:
            idx = accessor_array(gltf, blob, gltf.accessors.index(acc))
            assert acc.sparse.count <= acc.count and len(idx) == acc.count


def test_position_accessors_have_exact_bounds(glb):
    _, gltf, blob = glb
    checked = 0
    for mesh in gltf.meshes:
        prim = mesh.primitives[0]
        ids = [prim.attributes.POSITION] + [t["POSITION"] for t in prim.targets or []]
        for i in ids:
            acc, data = gltf.accessors[i], accessor_array(gltf, blob, i)
            assert acc.min and acc.max
            np.testing.assert_allclose(acc.min, data.min(axis=0), rtol=0, atol=1e-6)
            np.testing.assert_allclose(acc.max, data.max(axis=0), rtol=0, atol=1e-6)
            checked += 1
        normals = accessor_array(gltf, blob, prim.attributes.NORMAL)
        np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
    assert checked == 6 + 4 * 52 + 16


def test_meshes_carry_arkit_and_tongue_target_names(glb, tiny):
    _, gltf, _ = glb
    by_name = {m.name: m for m in gltf.meshes}
    assert set(by_name) == set(tiny.parts)
    assert not by_name["eye_left"].primitives[0].targets  # eyeballs turn rigidly (eye_look_rotations)
    for name, mesh in by_name.items():
        if name.startswith("eye_"):
            continue
        expected = list(ARKIT_NAMES) + (list(TONGUE_NAMES) if name == "tongue" else [])
        assert mesh.extras["targetNames"] == expected
        assert len(mesh.primitives[0].targets) == len(expected) == len(mesh.weights)


def test_animation_times_and_weights_round_trip(glb, anim):
    _, gltf, blob = glb
    assert len(gltf.animations) == 1
    tracks = animation_tracks(gltf, blob)
    for ch in gltf.animations[0].channels:
        sampler = gltf.animations[0].samplers[ch.sampler]
        assert sampler.interpolation == "LINEAR"
        inp = gltf.accessors[sampler.input]
        assert inp.min == pytest.approx([0.0]) and inp.max == pytest.approx([(N - 1) / 30.0])
    times, skin = tracks[(_node(gltf, "skin"), "weights")]
    np.testing.assert_allclose(times, anim.times, rtol=0, atol=1e-7)
    assert skin.shape == (N, 52)
    for frame in (0, 5, N - 1):
        np.testing.assert_allclose(skin[frame], anim.skin_weights[frame], rtol=1e-6, atol=1e-7)
    _, tongue = tracks[(_node(gltf, "tongue"), "weights")]
    jaw_ids = [ARKIT_NAMES.index(s) for s in JAW_SHAPES]
    others = np.setdiff1d(np.arange(52), jaw_ids)
    np.testing.assert_allclose(tongue[:, others], anim.skin_weights[:, others], rtol=1e-6, atol=1e-7)
    assert np.all(tongue[:, jaw_ids] == 0) and np.any(anim.skin_weights[:, jaw_ids] > 0.1)  # the jaw node moves it
    np.testing.assert_allclose(tongue[:, 52:], anim.tongue_weights, rtol=1e-6, atol=1e-7)


def test_jaw_node_reproduces_the_jaw_matrix(glb, tiny, anim):
    _, gltf, blob = glb
    jaw_motion = character_jaw(tiny, anim)  # the jaw the ARKit weights give the teeth, not the network's
    assert not np.allclose(jaw_motion, anim.jaw, atol=1e-3)
    tracks = animation_tracks(gltf, blob)
    jaw = _node(gltf, "jaw")
    child = gltf.nodes[jaw].children[0]
    pivot = np.array(gltf.nodes[jaw].translation)
    np.testing.assert_allclose(gltf.nodes[child].translation, -pivot)
    point = np.array([0.7, -4.2, 5.1, 1.0])
    for frame in (0, 6, N - 1):
        t, q = tracks[(jaw, "translation")][1][frame], tracks[(jaw, "rotation")][1][frame]
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = quat_to_matrix(q), t
        offset = np.eye(4)
        offset[:3, 3] = -pivot
        np.testing.assert_allclose((m @ offset @ point)[:3], (jaw_motion[frame] @ point)[:3], atol=2e-5)


def test_posed_file_matches_apply_weights(glb, tiny, anim):
    _, gltf, blob = glb
    names = {i: n.name.removesuffix("_mesh") for i, n in enumerate(gltf.nodes)}
    jaw = character_jaw(tiny, anim)
    for frame in (0, 4, N - 1):
        posed = posed_world_vertices(gltf, blob, frame)
        expected = apply_weights(tiny, anim.skin_weights[frame : frame + 1], anim.tongue_weights[frame : frame + 1],
                                 jaw[frame : frame + 1], anim.eyes[frame : frame + 1])  # fmt: skip
        assert {names[i] for i in posed} == set(expected)
        for node, verts in posed.items():  # the root node scales centimetres to metres
            np.testing.assert_allclose(verts / 0.01, expected[names[node]][0], atol=2e-4)


def test_eye_quaternions_match_rotation_convention():
    eyes = np.array([[10.0, -20.0, 0, -5.0, 30.0, 0]])
    for e in range(2):
        x, y = np.radians(eyes[0, 3 * e]), np.radians(eyes[0, 3 * e + 1])
        rx = np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])
        ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
        np.testing.assert_allclose(quat_to_matrix(eye_quaternions(eyes[:, 3 * e : 3 * e + 2])[0]), ry @ rx, atol=1e-12)
        q = matrix_to_quat(ry @ rx)
        np.testing.assert_allclose(quat_to_matrix(q), ry @ rx, atol=1e-12)


def test_dense_and_sparse_files_pose_identically(tmp_path, tiny, anim):
    dense = pygltflib.GLTF2.load(str(write_gltf(anim, tmp_path / "dense.glb", character=tiny, sparse=False)))
    sparse = pygltflib.GLTF2.load(str(write_gltf(anim, tmp_path / "sparse.glb", character=tiny)))
    assert not any(a.sparse for a in dense.accessors) and any(a.sparse for a in sparse.accessors)
    a = posed_world_vertices(dense, dense.binary_blob(), 3)
    b = posed_world_vertices(sparse, sparse.binary_blob(), 3)
    for node in a:
        np.testing.assert_allclose(a[node], b[node], atol=1e-7)


def test_trimesh_loads_the_glb(glb, tiny):
    trimesh = pytest.importorskip("trimesh", reason="trimesh not installed")
    path, _, _ = glb
    scene = trimesh.load(str(path), force="scene")
    faces = sum(len(g.faces) for g in scene.geometry.values())
    assert faces == sum(len(p.faces) for p in tiny.parts.values())
    assert len(scene.geometry) > len(tiny.parts)  # eyeballs: sclera, iris and pupil primitives


def test_registered_writer_and_bad_input(tmp_path, anim):
    assert WRITERS["gltf"][0] == ".glb"
    empty = make_animation(1)
    empty.times = empty.times[:0]
    with pytest.raises(ValueError, match="empty"):
        write_gltf(empty, tmp_path / "x.glb", character=make_character())
    assert not (tmp_path / "x.glb").exists()


def test_default_character_glb(tmp_path):
    skip_without_anny()
    from facecast.characters import build_default_character

    anim = make_animation(4)
    (path,) = write(anim, tmp_path / "clip", ["gltf"])
    gltf = pygltflib.GLTF2.load(str(path))
    skin = [m for m in gltf.meshes if m.name == "skin"][0]
    assert skin.extras["targetNames"] == list(ARKIT_NAMES)
    blob = gltf.binary_blob()
    _, weights = animation_tracks(gltf, blob)[(_node(gltf, "skin"), "weights")]
    np.testing.assert_allclose(weights, anim.skin_weights, rtol=1e-6, atol=1e-7)
    char = build_default_character()
    jaw = character_jaw(char, anim)[2:3]
    expected = apply_weights(char, anim.skin_weights[2:3], anim.tongue_weights[2:3], jaw, anim.eyes[2:3])
    names = {i: n.name.removesuffix("_mesh") for i, n in enumerate(gltf.nodes)}
    for node, verts in posed_world_vertices(gltf, blob, 2).items():
        np.testing.assert_allclose(verts / 0.01, expected[names[node]][0], atol=5e-4)


def test_key_times_are_exact_frame_times(tmp_path, tiny):
    anim = make_animation(N, fps=30.0, seed=4)
    anim.times = np.floor(np.arange(N) * 16000 / 30.0) / 16000  # the engine's whole-sample times
    gltf = pygltflib.GLTF2.load(str(write_gltf(anim, tmp_path / "t.glb", character=tiny)))
    times, _ = animation_tracks(gltf, gltf.binary_blob())[(_node(gltf, "skin"), "weights")]
    np.testing.assert_array_equal(times, (np.arange(N) / 30.0).astype(np.float32))


def _uv_sphere(rings: int = 7, segments: int = 12, radius: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """A sphere with poles on +-z (the gaze axis), like the default head's eyeballs."""
    verts = [[0.0, 0.0, radius]]
    for r in range(1, rings):
        theta = np.pi * r / rings
        for k in range(segments):
            phi = 2 * np.pi * k / segments
            verts.append([radius * np.sin(theta) * np.cos(phi), radius * np.sin(theta) * np.sin(phi),
                          radius * np.cos(theta)])  # fmt: skip
    verts.append([0.0, 0.0, -radius])
    faces = [(0, 1 + k, 1 + (k + 1) % segments) for k in range(segments)]
    for r in range(rings - 2):
        a, b = 1 + r * segments, 1 + (r + 1) * segments
        for k in range(segments):
            k1 = (k + 1) % segments
            faces += [(a + k, b + k, b + k1), (a + k, b + k1, a + k1)]
    last = len(verts) - 1
    faces += [(last, 1 + (rings - 2) * segments + (k + 1) % segments, 1 + (rings - 2) * segments + k)
              for k in range(segments)]  # fmt: skip
    return np.array(verts), np.array(faces)


def test_eye_zones_put_pupil_and_iris_around_the_gaze_axis():
    verts, faces = _uv_sphere()
    pivot = np.array([3.0, 0.0, 0.0])
    zones = eye_zones(verts + pivot, faces, pivot)
    counts = np.bincount(zones, minlength=3)
    assert counts[2] == 12 and counts[1] >= 12 and counts[0] > len(faces) / 2  # pupil: the front fan
    assert set(faces[zones == 2].ravel()) >= {0}  # the pupil is the fan around the front pole
    behind = (verts[faces].mean(axis=1))[:, 2] < 0
    assert np.all(zones[behind] == 0)


def test_eyes_are_drawn_with_iris_and_pupil_materials(glb, tiny):
    _, gltf, blob = glb
    names = [m.name for m in gltf.materials]
    for part in ("eye_right", "eye_left"):
        mesh = gltf.meshes[[m.name for m in gltf.meshes].index(part)]
        zones = [names[p.material] for p in mesh.primitives]
        assert zones[0] == "sclera" and zones[-1] == "pupil" and set(zones) <= {"sclera", "iris", "pupil"}
        color = {n: np.array(gltf.materials[names.index(n)].pbrMetallicRoughness.baseColorFactor) for n in zones}
        assert color["pupil"][:3].max() < 0.1 < color["sclera"][:3].min()
        verts = accessor_array(gltf, blob, mesh.primitives[0].attributes.POSITION)
        pivot = np.asarray(tiny.eye_pivots)[("eye_right", "eye_left").index(part)]
        fronts = []
        for prim in mesh.primitives:
            assert prim.attributes.POSITION == mesh.primitives[0].attributes.POSITION  # shared vertices
            faces = accessor_array(gltf, blob, prim.indices).astype(int).reshape(-1, 3)
            centres = verts[faces].mean(axis=1) - pivot
            fronts.append((centres[:, 2] / np.linalg.norm(centres, axis=1)).max())
        assert fronts[-1] == max(fronts)  # the pupil holds the face nearest the gaze axis (+z)


def test_validator_finds_no_issue_in_the_glb(glb):
    from gltfvalidator import validate, validator_prefix

    report = validate(validator_prefix(), glb[0])
    assert report["issues"]["numErrors"] == 0 and report["issues"]["numWarnings"] == 0, report["issues"]
