"""The SDK's diffusion loop on a tiny v3.0 folder: against a hand-written reference, streams, identities, noise,
emotion, input strength, frame rates, post-processing and the CLI."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

from facecast.audio import save_wav
from facecast.infer.diffusion import NoiseOptions, OnnxDiffusionRunner, run_tracks
from facecast.model import load_model
from facecast.models.testing_v3 import make_v3_pack


@pytest.fixture(scope="module")
def pack_dir(tmp_path_factory):
    return make_v3_pack(tmp_path_factory.mktemp("v3") / "pack", seed=3)


@pytest.fixture(scope="module")
def audio():
    rng = np.random.default_rng(7)
    t = np.arange(16000 * 2 + 4321) / 16000
    return (0.3 * np.sin(2 * np.pi * 180 * t) * rng.uniform(0.2, 1, len(t))).astype(np.float32)


def reference(pack_dir, audio, identity, emotion_at, strength=1.0, seed=0):
    """The SDK loop written out plainly: windows from -1 s every 0.5 s, kept frames 15..44, the GRU state
    carried, one constant noise tensor, each kept frame's emotion at its own time."""
    sess = ort.InferenceSession(str(pack_dir / "network.onnx"), providers=["CPUExecutionProvider"])
    shapes = {i.name: i.shape for i in sess.get_inputs()}
    steps, layers, _, hidden = shapes["input_latents"]
    width = shapes["noise"][3]
    noise = np.random.Generator(np.random.Philox(seed)).standard_normal((1, steps + 1, 60, width), np.float32)
    latents = np.zeros((steps, layers, 1, hidden), np.float32)
    frames = {}
    total = math.ceil(3 * len(audio) / 800)
    padded = np.concatenate([np.zeros(16000, np.float32), audio, np.zeros(32000, np.float32)])
    w = 0
    while max(frames, default=-1) < total - 1:
        window = padded[w * 8000 : w * 8000 + 16000][None] * np.float32(strength)
        kept = [w * 30 - 60 + j for j in range(15, 45)]
        emotion = np.stack([emotion_at(max(n, 0) * 800 // 3 / 16000) for n in kept])[None].astype(np.float32)
        one_hot = np.eye(3, dtype=np.float32)[[identity]]
        pred, latents = sess.run(None, {"window": window, "identity": one_hot, "emotion": emotion,
                                        "input_latents": latents, "noise": noise})  # fmt: skip
        for j, n in enumerate(kept):
            if 0 <= n < total:
                frames[n] = pred[0, 15 + j]
        w += 1
    return np.stack([frames[n] for n in range(total)])


def test_matches_the_hand_written_sdk_loop(pack_dir, audio):
    def emotion_at(t):
        v = np.zeros(10, np.float32)
        v[3] = min(t, 1.0)
        return v

    model = load_model(pack_dir, identity="James", fold=False)  # network.onnx as it is: bit for bit
    emotion = lambda times: np.stack([emotion_at(t) for t in times])  # noqa: E731
    raw = model.infer(audio, fps=60, emotion=emotion)
    ref = reference(pack_dir, audio, 1, emotion_at)
    assert raw.result.shape == ref.shape == (math.ceil(3 * len(audio) / 800), 439)
    np.testing.assert_array_equal(raw.result, ref)
    folded = load_model(pack_dir, identity="James")  # the default: the folded graph, within float rounding
    assert not folded.backend.takes_noise
    np.testing.assert_allclose(folded.infer(audio, fps=60, emotion=emotion).result, ref, atol=2e-5, rtol=1e-5)
    still = model.infer(audio, fps=60)  # emotion matters, frame by frame
    assert np.abs(still.result - raw.result).max() > 1e-3


def test_any_push_sizes_give_the_offline_frames(pack_dir, audio):
    model = load_model(pack_dir)
    offline = model.animate(audio, fps=30)
    for sizes in ([160] * 400, [7919, 1, 24000, 3], [len(audio)]):
        stream, parts, i = model.animation_stream(fps=30), [], 0
        for n in sizes:
            parts.append(stream.push(audio[i : i + n]))
            i += n
        parts.append(stream.push(audio[i:]))
        parts.append(stream.close())
        weights = np.concatenate([p.skin_weights for p in parts])
        np.testing.assert_array_equal(np.concatenate([p.raw.result for p in parts]), offline.raw.result)
        np.testing.assert_allclose(weights, offline.skin_weights, atol=1e-5)
    assert model.stream(fps=60).lookahead_seconds == pytest.approx(0.75)


def test_identities_noise_and_input_strength(pack_dir, audio):
    results = {name: load_model(pack_dir, identity=name).infer(audio, fps=60).result for name in ("Claire", "mark")}
    assert np.abs(results["Claire"] - results["mark"]).max() > 1e-2
    model = load_model(pack_dir, fold=False)  # other noise than the folded graph's
    np.testing.assert_allclose(model.infer(audio, fps=60).result, results["Claire"], atol=2e-5)  # the first
    with pytest.raises(ValueError, match="no identity 'Zed'"):
        load_model(pack_dir, identity="Zed")
    engine = model.engine
    fresh = engine.with_options(noise=NoiseOptions(seed=0, constant=False)).run(audio, 60).result
    again = engine.with_options(noise=NoiseOptions(seed=0, constant=False)).run(audio, 60).result
    other = engine.with_options(noise=NoiseOptions(seed=1, constant=False)).run(audio, 60).result
    np.testing.assert_array_equal(fresh, again)  # a seed reproduces a run
    assert np.abs(fresh - other).max() > 1e-4 and np.abs(fresh - results["Claire"]).max() > 1e-4
    track = engine.with_options(noise=NoiseOptions(seed=0, constant=False))
    first = track.run_frames(audio, np.arange(track.frames_ready(len(audio), 60, True)), 60).result
    track.reset()  # rewinds the generator and zeroes the GRU state: the same frames again
    track.frames_ready(len(audio), 60, True)
    np.testing.assert_array_equal(track.run_frames(audio, np.arange(len(first)), 60).result, first)
    silent = engine.with_options(input_strength=0.0).run(audio, 60).result
    np.testing.assert_array_equal(silent, engine.run(np.zeros_like(audio), 60).result)
    half = engine.with_options(input_strength=0.5).run(audio, 60).result
    np.testing.assert_array_equal(half, engine.run(audio * np.float32(0.5), 60).result)


def test_tracks_batched_across_clips_give_each_clips_frames(pack_dir, audio):
    """Windows of clips of different lengths, identities and noise joined into one call per step: every clip's
    frames as its own run, in fewer network calls than windows."""
    engines = [load_model(pack_dir, identity=name, fold=False).engine for name in ("Mark", "Claire", "James")]
    engines[2] = engines[2].with_options(noise=NoiseOptions(seed=4, constant=False))
    clips = [audio, audio[:5000] * 0.5, audio[3000:]]
    emotions = [None, lambda times: np.stack([np.eye(10, dtype=np.float32)[2] * min(t, 1) for t in times]), None]
    calls = []
    runner = engines[0].runner

    def counting(*args):
        calls.append(len(args[0]))
        return runner(*args)

    for engine in engines:
        engine.runner = counting
    joined = run_tracks(engines, clips, 30.0, emotions, batch=2)
    for engine in engines:
        engine.runner = runner
    for engine, clip, emotion, out in zip(engines, clips, emotions, joined, strict=True):
        alone = engine.run(clip, 30.0, emotion)
        assert out.result.shape == alone.result.shape
        np.testing.assert_allclose(out.result, alone.result, atol=1e-5)
    assert max(calls) == 2 and len(calls) < sum(calls)


def test_io_binding_gives_the_same_frames(pack_dir, audio):
    """The GPU path's I/O binding (noise kept on the device between calls), run here on the CPU provider."""
    model = load_model(pack_dir, fold=False)
    plain = model.engine.run(audio, 60.0).result
    bound = OnnxDiffusionRunner(pack_dir / "network.onnx", device="cpu", io_binding=True)
    engine = model.engine.with_options()
    engine.runner = bound
    np.testing.assert_array_equal(engine.run(audio, 60.0).result, plain)
    assert bound._noise is not None and bound.name == "onnxruntime:cpu"
    with pytest.raises(RuntimeError, match="CUDAExecutionProvider|unknown device"):
        OnnxDiffusionRunner(pack_dir / "network.onnx", device="cuda" if "CUDAExecutionProvider" not in
                            ort.get_available_providers() else "npu")  # fmt: skip


def test_other_frame_rates_resample_the_native_frames(pack_dir, audio):
    model = load_model(pack_dir)
    native = model.infer(audio, fps=60).result
    at30 = model.infer(audio, fps=30).result
    assert len(at30) == math.ceil(30 * len(audio) / 16000)
    np.testing.assert_array_equal(at30, native[::2][: len(at30)])
    at24 = model.infer(audio, fps=24).result
    k = 7  # 7 / 24 s = native frame 17.5
    np.testing.assert_allclose(at24[k], 0.5 * (native[17] + native[18]), rtol=1e-6, atol=1e-6)


def test_post_processing_per_identity(pack_dir, audio):
    model = load_model(pack_dir, identity="Mark")
    anim = model.animate(audio, fps=60, geometry=True, blinks=False,
                         face_params={"upper_face_smoothing": 0, "lower_face_smoothing": 0, "skin_strength": 1,
                                      "eyelid_open_offset": 0, "lip_open_offset": 0, "upper_face_strength": 1,
                                      "lower_face_strength": 1})  # fmt: skip
    ident = model.pack.identity("Mark")[1]
    neutral = ident.model_data["neutral_skin"].reshape(-1, 3)
    skin = anim.raw.result[:, :360].reshape(len(anim), -1, 3)
    np.testing.assert_allclose(anim.skin_geometry, neutral + skin, atol=1e-5)  # direct deltas, no PCA
    assert anim.skin_weights.shape == (len(anim), 52) and anim.tongue_weights.shape == (len(anim), 16)
    assert np.isfinite(anim.skin_weights).all() and anim.actor == "Mark"
    smooth = model.animate(audio, fps=60, blinks=False, geometry=True, face_params={"lower_face_smoothing": 0.05})
    assert np.abs(np.diff(smooth.skin_geometry, axis=0)).mean() < np.abs(np.diff(anim.skin_geometry, axis=0)).mean()
    assert anim.jaw.shape == (len(anim), 4, 4) and anim.eyes.shape == (len(anim), 6)


def test_cli_animates_with_identity_and_writes_raw_result(pack_dir, audio, tmp_path):
    wav = tmp_path / "clip.wav"
    save_wav(wav, audio)
    run = [sys.executable, "-m", "facecast", "animate", str(wav), "-m", str(pack_dir), "-o", str(tmp_path / "o"),
           "--formats", "npz", "--fps", "60", "-q", "--no-blinks"]  # fmt: skip
    subprocess.run(run + ["--identity", "James"], check=True)
    james = np.load(tmp_path / "o" / "clip.npz")
    raw = load_model(pack_dir, identity="James").infer(wav, fps=60).result
    np.testing.assert_allclose(james["raw_result"], raw, atol=1e-6)
    claire = load_model(pack_dir).infer(wav, fps=60).result
    assert np.abs(claire - james["raw_result"]).max() > 1e-2
    bad = subprocess.run(run + ["--identity", "Nobody"], capture_output=True, text=True)
    assert bad.returncode != 0 and "Nobody" in bad.stderr


def test_quiet_hold_holds_silences_still(pack_dir, audio):
    """The quiet hold (off by default, as for NVIDIA's models) gets each frame's audio level from the v3 engine."""
    model = load_model(pack_dir)
    clip = audio.copy()
    clip[16000:28000] = 0.0  # 0.75 s of digital silence inside speech
    moving = model.animate(clip, fps=30, blinks=False)
    held = model.animate(clip, fps=30, blinks=False, face_params={"quiet_hold": 1.0})
    assert moving.raw.levels is not None and (moving.raw.levels[32:50] < -100).all()
    quiet = slice(32, 49)  # frames inside the silence (a frame's level looks up to 267 ms ahead)
    assert np.abs(np.diff(held.skin_weights[quiet], axis=0)).max() < 1e-4  # eased in, then still
    assert np.abs(np.diff(moving.skin_weights[quiet], axis=0)).max() > 5e-4
    np.testing.assert_allclose(held.skin_weights[:20], moving.skin_weights[:20], atol=1e-6)  # speech untouched
