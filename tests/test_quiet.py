"""The quiet hold: levels, quiet frames, the held pose, and offline = stream = server with it on."""

from __future__ import annotations

import numpy as np
import pytest

from facecast.audio import frame_levels, level_span
from facecast.face.quiet import (
    EYE_COLUMNS,
    FLOOR_MARGIN_DB,
    NEAR_REST,
    PEAK_MARGIN_DB,
    RELAX_S,
    RELAX_SPEED,
    QuietHoldState,
    hold_quiet,
    quiet_frames,
)

SR = 16000
FPS = 30.0


def _speech_and_pauses(seed: int = 3) -> np.ndarray:
    """Loud noise bursts (speech stand-ins) around a 1 s pause with a faint noise floor."""
    rng = np.random.default_rng(seed)
    parts = [
        rng.standard_normal(int(0.5 * SR)) * 0.2,
        rng.standard_normal(SR) * 2e-4,
        rng.standard_normal(int(0.5 * SR)) * 0.2,
        rng.standard_normal(int(0.3 * SR)) * 2e-4,
    ]
    return np.concatenate(parts).astype(np.float32)


def _pause_motion(anim) -> float:
    """The largest frame-to-frame weight change inside the pause of :func:`_speech_and_pauses`."""
    pause = (anim.times > 0.8) & (anim.times < 1.4)
    return float(np.abs(np.diff(anim.skin_weights[pause], axis=0)).max())


def _targets(n: int) -> np.ndarray:
    return np.floor(np.arange(n) * SR / FPS).astype(np.int64)


def test_level_of_a_sine_is_its_rms_in_db():
    t = np.arange(SR) / SR
    audio = (0.5 * np.sin(2 * np.pi * 250.0 * t)).astype(np.float32)  # 250 Hz: whole periods in 90 ms
    levels = frame_levels(audio, np.array([8000, 4000]), 0, (480, 960))
    assert levels == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=1e-3)  # -9.03 dB
    # samples outside the audio are left out, not counted as zeros; the origin shifts sample numbers
    edge = np.zeros(SR, np.float32)
    edge[:100] = 0.1
    assert frame_levels(edge, np.array([0]), 0, (480, 60))[0] == pytest.approx(10 * np.log10(0.01 * 60 / 60), abs=1e-4)
    assert frame_levels(edge[50:], np.array([50]), 50, (480, 60))[0] == pytest.approx(
        10 * np.log10(0.01 * 50 / 60), abs=1e-4
    )
    assert frame_levels(np.zeros(0, np.float32), np.array([10]), 0)[0] == -200.0
    assert level_span(1120) == (480, 960) and level_span(400) == (480, 400)  # never past the look-ahead


def test_quiet_frames_are_the_pause():
    audio = _speech_and_pauses()
    n = int(len(audio) / SR * FPS)
    quiet = quiet_frames(frame_levels(audio, _targets(n), 0, level_span(1120)), QuietHoldState(), FPS)
    t = np.arange(n) / FPS
    assert not quiet[t < 0.45].any()  # nothing is quiet before speech has been heard ...
    assert quiet[(t > 0.55) & (t < 1.42)].all()  # ... the pause is, within the level window's reach
    assert not quiet[(t > 1.56) & (t < 1.94)].any()  # speech is not
    assert quiet[t > 2.05].all()
    # digital silence is quiet from the first frame
    zeros = quiet_frames(np.full(5, -200.0), QuietHoldState(), FPS)
    assert zeros.all()


