"""Reading, validating and writing the official model file set."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from facecast.constants import ARKIT_NAMES, TONGUE_NAMES
from facecast.pack import NetworkInfo, PackError, load_pack


@pytest.fixture()
def pack_copy(small_pack, tmp_path):
    """A writable copy of the session pack (the network file is hard-linked where it can be: a symbolic link out
    of the pack would be refused)."""
    dst = tmp_path / "pack"
    shutil.copytree(small_pack, dst, copy_function=_link_or_copy)
    return dst


def _link_or_copy(src, dst):
    if src.endswith(".onnx"):
        try:
            return os.link(src, dst)
        except OSError:
            pass
    return shutil.copy2(src, dst)


def _edit_json(path, fn):
    obj = json.loads(path.read_text())
    fn(obj)
    path.write_text(json.dumps(obj))


def _edit_npz(path, fn):
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    fn(arrays)
    np.savez(path, **arrays)


def test_load_written_pack(small_pack):
    pack = load_pack(small_pack)
    info = pack.network_info
    assert info.result_size == 12 + 4 + 15 + 4
    assert pack.skin_blendshapes.names == list(ARKIT_NAMES)
    assert pack.tongue_blendshapes.names == list(TONGUE_NAMES)
    assert pack.skin_blendshapes.deltas.shape == (52, 300, 3)
    assert pack.network_path.name == "network.onnx"  # model.json names network.trt, as NVIDIA's do
    assert json.loads((small_pack / "model.json").read_text())["networkPath"] == "network.trt"
    assert pack.implicit_emotion.shape == (16,)
    db = pack.emotion_db
    assert np.allclose(pack.implicit_emotion, db["emo_db"][int(db["emo_spec_start"][0]) + 5])
    summary = pack.summary()
    assert summary["lookahead_ms"] == pytest.approx(260.0)
    assert summary["blendshapes"] == {"skin": 52, "tongue": 16}


def test_load_accepts_model_json_path(small_pack):
    assert load_pack(small_pack / "model.json").root == small_pack


def test_network_info_round_trip():
    info = NetworkInfo("x", 140, 1000, 10, 50)
    again = NetworkInfo.from_json(info.to_json())
    assert again == info
    assert info.result_size == 169


def test_network_info_errors_name_fields():
    bad = NetworkInfo("x", 4, 10, 2, 5).to_json()
    bad["id"]["type"] = "diffusion"
    bad["params"]["default_emotion"] = [0.0] * 3
    del bad["params"]["num_verts_skin"]
    with pytest.raises(PackError) as err:
        NetworkInfo.from_json(bad, "ni.json")
    text = str(err.value)
    assert "id.type" in text and "default_emotion" in text and "params.num_verts_skin is missing" in text
    assert len(err.value.problems) == 3


def test_missing_pack_and_missing_files(tmp_path, pack_copy):
    with pytest.raises(PackError, match="no such model folder"):
        load_pack(tmp_path / "nowhere")
    (pack_copy / "model_data.npz").unlink()
    (pack_copy / "implicit_emo_db.npz").unlink()
    with pytest.raises(PackError) as err:
        load_pack(pack_copy)
    assert "model_data.npz: file is missing" in str(err.value)
    assert "implicit_emo_db.npz: file is missing" in str(err.value)


@pytest.mark.parametrize("evil", ["../outside.json", "/etc/passwd", "sub/../../x.json"])
def test_paths_outside_the_pack_are_refused(pack_copy, evil):
    _edit_json(pack_copy / "model.json", lambda m: m.update(modelConfigPath=evil))
    with pytest.raises(PackError, match="modelConfigPath"):
        load_pack(pack_copy)


def test_symlink_escaping_the_pack_is_refused(pack_copy, tmp_path):
    outside = tmp_path / "secret.json"
    outside.write_text("{}")
    (pack_copy / "link.json").symlink_to(outside)
    _edit_json(pack_copy / "model.json", lambda m: m.update(modelConfigPath="link.json"))
    with pytest.raises(PackError, match="outside the pack"):
        load_pack(pack_copy)


def test_shape_mismatches_are_all_reported(pack_copy):
    def damage(arrays):
        arrays["shapes_matrix_skin"] = arrays["shapes_matrix_skin"][:, :-1]
        arrays["neutral_jaw"] = np.zeros((4, 3), np.float32)
        del arrays["saccade_rot_matrix"]

    _edit_npz(pack_copy / "model_data.npz", damage)
    with pytest.raises(PackError) as err:
        load_pack(pack_copy)
    assert "saccade_rot_matrix is missing" in str(err.value)
    _edit_npz(pack_copy / "model_data.npz", lambda a: a.update(saccade_rot_matrix=np.zeros((10, 2), np.float32)))
    with pytest.raises(PackError) as err:
        load_pack(pack_copy)
    text = str(err.value)
    assert "shapes_matrix_skin has shape (12, 299, 3), expected (12, 300, 3)" in text
    assert "neutral_jaw" in text and "model_data.npz" in text


def test_nan_in_model_data_is_reported(pack_copy):
    def poison(arrays):
        arrays["lip_open_pose_delta"][0, 0] = np.nan

    _edit_npz(pack_copy / "model_data.npz", poison)
    with pytest.raises(PackError, match="lip_open_pose_delta holds NaN"):
        load_pack(pack_copy)


def test_pickled_npz_is_refused(pack_copy):
    np.savez(pack_copy / "implicit_emo_db.npz", emo_db=np.array([{"a": 1}], dtype=object))
    with pytest.raises(PackError, match="pickled"):
        load_pack(pack_copy)


def test_emotion_db_inconsistency(pack_copy):
    _edit_npz(pack_copy / "implicit_emo_db.npz", lambda a: a.update(emo_spec_size=a["emo_spec_size"] * 10))
    with pytest.raises(PackError, match="outside emo_db"):
        load_pack(pack_copy)


def test_blendshape_errors(pack_copy):
    def drop_pose(arrays):
        del arrays["jawOpen"]
        arrays["neutral"] = arrays["neutral"][:-1]

    _edit_npz(pack_copy / "bs_skin.npz", drop_pose)
    _edit_json(pack_copy / "bs_tongue_config.json", lambda c: c["blendshape_params"].update(numPoses=3))
    with pytest.raises(PackError) as err:
        load_pack(pack_copy)
    text = str(err.value)
    assert "'jawOpen' is listed in poseNames but has no array" in text
    assert "numPoses is 3" in text


def test_blendshape_vertex_count_against_network_info(pack_copy):
    def shrink(arrays):
        names = [n.decode() for n in arrays["poseNames"]]
        for n in names:
            arrays[n] = arrays[n][:-2]

    _edit_npz(pack_copy / "bs_tongue.npz", shrink)
    with pytest.raises(PackError, match="num_verts_tongue is 40"):
        load_pack(pack_copy)


def test_bad_json(pack_copy):
    (pack_copy / "network_info.json").write_text("{not json")
    with pytest.raises(PackError, match="network_info.json: not valid JSON"):
        load_pack(pack_copy)


def test_unknown_source_shot(pack_copy):
    _edit_json(pack_copy / "model_config.json", lambda c: c["config"].update(source_shot="nope"))
    pack = load_pack(pack_copy)
    with pytest.raises(PackError, match="source_shot 'nope'"):
        _ = pack.implicit_emotion


def test_diffusion_pack_refused(pack_copy):
    _edit_json(pack_copy / "model.json", lambda m: m.update(modelConfigPaths=["a.json"]))
    with pytest.raises(PackError, match="diffusion"):
        load_pack(pack_copy)
