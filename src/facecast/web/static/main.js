// facecast viewer: wires the page together. The WebAudio clock drives which frame is drawn: a clip's audio
// starts at ``startAt`` and the pose shown is the timeline's pose at ``ctx.currentTime - startAt``; a live
// stream is shown ``delay`` (the model's look-ahead plus a margin) behind the audio sent, and file audio of
// a live stream is played with the same delay, so lips and sound stay together.

import { loadHead } from "./renderer.js";
import { Timeline } from "./timeline.js";
import { LiveClient } from "./live.js";

const LIVE_MARGIN = 0.15;
const $ = (id) => document.getElementById(id);

const state = { mode: "idle", timeline: null, startAt: 0, end: 0, delay: 0, source: null, clock: null, frame: -1,
  time: 0, ended: false, pending: null, error: null, info: null };
let renderer = null;
let ctx = null;
let dirty = true;

function setStatus(text, isError = false) {
  $("status").textContent = text;
  if (isError) state.error = text;
}

function audioContext() {
  if (!ctx) ctx = new AudioContext();
  if (ctx.state === "suspended") ctx.resume();
  return ctx;
}

/** The audio context, running if the browser lets it start within half a second. */
async function ensureAudio() {
  const c = audioContext();
  if (c.state !== "running") {
    await Promise.race([c.resume().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 500))]);
  }
  return c;
}

/** The clock for a new playback: the audio clock when WebAudio runs, else the page clock (no sound). */
function pickClock() {
  const c = audioContext();
  if (c.state === "running") return () => c.currentTime;
  return () => performance.now() / 1000;
}

// ---- emotion sliders ---------------------------------------------------------------------------------

function emotion() {
  const out = {};
  for (const input of document.querySelectorAll("#emotions input")) out[input.name] = Number(input.value);
  return out;
}

let emotionTimer = null;
function emotionChanged() {
  if (emotionTimer) return;
  emotionTimer = setTimeout(() => {
    emotionTimer = null;
    if (state.mode === "live") client.setEmotion(emotion());
  }, 80);
}

function buildSliders(names) {
  const box = $("emotions");
  box.textContent = "";
  for (const name of names) {
    const label = document.createElement("label");
    const input = Object.assign(document.createElement("input"), { type: "range", min: 0, max: 1, step: 0.01, value: 0, name });
    const output = document.createElement("output");
    output.textContent = "0.00";
    input.addEventListener("input", () => {
      output.textContent = Number(input.value).toFixed(2);
      emotionChanged();
    });
    label.append(name, input, output);
    box.append(label);
  }
}

function setEmotion(values) {
  for (const input of document.querySelectorAll("#emotions input")) {
    input.value = values[input.name] || 0;
    input.nextElementSibling.textContent = Number(input.value).toFixed(2);
  }
  emotionChanged();
}

// ---- playback ----------------------------------------------------------------------------------------

function stopAll() {
  if (state.source) {
    try { state.source.stop(); } catch (e) { /* not started */ }
  }
  state.source = null;
  if (state.mode === "live") client.stop();
  state.mode = "idle";
  state.pending = null;
}

function playBuffer(buffer, when) {
  if (!buffer || !ctx || ctx.state !== "running") return null;
  const source = ctx.createBufferSource();
  source.buffer = buffer;
  source.connect(ctx.destination);
  source.start(when);
  return source;
}

async function decode(bytes) {
  try {
    return await audioContext().decodeAudioData(bytes.slice(0));
  } catch (e) {
    return null; // the browser cannot decode it: play silently
  }
}

/** Play an animation document with its audio (an AudioBuffer or null). */
async function playClip(doc, buffer) {
  stopAll();
  await ensureAudio();
  const timeline = Timeline.fromAnimation(doc, renderer.meta.shape_names);
  state.clock = pickClock();
  state.startAt = state.clock() + 0.1;
  state.source = playBuffer(buffer, state.startAt);
  state.end = Math.max(timeline.end + 1 / doc.fps, buffer ? buffer.duration : 0);
  Object.assign(state, { mode: "clip", timeline, ended: false });
  setStatus(`playing ${timeline.length} frames at ${doc.fps} fps${state.source ? " with audio" : ""}`);
}

