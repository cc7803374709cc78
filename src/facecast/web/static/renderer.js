// facecast viewer: a small WebGL2 renderer for the character served at /character.json + /character.bin.
// The vertex shader adds the weighted morph deltas (position and normal) read from a float texture, then
// applies the part's rigid transform (eye rotations); the fragment shader is Lambert with a little specular.

const VERTEX_SHADER = `#version 300 es
precision highp float;
precision highp int;
layout(location = 0) in vec3 a_position;
layout(location = 1) in vec3 a_normal;
layout(location = 2) in vec3 a_colour;
layout(location = 3) in vec3 a_eyeDir;
uniform highp sampler2D u_morph;
uniform int u_vertexCount;
uniform int u_textureWidth;
uniform int u_shapeCount;
uniform vec4 u_weights[32];
uniform mat4 u_model;
uniform mat4 u_view;
uniform mat4 u_projection;
out vec3 v_normal;
out vec3 v_colour;
out vec3 v_eyeDir;
out vec3 v_viewPosition;

vec3 texel(int i) {
  return texelFetch(u_morph, ivec2(i % u_textureWidth, i / u_textureWidth), 0).rgb;
}

void main() {
  vec3 position = a_position;
  vec3 normal = a_normal;
  for (int k = 0; k < u_shapeCount; k++) {
    float w = u_weights[k >> 2][k & 3];
    if (w == 0.0) continue;
    int i = (k * u_vertexCount + gl_VertexID) * 2;
    position += w * texel(i);
    normal += w * texel(i + 1);
  }
  vec4 view = u_view * u_model * vec4(position, 1.0);
  v_normal = mat3(u_view) * mat3(u_model) * normal;
  v_colour = a_colour;
  v_eyeDir = a_eyeDir;
  v_viewPosition = view.xyz;
  gl_Position = u_projection * view;
}`;

const FRAGMENT_SHADER = `#version 300 es
precision highp float;
in vec3 v_normal;
in vec3 v_colour;
in vec3 v_eyeDir;
in vec3 v_viewPosition;
uniform bool u_twoSided;
uniform vec3 u_iris;
uniform vec3 u_pupil;
uniform float u_irisDeg;
uniform float u_pupilDeg;
uniform vec2 u_specular;
out vec4 colour;

void main() {
  vec3 n = normalize(v_normal);
  vec3 toEye = normalize(-v_viewPosition);
  if (u_twoSided && dot(n, toEye) < 0.0) n = -n;
  vec3 base = v_colour;
  float eye = length(v_eyeDir);
  if (eye > 0.5) {
    float angle = degrees(acos(clamp(v_eyeDir.z / eye, -1.0, 1.0)));
    base = mix(base, u_iris, clamp((u_irisDeg - angle) / 1.5, 0.0, 1.0));
    base = mix(base, u_pupil, clamp((u_pupilDeg - angle), 0.0, 1.0));
  }
  vec3 lights[2] = vec3[2](normalize(vec3(-0.45, 0.55, 0.70)), normalize(vec3(0.6, 0.05, 0.8)));
  float strength[2] = float[2](0.75, 0.30);
  float diffuse = 0.22;
  float specular = 0.0;
  for (int i = 0; i < 2; i++) {
    diffuse += strength[i] * max(dot(n, lights[i]), 0.0);
    specular += strength[i] * u_specular.x * pow(max(dot(n, normalize(toEye + lights[i])), 0.0), u_specular.y);
  }
  colour = vec4(base * diffuse + specular, 1.0);
}`;

const TWO_SIDED = new Set(["tongue", "upper_teeth", "lower_teeth"]);
const SPECULAR = { skin: [0.12, 24], tongue: [0.35, 30], upper_teeth: [0.3, 30], lower_teeth: [0.3, 30] };
const EYE_SPECULAR = [0.7, 80];

// ---- 4x4 column-major matrices ----------------------------------------------------------------------

export function identity() {
  return new Float32Array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
}

export function multiply(a, b) {
  const out = new Float32Array(16);
  for (let c = 0; c < 4; c++) {
    for (let r = 0; r < 4; r++) {
      let s = 0;
      for (let k = 0; k < 4; k++) s += a[k * 4 + r] * b[c * 4 + k];
      out[c * 4 + r] = s;
    }
  }
  return out;
}

function translation(x, y, z) {
  const m = identity();
  m[12] = x;
  m[13] = y;
  m[14] = z;
  return m;
}

