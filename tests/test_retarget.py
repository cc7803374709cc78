"""Retargeting onto user heads (code-made glTF and OBJ heads, facecap.glb), name normalisation, MetaHuman curves."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pytest
from exporthelpers import (
    accessor_array,
    animation_tracks,
    make_animation,
    node_matrix,
    posed_world_vertices,
    rot_x,
    rot_y,
)

from facecast.arkit_names import normalize_arkit_name
from facecast.cli.retarget import register
from facecast.constants import ARKIT_NAMES, TONGUE_NAMES
from facecast.export.glb import GltfMesh, GltfNode, GltfScene, GltfSkin, quat_to_matrix, trs_matrix, write_glb
from facecast.export.json import write_json
from facecast.export.load import load_animation
from facecast.export.metahuman import CURVE_NAMES, MAPPING, PREFIX, SOURCE_NAMES, metahuman_curves, to_metahuman
from facecast.export.npz import write_npz_animation
from facecast.export.retarget import read_head, retarget

pygltflib = pytest.importorskip("pygltflib", reason="pygltflib is needed to read the GLB back")

N = 10
HEAD_TARGETS = ["JawOpen", "eyeBlink_L", "eye_blink_right", "blendShape1.mouthSmileLeft", "ARKit_MouthSmile_R",
                "browInnerUp", "tongue_tip_up", "customWrinkle"]  # fmt: skip


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("jawOpen", "jawOpen"), ("JawOpen", "jawOpen"), ("jaw_open", "jawOpen"), ("JAW_OPEN", "jawOpen"),
        ("eyeBlink_L", "eyeBlinkLeft"), ("eyeBlink_R", "eyeBlinkRight"), ("EyeBlinkLeft", "eyeBlinkLeft"),
        ("eye_blink_left", "eyeBlinkLeft"), ("eyeBlinkL", "eyeBlinkLeft"), ("mouthSmile_left", "mouthSmileLeft"),
        ("blendShape1.jawOpen", "jawOpen"), ("ARKit_jawOpen", "jawOpen"), ("Head|mouthLeft", "mouthLeft"),
        ("mouth_left", "mouthLeft"), ("noseSneer_R", "noseSneerRight"), ("browInnerUp_L", "browInnerUp"),
        ("tongue_tip_up", "tongueTipUp"), ("TongueOut", "tongueOut"), ("mouthRollLower", "mouthRollLower"),
        ("eyelashes", None), ("customWrinkle", None), ("", None), ("Left", None),
    ],
)  # fmt: skip
def test_normalize_arkit_name(spelling, expected):
    assert normalize_arkit_name(spelling) == expected


def test_every_canonical_name_normalizes_to_itself_in_every_case():
    for name in (*ARKIT_NAMES, *TONGUE_NAMES):
        assert normalize_arkit_name(name) == name
        assert normalize_arkit_name(name.upper()) == name
        assert normalize_arkit_name(name[:1].upper() + name[1:]) == name
        snake = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).lower()
        assert normalize_arkit_name(snake) == name
        short = name.replace("Left", "_L").replace("Right", "_R")
        assert normalize_arkit_name(short) == name


# ----------------------------------------------------------------------------------------------------
# a head made by code


def _grid(nx: int = 6, ny: int = 6) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.meshgrid(np.linspace(-1, 1, nx), np.linspace(-1, 1, ny))
    verts = np.stack([x.ravel(), y.ravel(), 0.3 * np.cos(x.ravel())], 1).astype(np.float32)
    faces = [(j * nx + i, j * nx + i + 1, (j + 1) * nx + i) for j in range(ny - 1) for i in range(nx - 1)]
    return verts, np.array(faces, np.int64)


def _code_head(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    verts, faces = _grid()
    targets = rng.normal(scale=0.05, size=(len(HEAD_TARGETS), len(verts), 3)).astype(np.float32)
    eye_v, eye_f = verts * 0.1, faces
    tilt = np.array([np.sin(0.1), 0.0, 0.0, np.cos(0.1)])
    meshes = [GltfMesh("face", verts, faces, None, HEAD_TARGETS, targets), GltfMesh("eyeball", eye_v, eye_f),
              GltfMesh("teeth", verts * 0.2, faces)]  # fmt: skip
    nodes = [
        GltfNode("Head", children=[1, 2, 4, 6], scale=np.full(3, 0.5)),
        GltfNode("face_mesh", mesh=0),
        GltfNode("Eye_L", children=[3], translation=np.array([0.3, 0.2, 0.1])),  # named left, but at +x: left
        GltfNode("eye_mesh_l", mesh=1),
        GltfNode("Eye_R", children=[5], translation=np.array([-0.3, 0.2, 0.1])),
        GltfNode("eye_mesh_r", mesh=1),
        GltfNode("jaw_bone", children=[7], translation=np.array([0.0, -0.2, -0.5]), rotation=tilt),
        GltfNode("teeth_mesh", mesh=2),
    ]
    return write_glb(GltfScene(nodes, meshes, [0]), tmp_path / "head.glb")


def _world_rotation(gltf, blob, node: int, frame: int | None) -> np.ndarray:
    tracks = animation_tracks(gltf, blob) if frame is not None else {}
    parents = {c: i for i, n in enumerate(gltf.nodes) for c in (n.children or [])}
    m, i = np.eye(4), node
    while True:
        rot = tracks[(i, "rotation")][1][frame] if (i, "rotation") in tracks else None
        m = node_matrix(gltf.nodes[i], rotation=rot) @ m
        if i not in parents:
            break
        i = parents[i]
    u, _, vt = np.linalg.svd(m[:3, :3])
    return u @ vt


def test_retarget_onto_code_made_head(tmp_path):
    anim = make_animation(N, seed=4)
    report = retarget(anim, _code_head(tmp_path), tmp_path / "out.glb")
    gltf = pygltflib.GLTF2.load(str(tmp_path / "out.glb"))
    blob = gltf.binary_blob()
    face = [m.name for m in gltf.meshes].index("face")
    assert gltf.meshes[face].extras["targetNames"] == HEAD_TARGETS
    face_node = [n.mesh for n in gltf.nodes].index(face)
    times, weights = animation_tracks(gltf, blob)[(face_node, "weights")]
    np.testing.assert_allclose(times, anim.times, atol=1e-7)
    curves = {
        "JawOpen": "jawOpen", "eyeBlink_L": "eyeBlinkLeft", "eye_blink_right": "eyeBlinkRight",
        "blendShape1.mouthSmileLeft": "mouthSmileLeft", "ARKit_MouthSmile_R": "mouthSmileRight",
        "browInnerUp": "browInnerUp", "tongue_tip_up": "tongueTipUp",
    }  # fmt: skip
    for k, target in enumerate(HEAD_TARGETS):
        expected = anim.weights(curves[target]) if target in curves else np.zeros(N)
        np.testing.assert_allclose(weights[:, k], expected, rtol=1e-6, atol=1e-7)
    assert report.matched == curves
    assert report.unmatched_targets == ["customWrinkle"]
    assert "jawForward" in report.missing and "tongueOut" in report.missing and "jawOpen" not in report.missing
    assert len(report.missing) == 52 + 16 - 7
    assert report.eye_nodes == {"right": "Eye_R", "left": "Eye_L"} and report.jaw_node is None  # jawOpen exists
    assert "eyeBlink_L -> " not in report.summary() and "customWrinkle" in report.summary()


def test_eye_and_jaw_nodes_turn_in_world_space(tmp_path):
    anim = make_animation(N, seed=5)
    report = retarget(anim, _code_head(tmp_path), tmp_path / "out.glb", jaw=True)
    assert report.jaw_node == "jaw_bone"
    gltf = pygltflib.GLTF2.load(str(tmp_path / "out.glb"))
    blob = gltf.binary_blob()
    names = [n.name for n in gltf.nodes]
    for frame in (0, 3, N - 1):
        for e, node in ((0, "Eye_R"), (1, "Eye_L")):
            x, y = np.radians(anim.eyes[frame, 3 * e]), np.radians(anim.eyes[frame, 3 * e + 1])
            ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
            expected = ry @ rot_x(np.degrees(x)) @ _world_rotation(gltf, blob, names.index(node), None)
            np.testing.assert_allclose(_world_rotation(gltf, blob, names.index(node), frame), expected, atol=1e-5)
        jaw = names.index("jaw_bone")
        expected = anim.jaw[frame, :3, :3] @ _world_rotation(gltf, blob, jaw, None)
        np.testing.assert_allclose(_world_rotation(gltf, blob, jaw, frame), expected, atol=1e-5)
        rest_t = gltf.nodes[jaw].translation
        assert (jaw, "translation") not in animation_tracks(gltf, blob) and rest_t == pytest.approx([0, -0.2, -0.5])


def test_skinned_head_keeps_its_skin_and_eye_joint_turns(tmp_path):
    verts, faces = _grid(3, 3)
    joints = np.zeros((len(verts), 4), np.uint16)
    joints[verts[:, 1] > 0, 0] = 1
    weights = np.zeros((len(verts), 4), np.float32)
    weights[:, 0] = 1.0
    targets = np.zeros((1, len(verts), 3), np.float32)
    targets[0, 0] = [0.0, -0.1, 0.0]
    mesh = GltfMesh("Wolf3D_Head", verts, faces, None, ["mouthOpen_unknown"], targets, joints=joints,
                    joint_weights=weights)  # fmt: skip
    eye_at = np.array([0.3, 0.5, 0.1])
    nodes = [GltfNode("Armature", children=[1, 2]), GltfNode("Head", children=[3]),
             GltfNode("Wolf3D_Head", mesh=0, skin=0), GltfNode("LeftEye", translation=eye_at)]  # fmt: skip
    ibm = np.stack([np.eye(4), np.linalg.inv(trs_matrix(eye_at, [0, 0, 0, 1], [1, 1, 1]))])
    head = write_glb(GltfScene(nodes, [mesh], [0], skins=[GltfSkin([1, 3], ibm, 1)]), tmp_path / "skinned.glb")
    anim = make_animation(N, seed=11)
    report = retarget(anim, head, tmp_path / "skinned_out.glb")
    assert report.eye_nodes == {"left": "LeftEye"} and report.unmatched_targets == ["mouthOpen_unknown"]
    gltf = pygltflib.GLTF2.load(str(tmp_path / "skinned_out.glb"))
    blob = gltf.binary_blob()
    assert gltf.skins[0].joints == [1, 3] and gltf.nodes[2].skin == 0
    np.testing.assert_allclose(accessor_array(gltf, blob, gltf.skins[0].inverseBindMatrices).reshape(2, 4, 4),
                               ibm.transpose(0, 2, 1), atol=1e-6)  # fmt: skip
    attrs = gltf.meshes[0].primitives[0].attributes
    np.testing.assert_array_equal(accessor_array(gltf, blob, attrs.JOINTS_0), joints)
    np.testing.assert_array_equal(accessor_array(gltf, blob, attrs.WEIGHTS_0), weights)
    _, rotation = animation_tracks(gltf, blob)[(3, "rotation")]
    x, y = anim.eyes[4, 3:5]
    np.testing.assert_allclose(quat_to_matrix(rotation[4]), rot_y(y) @ rot_x(x), atol=1e-6)


def test_obj_head_with_shape_folder(tmp_path):
    verts, faces = _grid()

    def write_obj(path: Path, v: np.ndarray) -> None:
        lines = [f"v {a:.6f} {b:.6f} {c:.6f}" for a, b, c in v]
        lines += [f"f {a + 1}/{a + 1} {b + 1}/{b + 1} {c + 1}/{c + 1}" for a, b, c in faces]
        path.write_text("# test head\n" + "\n".join(lines) + "\n")

    write_obj(tmp_path / "head.obj", verts)
    shapes = tmp_path / "head_shapes"
    shapes.mkdir()
    deltas = {}
    for k, name in enumerate(["jaw_open", "EyeBlinkLeft", "mouthSmile_R", "snarl"]):
        d = np.zeros_like(verts)
        d[k * 3 : k * 3 + 3] = [0.0, -0.1 * (k + 1), 0.05]
        deltas[name] = d
        write_obj(shapes / f"{name}.obj", verts + d)
    head = read_head(tmp_path / "head.obj")
    mesh = head.meshes[0]
    assert mesh.target_names == sorted(deltas) and len(mesh.faces) == len(faces)
    for k, name in enumerate(mesh.target_names):
        np.testing.assert_allclose(mesh.targets[k], deltas[name], atol=1e-5)
    anim = make_animation(N)
    report = retarget(anim, tmp_path / "head.obj", tmp_path / "obj_out.glb")
    assert set(report.matched.values()) == {"jawOpen", "eyeBlinkLeft", "mouthSmileRight"}
    assert report.unmatched_targets == ["snarl"]
    gltf = pygltflib.GLTF2.load(str(tmp_path / "obj_out.glb"))
    _, weights = animation_tracks(gltf, gltf.binary_blob())[(0, "weights")]
    np.testing.assert_allclose(weights[:, mesh.target_names.index("jaw_open")], anim.weights("jawOpen"), rtol=1e-6)


def test_bad_heads_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        read_head(tmp_path / "nope.glb")
    (tmp_path / "x.fbx").write_text("?")
    with pytest.raises(ValueError, match="expected a .glb"):
        read_head(tmp_path / "x.fbx")
    (tmp_path / "bad.glb").write_bytes(b"glTF\x02\x00\x00\x00\x10\x00\x00\x00")
    with pytest.raises(ValueError, match="bad.glb"):
        read_head(tmp_path / "bad.glb")


# ----------------------------------------------------------------------------------------------------
# facecap.glb from the openfacefx package (meshopt + KHR_mesh_quantization)


@pytest.fixture(scope="module")
def facecap() -> Path:
    openfacefx = pytest.importorskip("openfacefx", reason="openfacefx (which ships facecap.glb) is not installed")
    pytest.importorskip("meshopt", reason="meshopt is needed to decode facecap.glb")
    path = Path(openfacefx.__file__).parent / "studio_web" / "assets" / "facecap.glb"
    if not path.is_file():
        pytest.skip("this openfacefx has no facecap.glb")
    return path


def test_retarget_onto_facecap(facecap, tmp_path):
    import meshopt

    source = pygltflib.GLTF2.load(str(facecap))
    head_mesh = [i for i, m in enumerate(source.meshes) if m.extras.get("targetNames")][0]
    facecap_names = source.meshes[head_mesh].extras["targetNames"]
    anim = make_animation(N, seed=6)
    report = retarget(anim, facecap, tmp_path / "facecap_talking.glb")
    out = pygltflib.GLTF2.load(str(tmp_path / "facecap_talking.glb"))
    blob = out.binary_blob()
    assert "EXT_meshopt_compression" not in out.extensionsRequired  # decompressed: no meshopt decoder needed
    assert out.animations[0].name == source.animations[0].name  # facecap's own capture is kept
    out.animations = out.animations[-1:]
    head = [i for i, m in enumerate(out.meshes) if m.extras and m.extras.get("targetNames")]
    assert len(head) == 1 and out.meshes[head[0]].extras["targetNames"] == facecap_names
    node = [n.mesh for n in out.nodes].index(head[0])
    _, weights = animation_tracks(out, blob)[(node, "weights")]
    np.testing.assert_allclose(weights[:, facecap_names.index("jawOpen")], anim.weights("jawOpen"), rtol=1e-6)
    np.testing.assert_allclose(weights[:, facecap_names.index("eyeBlink_L")], anim.weights("eyeBlinkLeft"), rtol=1e-6)
    assert sorted(report.missing) == sorted(TONGUE_NAMES) and report.unmatched_targets == []
    assert set(report.eye_nodes.values()) == {"grp_eyeLeft", "grp_eyeRight"}

    # the geometry survives decoding: positions equal facecap's quantized positions, decoded here independently
    acc = source.accessors[source.meshes[head_mesh].primitives[0].attributes.POSITION]
    view = source.bufferViews[acc.bufferView]
    ext = view.extensions["EXT_meshopt_compression"]
    raw = source.binary_blob()[ext.get("byteOffset", 0) : ext.get("byteOffset", 0) + ext["byteLength"]]
    rows = meshopt.decode_gltf_buffer(raw, ext["count"], ext["byteStride"], ext["mode"], ext.get("filter", "NONE"))
    data = np.ascontiguousarray(rows).tobytes()[acc.byteOffset or 0 :]
    stride = view.byteStride
    expected = np.stack([np.frombuffer(data[i * stride : i * stride + 6], np.uint16) for i in range(acc.count)])
    got = accessor_array(out, blob, out.meshes[head[0]].primitives[0].attributes.POSITION)
    np.testing.assert_allclose(got, expected, atol=1e-3)


def test_facecap_eyes_look_down_for_positive_x(facecap, tmp_path):
    anim = make_animation(3)
    anim.eyes[:] = 0.0
    anim.eyes[1, [0, 3]] = 25.0  # frame 1: both eyes down
    retarget(anim, facecap, tmp_path / "eyes.glb")
    out = pygltflib.GLTF2.load(str(tmp_path / "eyes.glb"))
    out.animations = out.animations[-1:]  # facecast's (facecap's own capture comes first)
    blob = out.binary_blob()
    rest, down = posed_world_vertices(out, blob, 0), posed_world_vertices(out, blob, 1)
    eye_meshes = [i for i in rest if out.nodes[i].mesh in (0, 1)]
    for i in eye_meshes:
        pivot = _pivot_of(out, i)
        before, after = rest[i].mean(axis=0) - pivot, down[i].mean(axis=0) - pivot
        assert after[1] < before[1] - 0.2 * np.linalg.norm(before)  # the gaze turned downwards
        assert np.linalg.norm(after) == pytest.approx(np.linalg.norm(before), rel=1e-4)


def _pivot_of(gltf, mesh_node: int) -> np.ndarray:
    parents = {c: i for i, n in enumerate(gltf.nodes) for c in (n.children or [])}
    i = mesh_node
    while not gltf.nodes[i].name or not gltf.nodes[i].name.startswith("grp_eye"):
        i = parents[i]
    m, j = np.eye(4), i
    while True:
        m = node_matrix(gltf.nodes[j]) @ m
        if j not in parents:
            return m[:3, 3]
        j = parents[j]


# ----------------------------------------------------------------------------------------------------
# animation files, CLI, MetaHuman


def test_load_animation_round_trips_json_and_npz(tmp_path):
    anim = make_animation(N, seed=7)
    for path in (write_json(anim, tmp_path / "a.json"), write_npz_animation(anim, tmp_path / "a.npz")):
        back = load_animation(path)
        assert len(back) == N and back.fps == anim.fps and back.skin_names == anim.skin_names
        np.testing.assert_allclose(back.skin_weights, anim.skin_weights, atol=1e-6)
        np.testing.assert_allclose(back.tongue_weights, anim.tongue_weights, atol=1e-6)
        np.testing.assert_allclose(back.jaw, anim.jaw, atol=1e-6)
        np.testing.assert_allclose(back.eyes, anim.eyes, atol=1e-5)
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not a facecast animation"):
        load_animation(tmp_path / "bad.json")


def test_cli_retarget(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="facecast")
    register(parser.add_subparsers(dest="command"))
    anim = make_animation(N, seed=8)
    write_json(anim, tmp_path / "clip.json")
    head = _code_head(tmp_path)
    args = parser.parse_args(["retarget", str(tmp_path / "clip.json"), "--head", str(head), "-o",
                              str(tmp_path / "cli.glb")])  # fmt: skip
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "cli.glb" in printed and "customWrinkle" in printed
    gltf = pygltflib.GLTF2.load(str(tmp_path / "cli.glb"))
    face_node = [n.name for n in gltf.nodes].index("face_mesh")
    _, weights = animation_tracks(gltf, gltf.binary_blob())[(face_node, "weights")]
    np.testing.assert_allclose(weights[:, 0], anim.weights("jawOpen"), atol=1e-6)  # JSON keeps 6 decimals


def test_cli_retarget_animates_audio_first(tmp_path, small_pack, capsys):
    sf = pytest.importorskip("soundfile")
    t = np.arange(16000) / 16000
    sf.write(tmp_path / "speech.wav", (0.2 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), 16000)
    parser = argparse.ArgumentParser(prog="facecast")
    register(parser.add_subparsers(dest="command"))
    out = tmp_path / "talking.glb"
    args = parser.parse_args(["retarget", str(tmp_path / "speech.wav"), "--head", str(_code_head(tmp_path)),
                              "-o", str(out), "-m", str(small_pack), "--device", "cpu", "-q"])  # fmt: skip
    assert args.func(args) == 0 and capsys.readouterr().out == ""
    gltf = pygltflib.GLTF2.load(str(out))
    times, _ = animation_tracks(gltf, gltf.binary_blob())[(1, "weights")]
    assert len(times) == 30 and times[1] == pytest.approx(1 / 30, abs=1e-4)  # 1 s at 30 fps (sample-exact times)


def test_metahuman_mapping_covers_every_curve_and_converts():
    assert set(MAPPING) == set(SOURCE_NAMES) and len(SOURCE_NAMES) == 68
    assert all(c.startswith(PREFIX) for c in CURVE_NAMES) and len(set(CURVE_NAMES)) == len(CURVE_NAMES)
    anim = make_animation(N, seed=9)
    curves = metahuman_curves(anim)
    np.testing.assert_allclose(curves["CTRL_expressions_jawOpen"], anim.weights("jawOpen"), rtol=1e-6)
    np.testing.assert_allclose(curves["CTRL_expressions_browRaiseInL"], anim.weights("browInnerUp"), rtol=1e-6)
    np.testing.assert_allclose(curves["CTRL_expressions_mouthCornerPullR"], anim.weights("mouthSmileRight"))
    np.testing.assert_allclose(curves["CTRL_expressions_eyeLookRightL"], anim.weights("eyeLookInLeft"))
    both = to_metahuman(["tongueOut", "tongue_stretch"], np.array([[0.8, 0.6]]))
    assert both[0, CURVE_NAMES.index("CTRL_expressions_tongueOut")] == pytest.approx(1.0)  # 0.8 + 0.3, clipped
    with pytest.raises(ValueError, match="weights must be"):
        to_metahuman(["jawOpen"], np.zeros((2, 3)))


def test_metahuman_doc_table_matches_the_data():
    doc = Path(__file__).resolve().parents[1] / "docs" / "metahuman.md"
    if not doc.is_file():
        pytest.skip("docs/metahuman.md is not in this checkout")
    rows = dict(re.findall(r"^\| `(\w+)` \| (.+?) \|$", doc.read_text(), flags=re.M))
    assert set(rows) == set(SOURCE_NAMES)
    for name, cell in rows.items():
        controls = re.findall(r"`CTRL_expressions_(\w+)`(?: × ([0-9.]+))?", cell)
        assert [(c, float(g or 1)) for c, g in controls] == list(MAPPING[name])


def test_metahuman_curve_csv_writer(tmp_path):
    from facecast.export import WRITERS, write

    anim = make_animation(N, seed=12)
    assert "metahuman" in WRITERS
    (path,) = write(anim, tmp_path / "clip", ["metahuman"])
    assert path.name == "clip_metahuman.csv"
    rows = [line.split(",") for line in path.read_text().splitlines()]
    assert rows[0][0] == "Name"
    np.testing.assert_allclose([float(t) for t in rows[0][1:]], np.arange(N) / anim.fps, atol=1e-6)
    table = {row[0]: np.array(row[1:], float) for row in rows[1:]}
    assert list(table) == list(CURVE_NAMES)
    np.testing.assert_allclose(table["CTRL_expressions_jawOpen"], anim.weights("jawOpen"), atol=1e-6)


def test_cli_animate_accepts_metahuman_format():
    from facecast.cli.animate import check_formats

    assert check_formats("json,metahuman") == ["json", "metahuman"]
