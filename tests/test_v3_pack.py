"""The v3.0 diffusion folder: read, validate, write; facecast info; the .trt fallback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from facecast.models.testing_v3 import make_v3_pack
from facecast.pack import PackError, load_pack
from facecast.pack_v3 import is_diffusion_folder, load_diffusion_pack, write_diffusion_pack


@pytest.fixture(scope="module")
def pack_dir(tmp_path_factory):
    return make_v3_pack(tmp_path_factory.mktemp("v3") / "pack")


@pytest.fixture
def copy(pack_dir, tmp_path):
    target = tmp_path / "pack"
    shutil.copytree(pack_dir, target)
    return target


def _edit_json(path, change):
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


def test_reads_the_layout_nvidia_ships(pack_dir):
    pack = load_diffusion_pack(pack_dir)
    assert pack.identity_names == ["Claire", "James", "Mark"]
    assert json.loads((pack_dir / "model.json").read_text())["networkPath"] == "network.trt"
    assert pack.network_path.name == "network.onnx"  # the absent .trt falls back to the .onnx beside it
    assert pack.info.fps == 60 and pack.info.stride == 8000 and pack.info.frames_per_window == 60
    assert pack.identity("james")[0] == 1 and pack.identity(None)[1].name == "Claire"
    for ident in pack.identities:
        assert ident.skin_blendshapes.num_poses == 52 and ident.tongue_blendshapes.num_poses == 16
        assert ident.model_data["neutral_skin"].shape == (pack.info.skin_size,)
    with pytest.raises(ValueError, match="no identity 'Bob'.*Claire, James, Mark"):
        pack.identity("Bob")
    assert is_diffusion_folder(pack_dir) and is_diffusion_folder(pack_dir / "model.json")
    with pytest.raises(PackError, match="diffusion"):
        load_pack(pack_dir)  # the regression reader says what it is


def test_write_then_read_round_trips(pack_dir, tmp_path):
    pack = load_diffusion_pack(pack_dir)
    out = write_diffusion_pack(tmp_path / "again", pack.info, pack.network_path, pack.identities)
    again = load_diffusion_pack(out)
    assert again.info == pack.info
    for a, b in zip(pack.identities, again.identities, strict=True):
        assert a.model_config == b.model_config
        assert all(np.array_equal(a.model_data[k], b.model_data[k]) for k in a.model_data)
        assert np.array_equal(a.skin_blendshapes.deltas, b.skin_blendshapes.deltas)


@pytest.mark.parametrize(
    ("file", "change", "message"),
    [
        ("network_info.json", lambda o: o["id"].update(type="regression"), "id.type must be 'diffusion'"),
        ("network_info.json", lambda o: o["params"].update(skin_size=-3), "params.skin_size must be an integer"),
        ("network_info.json", lambda o: o["params"].update(identities=["A", "A", "B"]), "distinct"),
        ("network_info.json", lambda o: o["params"].update(emotions=["joy"]), "params.emotions"),
        ("model.json", lambda o: o["modelDataPaths"].pop(), "modelDataPaths must list one entry per identity"),
        ("model.json", lambda o: o["modelConfigPaths"].__setitem__(1, "../../etc/passwd"), "outside the pack"),
        ("model.json", lambda o: o["modelConfigPaths"].__setitem__(1, "/etc/passwd"), "absolute path"),
        ("model.json", lambda o: o.update(networkPath="missing.onnx"), "missing.onnx"),
    ],
)
def test_bad_json_is_named_with_file_and_field(copy, file, change, message):
    _edit_json(copy / file, change)
    with pytest.raises(PackError, match=message) as err:
        load_diffusion_pack(copy)
    assert file.split(".")[0] in str(err.value) or "model.json" in str(err.value) or "pack" in str(err.value)


def test_bad_arrays_are_refused_from_headers_and_values(copy):
    data = dict(np.load(copy / "model_data_James.npz"))
    data["neutral_skin"] = data["neutral_skin"][:-3]
    np.savez(copy / "model_data_James.npz", **data)
    data = dict(np.load(copy / "model_data_Mark.npz"))
    data["lip_open_pose_delta"][5] = np.nan
    np.savez(copy / "model_data_Mark.npz", **data)
    np.savez(copy / "model_data_Claire.npz", neutral_skin=np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(PackError) as err:
        load_diffusion_pack(copy)
    text = str(err.value)
    assert "model_data_James.npz: neutral_skin has shape" in text
    assert "model_data_Mark.npz: lip_open_pose_delta holds NaN" in text
    assert "model_data_Claire.npz" in text and "pickled" in text


def test_blendshapes_must_match_the_sizes(copy, pack_dir):
    shutil.copy(pack_dir / "bs_tongue_James.npz", copy / "bs_skin_James.npz")
    with pytest.raises(PackError, match="bs_skin_James.npz"):
        load_diffusion_pack(copy)


def test_symlinked_file_outside_is_refused(copy, tmp_path):
    outside = tmp_path / "elsewhere.json"
    outside.write_text("{}")
    (copy / "model_config_Mark.json").unlink()
    (copy / "model_config_Mark.json").symlink_to(outside)
    with pytest.raises(PackError, match="outside the pack"):
        load_diffusion_pack(copy)


def test_facecast_info_shows_the_v3_facts(pack_dir):
    run = [sys.executable, "-m", "facecast", "info", str(pack_dir)]
    text = subprocess.run(run, capture_output=True, text=True, check=True).stdout
    for fact in ("diffusion", "Claire, James, Mark", "2 steps", "GRU 2 layers x 12", "stride 8000", "15..44 kept",
                 "60 fps", "267 to 750 ms"):  # fmt: skip
        assert fact in text, fact
    summary = json.loads(subprocess.run(run + ["--json"], capture_output=True, text=True, check=True).stdout)
    assert summary["kind"] == "diffusion" and summary["window"]["kept"] == [15, 45]
