"""Blink generator: rate, shape, determinism, switches; the facecap.glb measurement behind the defaults."""

from __future__ import annotations

import dataclasses
import importlib.resources

import numpy as np
import pytest

from facecast.face.blinks import BlinkParams, generate_blinks, measure_blinks

RAMP = 0.5903  # 10 -> 90 % time of a raised-cosine ramp, as a fraction of its length
HOUR = 3600


def blink_peaks(params: BlinkParams, seconds: float, fps: float = 30.0):
    curve = generate_blinks(int(seconds * fps), fps, params)
    return curve, measure_blinks(curve, fps, threshold=0.5 * params.strength)


@pytest.mark.parametrize(("rate", "seed"), [(17.0, 0), (17.0, 1), (8.0, 2), (30.0, 3)])
def test_rate_over_a_long_run(rate, seed):
    params = BlinkParams(rate=rate, seed=seed)
    _, found = blink_peaks(params, HOUR)
    per_minute = len(found) / 60.0
    assert 0.92 * rate < per_minute < 1.08 * rate


def test_durations_and_asymmetry():
    params = BlinkParams(double_blink_prob=0.0)
    _, found = blink_peaks(params, 1200, fps=240.0)
    close = np.median([b.close for b in found])
    opening = np.median([b.open for b in found])
    assert close == pytest.approx(RAMP * params.close_duration, rel=0.05)  # 50 ms, as measured in facecap.glb
    assert opening == pytest.approx(RAMP * params.open_duration, rel=0.05)  # 139 ms
    assert opening > 2.2 * close
    assert 0.07 < params.close_duration < 0.1 and 0.15 < params.open_duration < 0.25
    assert np.std([b.close for b in found]) > 0.003  # durations are jittered per blink
    peaks = np.array([b.peak for b in found])
    assert peaks.max() <= 1.0 and peaks.min() >= 1.0 - params.amplitude_jitter - 1e-6


def test_min_interval_and_double_blinks():
    fps = 100.0
    single = BlinkParams(double_blink_prob=0.0, min_interval=1.0, seed=4)
    curve, _ = blink_peaks(single, 1800, fps)
    closed = np.flatnonzero(curve > 0)
    pauses = np.diff(closed)[np.diff(closed) > 1] / fps  # open stretches between blinks
    assert pauses.min() >= 1.0 - 1.5 / fps
    doubles = dataclasses.replace(single, double_blink_prob=1.0)
    _, found = blink_peaks(doubles, 1800, fps)
    gaps = np.diff([b.time for b in found])
    short = gaps < 0.6  # second blink of a pair: one blink length plus a 30-120 ms gap
    assert 0.45 < short.mean() < 0.55
    assert np.all(gaps[short] > 0.25)
    some = dataclasses.replace(single, double_blink_prob=0.1, min_interval=0.6)
    _, found = blink_peaks(some, HOUR)
    share = np.mean(np.diff([b.time for b in found]) < 0.6)
    assert 0.05 < share < 0.15


def test_interval_shape_controls_regularity():
    def cv(shape: float) -> float:
        _, found = blink_peaks(BlinkParams(interval_shape=shape, double_blink_prob=0.0, seed=5), HOUR)
        gaps = np.diff([b.time for b in found])
        return float(np.std(gaps) / np.mean(gaps))

    assert cv(1.0) > 1.3 * cv(2.0) > 1.3 * 1.3 * cv(8.0)


def test_deterministic_from_seed_and_windows_match_the_whole():
    params = BlinkParams(seed=42)
    whole = generate_blinks(3000, 30.0, params)
    assert np.array_equal(whole, generate_blinks(3000, 30.0, BlinkParams(seed=42)))
    assert not np.array_equal(whole, generate_blinks(3000, 30.0, BlinkParams(seed=43)))
    assert np.array_equal(generate_blinks(700, 30.0, params, start_frame=1234), whole[1234:1934])
    assert np.array_equal(generate_blinks(100, 30.0, params), whole[:100])
    assert whole.dtype == np.float32 and whole.shape == (3000,)
    assert whole.min() == 0.0 and whole.max() <= 1.0 and whole[0] == 0.0


def test_off_switch_and_strength_scale():
    params = BlinkParams(seed=7)
    full = generate_blinks(5000, 30.0, params)
    assert full.max() > 0.8
    assert not generate_blinks(5000, 30.0, dataclasses.replace(params, enabled=False)).any()
    assert not generate_blinks(5000, 30.0, dataclasses.replace(params, strength=0.0)).any()
    half = generate_blinks(5000, 30.0, dataclasses.replace(params, strength=0.5))
    np.testing.assert_allclose(half, 0.5 * full, atol=1e-6)
    assert generate_blinks(0, 30.0, params).shape == (0,)


