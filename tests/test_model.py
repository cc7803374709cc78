"""The public API: Model.animate and animation streams compose the engine, face pipeline and solver."""

from __future__ import annotations

import numpy as np
import pytest

from facecast.face.blendshapes import BlendshapeConfig, BlendshapeSolver
from facecast.face.blinks import BlinkParams, generate_blinks
from facecast.face.pipeline import SolveOptions
from facecast.face.postprocess import FaceParams, FacePostProcessor


@pytest.fixture(scope="module")
def clip():
    t = np.arange(int(1.3 * 16000)) / 16000
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return (0.3 * envelope * np.sin(2 * np.pi * 180 * t)).astype(np.float32)


def test_animate_composes_the_stages(small_model, clip):
    anim = small_model.animate(clip, fps=30, emotion={"joy": 0.4}, blinks=False, geometry=True)
    pack = small_model.pack
    raw = small_model.infer(clip, emotion={"joy": 0.4})
    assert np.allclose(anim.raw.result, raw.result)
    params = FaceParams.from_model_config(pack.model_config)
    pose = FacePostProcessor(pack.model_data, params, 30).process(raw.result)
    assert np.allclose(anim.skin_geometry, pose.skin, atol=1e-5)
    assert np.allclose(anim.jaw, pose.jaw, atol=1e-6) and np.allclose(anim.eyes, pose.eyes, atol=1e-6)
    bs = pack.skin_blendshapes
    solver = BlendshapeSolver(bs.neutral, bs.deltas, bs.names, bs.frontal_mask,
                              BlendshapeConfig.from_json(bs.config, len(bs.names)))  # fmt: skip
    assert np.allclose(anim.skin_weights, solver.solve(pose.skin), atol=1e-5)
    assert anim.skin_names[17] == "jawOpen" and anim.tongue_weights.shape == (len(anim), 16)
    assert np.allclose(anim.emotion[:, 6], 0.4)
    assert np.allclose(anim.weights("jawOpen"), anim.skin_weights[:, 17])


@pytest.mark.parametrize("upper_smoothing", [0.0, 0.05])
def test_weights_only_path_equals_solving_the_vertices(small_model, clip, upper_smoothing):
    """Without geometry the pipeline solves from the PCA rows (linear maps); the weights must equal the solve of
    the post-processed vertices, over chunked calls, with smoothing, region strengths, offsets and blinks."""
    face = {"lower_face_smoothing": 0.03, "upper_face_smoothing": upper_smoothing, "skin_strength": 1.3,
            "lower_face_strength": 0.8, "upper_face_strength": 1.2, "lip_open_offset": 0.1, "tongue_strength": 1.4,
            "tongue_height_offset": 0.2, "eyelid_open_offset": 0.05}  # fmt: skip
    blinks = BlinkParams(rate=50, min_interval=0.2, seed=5)
    options = SolveOptions({"jawOpen": 1.5}, {"mouthClose": 0.1})
    raw = small_model.infer(clip)
    pipe, params = small_model.pipeline, small_model.pipeline.face_params(face)
    fast, slow = pipe.new_state(), pipe.new_state()
    parts_fast, parts_slow = [], []
    for lo, hi in ((0, 7), (7, 8), (8, 25), (25, len(raw))):
        rows = np.arange(lo, hi)
        part = type(raw)(raw.frame_index[rows], raw.target_samples[rows], raw.result[rows], raw.emotion[rows],
                         raw.num_shapes_skin, raw.num_shapes_tongue, raw.fps)  # fmt: skip
        parts_fast.append(pipe.process(part, fast, params, blinks, options, geometry=False))
        parts_slow.append(pipe.process(part, slow, params, blinks, options, geometry=True))
    for name in ("skin_weights", "tongue_weights", "jaw", "eyes"):
        a = np.concatenate([getattr(p, name) for p in parts_fast])
        b = np.concatenate([getattr(p, name) for p in parts_slow])
        assert np.abs(a - b).max() < 1e-5, name
    assert parts_fast[0].skin_geometry is None and parts_slow[0].skin_geometry is not None
    assert np.abs(np.concatenate([p.skin_weights for p in parts_fast])).max() > 1e-3  # the solve is not trivial