function rotationX(deg) {
  const a = (deg * Math.PI) / 180, c = Math.cos(a), s = Math.sin(a);
  return new Float32Array([1, 0, 0, 0, 0, c, s, 0, 0, -s, c, 0, 0, 0, 0, 1]);
}

function rotationY(deg) {
  const a = (deg * Math.PI) / 180, c = Math.cos(a), s = Math.sin(a);
  return new Float32Array([c, 0, -s, 0, 0, 1, 0, 0, s, 0, c, 0, 0, 0, 0, 1]);
}

function perspective(fovy, aspect, near, far) {
  const f = 1 / Math.tan(fovy / 2), m = new Float32Array(16);
  m[0] = f / aspect;
  m[5] = f;
  m[10] = (far + near) / (near - far);
  m[11] = -1;
  m[14] = (2 * far * near) / (near - far);
  return m;
}

function transformPoint(m, p) {
  const out = [0, 0, 0, 0];
  for (let r = 0; r < 4; r++) out[r] = m[r] * p[0] + m[4 + r] * p[1] + m[8 + r] * p[2] + m[12 + r];
  return out;
}

/** The rotation of an eye about its pivot: R = Ry(y) Rx(x), +x looks down, +y to the character's left. */
export function eyeMatrix(pivot, xDeg, yDeg) {
  const r = multiply(rotationY(yDeg), rotationX(xDeg));
  return multiply(translation(pivot[0], pivot[1], pivot[2]), multiply(r, translation(-pivot[0], -pivot[1], -pivot[2])));
}

// ---- renderer ---------------------------------------------------------------------------------------

function compile(gl, type, source) {
  const shader = gl.createShader(type);
  gl.shaderSource(shader, source);
  gl.compileShader(shader);
  if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(shader));
  return shader;
}

function view(meta, blob, name) {
  const b = meta.buffers[name];
  const kinds = { float32: Float32Array, uint32: Uint32Array, float16: Uint16Array };
  return new kinds[b.type](blob, b.offset, b.length); // length: elements, not bytes
}

