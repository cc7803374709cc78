"""Output gains from a synthetic corpus: std(teacher) / std(model) per pose, written as bsWeightMultipliers."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from facecast.audio import save_wav
from facecast.calibrate import Shot, corpus_shots, pose_gains, skin_config_path, write_multipliers
from facecast.constants import ARKIT_NAMES
from facecast.fileio import write_json, write_npz


class _FixedModel:
    """Stands in for a Model: returns given skin weights per shot, in order."""

    def __init__(self, outputs: list[np.ndarray], names: tuple[str, ...]) -> None:
        self.outputs, self.names, self.calls = list(outputs), names, []

    def animate(self, audio, emotion=None, blinks=True):
        self.calls.append((len(audio), emotion, blinks))
        return SimpleNamespace(skin_names=self.names, skin_weights=self.outputs.pop(0))


def _shot(name: str, arkit: np.ndarray, names=ARKIT_NAMES) -> Shot:
    return Shot(name, np.zeros(16000, np.float32), None, arkit, tuple(names))


def test_gain_is_the_teacher_spread_over_the_model_spread():
    rng = np.random.default_rng(0)
    names = ("mouthPucker", "mouthFunnel", "jawOpen")
    outputs = [rng.random((40, 3)), rng.random((25, 3))]
    teachers = [rng.random((42, 52)), rng.random((25, 52))]  # the first is 2 frames longer: both are cut to 40
    model = _FixedModel(outputs, names)
    gains = pose_gains(model, [_shot("a", teachers[0]), _shot("b", teachers[1])], ("mouthPucker", "jawOpen"))
    assert set(gains) == {"mouthPucker", "jawOpen"}
    for pose in gains:
        m = np.concatenate([outputs[0][:, names.index(pose)], outputs[1][:, names.index(pose)]])
        t = np.concatenate([teachers[0][:40, ARKIT_NAMES.index(pose)], teachers[1][:, ARKIT_NAMES.index(pose)]])
        g = gains[pose]
        assert g.frames == 65
        assert g.gain == pytest.approx(t.std() / m.std(), rel=1e-12)
        assert g.correlation == pytest.approx(np.corrcoef(m, t)[0, 1], rel=1e-9)
    assert [c[2] for c in model.calls] == [False, False]  # no generated blinks


def test_poses_that_cannot_be_calibrated_are_refused():
    names = ("mouthPucker", "mouthFunnel")
    flat = np.zeros((30, 2))
    with pytest.raises(ValueError, match="barely moves"):
        pose_gains(_FixedModel([flat], names), [_shot("a", np.random.default_rng(1).random((30, 52)))])
    with pytest.raises(ValueError, match="no skin pose 'jawOpen'"):
        pose_gains(_FixedModel([flat], names), [_shot("a", np.ones((30, 52)))], ("jawOpen",))
    with pytest.raises(ValueError, match="no teacher curve"):
        pose_gains(_FixedModel([flat], names), [_shot("a", np.ones((30, 1)), ["jawOpen"])], ("mouthPucker",))
    with pytest.raises(ValueError, match="no shots"):
        pose_gains(_FixedModel([], names), [])


def _write_corpus(root, shots: dict[str, tuple[np.ndarray, str, np.ndarray]]) -> None:
    """A corpus in facecast synth's layout: corpus.json, audio/<shot>.wav, meta/<shot>.json + .npz."""
    (root / "audio").mkdir(parents=True)
    (root / "meta").mkdir()
    write_json(root / "corpus.json", {"version": 1, "arkit_names": list(ARKIT_NAMES)})
    write_json(root / "meta" / "_settings.json", {"not": "a shot"})
    for name, (audio, emotion, arkit) in shots.items():
        save_wav(root / "audio" / f"{name}.wav", audio)
        write_json(root / "meta" / f"{name}.json", {"name": name, "emotion": emotion, "intensity": 0.6})
        write_npz(root / "meta" / f"{name}.npz", {"arkit": arkit.astype(np.float32)})


def test_corpus_shots_read_the_synth_layout(tmp_path):
    rng = np.random.default_rng(2)
    audio = (0.1 * rng.standard_normal(8000)).astype(np.float32)
    _write_corpus(
        tmp_path, {"b_joy": (audio, "joy", np.ones((15, 52))), "a_calm": (audio, "neutral", np.zeros((15, 52)))}
    )
    shots = list(corpus_shots(tmp_path))
    assert [s.name for s in shots] == ["a_calm", "b_joy"]
    assert shots[0].emotion is None and shots[1].emotion == {"joy": 0.6}
    assert shots[1].arkit.shape == (15, 52) and shots[1].arkit_names == ARKIT_NAMES
    np.testing.assert_allclose(shots[0].audio, audio, atol=1e-4)
    assert [s.name for s in corpus_shots(tmp_path, max_shots=1)] == ["a_calm"]
    with pytest.raises(FileNotFoundError, match="not a facecast synth corpus"):
        list(corpus_shots(tmp_path / "audio"))


def test_calibrate_writes_multipliers_that_restore_the_teacher_range(tmp_path, small_pack):
    from facecast import load_model
    from facecast.cli import main

    pack = tmp_path / "pack"
    shutil.copytree(small_pack, pack)
    before = load_model(pack, device="cpu")
    rng = np.random.default_rng(4)
    audios = [(0.2 * rng.standard_normal(12000)).astype(np.float32) for _ in range(2)]
    outputs = [before.animate(a, blinks=False).skin_weights.astype(np.float64) for a in audios]
    i, j = np.argsort(np.concatenate(outputs).std(axis=0))[-2:]  # the two poses this random pack moves most
    shots = {}
    for k, (audio, w) in enumerate(zip(audios, outputs, strict=True)):
        teacher = w.copy()
        teacher[:, i] *= 1.7  # the teacher moves pose i 1.7 times as much as the model, pose j as much
        shots[f"s{k}"] = (audio, "neutral", teacher)
    _write_corpus(tmp_path / "corpus", shots)

    poses = [ARKIT_NAMES[i], ARKIT_NAMES[j]]
    assert (
        main(["calibrate", str(pack), str(tmp_path / "corpus"), "--poses", *poses, "--write", "--min-std", "1e-7"]) == 0
    )
    mult = json.loads(skin_config_path(pack).read_text())["blendshape_params"]["bsWeightMultipliers"]
    assert mult[i] == pytest.approx(1.7, abs=2e-3)  # rounded to 4 decimals
    assert mult[j] == pytest.approx(1.0, abs=2e-3)
    assert mult.count(1.0) >= len(mult) - 2

    after = load_model(pack, device="cpu")
    w0, w1 = outputs[0], after.animate(audios[0], blinks=False).skin_weights
    np.testing.assert_allclose(w1[:, i], w0[:, i] * mult[i], rtol=1e-5, atol=1e-9)
    others = [k for k in range(52) if k not in (i, j)]
    np.testing.assert_allclose(w1[:, others], w0[:, others], rtol=1e-6, atol=1e-9)

    again = pose_gains(after, corpus_shots(tmp_path / "corpus"), poses, min_std=1e-7)
    assert again[poses[0]].gain == pytest.approx(1.0, abs=2e-3)  # a calibrated pack needs no more gain


def test_write_multipliers_refuses_unknown_poses(tmp_path, small_pack):
    from facecast.calibrate import PoseGain

    pack = tmp_path / "pack"
    shutil.copytree(small_pack, pack)
    with pytest.raises(ValueError, match="no skin pose 'nose'"):
        write_multipliers(pack, {"nose": PoseGain("nose", 2.0, 0.1, 0.2, 0.9, 10)})