def test_blinks_are_added_to_the_eyelids(small_model, clip):
    on = small_model.animate(clip, blinks=BlinkParams(rate=60, min_interval=0.2, seed=3), geometry=True)
    off = small_model.animate(clip, blinks=False, geometry=True)
    expected = generate_blinks(len(on), 30, BlinkParams(rate=60, min_interval=0.2, seed=3))
    assert np.allclose(on.blink, expected) and expected.max() > 0.5
    assert np.allclose(off.blink, 0)
    # the eye-close delta moves the skin exactly where the blink curve is non-zero (before smoothing spreads it)
    moved = np.abs(on.skin_geometry - off.skin_geometry).max(axis=(1, 2))
    assert moved[expected > 0.5].min() > 0
    assert moved[: np.argmax(expected > 0)].max() == pytest.approx(0, abs=1e-6)


def test_face_param_override_and_validation(small_model, clip):
    base = small_model.animate(clip, blinks=False, geometry=True)
    flat = {"skinStrength": 0.0, "lipOpenOffset": 0.0, "eyelidOpenOffset": 0.0}
    still = small_model.animate(clip, blinks=False, geometry=True, face_params=flat)
    neutral = small_model.pack.model_data["shapes_mean_skin"]
    assert np.abs(still.skin_geometry - neutral).max() < 1e-5
    assert np.abs(base.skin_geometry - neutral).max() > 1e-3
    with pytest.raises(ValueError, match="skin_strength"):
        small_model.animate(clip, face_params={"skinStrength": 5})


def test_solve_options_apply_multipliers_and_clamp(small_model, clip):
    plain = small_model.animate(clip, blinks=False)
    options = SolveOptions({"jawOpen": 2.0}, {"mouthClose": 0.25}, clamp=False)
    scaled = small_model.animate(clip, blinks=False, blendshape_params=options)
    assert np.allclose(scaled.weights("jawOpen"), 2 * plain.weights("jawOpen"), atol=1e-6)
    assert np.allclose(scaled.weights("mouthClose"), plain.weights("mouthClose") + 0.25, atol=1e-6)
    clamped = small_model.animate(clip, blinks=False, blendshape_params=SolveOptions({}, {"cheekPuff": 5.0}, True))
    assert clamped.weights("cheekPuff").max() == pytest.approx(1.0)


def test_animation_stream_matches_offline(small_model, clip):
    offline = small_model.animate(clip, emotion=["anger=1@0.5"])
    stream = small_model.animation_stream(emotion=["anger=1@0.5"])
    rng = np.random.default_rng(4)
    parts, pos = [], 0
    while pos < len(clip):
        n = int(rng.integers(1, 3000))
        parts.append(stream.push(clip[pos : pos + n]))
        pos += n
    parts.append(stream.close())
    weights = np.concatenate([p.skin_weights for p in parts])
    blink = np.concatenate([p.blink for p in parts])
    assert weights.shape == offline.skin_weights.shape
    assert np.abs(weights - offline.skin_weights).max() < 1e-4
    assert np.allclose(blink, offline.blink)
    assert np.allclose(np.concatenate([p.emotion for p in parts]), offline.emotion)


def test_auto_emotion_uses_an_a2e_network(small_model, clip, tmp_path):
    torch = pytest.importorskip("torch")

    class Loudness(torch.nn.Module):
        def forward(self, input_values):
            level = input_values.abs().mean(dim=1, keepdim=True) * 50
            return torch.cat([level, -level, -level, 3 * level, torch.zeros_like(level), -level], dim=1)

    path = tmp_path / "a2e.onnx"
    torch.onnx.export(Loudness(), (torch.zeros(1, 60000),), str(path), input_names=["input_values"],
                      output_names=["output"], dynamic_axes={"input_values": {0: "b", 1: "t"}, "output": {0: "b"}},
                      dynamo=False)  # fmt: skip
    anim = small_model.animate(clip, auto_emotion=path)
    joy = anim.emotion[:, 6]
    assert joy.max() > 0.05  # "happy" dominates on loud audio
    assert np.allclose(anim.emotion[:, [0, 2, 5, 7, 8]], 0)  # never produced by A2E