async function fetchJson(url) {
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

async function fetchAudio(name) {
  if (!name) return null;
  const response = await fetch(`/audio?file=${encodeURIComponent(name)}`);
  return response.ok ? decode(await response.arrayBuffer()) : null;
}

function emotionQuery() {
  return Object.entries(emotion()).filter(([, v]) => v > 0).map(([k, v]) => `${k}:${v}`).join(",");
}

async function playFile(name) {
  setStatus(`loading ${name}...`);
  const doc = await fetchJson(`/animation?file=${encodeURIComponent(name)}&emotion=${encodeURIComponent(emotionQuery())}`);
  await playClip(doc, await fetchAudio(doc.audio));
}

// ---- live streams ------------------------------------------------------------------------------------

const client = new LiveClient({
  onReady(msg) {
    const pending = state.pending || { kind: "mic" };
    state.pending = null;
    const timeline = new Timeline(renderer.meta.shape_names);
    timeline.setNames(msg.skin_names, msg.tongue_names);
    state.clock = () => ctx.currentTime;
    state.startAt = pending.t0 !== undefined ? pending.t0 : ctx.currentTime;
    state.delay = msg.lookahead + LIVE_MARGIN;
    state.source = playBuffer(pending.buffer, state.startAt + state.delay);
    Object.assign(state, { mode: "live", timeline, ended: false, end: Infinity });
    setStatus(`live (${pending.kind}): look-ahead ${(msg.lookahead * 1000).toFixed(0)} ms`);
  },
  onFrames(msg) {
    if (state.mode === "live") state.timeline.append(msg.time, msg.skin, msg.tongue, msg.eyes, msg.emotion);
  },
  onEnd(msg) {
    if (state.mode !== "live") return;
    state.ended = true;
    state.end = state.timeline.end + 0.05;
    setStatus(`stream ended: ${msg.frames} frames`);
  },
  onAnimation(msg) {
    const pending = state.pending;
    state.pending = null;
    playClip(msg.animation, pending ? pending.buffer : null).catch((e) => setStatus(`error: ${e.message}`, true));
  },
  onError(message) {
    setStatus(`error: ${message}`, true);
  },
});

async function startLive(kind, name) {
  stopAll();
  const c = await ensureAudio();
  if (kind === "mic") {
    state.pending = { kind };
    await client.startMicrophone(c, emotion());
  } else if (kind === "server") {
    state.pending = { kind, buffer: await fetchAudio(name) };
    await client.playServerFile(name, emotion());
  } else {
    const buffer = await decode(await selectedUpload().arrayBuffer());
    if (!buffer) throw new Error("this browser cannot decode that file");
    const t0 = c.currentTime;
    state.pending = { kind, buffer, t0 };
    await client.startBuffer(c, buffer, emotion(), t0);
  }
}

function selectedUpload() {
  const file = $("upload").files[0];
  if (!file) throw new Error("choose an audio file first");
  return file;
}

async function animateUpload() {
  const file = selectedUpload();
  const bytes = await file.arrayBuffer();
  stopAll();
  state.pending = { kind: "upload", buffer: await decode(bytes) };
  setStatus(`animating ${file.name}...`);
  await client.animateUpload(file.name, bytes, emotion());
}

// ---- drawing -----------------------------------------------------------------------------------------

function showPose(pose) {
  if (!pose) return;
  renderer.setPose(pose.weights, pose.eyes);
  state.frame = pose.frame;
  dirty = true;
}

function tick() {
  if (state.mode === "clip" || state.mode === "live") {
    const t = state.clock() - state.startAt - (state.mode === "live" ? state.delay : 0);
    state.time = t;
    if (state.mode === "live") state.timeline.dropBefore(t);
    if (t >= 0) showPose(state.timeline.poseAt(t));
    if (t >= state.end) {
      state.mode = "idle";
      setStatus("finished");
    }
    $("clock").textContent = `${Math.max(0, t).toFixed(2)} s  frame ${state.frame}`;
  }
  if (dirty) {
    renderer.draw();
    dirty = false;
  }
  requestAnimationFrame(tick);
}

function enableOrbit(canvas) {
  let last = null;
  canvas.addEventListener("pointerdown", (e) => { last = [e.clientX, e.clientY]; canvas.setPointerCapture(e.pointerId); });
  canvas.addEventListener("pointerup", () => { last = null; });
  canvas.addEventListener("pointermove", (e) => {
    if (!last) return;
    renderer.orbit((e.clientX - last[0]) * 0.4, (e.clientY - last[1]) * 0.4);
    last = [e.clientX, e.clientY];
    dirty = true;
  });
}

// ---- start -------------------------------------------------------------------------------------------

function guard(fn) {
  return async () => {
    audioContext(); // inside the click: browsers let audio start on a user gesture
    try {
      await fn();
    } catch (e) {
      setStatus(`error: ${e.message}`, true);
    }
  };
}

async function listFiles() {
  const listing = await fetchJson("/files");
  const select = $("files");
  for (const file of listing.files) {
    select.append(new Option(`${file.name}${file.kind === "audio" ? "  (audio)" : ""}`, file.name));
  }
}

async function main() {
  const info = await fetchJson("/info");
  state.info = info;
  buildSliders(info.emotion_names);
  if (info.random_weights) {
    $("note").hidden = false;
    $("note").textContent = "This model has random weights: its motion is meaningless (start the viewer with -m MODEL).";
  }
  renderer = await loadHead($("head"));
  enableOrbit($("head"));
  await listFiles();
  $("play-file").onclick = guard(() => playFile($("files").value || Promise.reject(new Error("choose a file"))));
  $("stream-file").onclick = guard(() => startLive("server", $("files").value));
  $("animate-upload").onclick = guard(animateUpload);
  $("stream-upload").onclick = guard(() => startLive("upload"));
  $("microphone").onclick = guard(() => startLive("mic"));
  $("stop").onclick = () => { stopAll(); setStatus("stopped"); };
  $("reset-emotion").onclick = () => setEmotion({});
  setStatus(`ready: ${renderer.meta.name}, ${renderer.meta.vertex_count} vertices, ${renderer.meta.shape_names.length} shapes`);
  requestAnimationFrame(tick);
}

// A small API for scripts and tests: window.facecast.
window.facecast = {
  state,
  get renderer() { return renderer; },
  client,
  playFile: (name) => playFile(name),
  startLive: (kind, name) => startLive(kind, name),
  stop: () => stopAll(),
  setEmotion,
  /** Show a fixed pose: {name: weight} (ARKit or tongue names) and optional eyes [6] in degrees. */
  showWeights(byName, eyes) {
    stopAll();
    const w = new Float32Array(renderer.meta.shape_names.length);
    for (const [name, value] of Object.entries(byName || {})) {
      const i = renderer.meta.shape_names.indexOf(name);
      if (i < 0) throw new Error(`no shape ${name}`);
      w[i] = value;
    }
    renderer.setPose(w, eyes || [0, 0, 0, 0, 0, 0]);
    renderer.draw();
    dirty = false;
  },
  project: (point) => renderer.project(point),
};

window.facecast.ready = main().then(
  () => true,
  (e) => { setStatus(`error: ${e.message}`, true); throw e; },
);
