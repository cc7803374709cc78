"""Retargeting keeps the user's glTF whole: images, materials, UVs, skins, other animations and extensions
survive byte for byte, only an animation is added; checked with pygltflib and the Khronos glTF validator."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pygltflib
import pytest
from exporthelpers import accessor_array, animation_tracks, make_animation
from gltfheads import small_scene, textured_parts, tiny_png, write_glb_head, write_gltf_files
from gltfvalidator import issues, validate, validator_prefix

from facecast.export.glb import GltfMesh, GltfNode, GltfScene, encode_glb, unpack_glb, write_glb
from facecast.export.gltf_read import _load, _Reader
from facecast.export.retarget import read_head, retarget

N = 9


@pytest.fixture(scope="module")
def gltf_validator() -> Path:
    return validator_prefix()


def _source_views(path: Path) -> tuple[dict, _Reader]:
    doc, binary = _load(path)
    return doc, _Reader(doc, binary, path)


def _image_bytes(gltf: pygltflib.GLTF2, blob: bytes, folder: Path, index: int) -> bytes:
    image = gltf.images[index]
    if image.uri is not None:
        from urllib.parse import unquote

        return (folder / unquote(image.uri)).read_bytes()
    view = gltf.bufferViews[image.bufferView]
    return blob[(view.byteOffset or 0) : (view.byteOffset or 0) + view.byteLength]


def _no_new_issues(prefix: Path, source: Path, out: Path) -> dict:
    before, after = validate(prefix, source), validate(prefix, out)
    new = issues(after) - issues(before)
    assert not new, f"the validator found new issues in {out.name}: {sorted(new)}"
    assert after["issues"]["numErrors"] == 0
    return after


def _blob(gltf: pygltflib.GLTF2, path: Path) -> bytes:
    blob = gltf.binary_blob()
    if blob is None:  # a .gltf with an external buffer
        blob = (path.parent / gltf.buffers[0].uri).read_bytes()
    return blob


@pytest.mark.parametrize("container", ["glb", "gltf"])
def test_textured_head_keeps_images_materials_uvs_and_animations(tmp_path, container, gltf_validator):
    doc, binary = textured_parts()
    if container == "glb":
        source = write_glb_head(tmp_path / "head.glb", doc, binary)
    else:
        source = write_gltf_files(tmp_path / "src", doc, binary)
    anim = make_animation(N, seed=21)
    report = retarget(anim, source, tmp_path / "out.glb")
    src, out = pygltflib.GLTF2.load(str(source)), pygltflib.GLTF2.load(str(tmp_path / "out.glb"))
    src_blob, out_blob = _blob(src, source), out.binary_blob()

    # images, textures, samplers and materials are those of the source
    assert len(out.images) == 1 and _image_bytes(out, out_blob, tmp_path, 0) == tiny_png()
    assert _image_bytes(src, src_blob, source.parent, 0) == tiny_png()
    assert out.images[0].mimeType == "image/png" and out.images[0].name == "skin_albedo"
    assert [m.to_dict() for m in out.materials] == [m.to_dict() for m in src.materials]
    assert [t.to_dict() for t in out.textures] == [t.to_dict() for t in src.textures]
    assert [s.to_dict() for s in out.samplers] == [s.to_dict() for s in src.samplers]
    # every accessor of the source (UVs, positions, normals, targets, skin, indices) is unchanged, same index
    for i in range(len(src.accessors)):
        np.testing.assert_array_equal(accessor_array(out, out_blob, i), accessor_array(src, src_blob, i))
    for m, mesh in enumerate(out.meshes):
        prim, src_prim = mesh.primitives[0], src.meshes[m].primitives[0]
        assert prim.attributes.TEXCOORD_0 == src_prim.attributes.TEXCOORD_0 and prim.material == src_prim.material
    assert out.skins[0].to_dict() == src.skins[0].to_dict()
    # the source's animation is kept; the retargeted one comes after it
    assert [a.name for a in out.animations] == ["idle", "facecast"]
    assert animation_tracks(out, out_blob, 0).keys() == {(0, "scale")}
    times, weights = animation_tracks(out, out_blob, 1)[(1, "weights")]
    np.testing.assert_array_equal(times, (np.arange(N) / anim.fps).astype(np.float32))
    np.testing.assert_allclose(weights[:, 0], anim.weights("jawOpen"), rtol=1e-6)
    assert report.kept["images"] == 1 and report.kept["materials"] == 2 and "kept from the head" in report.summary()
    _no_new_issues(gltf_validator, source, tmp_path / "out.glb")


def test_skinned_head_keeps_skin_and_joints(tmp_path, gltf_validator):
    source = write_glb(small_scene(), tmp_path / "skinned.glb")
    retarget(make_animation(N, seed=22), source, tmp_path / "out.glb", jaw=True)
    src, out = pygltflib.GLTF2.load(str(source)), pygltflib.GLTF2.load(str(tmp_path / "out.glb"))
    assert [s.to_dict() for s in out.skins] == [s.to_dict() for s in src.skins]
    attrs, src_attrs = out.meshes[0].primitives[0].attributes, src.meshes[0].primitives[0].attributes
    for key in ("JOINTS_0", "WEIGHTS_0", "POSITION", "NORMAL"):
        np.testing.assert_array_equal(accessor_array(out, out.binary_blob(), getattr(attrs, key)),
                                      accessor_array(src, src.binary_blob(), getattr(src_attrs, key)))  # fmt: skip
    tracks = animation_tracks(out, out.binary_blob(), 0)
    names = [n.name for n in out.nodes]
    assert (names.index("jaw_bone"), "rotation") in tracks and (names.index("Eye_L"), "rotation") in tracks
    _no_new_issues(gltf_validator, source, tmp_path / "out.glb")


def test_matrix_node_becomes_trs_when_animated(tmp_path, gltf_validator):
    doc, binary = textured_parts()
    eye = [n["name"] for n in doc["nodes"]].index("Eye_R")
    node = doc["nodes"][eye]
    node["matrix"] = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, *node.pop("translation"), 1]
    source = write_glb_head(tmp_path / "m.glb", doc, binary)
    retarget(make_animation(N, seed=23), source, tmp_path / "out.glb")
    out = json.loads(json.dumps(pygltflib.GLTF2.load(str(tmp_path / "out.glb")).nodes[eye].to_dict()))
    assert "matrix" not in out or not out["matrix"]
    assert out["translation"] == pytest.approx([-0.3, 0.2, 0.1]) and out["rotation"] == [0.0, 0.0, 0.0, 1.0]
    _no_new_issues(gltf_validator, source, tmp_path / "out.glb")


def test_image_outside_the_folder_is_not_read(tmp_path):
    doc, binary = textured_parts()
    source = write_gltf_files(tmp_path / "src", doc, binary)
    (tmp_path / "secret.png").write_bytes(tiny_png(seed=5))
    broken = json.loads(source.read_text())
    broken["images"][0]["uri"] = "../secret.png"
    source.write_text(json.dumps(broken))
    report = retarget(make_animation(N), source, tmp_path / "out.glb")
    out_doc, out_bin = unpack_glb((tmp_path / "out.glb").read_bytes())
    assert out_doc["images"][0] == broken["images"][0]  # the link is kept as it was, the file not read
    assert tiny_png(seed=5) not in out_bin
    assert any('images[0].uri "../secret.png" is not a file' in n for n in report.notes)
    assert "left as a link" in report.summary()


def test_jaw_messages_say_what_was_found_and_used(tmp_path):
    verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    targets = np.zeros((1, 3, 3), np.float32)
    targets[0, 0, 1] = -0.1
    mesh = GltfMesh("face", verts, np.array([[0, 1, 2]]), None, ["jawOpen"], targets)
    nodes = [GltfNode("root", children=[1, 2]), GltfNode("face", mesh=0), GltfNode("jaw", translation=np.ones(3))]
    head = write_glb(GltfScene(nodes, [mesh], [0]), tmp_path / "jawhead.glb")
    anim = make_animation(N, seed=24)
    auto = retarget(anim, head, tmp_path / "a.glb")
    assert auto.jaw_found == "jaw" and auto.jaw_node is None
    assert "jaw: found node 'jaw'; not rotated: the head's jawOpen target" in auto.summary()
    assert "no jaw node" not in auto.summary()
    on = retarget(anim, head, tmp_path / "b.glb", jaw=True)
    assert on.jaw_node == "jaw" and "rotated by the animation's jaw rotation (--jaw on)" in on.summary()
    off = retarget(anim, head, tmp_path / "c.glb", jaw=False)
    assert "not rotated (--jaw off)" in off.summary()
    plain = [GltfNode("root", children=[1]), GltfNode("face", mesh=0)]
    none = retarget(anim, write_glb(GltfScene(plain, [mesh], [0]), tmp_path / "nojaw.glb"), tmp_path / "d.glb")
    assert none.jaw_found is None and "jaw: no node named chin/jaw/mandible found" in none.summary()


def test_source_scene_is_not_changed_by_retargeting(tmp_path):
    doc, binary = textured_parts()
    head = read_head(write_glb_head(tmp_path / "head.glb", doc, binary))
    before = copy.deepcopy(head.source.doc)
    retarget(make_animation(N), head, tmp_path / "one.glb")
    retarget(make_animation(N, seed=3), head, tmp_path / "two.glb")
    assert head.source.doc == before
    assert len(pygltflib.GLTF2.load(str(tmp_path / "two.glb")).animations) == 2


def test_reencoding_a_facecast_glb_changes_no_byte_of_its_views(tmp_path):
    doc, binary = unpack_glb(encode_glb(small_scene()))
    source = write_glb_head(tmp_path / "s.glb", doc, binary)
    retarget(make_animation(N), source, tmp_path / "out.glb")
    out_doc, out_bin = unpack_glb((tmp_path / "out.glb").read_bytes())
    for old, new in zip(doc["bufferViews"], out_doc["bufferViews"], strict=False):
        a, b = old.get("byteOffset", 0), new.get("byteOffset", 0)
        assert binary[a : a + old["byteLength"]] == out_bin[b : b + new["byteLength"]]


# ----------------------------------------------------------------------------------------------------
# facecap.glb (openfacefx): meshopt, KHR_mesh_quantization, a KTX2 texture (KHR_texture_basisu), an animation


@pytest.fixture(scope="module")
def facecap() -> Path:
    openfacefx = pytest.importorskip("openfacefx", reason="openfacefx (which ships facecap.glb) is not installed")
    pytest.importorskip("meshopt", reason="meshopt is needed to decode facecap.glb")
    path = Path(openfacefx.__file__).parent / "studio_web" / "assets" / "facecap.glb"
    if not path.is_file():
        pytest.skip("this openfacefx has no facecap.glb")
    return path


def test_facecap_keeps_its_ktx2_texture_materials_and_animation(facecap, tmp_path, gltf_validator):
    anim = make_animation(N, seed=25)
    retarget(anim, facecap, tmp_path / "out.glb")
    src_doc, reader = _source_views(facecap)
    out = pygltflib.GLTF2.load(str(tmp_path / "out.glb"))
    blob = out.binary_blob()
    assert out.extensionsRequired == [e for e in src_doc["extensionsRequired"] if e != "EXT_meshopt_compression"]
    assert "KHR_texture_basisu" in out.extensionsRequired and "EXT_meshopt_compression" not in out.extensionsUsed
    out_doc = unpack_glb((tmp_path / "out.glb").read_bytes())[0]
    for key in ("materials", "textures", "samplers", "skins", "scenes"):
        assert out_doc.get(key) == src_doc.get(key), key
    assert out_doc["meshes"] == src_doc["meshes"]
    for i, image in enumerate(src_doc["images"]):
        assert out.images[i].mimeType == image["mimeType"] == "image/ktx2"
        assert _image_bytes(out, blob, tmp_path, i) == reader.view(image["bufferView"])
        assert _image_bytes(out, blob, tmp_path, i)[:12] == b"\xabKTX 20\xbb\r\n\x1a\n"
    for i in range(len(src_doc["bufferViews"])):  # every view (UVs, positions, targets...) holds the same bytes
        view = out_doc["bufferViews"][i]  # (meshopt ones decompressed)
        assert blob[view["byteOffset"] : view["byteOffset"] + view["byteLength"]] == reader.view(i), i
    assert out_doc["accessors"][: len(src_doc["accessors"])] == src_doc["accessors"]
    assert [a.name for a in out.animations] == [a["name"] for a in src_doc["animations"]] + ["facecast"]
    _no_new_issues(gltf_validator, facecap, tmp_path / "out.glb")


def test_mutated_textured_heads_are_kept_or_refused_clearly(tmp_path):
    """Random damage to a textured head: retargeting either writes a file or raises one ValueError naming it."""
    import random

    from gltfheads import mutate

    doc, binary = textured_parts()
    rng = random.Random(22)
    written = 0
    for trial in range(150):
        head = write_glb_head(tmp_path / f"m{trial}.glb", *mutate(rng, doc, binary, rng.randrange(1, 4)))
        out = tmp_path / f"out{trial}.glb"
        try:
            retarget(make_animation(3), head, out)
        except (ValueError, FileNotFoundError) as exc:
            assert str(head) in str(exc) or "animation" in str(exc) or "mesh" in str(exc), str(exc)
            assert not out.exists()
            from facecast.export.gltf_read import read_gltf

            with pytest.raises(ValueError):  # what the reader accepts must retarget
                read_gltf(head)
        else:
            written += 1
            from facecast.export.gltf_read import read_gltf

            assert len(read_gltf(out).meshes) == len(read_gltf(head).meshes)  # the output reads back
    assert written > 10  # most small damage leaves a readable head
