// facecast viewer: frames on a time axis (an animation file, or frames arriving from a stream) and the pose
// at any time, linearly interpolated between the two nearest frames.

export class Timeline {
  /** shapeNames: the renderer's morph target order (52 ARKit then 16 tongue names). */
  constructor(shapeNames) {
    this.shapeNames = shapeNames;
    this.index = new Map(shapeNames.map((n, i) => [n, i]));
    this.times = [];
    this.weights = [];
    this.eyes = [];
    this.emotion = [];
    this.skinMap = [];
    this.tongueMap = [];
  }

  /** Name lists of the incoming rows (skin, tongue): where each column goes in the renderer's order. */
  setNames(skinNames, tongueNames) {
    const map = (names) => (names || []).map((n) => (this.index.has(n) ? this.index.get(n) : -1));
    this.skinMap = map(skinNames);
    this.tongueMap = map(tongueNames);
  }

  /** Add frames: times [n], skin [n][S], tongue [n][T] or null, eyes [n][6], emotion [n][10]. */
  append(times, skin, tongue, eyes, emotion) {
    for (let i = 0; i < times.length; i++) {
      const w = new Float32Array(this.shapeNames.length);
      if (skin) this.skinMap.forEach((j, c) => { if (j >= 0) w[j] = skin[i][c]; });
      if (tongue) this.tongueMap.forEach((j, c) => { if (j >= 0) w[j] = tongue[i][c]; });
      this.times.push(times[i]);
      this.weights.push(w);
      this.eyes.push(eyes ? Float32Array.from(eyes[i]) : new Float32Array(6));
      this.emotion.push(emotion ? Float32Array.from(emotion[i]) : new Float32Array(10));
    }
  }

  /** A whole animation document (facecast.animation/1). */
  static fromAnimation(doc, shapeNames) {
    const t = new Timeline(shapeNames);
    t.setNames(doc.skin ? doc.skin.names : [], doc.tongue ? doc.tongue.names : []);
    t.append(doc.time, doc.skin && doc.skin.weights, doc.tongue && doc.tongue.weights, doc.eyes,
      doc.emotion && doc.emotion.weights);
    t.fps = doc.fps;
    return t;
  }

  get length() {
    return this.times.length;
  }

  get start() {
    return this.length ? this.times[0] : 0;
  }

  get end() {
    return this.length ? this.times[this.length - 1] : 0;
  }

  /** Forget frames more than ``keep`` seconds before ``t`` (live streams). */
  dropBefore(t, keep = 1) {
    let n = 0;
    while (n < this.length - 2 && this.times[n + 1] < t - keep) n++;
    if (n > 0) {
      for (const key of ["times", "weights", "eyes", "emotion"]) this[key].splice(0, n);
    }
  }

  /** Index of the last frame at or before t (-1 when t is before the first). */
  frameAt(t) {
    let lo = 0, hi = this.length - 1;
    if (hi < 0 || t < this.times[0]) return -1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.times[mid] <= t) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** {weights, eyes, emotion, frame} at time t, interpolated; null when empty. */
  poseAt(t) {
    if (!this.length) return null;
    const i = Math.max(0, this.frameAt(t));
    const j = Math.min(i + 1, this.length - 1);
    const span = this.times[j] - this.times[i];
    const a = span > 0 ? Math.min(1, Math.max(0, (t - this.times[i]) / span)) : 0;
    const mix = (x, y) => x.map((v, k) => v + (y[k] - v) * a);
    return { weights: mix(this.weights[i], this.weights[j]), eyes: mix(this.eyes[i], this.eyes[j]),
      emotion: mix(this.emotion[i], this.emotion[j]), frame: i };
  }
}