export class HeadRenderer {
  /** meta: the /character.json document; blob: the /character.bin ArrayBuffer. */
  constructor(canvas, meta, blob) {
    const gl = canvas.getContext("webgl2", { antialias: true, preserveDrawingBuffer: true });
    if (!gl) throw new Error("this browser has no WebGL2");
    this.canvas = canvas;
    this.gl = gl;
    this.meta = meta;
    this.shapeCount = meta.shape_names.length;
    this.weights = new Float32Array(128);
    this.eyes = new Float32Array(6);
    this.yaw = 0;
    this.pitch = 0;
    const program = gl.createProgram();
    gl.attachShader(program, compile(gl, gl.VERTEX_SHADER, VERTEX_SHADER));
    gl.attachShader(program, compile(gl, gl.FRAGMENT_SHADER, FRAGMENT_SHADER));
    gl.linkProgram(program);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(program));
    this.program = program;
    this.u = {};
    for (const name of ["u_morph", "u_vertexCount", "u_textureWidth", "u_shapeCount", "u_weights", "u_model",
      "u_view", "u_projection", "u_twoSided", "u_iris", "u_pupil", "u_irisDeg", "u_pupilDeg", "u_specular"]) {
      this.u[name] = gl.getUniformLocation(program, name);
    }
    this.vao = gl.createVertexArray();
    gl.bindVertexArray(this.vao);
    ["position", "normal", "colour", "eye_dir"].forEach((name, location) => {
      const buffer = gl.createBuffer();
      gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
      gl.bufferData(gl.ARRAY_BUFFER, view(meta, blob, name), gl.STATIC_DRAW);
      gl.enableVertexAttribArray(location);
      gl.vertexAttribPointer(location, 3, gl.FLOAT, false, 0, 0);
    });
    const indices = gl.createBuffer();
    gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, indices);
    gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, view(meta, blob, "index"), gl.STATIC_DRAW);
    gl.bindVertexArray(null);
    this.texture = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, this.texture);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    const t = meta.texture;
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGB16F, t.width, t.height, 0, gl.RGB, gl.HALF_FLOAT, view(meta, blob, "morph"));
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
    const lo = meta.bounds.min, hi = meta.bounds.max;
    this.centre = [(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, (lo[2] + hi[2]) / 2];
    this.halfHeight = 0.54 * (hi[1] - lo[1]);
    this.distance = 8 * this.halfHeight;
    const bg = meta.materials.background;
    this.background = [bg[0], bg[1], bg[2]];
  }

  /** weights: Float32Array in meta.shape_names order; eyes: 6 floats (right x, y, 0, left x, y, 0) degrees. */
  setPose(weights, eyes) {
    this.weights.fill(0);
    this.weights.set(weights.subarray ? weights.subarray(0, this.shapeCount) : weights.slice(0, this.shapeCount));
    this.eyes.set(eyes || [0, 0, 0, 0, 0, 0]);
  }

  orbit(dYaw, dPitch) {
    this.yaw = Math.max(-80, Math.min(80, this.yaw + dYaw));
    this.pitch = Math.max(-40, Math.min(40, this.pitch + dPitch));
  }

  _matrices() {
    const c = this.centre;
    const viewM = multiply(
      translation(0, 0, -this.distance),
      multiply(rotationX(this.pitch), multiply(rotationY(this.yaw), translation(-c[0], -c[1], -c[2]))),
    );
    const aspect = this.canvas.width / Math.max(1, this.canvas.height);
    const fovy = 2 * Math.atan(this.halfHeight / this.distance / Math.min(1, aspect));
    return { view: viewM, projection: perspective(fovy, aspect, this.distance * 0.5, this.distance * 2) };
  }

  /** Where a character-space point lands on the canvas, in CSS pixels from its top-left corner. */
  project(point) {
    const { view: v, projection: p } = this._matrices();
    const clip = transformPoint(multiply(p, v), point);
    const rect = this.canvas.getBoundingClientRect();
    return [((clip[0] / clip[3] + 1) / 2) * rect.width, ((1 - clip[1] / clip[3]) / 2) * rect.height];
  }

  _resize() {
    const ratio = window.devicePixelRatio || 1;
    const w = Math.round(this.canvas.clientWidth * ratio), h = Math.round(this.canvas.clientHeight * ratio);
    if (w > 0 && h > 0 && (this.canvas.width !== w || this.canvas.height !== h)) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
  }

  draw() {
    const gl = this.gl, u = this.u, meta = this.meta;
    this._resize();
    gl.viewport(0, 0, this.canvas.width, this.canvas.height);
    gl.clearColor(this.background[0], this.background[1], this.background[2], 1);
    gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
    gl.enable(gl.DEPTH_TEST);
    gl.useProgram(this.program);
    gl.bindVertexArray(this.vao);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_2D, this.texture);
    const m = this._matrices();
    gl.uniform1i(u.u_morph, 0);
    gl.uniform1i(u.u_vertexCount, meta.vertex_count);
    gl.uniform1i(u.u_textureWidth, meta.texture.width);
    gl.uniform1i(u.u_shapeCount, this.shapeCount);
    gl.uniform4fv(u.u_weights, this.weights);
    gl.uniformMatrix4fv(u.u_view, false, m.view);
    gl.uniformMatrix4fv(u.u_projection, false, m.projection);
    const mat = meta.materials;
    gl.uniform3fv(u.u_iris, mat.iris);
    gl.uniform3fv(u.u_pupil, mat.pupil);
    gl.uniform1f(u.u_irisDeg, mat.iris_deg);
    gl.uniform1f(u.u_pupilDeg, mat.pupil_deg);
    for (const part of meta.parts) {
      const eye = meta.eye_parts.indexOf(part.name);
      const model = eye < 0 ? identity() : eyeMatrix(meta.eye_pivots[eye], this.eyes[3 * eye], this.eyes[3 * eye + 1]);
      const twoSided = TWO_SIDED.has(part.name);
      if (twoSided) gl.disable(gl.CULL_FACE);
      else gl.enable(gl.CULL_FACE);
      gl.uniformMatrix4fv(u.u_model, false, model);
      gl.uniform1i(u.u_twoSided, twoSided ? 1 : 0);
      gl.uniform2fv(u.u_specular, SPECULAR[part.name] || EYE_SPECULAR);
      gl.drawElements(gl.TRIANGLES, part.index_count, gl.UNSIGNED_INT, part.first_index * 4);
    }
    gl.bindVertexArray(null);
  }
}

/** Fetch the character and build a renderer on ``canvas``. */
export async function loadHead(canvas) {
  const [meta, blob] = await Promise.all([
    fetch("/character.json").then((r) => r.json()),
    fetch("/character.bin").then((r) => r.arrayBuffer()),
  ]);
  return new HeadRenderer(canvas, meta, blob);
}
