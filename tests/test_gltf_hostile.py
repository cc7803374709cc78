"""Hostile glTF heads (``facecast retarget --head``): every bad accessor, view, stride, count, index, URI and node
graph ends in one GltfError naming the file and the field, before any output is written; the CLI exits 2 with one
line. Regressions for the red-team findings first, then the rest of the class, then valid files that must still
read (strided, sparse, bufferless, data URI, external .bin)."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path

import numpy as np
import pytest
from exporthelpers import make_animation
from gltfheads import (
    head_parts,
    interleaved_parts,
    position_view,
    small_scene,
    time_bound,
    write_glb_head,
    write_gltf_head,
)

from facecast.cli import main
from facecast.export import gltf_read
from facecast.export.glb import GltfNode, GltfScene, pack_glb
from facecast.export.gltf_read import GltfError, read_gltf
from facecast.export.json import write_json
from facecast.export.retarget import read_head, retarget


def _position(doc: dict) -> dict:
    return doc["accessors"][doc["meshes"][0]["primitives"][0]["attributes"]["POSITION"]]


def _every_node_lists_every_node(doc: dict) -> None:
    for node in doc["nodes"]:
        node["children"] = list(range(len(doc["nodes"])))
    del doc["scene"], doc["scenes"]


def _bufferless_huge_count(doc: dict) -> None:
    acc = _position(doc)
    del acc["bufferView"]
    acc["count"] = 10**12


# the red-team findings: (name, mutation of the document, the field the message must name)
FINDINGS = [
    ("negative_stride", lambda d: d["bufferViews"][position_view(d)].update(byteStride=-12), "byteStride"),
    ("stride_minus_1e6", lambda d: d["bufferViews"][position_view(d)].update(byteStride=-1_000_000), "byteStride"),
    ("parent_cycle", _every_node_lists_every_node, "children"),
    ("count_1e12_without_view", _bufferless_huge_count, "count"),
    ("asset_is_a_string", lambda d: d.update(asset="x"), "asset"),
    ("scene_99", lambda d: d.update(scene=99), "scene"),
    ("data_uri_without_comma", lambda d: d["buffers"][0].update(uri="data:application/octet-stream;base64"), "uri"),
    ("integer_uri", lambda d: d["buffers"][0].update(uri=5), "uri"),
]


def _hostile_head(tmp_path: Path, mutation) -> Path:
    doc, binary = head_parts()
    doc = copy.deepcopy(doc)
    mutation(doc)
    return write_glb_head(tmp_path / "hostile.glb", doc, binary)


def _assert_clean_cli_failure(tmp_path: Path, head: Path, field: str, capsys) -> None:
    clip = write_json(make_animation(4), tmp_path / "clip.json")
    out = tmp_path / "out" / "talking.glb"
    out.parent.mkdir()
    capsys.readouterr()
    with time_bound(20):
        code = main(["retarget", str(clip), "--head", str(head), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("facecast: error: ") and head.name in err and field in err
    assert list(out.parent.iterdir()) == []  # nothing written, not even a temporary file


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("name", "mutation", "field"), FINDINGS, ids=[f[0] for f in FINDINGS])
def test_red_team_findings_fail_clearly(tmp_path, capsys, name, mutation, field):
    head = _hostile_head(tmp_path, mutation)
    with time_bound(20), pytest.raises(GltfError) as info:
        read_gltf(head)
    message = str(info.value)
    assert message.startswith(f"{head}: ") and field in message and "\n" not in message
    out = tmp_path / "out.glb"
    with time_bound(20), pytest.raises(ValueError, match=field):
        retarget(make_animation(4), head, out)
    assert not out.exists()
    _assert_clean_cli_failure(tmp_path, head, field, capsys)


# ----------------------------------------------------------------------------------------------------
# the rest of the class


def _set_view(key, value):
    return lambda d: d["bufferViews"][position_view(d)].update({key: value})


def _set_pos(key, value):
    return lambda d: _position(d).update({key: value})


def _two_node_cycle(d: dict) -> None:
    d["nodes"][2]["children"] = [3]
    d["nodes"][3]["children"] = [2]
    d["nodes"][0]["children"] = [1, 4, 5]


def _two_parents(d: dict) -> None:
    d["nodes"][2]["children"] = [3, 1]


def _root_is_a_child(d: dict) -> None:
    d["scenes"][0]["nodes"] = [0, 1]


def _indices_past_vertices(d: dict) -> tuple:
    prim = d["meshes"][0]["primitives"][0]
    acc = d["accessors"][prim["indices"]]
    return acc["bufferView"], d["bufferViews"][acc["bufferView"]]["byteOffset"]


def _sparse_target(d: dict) -> dict:
    for acc in d["accessors"]:
        if "sparse" in acc:
            return acc
    raise AssertionError("the small head has a sparse target")


CLASS = [
    ("two_node_cycle", _two_node_cycle, "cycle"),
    ("two_parents", _two_parents, "child of both"),
    ("child_out_of_range", lambda d: d["nodes"][0].update(children=[1, 99]), "nodes[0].children[1]"),
    ("child_is_bool", lambda d: d["nodes"][0].update(children=[True]), "nodes[0].children[0]"),
    ("child_listed_twice", lambda d: d["nodes"][0].update(children=[1, 1]), "twice"),
    ("scene_root_is_a_child", _root_is_a_child, "not a root"),
    ("scene_is_bool", lambda d: d.update(scene=True), "scene"),
    ("stride_not_multiple_of_4", _set_view("byteStride", 14), "byteStride"),
    ("stride_over_252", _set_view("byteStride", 256), "byteStride"),
    ("stride_below_element", _set_view("byteStride", 8), "byteStride is 8, less than the 12-byte"),
    ("stride_float", _set_view("byteStride", 12.0), "byteStride"),
    ("view_past_buffer", _set_view("byteLength", 10**9), "runs past the end of buffers[0]"),
    ("view_offset_negative", _set_view("byteOffset", -4), "byteOffset"),
    ("view_buffer_missing", _set_view("buffer", 3), "buffer is 3"),
    ("accessor_past_view", _set_pos("byteOffset", 4), "runs past the end of bufferViews"),
    ("accessor_count_negative", _set_pos("count", -1), "count"),
    ("accessor_count_huge_in_view", _set_pos("count", 2**40), "count"),
    ("component_float_spelling", _set_pos("componentType", 5126.0), "componentType"),
    ("component_unknown", _set_pos("componentType", 5124), "componentType"),
    ("type_unknown", _set_pos("type", "VEC5"), "type"),
    ("position_not_vec3", _set_pos("type", "VEC2"), "POSITION"),
    ("accessor_view_is_bool", _set_pos("bufferView", True), "bufferView"),
    ("accessor_view_negative", _set_pos("bufferView", -1), "bufferView"),
    ("accessor_offset_without_view", lambda d: (_set_pos("byteOffset", 4)(d), _position(d).pop("bufferView")),
     "byteOffset"),
    ("normalized_float", _set_pos("normalized", True), "normalized"),
    ("sparse_count_over_count", lambda d: _sparse_target(d)["sparse"].update(count=10**6), "sparse.count"),
    ("sparse_indices_type", lambda d: _sparse_target(d)["sparse"]["indices"].update(componentType=5126),
     "sparse.indices.componentType"),
    ("sparse_values_missing", lambda d: _sparse_target(d)["sparse"].pop("values"), "sparse.values"),
    ("mesh_index_out_of_range", lambda d: d["nodes"][1].update(mesh=7), "nodes[1].mesh"),
    ("skin_joint_out_of_range", lambda d: d["skins"][0].update(joints=[0, 50]), "skins[0].joints[1]"),
    ("joints_past_the_skin", lambda d: d["skins"][0].update(joints=[0]), "JOINTS_0 name joint 1"),
    ("ibm_too_few", lambda d: d["skins"][0].update(joints=[0, 2, 3]), "inverseBindMatrices"),
    ("joints_as_floats", lambda d: (a := d["meshes"][0]["primitives"][0]["attributes"]).update(JOINTS_0=a["WEIGHTS_0"]),
     "JOINTS_0"),
    ("primitives_not_array", lambda d: d["meshes"][0].update(primitives={"a": 1}), "primitives"),
    ("target_names_not_strings", lambda d: d["meshes"][0]["extras"].update(targetNames=[1, 2, 3]), "targetNames"),
    ("material_out_of_range", lambda d: d["meshes"][0]["primitives"][0].update(material=9), "material"),
    ("base_colour_text", lambda d: d["materials"][0]["pbrMetallicRoughness"].update(baseColorFactor="red"),
     "baseColorFactor"),
    ("matrix_singular", lambda d: d["nodes"][2].update(matrix=[0.0] * 16), "matrix"),
    ("matrix_short", lambda d: d["nodes"][2].update(matrix=[1.0] * 15), "matrix"),
    ("rotation_zero", lambda d: d["nodes"][2].update(rotation=[0, 0, 0, 0]), "rotation"),
    ("translation_text", lambda d: d["nodes"][2].update(translation="up"), "translation"),
    ("nodes_not_array", lambda d: d.update(nodes={"0": {}}), "nodes"),
    ("accessors_of_strings", lambda d: d.update(accessors=["x"]), "accessors[0]"),
    ("buffers_not_array", lambda d: d.update(buffers=7), "buffers"),
    ("asset_version_number", lambda d: d["asset"].update(version=2.0), "asset.version"),
    ("asset_missing", lambda d: d.pop("asset"), "asset"),
    ("extensions_required_text", lambda d: d.update(extensionsRequired="KHR_draco_mesh_compression"),
     "extensionsRequired"),
    ("uri_bad_base64", lambda d: d["buffers"][0].update(uri="data:application/octet-stream;base64,@@@="), "base64"),
    ("uri_not_base64", lambda d: d["buffers"][0].update(uri="data:text/plain,abc"), "not base64"),
    ("uri_traversal", lambda d: d["buffers"][0].update(uri="../outside.bin"), "not a file in the glTF's folder"),
    ("uri_percent_traversal", lambda d: d["buffers"][0].update(uri="%2e%2e/outside.bin"), "uri"),
    ("uri_absolute", lambda d: d["buffers"][0].update(uri="/etc/passwd"), "uri"),
    ("uri_nul", lambda d: d["buffers"][0].update(uri="a\0.bin"), "uri"),
    ("uri_folder", lambda d: d["buffers"][0].update(uri="."), "uri"),
    ("uri_too_long", lambda d: d["buffers"][0].update(uri="x" * 5000), "uri"),
    ("meshopt_sizes_lie", lambda d: d["bufferViews"][position_view(d)].update(extensions={"EXT_meshopt_compression": {
        "buffer": 0, "byteLength": 4, "byteStride": 12, "count": 10**12, "mode": "ATTRIBUTES"}}), "count"),
    ("meshopt_stride_bad", lambda d: d["bufferViews"][position_view(d)].update(extensions={"EXT_meshopt_compression": {
        "buffer": 0, "byteLength": 4, "byteStride": -8, "count": 16, "mode": "ATTRIBUTES"}}), "byteStride"),
    ("meshopt_mode_bad", lambda d: d["bufferViews"][position_view(d)].update(extensions={"EXT_meshopt_compression": {
        "buffer": 0, "byteLength": 4, "byteStride": 12, "count": 16, "mode": 3}}), "mode"),
]  # fmt: skip


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("name", "mutation", "field"), CLASS, ids=[c[0] for c in CLASS])
def test_hostile_heads_fail_clearly(tmp_path, name, mutation, field):
    (tmp_path / "outside.bin").write_bytes(bytes(4096))
    folder = tmp_path / "head"
    folder.mkdir()
    head = _hostile_head(folder, mutation)
    with time_bound(20), pytest.raises(GltfError) as info:
        read_head(head)
    message = str(info.value)
    assert message.startswith(f"{head}: ") and field in message and "\n" not in message
    assert "malformed glTF" not in message  # a check caught it, not the safety net


def test_indices_past_the_vertices_and_nan_positions(tmp_path):
    doc, binary = head_parts()
    view, offset = _indices_past_vertices(doc)
    bad = bytearray(binary)
    bad[offset : offset + 2] = np.array([60000], np.uint16).tobytes()
    with pytest.raises(GltfError, match=r"meshes\[0\]\.primitives\[0\]\.indices .* point past its 16 vertices"):
        read_gltf(write_glb_head(tmp_path / "idx.glb", doc, bytes(bad)))
    pos_offset = doc["bufferViews"][position_view(doc)].get("byteOffset", 0)
    bad = bytearray(binary)
    bad[pos_offset : pos_offset + 4] = np.array([np.nan], np.float32).tobytes()
    with pytest.raises(GltfError, match=r"accessors\[\d+\] holds NaN"):
        read_gltf(write_glb_head(tmp_path / "nan.glb", doc, bytes(bad)))


def test_external_buffers_stay_in_the_folder(tmp_path):
    doc, binary = head_parts()
    folder = tmp_path / "head"
    folder.mkdir()
    (folder / "loop.bin").symlink_to("loop.bin")
    (tmp_path / "secret.bin").write_bytes(binary)
    (folder / "link.bin").symlink_to(tmp_path / "secret.bin")
    (folder / "folder.bin").mkdir()
    for uri in ("loop.bin", "link.bin", "folder.bin", "missing.bin", "", "sub/../../secret.bin"):
        doc["buffers"][0]["uri"] = uri
        (folder / "head.gltf").write_text(json.dumps(doc))
        with (
            time_bound(10),
            pytest.raises(GltfError, match=r"head\.gltf: buffers\[0\]\.uri .* not a file in the glTF's"),
        ):
            read_gltf(folder / "head.gltf")
    (folder / "head.bin").write_bytes(binary)
    doc["buffers"][0]["uri"] = "head.bin"
    (folder / "head.gltf").write_text(json.dumps(doc))
    assert read_gltf(folder / "head.gltf").meshes[0].target_names == small_scene().meshes[0].target_names


def test_container_damage(tmp_path):
    doc, binary = head_parts()
    data = pack_glb(doc, binary)
    for name, blob in [
        ("cut.glb", data[: len(data) // 2]),
        ("header_only.glb", data[:12]),
        ("text.gltf", b"[" * 100000 + b"]" * 100000),
        ("digits.gltf", b'{"asset": {"version": "2.0"}, "scene": ' + b"9" * 10000 + b"}"),
        ("list.gltf", b"[1, 2]"),
        ("v1.gltf", json.dumps({"asset": {"version": "1.0"}}).encode()),
    ]:
        path = tmp_path / name
        path.write_bytes(blob)
        with pytest.raises(GltfError, match=name):
            read_gltf(path)
    deep = b'{"asset": {"version": "2.0"}, "extras": ' + b"[" * 100000 + b"]" * 100000 + b"}"
    text = deep + b" " * (-len(deep) % 4)
    header = np.array([0x46546C67, 2, 12 + 8 + len(text)], "<u4").tobytes()
    (tmp_path / "nested.glb").write_bytes(header + np.array([len(text), 0x4E4F534A], "<u4").tobytes() + text)
    with pytest.raises(GltfError, match="nested.glb"):
        read_gltf(tmp_path / "nested.glb")


def test_decoded_size_is_capped(tmp_path, monkeypatch):
    """A file that references one accessor from many meshes cannot multiply its decoded size past the cap."""
    doc, binary = head_parts()
    doc["meshes"] = doc["meshes"] * 200
    head = write_glb_head(tmp_path / "many.glb", doc, binary)
    assert len(read_gltf(head).meshes) == 400  # fine at the real cap
    monkeypatch.setattr(gltf_read, "MAX_DECODED_BYTES", 64 * 1024)
    with pytest.raises(GltfError, match="decode to at most 65536 bytes"):
        read_gltf(head)


def test_scene_objects_with_cycles_are_refused_by_retarget(tmp_path):
    scene = small_scene()
    scene.nodes[4].children = [0]  # Eye_R -> Head -> Eye_R
    with time_bound(10), pytest.raises(ValueError, match="cycle"):
        retarget(make_animation(3), scene, tmp_path / "out.glb")
    scene = small_scene()
    scene.nodes.append(GltfNode("loop", children=[6]))
    with time_bound(10), pytest.raises(ValueError, match="cycle"):
        retarget(make_animation(3), scene, tmp_path / "out.glb")
    scene = small_scene()
    scene.nodes[2].children = [3, 5, 5]
    with pytest.raises(ValueError, match="child of both"):
        retarget(make_animation(3), GltfScene(scene.nodes, scene.meshes, [0]), tmp_path / "out.glb")
    assert not (tmp_path / "out.glb").exists()


# ----------------------------------------------------------------------------------------------------
# valid files still read


def test_strided_sparse_and_bufferless_heads_read_exactly(tmp_path):
    doc, binary, verts = interleaved_parts()
    (tmp_path / "sub").mkdir()
    ext_doc = copy.deepcopy(doc)
    ext_doc["buffers"][0]["uri"] = "my%20head.bin"
    (tmp_path / "my head.bin").write_bytes(binary)
    (tmp_path / "ext.gltf").write_text(json.dumps(ext_doc))
    for head in (write_glb_head(tmp_path / "i.glb", doc, binary), write_gltf_head(tmp_path / "i.gltf", doc, binary),
                 tmp_path / "ext.gltf"):  # fmt: skip
        mesh = read_gltf(head).meshes[0]
        np.testing.assert_array_equal(mesh.vertices, verts)
        np.testing.assert_array_equal(mesh.normals, np.tile([0.0, 0.0, 1.0], (4, 1)))
        np.testing.assert_array_equal(mesh.faces, [[0, 1, 2], [2, 1, 3]])
        expected = np.zeros((1, 4, 3), np.float32)
        expected[0, 3, 2] = 0.5
        np.testing.assert_array_equal(mesh.targets, expected)
        assert mesh.target_names == ["jawOpen"]
    # a stride with the last element unpadded (the view ends right after it) reads too
    short = copy.deepcopy(doc)
    short["bufferViews"][0]["byteLength"] = 12 + 3 * 24 + 12  # the normals end 12 bytes into a row
    assert read_gltf(write_glb_head(tmp_path / "short.glb", short, binary)).meshes[0].vertices.shape == (4, 3)
    short["bufferViews"][0]["byteLength"] = 12 + 3 * 24 + 11
    with pytest.raises(GltfError, match=r"accessors\[1\] .* runs past the end of bufferViews\[0\]"):
        read_gltf(write_glb_head(tmp_path / "short.glb", short, binary))


def test_small_head_round_trips_and_retargets(tmp_path):
    doc, binary = head_parts()
    head = write_glb_head(tmp_path / "head.glb", doc, binary)
    scene, expected = read_gltf(head), small_scene()
    np.testing.assert_array_equal(scene.meshes[0].vertices, expected.meshes[0].vertices)
    np.testing.assert_array_equal(scene.meshes[0].targets, expected.meshes[0].targets)
    np.testing.assert_array_equal(scene.meshes[0].joints, expected.meshes[0].joints)
    assert [n.children for n in scene.nodes] == [n.children for n in expected.nodes] and scene.roots == [0]
    report = retarget(make_animation(5), head, tmp_path / "out.glb")
    assert set(report.eye_nodes.values()) == {"Eye_L", "Eye_R"} and (tmp_path / "out.glb").is_file()
    gltf_text = json.dumps({**doc, "buffers": [{"byteLength": len(binary), "uri": "data:application/octet-stream;"
                                                "base64," + base64.b64encode(binary).decode()}]})  # fmt: skip
    (tmp_path / "head.gltf").write_text(gltf_text)
    assert read_gltf(tmp_path / "head.gltf").meshes[0].target_names == expected.meshes[0].target_names
