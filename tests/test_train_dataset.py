"""Training dataset reader: NVIDIA's layout, cache formats and the errors for broken shots."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from facecast.audio import load_audio, save_wav
from facecast.fileio import write_npz
from facecast.train.caches import CacheError, read_cache, read_maya_cache, read_pc2, write_maya_cache, write_pc2
from facecast.train.dataset import DatasetError, infer_emotion, load_dataset, read_shots_file
from facecast.train.synthetic import make_synthetic_dataset


@pytest.fixture
def dataset_root(tmp_path):
    return make_synthetic_dataset(tmp_path / "data", num_shots=3, seconds=1.5)


def test_synthetic_dataset_loads_with_emotions_and_sizes(dataset_root):
    ds = load_dataset(dataset_root)
    assert [s.emotion for s in ds.shots] == ["anger", "joy", "neutral"]
    shot = ds.shot("synth_joy_01")
    skin = ds.skin(shot)
    assert skin.shape == (shot.num_frames, ds.geometry.num_verts_skin, 3)
    assert abs(shot.num_frames - shot.audio_seconds * 30) <= 1
    tongue = ds.tongue(shot)  # written as .pc2 by the synthetic generator
    assert shot.tongue_path.suffix == ".pc2" and tongue.shape[1] == ds.geometry.tongue_neutral.shape[0]
    assert ds.jaw_deltas(shot).shape == (shot.num_frames, 15)
    assert ds.eye_rotations(shot).shape == (shot.num_frames, 4)
    assert ds.bs_skin is not None and ds.bs_skin.names[0] == "eyeBlinkLeft"
    assert len(ds.geometry.lip_dist_verts["upper"]) == len(ds.geometry.lip_dist_verts["lower"]) > 0


def test_infer_emotion_and_shots_file(tmp_path):
    assert infer_emotion("cp12_Joy_take2") == "joy"
    assert infer_emotion("eg3_fast") == "neutral"
    assert infer_emotion("outofbreath_01") == "outofbreath"
    text = tmp_path / "shots.txt"
    text.write_text("# shots\nshot_a\nshot_b  anger\n\n")
    assert read_shots_file(text) == [("shot_a", None), ("shot_b", "anger")]
    js = tmp_path / "shots.json"
    js.write_text('[{"name": "x", "emotion": "joy"}, "y"]')
    assert read_shots_file(js) == [("x", "joy"), ("y", None)]


def test_pc2_and_maya_round_trip(tmp_path):
    frames = np.random.default_rng(0).standard_normal((7, 11, 3)).astype(np.float32)
    write_pc2(tmp_path / "a.pc2", frames, sample_rate=30.0)
    assert np.array_equal(read_pc2(tmp_path / "a.pc2"), frames)
    write_maya_cache(tmp_path / "b.xml", frames)
    assert np.array_equal(read_maya_cache(tmp_path / "b.xml"), frames)
    assert np.array_equal(read_cache(tmp_path / "b.xml"), frames)
    (tmp_path / "c.pc2").write_bytes(b"NOTACACHE" * 10)
    with pytest.raises(CacheError, match="c.pc2"):
        read_cache(tmp_path / "c.pc2")
    (tmp_path / "d.abc").write_bytes(b"x")
    with pytest.raises(CacheError, match="convert it to .npy or .pc2"):
        read_cache(tmp_path / "d.abc")
    (tmp_path / "e.mc").write_bytes(b"FOR8" + b"\0" * 20)
    (tmp_path / "e.xml").write_text('<Autodesk_Cache_File><cacheType Type="OneFile"/></Autodesk_Cache_File>')
    with pytest.raises(CacheError, match="FOR8"):
        read_cache(tmp_path / "e.xml")


def test_maya_cache_is_accepted_as_skin_cache(tmp_path):
    root = make_synthetic_dataset(tmp_path / "maya", num_shots=1, seconds=1.0, skin_format="maya")
    ds = load_dataset(root)
    assert ds.shots[0].skin_path.suffix == ".xml"
    assert ds.skin(ds.shots[0]).shape[1] == ds.geometry.num_verts_skin


def test_frame_count_mismatch_names_shot_and_files(dataset_root):
    audio = dataset_root / "audio" / "synth_joy_01.wav"
    save_wav(audio, load_audio(audio)[:8000])  # 0.5 s of audio for a 1.5 s cache
    with pytest.raises(DatasetError) as err:
        load_dataset(dataset_root)
    message = str(err.value)
    assert "synth_joy_01" in message and "synth_joy_01.npy" in message and "synth_joy_01.wav" in message
    assert "synth_anger_02" not in message  # only the broken shot is reported


def test_vertex_count_and_missing_files_are_reported_together(dataset_root):
    cache = dataset_root / "cache" / "skin" / "synth_anger_02" / "synth_anger_02.npy"
    np.save(cache, np.load(cache)[:, :-5])
    shutil.rmtree(dataset_root / "cache" / "skin" / "synth_neutral_00")
    jaw_path = dataset_root / "xform" / "jaw_keypoints_cache_all.npz"
    with np.load(jaw_path) as jaw:
        kept = {k: jaw[k] for k in jaw.files if k != "synth_joy_01"}
    write_npz(jaw_path, kept)
    with pytest.raises(DatasetError) as err:
        load_dataset(dataset_root)
    problems = err.value.problems
    assert any("synth_anger_02" in p and "vertices" in p for p in problems)
    assert any("synth_neutral_00" in p and "no skin cache" in p for p in problems)
    assert any("synth_joy_01" in p and "jaw_keypoints_cache_all.npz" in p for p in problems)


def test_bad_vertex_list_and_pickled_npz_are_refused(dataset_root):
    (dataset_root / "geom" / "skin" / "lip_dist_vertex_list.json").write_text('{"upper": [1, 2], "lower": [99999, 3]}')
    np.save(dataset_root / "xform" / "eye_saccade_rotations.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(DatasetError) as err:
        load_dataset(dataset_root)
    text = str(err.value)
    assert "lip_dist_vertex_list.json" in text and "eye_saccade_rotations.npy" in text


def test_missing_root_and_unknown_emotion(tmp_path, dataset_root):
    with pytest.raises(DatasetError, match="dataset folder is missing"):
        load_dataset(tmp_path / "nope")
    with pytest.raises(DatasetError, match="emotion 'happy'"):
        load_dataset(dataset_root, emotions={"synth_joy_01": "happy"})