def test_same_blinks_at_any_frame_rate():
    params = BlinkParams(seed=3)
    at30 = measure_blinks(generate_blinks(30 * 120, 30.0, params), 30.0)
    at120 = measure_blinks(generate_blinks(120 * 120, 120.0, params), 120.0)
    assert len(at30) == len(at120) > 10
    assert np.abs(np.array([b.time for b in at30]) - [b.time for b in at120]).max() <= 1 / 30


def test_invalid_settings():
    for bad in ({"rate": 0.0}, {"strength": 1.5}, {"close_duration": 0.0}, {"double_blink_prob": 2.0}):
        name = next(iter(bad))
        with pytest.raises(ValueError, match=name):
            generate_blinks(10, 30.0, BlinkParams(**bad))
    with pytest.raises(ValueError, match="too high"):
        generate_blinks(10, 30.0, BlinkParams(rate=200.0))
    with pytest.raises(ValueError, match="fps"):
        generate_blinks(10, 0.0)


def test_measure_blinks_by_hand():
    # 10 fps. Rise 0 -> .5 -> 1: 10 % at frame 1.2, 90 % at 2.8; fall 1 -> .5 -> 0: 90 % at 4.2, 10 % at 5.8.
    curve = [0.0, 0.0, 0.5, 1.0, 1.0, 0.5, 0.0, 0.0]
    (b,) = measure_blinks(curve, 10.0)
    assert (b.time, b.peak) == (0.3, 1.0)
    assert (b.close, b.hold, b.open, b.duration) == pytest.approx((0.16, 0.14, 0.16, 0.46))
    # A blink that ends in a squint is timed down to the floor after it (0.2 here): the fall's 90 % level 0.92
    # is crossed at frame 2 + 0.08/0.4 = 2.2, its 10 % level 0.28 at 3 + 0.32/0.4 = 3.8 -> 0.16 s.
    (s,) = measure_blinks([0.0, 0.0, 1.0, 0.6, 0.2, 0.2, 0.2], 10.0)
    assert s.open == pytest.approx(0.16)
    assert measure_blinks(np.zeros(20), 10.0) == []


def _facecap_blinks() -> tuple[np.ndarray, np.ndarray]:
    """eyeBlink_L/R of openfacefx's facecap.glb, one value per 30 fps key (as in the blinks docstring)."""
    pytest.importorskip("openfacefx")
    pygltflib = pytest.importorskip("pygltflib")
    meshopt = pytest.importorskip("meshopt")
    path = importlib.resources.files("openfacefx") / "studio_web/assets/facecap.glb"
    if not path.is_file():
        pytest.skip("facecap.glb is not in this openfacefx")
    gltf = pygltflib.GLTF2().load(str(path))
    blob = gltf.binary_blob()

    def accessor(index: int) -> np.ndarray:
        acc = gltf.accessors[index]
        view = gltf.bufferViews[acc.bufferView]
        ext = (view.extensions or {}).get("EXT_meshopt_compression")
        if ext is None:
            data = blob[view.byteOffset or 0 : (view.byteOffset or 0) + view.byteLength]
        else:
            raw = blob[ext["byteOffset"] : ext["byteOffset"] + ext["byteLength"]]
            filt = ext.get("filter", "NONE")
            data = meshopt.decode_gltf_buffer(raw, ext["count"], ext["byteStride"], ext["mode"], filt)
        dtype = {5121: np.uint8, 5123: np.uint16, 5126: np.float32}[acc.componentType]
        values = np.frombuffer(bytes(data), dtype, offset=acc.byteOffset or 0, count=acc.count)
        out = values.astype(np.float64)
        return out / np.iinfo(dtype).max if acc.normalized else out

    names = next(m.extras["targetNames"] for m in gltf.meshes if m.extras and m.extras.get("targetNames"))
    sampler = next(
        an.samplers[ch.sampler] for an in gltf.animations for ch in an.channels if ch.target.path == "weights"
    )
    times = accessor(sampler.input)
    weights = accessor(sampler.output).reshape(len(times), len(names))
    assert np.diff(times) == pytest.approx(1 / 30, abs=1e-5)
    return weights[:, names.index("eyeBlink_L")], weights[:, names.index("eyeBlink_R")]


def test_facecap_measurement_behind_the_defaults():
    left, right = _facecap_blinks()
    assert len(left) == 335 and right.max() < 0.2
    (b,) = measure_blinks(left, 30.0)
    assert b.peak == pytest.approx(0.863, abs=1e-3)
    assert b.close == pytest.approx(0.050, abs=2e-3)
    assert b.hold == pytest.approx(0.055, abs=2e-3)
    assert b.open == pytest.approx(0.138, abs=2e-3)
    assert b.duration == pytest.approx(0.244, abs=2e-3)
    params = BlinkParams()
    assert RAMP * params.close_duration == pytest.approx(b.close, rel=0.01)
    assert RAMP * params.open_duration == pytest.approx(b.open, rel=0.01)
