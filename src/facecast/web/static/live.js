// facecast viewer: the /ws client. Sends microphone or file audio as PCM16 chunks (or asks the server to
// stream one of its files), receives frames, changes emotion, and uploads files to animate offline.

const CHUNK_SECONDS = 0.02;

/** Float samples [-1, 1] -> little-endian PCM16 bytes. */
export function toPcm16(samples) {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    out[i] = Math.round(s * 32767);
  }
  return out.buffer;
}

export class LiveClient {
  /** handlers: onReady(msg), onFrames(msg), onEnd(msg), onAnimation(msg), onError(message), onClose(). */
  constructor(handlers) {
    this.handlers = handlers;
    this.socket = null;
    this.source = null;
    this.framesReceived = 0;
  }

  connect() {
    if (this.socket && this.socket.readyState <= 1) return this.opened;
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
    this.socket = new WebSocket(url);
    this.socket.binaryType = "arraybuffer";
    this.socket.onmessage = (event) => this._receive(JSON.parse(event.data));
    this.socket.onclose = () => {
      this._stopSource();
      if (this.handlers.onClose) this.handlers.onClose();
    };
    this.opened = new Promise((resolve, reject) => {
      this.socket.onopen = () => resolve();
      this.socket.onerror = () => reject(new Error("cannot open the stream socket"));
    });
    return this.opened;
  }

  _receive(msg) {
    const on = this.handlers;
    if (msg.type === "frames") this.framesReceived += msg.time.length;
    if (msg.type === "end") this._stopSource();
    const handler = { ready: on.onReady, frames: on.onFrames, end: on.onEnd, animation: on.onAnimation }[msg.type];
    if (msg.type === "error" && on.onError) on.onError(msg.message);
    else if (handler) handler(msg);
  }

  _send(message) {
    this.socket.send(typeof message === "string" ? message : JSON.stringify(message));
  }

  /** Live stream from the microphone (ctx: a running AudioContext). */
  async startMicrophone(ctx, emotion) {
    await this.connect();
    const media = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true } });
    await ctx.audioWorklet.addModule("/static/capture-worklet.js");
    this._send({ type: "start", sample_rate: ctx.sampleRate, emotion }); // before any audio
    const input = ctx.createMediaStreamSource(media);
    const node = new AudioWorkletNode(ctx, "facecast-capture", { processorOptions: { chunk: Math.round(ctx.sampleRate * CHUNK_SECONDS) } });
    let active = true; // chunks already posted by the worklet must not follow the "stop" message
    node.port.onmessage = (event) => {
      if (active && this.socket.readyState === 1) this.socket.send(toPcm16(event.data));
    };
    input.connect(node).connect(ctx.destination);
    this.source = {
      stop: () => {
        active = false;
        input.disconnect();
        node.disconnect();
        media.getTracks().forEach((t) => t.stop());
      },
    };
  }

  /** Live stream of a decoded file: its samples go out in real time by the audio clock from ``t0`` on. */
  async startBuffer(ctx, buffer, emotion, t0) {
    await this.connect();
    const samples = buffer.getChannelData(0);
    const rate = buffer.sampleRate;
    let sent = 0;
    this._send({ type: "start", sample_rate: rate, emotion });
    const pump = () => {
      const due = Math.min(samples.length, Math.ceil((ctx.currentTime - t0 + CHUNK_SECONDS) * rate));
      if (due > sent && this.socket.readyState === 1) {
        this.socket.send(toPcm16(samples.subarray(sent, due)));
        sent = due;
      }
      if (sent >= samples.length) {
        clearInterval(timer);
        this.source = null;
        this.stop();
      }
    };
    const timer = setInterval(pump, CHUNK_SECONDS * 1000);
    this.source = { stop: () => clearInterval(timer) };
  }

  /** Ask the server to stream one of its audio files in real time. */
  async playServerFile(name, emotion) {
    await this.connect();
    this._send({ type: "play", file: name, emotion });
  }

  setEmotion(emotion) {
    if (this.socket && this.socket.readyState === 1) this._send({ type: "emotion", emotion });
  }

  stop() {
    this._stopSource();
    if (this.socket && this.socket.readyState === 1) this._send({ type: "stop" });
  }

  _stopSource() {
    if (this.source) this.source.stop();
    this.source = null;
  }

  /** Upload a file's bytes for offline animation; the answer comes to onAnimation. */
  async animateUpload(name, bytes, emotion) {
    await this.connect();
    this._send({ type: "animate", name, emotion });
    this.socket.send(bytes);
  }
}