def test_room_noise_before_speech_and_noisy_pauses_are_quiet():
    rng = np.random.default_rng(5)

    def noise(seconds: float, dbfs: float) -> np.ndarray:
        return rng.standard_normal(int(seconds * SR)) * 10 ** (dbfs / 20)

    def quiet_of(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = int(len(audio) / SR * FPS)
        levels = frame_levels(audio.astype(np.float32), _targets(n), 0, level_span(1120))
        return quiet_frames(levels, QuietHoldState(), FPS), np.arange(n) / FPS

    # room noise at -50 dBFS before any speech: quiet from the first frame (below QUIET_DBFS, near the floor)
    quiet, t = quiet_of(np.concatenate([noise(0.6, -50.0), noise(0.5, -12.0)]))
    assert quiet[t < 0.5].all() and not quiet[(t > 0.6) & (t < 1.0)].any()
    # a louder lead-in (-30 dBFS) could be speech: not quiet until speech has set the references
    quiet, t = quiet_of(np.concatenate([noise(0.6, -30.0), noise(0.5, -12.0)]))
    assert not quiet[t < 0.5].any()
    # a pause with breath noise 15 dB above the quietest moment but far below the speech is quiet
    audio = np.concatenate([noise(0.3, -70.0), noise(0.5, -12.0), noise(0.6, -55.0), noise(0.5, -12.0)])
    quiet, t = quiet_of(audio)
    assert -55.0 > -70.0 + FLOOR_MARGIN_DB and -55.0 < -12.0 - PEAK_MARGIN_DB  # below the speech, not the floor
    assert quiet[(t > 0.85) & (t < 1.32)].all() and not quiet[(t > 1.45) & (t < 1.85)].any()
    # one shout does not silence the speech after it: the peak falls back (1 dB/s)
    quiet, t = quiet_of(np.concatenate([noise(0.3, -2.0), noise(6.0, -24.0)]))
    assert quiet[(t > 0.5) & (t < 1.5)].all() and not quiet[t > 3.0].any()
    # exact zeros, then room noise at -70 dBFS before any speech: the zeros do not set the floor, the room does
    quiet, t = quiet_of(np.concatenate([np.zeros(int(0.5 * SR)), noise(0.6, -70.0), noise(0.5, -12.0)]))
    assert quiet[t < 1.0].all() and not quiet[(t > 1.1) & (t < 1.5)].any()


def test_a_quietly_recorded_voice_is_judged_against_its_own_levels():
    """Speech peaking near -45 dBFS over a -95 dBFS room: its weak sounds (-63 dBFS) are speech, not silence."""
    rng = np.random.default_rng(8)

    def noise(seconds: float, dbfs: float) -> np.ndarray:
        return rng.standard_normal(int(seconds * SR)) * 10 ** (dbfs / 20)

    audio = np.concatenate(
        [noise(0.3, -95.0), noise(0.5, -45.0), noise(0.4, -63.0), noise(0.5, -45.0), noise(0.7, -95.0)]
    )
    n = int(len(audio) / SR * FPS)
    quiet = quiet_frames(
        frame_levels(audio.astype(np.float32), _targets(n), 0, level_span(1120)), QuietHoldState(), FPS
    )
    t = np.arange(n) / FPS
    assert -63.0 > -45.0 - PEAK_MARGIN_DB and -63.0 > -95.0 + FLOOR_MARGIN_DB  # above both references
    assert not quiet[(t > 0.3) & (t < 1.65)].any()  # the loud and the weak speech
    assert quiet[t > 1.8].all()  # the pause after it
    for gain_db in (-10.0, 10.0):  # the same recording louder or softer: the same frames are quiet
        scaled = (audio * 10 ** (gain_db / 20)).astype(np.float32)
        again = quiet_frames(frame_levels(scaled, _targets(n), 0, level_span(1120)), QuietHoldState(), FPS)
        assert np.array_equal(again, quiet)


def test_hold_relaxes_to_rest_in_a_pause_and_lets_go_after():
    rng = np.random.default_rng(0)
    n, d = 90, 12
    live = rng.standard_normal((n, d)).astype(np.float32)
    levels = np.full(n, -20.0)
    levels[30:60] = -70.0  # a 1 s pause
    rest_pose = rng.standard_normal(d).astype(np.float32)
    asked = []

    def rest(i: int) -> np.ndarray:
        asked.append(i)
        return rest_pose

    out = hold_quiet(live, levels, QuietHoldState(), FPS, rest=rest)
    assert asked == [31]  # once per hold, at its start
    assert np.array_equal(out[:31], live[:31])  # one quiet frame (a stop closure) is followed live
    assert np.array_equal(out[:, -EYE_COLUMNS:], live[:, -EYE_COLUMNS:])  # the eyes are never held
    body = out[:, :-EYE_COLUMNS]
    # a raised-cosine ease over 0.1 s (3 frames) from the pose at the hold's start to the rest pose
    ease = 0.5 - 0.5 * np.cos(np.pi * np.array([1, 2, 3]) / 3)
    start, target = live[31, :-EYE_COLUMNS].astype(np.float64), rest_pose[:-EYE_COLUMNS].astype(np.float64)
    assert np.allclose(body[31:34], start + ease[:, None] * (target - start), atol=1e-6)
    assert np.allclose(body[33:60], target, atol=1e-6)  # then still, at rest, for the rest of the pause
    assert np.array_equal(out[63:], live[63:])  # a 67 ms crossfade back, then the network's own pose
    assert not np.allclose(out[60:62], live[60:62])
    half = hold_quiet(live, levels, QuietHoldState(), FPS, strength=0.5, rest=rest)
    assert np.allclose(half, 0.5 * (live + out), atol=1e-6)
    # without a rest pose the face stops where it is
    still = hold_quiet(live, levels, QuietHoldState(), FPS)
    assert np.allclose(still[31:60, :-EYE_COLUMNS], live[31, :-EYE_COLUMNS], atol=1e-6)
    # the hold continues across calls: split anywhere, same frames
    state = QuietHoldState()
    cuts = ((0, 31), (31, 45), (45, 61), (61, n))
    parts = [hold_quiet(live[a:b], levels[a:b], state, FPS, rest=lambda i, a=a: rest(a + i)) for a, b in cuts]
    assert np.array_equal(np.concatenate(parts), out)


def test_a_pose_already_at_rest_is_held_from_the_first_quiet_frame():
    rng = np.random.default_rng(1)
    n, d = 60, 10
    rest_pose = rng.standard_normal(d).astype(np.float32)
    live = np.repeat(rest_pose[None], n, axis=0) + 0.001 * rng.standard_normal((n, d)).astype(np.float32)
    live[10:20] += 2.0  # speech far from rest
    levels = np.full(n, -20.0)
    levels[20:40] = -70.0
    levels[50] = -70.0  # a lone quiet frame: a stop closure
    live[50] += 2.0  # ... with the lips far from rest

    def move(delta: np.ndarray) -> float:
        return float(np.abs(delta).max())

    out = hold_quiet(live, levels, QuietHoldState(), FPS, rest=lambda i: rest_pose, distance=move)
    body, target = out[:, :-EYE_COLUMNS], rest_pose[:-EYE_COLUMNS]
    assert move(live[20] - rest_pose) <= NEAR_REST
    assert np.allclose(body[20:40], target, atol=1e-6)  # at rest and still from the first quiet frame
    assert np.array_equal(out[50], live[50])  # a quiet frame far from rest is still followed live
    plain = hold_quiet(live, levels, QuietHoldState(), FPS, rest=lambda i: rest_pose)
    assert np.array_equal(plain[20], live[20])  # without a distance the first quiet frame is live
    far = hold_quiet(live, levels, QuietHoldState(), FPS, rest=lambda i: rest_pose, distance=lambda x: 1e9)
    assert np.array_equal(far, plain)  # never near rest, and far away: the old 0.1 s ease


@pytest.mark.parametrize(("gap", "frames"), [(0.2, 1), (0.5, 2), (0.9, 3)])
def test_the_ease_moves_at_the_relax_speed_for_at_most_a_tenth_of_a_second(gap, frames):
    n, d = 40, 8
    rest_pose = np.zeros(d, np.float32)
    live = np.full((n, d), gap, np.float32)  # the pose stays `gap` from rest: the ease alone moves it
    levels = np.full(n, -20.0)
    levels[10:] = -70.0
    out = hold_quiet(live, levels, QuietHoldState(), FPS, rest=lambda i: rest_pose, distance=lambda x: gap)
    body = out[:, :-EYE_COLUMNS]
    relax = min(max(gap * FPS / RELAX_SPEED, 1.0), RELAX_S * FPS)
    assert int(np.ceil(relax - 1e-9)) == frames
    ease = 0.5 - 0.5 * np.cos(np.pi * np.minimum(1.0, np.arange(1, 5) / relax))
    assert np.allclose(body[11:15], gap * (1 - ease)[:, None], atol=1e-6)  # the hold starts on the 2nd quiet frame
    assert np.allclose(body[10 + frames :], 0.0, atol=1e-6) and not np.allclose(body[9 + frames], 0.0)


def test_skin_move_is_the_largest_skin_vertex_move(small_model):
    pipeline = small_model.pipeline
    shapes = np.asarray(pipeline.model_data.shapes_matrix_skin, np.float64)  # [K, V, 3]
    delta = np.zeros(len(shapes) + 20)  # skin coefficients first; the rest (tongue, jaw) does not count
    delta[:2] = (0.3, -0.2)
    delta[len(shapes) :] = 5.0
    moved = np.linalg.norm(0.3 * shapes[0] - 0.2 * shapes[1], axis=1).max()  # numpy, vertex by vertex
    assert pipeline.skin_move(delta) == pytest.approx(moved, rel=1e-5)  # float32 sums


def test_rest_pose_is_the_network_on_silence_with_the_frame_emotion(small_model):
    engine = small_model.engine
    emotion = engine.emotion_rows(np.array([0]), None)[0]
    silence = np.zeros((1, engine.info.buffer_len), np.float32)
    expected = engine.backend.run(silence, emotion[None])[0]
    assert np.allclose(engine.rest_result(emotion), expected, atol=1e-6)
    other = emotion.copy()
    other[-3] = 1.0  # an explicit emotion changes the rest pose
    assert not np.allclose(engine.rest_result(other), expected, atol=1e-4)
    assert small_model.pipeline.rest_result == engine.rest_result


def test_quiet_hold_is_off_by_default_and_holds_when_asked(small_model):
    audio = _speech_and_pauses()
    plain = small_model.animate(audio, blinks=False)
    held = small_model.animate(audio, blinks=False, face_params={"quiet_hold": 1.0})
    assert plain.raw.levels is not None and len(plain.raw.levels) == len(plain)
    assert _pause_motion(held) < 1e-9 < _pause_motion(plain)
    speech = plain.times < 0.45
    assert np.array_equal(held.skin_weights[speech], plain.skin_weights[speech])
    assert np.array_equal(held.raw.result, plain.raw.result)  # Animation.raw keeps the network's own output


def test_the_held_pause_keeps_the_emotion(small_model, monkeypatch):
    audio = _speech_and_pauses()
    face = {"quiet_hold": 1.0}

    def late_pause_gap() -> float:
        """Largest weight difference between joy and neutral late in the pause, when both rest."""
        neutral = small_model.animate(audio, blinks=False, face_params=face)
        joy = small_model.animate(audio, blinks=False, face_params=face, emotion={"joy": 1.0})
        assert _pause_motion(joy) < 1e-9 and _pause_motion(neutral) < 1e-9
        late = (joy.times > 1.2) & (joy.times < 1.4)
        return float(np.abs(joy.skin_weights[late] - neutral.skin_weights[late]).max())

    with_emotion = late_pause_gap()
    engine = small_model.engine
    neutral_row = engine.emotion_rows(np.array([0]), None)[0]
    monkeypatch.setattr(small_model.pipeline, "rest_result", lambda emotion: engine.rest_result(neutral_row))
    blind = late_pause_gap()
    assert with_emotion > 1e-5 and blind < 1e-7  # each emotion rests in its own pose


@pytest.mark.parametrize("seed", [0, 1])
def test_stream_with_quiet_hold_matches_offline(small_model, seed):
    audio = _speech_and_pauses()
    face = {"quiet_hold": 1.0}
    offline = small_model.animate(audio, blinks=False, face_params=face)
    stream = small_model.animation_stream(blinks=False, face_params=face)
    rng = np.random.default_rng(seed)
    parts, pos = [], 0
    while pos < len(audio):
        size = int(rng.choice([160, 533, 1600, 4000]))
        parts.append(stream.push(audio[pos : pos + size]))
        pos += size
    parts.append(stream.close())
    weights = np.concatenate([p.skin_weights for p in parts])
    assert np.abs(weights - offline.skin_weights).max() < 1e-5


def test_server_with_quiet_hold_matches_offline(chunk_pack):
    pytest.importorskip("grpc")
    pytest.importorskip("nvidia_audio2face_3d")
    from test_server import _assert_success, _header, _messages, _run, _weights

    from facecast import load_model
    from facecast.audio import float_to_pcm16_bytes, pcm16_to_float
    from facecast.server import ServerConfig, serve

    pcm = float_to_pcm16_bytes(_speech_and_pauses())
    for per_pass in (4, 1):
        model = load_model(chunk_pack, device="cpu", frames_per_pass=per_pass)
        offline = model.animate(pcm16_to_float(pcm), blinks=False, face_params={"quiet_hold": 1.0})
        plain = model.animate(pcm16_to_float(pcm), blinks=False)
        expected = np.concatenate([offline.skin_weights, offline.tongue_weights], axis=1)
        srv = serve(ServerConfig(port=0, model=str(chunk_pack), device="cpu", frames_per_pass=per_pass))
        try:
            answers = _run(srv.address, _messages(pcm, header=_header(face={"quietHold": 1.0})))
        finally:
            srv.stop()
        _assert_success(answers, len(expected))
        assert np.abs(_weights(answers) - expected).max() < 1e-5
        assert _pause_motion(offline) < 1e-9 < _pause_motion(plain)  # the hold did something


@pytest.fixture(scope="module")
def held_pack(chunk_pack, tmp_path_factory):
    """The chunk pack with ``quiet_hold`` = 1 in its model_config.json (as facecast's default model has)."""
    import json
    import shutil

    root = tmp_path_factory.mktemp("held") / "pack"
    shutil.copytree(chunk_pack, root)
    config = json.loads((root / "model_config.json").read_text())
    config["config"]["quiet_hold"] = 1.0
    (root / "model_config.json").write_text(json.dumps(config))
    return root


@pytest.mark.parametrize("per_pass", [4, 1])
def test_batch_with_a_holding_model_matches_animate(held_pack, tmp_path, per_pass):
    import soundfile as sf

    from facecast import load_model
    from facecast.batch.local import find_jobs, run_batch

    model = load_model(held_pack, device="cpu", frames_per_pass=per_pass)
    assert model.pipeline.default_params.quiet_hold == 1.0
    (tmp_path / "in").mkdir()
    for i in range(3):
        sf.write(tmp_path / "in" / f"clip{i}.wav", _speech_and_pauses(seed=i), SR, subtype="FLOAT")
    report = run_batch(model, find_jobs(tmp_path / "in", tmp_path / "out"), ["npz"], group_clips=3, progress=False)
    assert report.done == 3 and not report.failed
    for i in range(3):
        expected = model.animate(_speech_and_pauses(seed=i))
        plain = model.animate(_speech_and_pauses(seed=i), face_params={"quiet_hold": 0.0})
        with np.load(tmp_path / "out" / f"clip{i}.npz") as data:
            assert np.abs(data["skin_weights"] - expected.skin_weights).max() < 1e-5
        assert _pause_motion(expected) < 1e-9 < _pause_motion(plain)