def test_animate_file_blocks_equal_animate(small_model, clip, tmp_path):
    """A file animated block by block (bounded memory) gives the frames of animating it whole."""
    import soundfile as sf

    from facecast.animation import Animation

    path = tmp_path / "clip.wav"
    sf.write(path, clip, 16000, subtype="FLOAT")
    whole = small_model.animate(clip, blinks=False)
    blocks = list(small_model.animate_file_blocks(path, blinks=False, block_seconds=0.25))
    assert len(blocks) >= 5 and sum(len(b) for b in blocks) == len(whole)
    joined = Animation.concatenate(blocks)
    from_file = small_model.animate_file(path, blinks=False, block_seconds=0.25, keep_audio=True)
    for anim in (joined, from_file):
        assert np.allclose(anim.times, whole.times)
        assert np.abs(anim.skin_weights - whole.skin_weights).max() < 1e-5
        assert np.abs(anim.tongue_weights - whole.tongue_weights).max() < 1e-5
    assert np.array_equal(from_file.audio, clip)


def test_animation_options_are_the_keyword_options(small_model, clip):
    from facecast import AnimationOptions

    options = AnimationOptions(fps=25, emotion={"joy": 0.4}, face_params={"skinStrength": 1.2}, blinks=False,
                               blendshape_params=SolveOptions(clamp=True), geometry=True)  # fmt: skip
    given = small_model.animate(clip, options=options)
    keywords = small_model.animate(clip, fps=25, emotion={"joy": 0.4}, face_params={"skinStrength": 1.2},
                                   blinks=False, blendshape_params=SolveOptions(clamp=True), geometry=True)  # fmt: skip
    assert np.array_equal(given.skin_weights, keywords.skin_weights) and given.skin_geometry is not None
    assert np.array_equal(small_model.infer(clip, options=options).emotion, given.raw.emotion)
    stream = small_model.animation_stream(options=options)
    parts = [stream.push(clip[:9000]), stream.push(clip[9000:]), stream.close()]
    assert np.abs(np.concatenate([p.skin_weights for p in parts]) - given.skin_weights).max() < 1e-5
    # keywords left at their defaults go with options; a keyword that says otherwise is refused, not ignored
    assert np.array_equal(small_model.animate(clip, fps=30.0, options=options.replace(fps=30)).raw.result,
                          small_model.animate(clip, blinks=False, emotion={"joy": 0.4},
                                              face_params={"skinStrength": 1.2}).raw.result)  # fmt: skip
    with pytest.raises(TypeError, match="fps, geometry"):
        small_model.animate(clip, fps=24, geometry=True, options=options)


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"fps": 0}, ValueError, "fps"),
        ({"fps": float("nan")}, ValueError, "fps"),
        ({"frames_per_pass": 0}, ValueError, "frames_per_pass must be at least 1"),
        ({"frames_per_pass": 2.5}, ValueError, "frames_per_pass must be a whole number"),
        ({"context_frames": -1}, ValueError, "context_frames must be at least 0"),
        ({"emotion": {"nope": 1.0}}, ValueError, "unknown emotion"),
        ({"emotion": np.zeros(3)}, ValueError, r"shape \[10\]"),
        ({"blinks": "often"}, TypeError, "blinks"),
        ({"face_params": 2}, TypeError, "face_params"),
        ({"blendshape_params": {"clamp": True}}, TypeError, "blendshape_params"),
    ],
)
def test_animation_options_are_validated_when_made(changes, error, match):
    from facecast.model import AnimationOptions

    with pytest.raises(error, match=match):
        AnimationOptions(**changes)


def test_animation_options_normalise(small_model):
    from facecast.model import AnimationOptions

    options = AnimationOptions(emotion=["joy=1@0.5"], blinks=True, face_params={"skin_strength": 1.1})
    assert options.explicit.sample([0.5])[0, 6] == 1.0 and options.blink_params == BlinkParams()
    assert options.replace(blinks=False).blink_params is None and options.replace(blinks=None).blink_params is None
    assert small_model.face_params(options).skin_strength == pytest.approx(1.1)
    # the model's frames per pass is checked against its network when an engine is made
    with pytest.raises(ValueError, match="no chunk network"):
        small_model.engine_for(AnimationOptions(frames_per_pass=2))
