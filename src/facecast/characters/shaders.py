"""GLSL (3.30 core) of the OpenGL preview: a perspective camera, and per-pixel skin, mouth, teeth and eye shading.

Lights are in camera space: a warm key from the upper left, a cool fill from the right, a rim from behind, and
a sky/ground ambient. Skin uses wrapped diffuse with a red terminator (a cheap stand-in for light scattering
under the skin), a soft specular, value-noise grain, and painted eyebrows and lash lines; everything inside the
mouth darkens with its depth behind the lips; eyes get an iris with a limbal ring and streaks, a pupil and a
corneal highlight. Back faces of the skin (seen through the open mouth or the neck) are the dark inside.
"""

VERTEX = """
#version 330
uniform mat3 rot;
uniform vec3 centre;
uniform float distance_;
uniform float focal;     // focal length over half the view's height
uniform float near_, far_;
in vec3 in_pos;
in vec3 in_normal;
in vec3 in_rest;
in vec3 in_colour;
in float in_material;
in vec2 in_lash;
in vec3 in_eye;
out vec3 v_cam;
out vec3 v_normal;
out vec3 v_rest;
out vec3 v_colour;
out vec2 v_lash;
out vec3 v_eye;
out float v_mz;
flat out int v_material;
void main() {
    vec3 cam = rot * (in_pos - centre);
    float z = distance_ - cam.z;
    v_cam = vec3(cam.xy, cam.z - distance_);
    v_normal = rot * in_normal;
    v_rest = in_rest;
    v_colour = in_colour;
    v_lash = in_lash;
    v_eye = in_eye;
    v_mz = in_pos.z;
    v_material = int(in_material + 0.5);
    float a = (far_ + near_) / (far_ - near_);
    float b = 2.0 * far_ * near_ / (far_ - near_);
    gl_Position = vec4(cam.x * focal, cam.y * focal, a * z - b, z);
}
"""

FRAGMENT = """
#version 330
uniform float lip_front;   // model z of the lips' front this frame
in vec3 v_cam;
in vec3 v_normal;
in vec3 v_rest;
in vec3 v_colour;
in vec2 v_lash;
in vec3 v_eye;
in float v_mz;
flat in int v_material;
out vec4 f_colour;

float hash(vec3 p) {
    p = fract(p * 0.3183099 + vec3(0.1, 0.2, 0.3));
    p *= 17.0;
    return fract(p.x * p.y * p.z * (p.x + p.y + p.z));
}
float noise(vec3 x) {
    vec3 i = floor(x), f = fract(x);
    f = f * f * (3.0 - 2.0 * f);
    float a = mix(hash(i), hash(i + vec3(1, 0, 0)), f.x);
    float b = mix(hash(i + vec3(0, 1, 0)), hash(i + vec3(1, 1, 0)), f.x);
    float c = mix(hash(i + vec3(0, 0, 1)), hash(i + vec3(1, 0, 1)), f.x);
    float d = mix(hash(i + vec3(0, 1, 1)), hash(i + vec3(1, 1, 1)), f.x);
    return mix(mix(a, b, f.y), mix(c, d, f.y), f.z);
}

// eyebrow coverage at a rest position (cm, origin between the eye pivots)
float brow(vec3 p) {
    float x = abs(p.x);
    if (p.z < -1.0 || x < 0.6 || x > 5.5) return 0.0;
    float t = clamp((x - 0.8) / 4.4, 0.0, 1.0);          // 0 inner end, 1 outer end
    float centre_y = 1.72 + 0.36 * sin(3.1416 * min(t * 1.3, 1.0)) - 0.25 * t * t;
    float half_h = mix(0.30, 0.11, t);
    float d = abs(p.y - centre_y) / half_h;
    float ends = smoothstep(0.6, 1.0, x) * (1.0 - smoothstep(5.0, 5.5, x));
    float hairs = 0.7 + 0.3 * noise(vec3(x * 9.0 - p.y * 5.0, p.y * 22.0, 0.0));
    return (1.0 - smoothstep(0.55, 1.0, d)) * ends * hairs;
}

void main() {
    vec3 n = normalize(v_normal);
    vec3 view = normalize(-v_cam);
    bool inside = !gl_FrontFacing && (v_material == 0 || v_material == 1);
    if (dot(n, view) < 0.0) n = -n;    // two-sided lighting
    vec3 base = v_colour;
    float ks = 0.10, shine = 24.0, wrap = 0.0;
    // the inside of the mouth: light falls off with depth behind the lips
    float depth = max(lip_front - 0.6 - v_mz, 0.0);
    float cavity = 1.0;
    if (v_material == 1 || v_material == 2 || v_material == 3 || v_material == 4) {
        cavity = 0.04 + 0.96 * exp(-depth / 1.0);
    }
    if (v_material == 0) {
        float b = brow(v_rest);
        base = mix(base, vec3(0.20, 0.13, 0.09), 0.88 * b);
        float upper = 1.0 - smoothstep(0.07, 0.16, v_lash.x);
        float lower = 1.0 - smoothstep(0.03, 0.08, v_lash.y);
        base = mix(base, vec3(0.07, 0.05, 0.05), max(upper * 0.95, lower * 0.45));
        ks = 0.09 * (1.0 - b); shine = 20.0; wrap = 0.35;
    } else if (v_material == 1) {
        ks = 0.15; shine = 30.0; wrap = 0.2;
    } else if (v_material == 2) {
        ks = 0.35; shine = 50.0;
    } else if (v_material == 3 || v_material == 4) {
        ks = 0.25; shine = 35.0; wrap = 0.2;
    } else if (v_material == 5) {
        vec3 d = normalize(v_eye);
        float angle = degrees(acos(clamp(d.z, -1.0, 1.0)));
        float phi = atan(d.y, d.x);
        vec3 iris = vec3(0.29, 0.40, 0.48) * (0.75 + 0.5 * noise(vec3(phi * 9.0, angle * 0.4, 0.0)));
        iris = mix(iris, vec3(0.42, 0.33, 0.16), smoothstep(12.0, 8.0, angle) * 0.6);  // warm collarette
        iris *= mix(1.0, 0.45, smoothstep(18.0, 23.0, angle));                              // limbal ring
        float in_iris = 1.0 - smoothstep(23.0, 24.5, angle);
        float in_pupil = 1.0 - smoothstep(8.5, 9.5, angle);
        base = mix(base, iris, in_iris);
        base = mix(base, vec3(0.02), in_pupil);
        ks = 0.9; shine = 140.0;
    }
    if (inside) {
        f_colour = vec4(vec3(0.10, 0.035, 0.035) * cavity, 1.0);
        return;
    }
    vec3 key_dir = normalize(vec3(-0.5, 0.55, 0.68));
    vec3 fill_dir = normalize(vec3(0.75, 0.05, 0.55));
    vec3 rim_dir = normalize(vec3(0.3, 0.6, -0.8));
    vec3 key_col = vec3(1.0, 0.95, 0.88) * 0.95;
    vec3 fill_col = vec3(0.62, 0.70, 0.85) * 0.38;
    vec3 rim_col = vec3(0.85, 0.9, 1.0) * 0.55;
    vec3 colour = base * mix(vec3(0.16, 0.14, 0.13), vec3(0.20, 0.22, 0.26), n.y * 0.5 + 0.5);  // ambient
    vec3 lights[2] = vec3[2](key_dir, fill_dir);
    vec3 cols[2] = vec3[2](key_col, fill_col);
    for (int i = 0; i < 2; i++) {
        float nl = dot(n, lights[i]);
        float lam = max(nl, 0.0);
        float wrapped = max((nl + wrap) / (1.0 + wrap), 0.0);
        vec3 scatter = vec3(0.22, 0.05, 0.03) * (wrapped - lam);   // red at the terminator
        colour += cols[i] * (base * wrapped + scatter * (wrap > 0.0 ? 1.0 : 0.0));
        vec3 h = normalize(view + lights[i]);
        float fres = 0.3 + 0.7 * pow(1.0 - max(dot(view, h), 0.0), 5.0);
        colour += cols[i] * ks * fres * pow(max(dot(n, h), 0.0), shine) * (lam > 0.0 ? 1.0 : 0.0) * 2.0;
    }
    float rim = pow(1.0 - max(dot(n, view), 0.0), 3.0) * max(dot(n, rim_dir) + 0.5, 0.0);
    colour += rim_col * rim * (v_material == 0 ? 0.6 : 0.2);
    f_colour = vec4(colour * cavity, 1.0);
}
"""

SCREEN_VERTEX = """
#version 330
out vec2 uv;
void main() {  // one triangle covering the screen, no vertex buffer
    vec2 p = vec2(float((gl_VertexID << 1) & 2), float(gl_VertexID & 2));
    uv = p;
    gl_Position = vec4(2.0 * p - 1.0, 0.0, 1.0);
}
"""

EDGE_SMOOTH_FRAGMENT = """
#version 330
// Post-process anti-aliasing in the manner of FXAA: where the luma contrast around a pixel is high, blend along
// the edge's direction (estimated from the four diagonal neighbours); flat areas are left untouched.
uniform sampler2D scene;
uniform vec2 texel;
in vec2 uv;
out vec4 colour;
float luma(vec3 c) { return dot(c, vec3(0.299, 0.587, 0.114)); }
vec3 at(vec2 offset) { return texture(scene, uv + offset * texel).rgb; }
vec3 pixel(ivec2 p) { return texelFetch(scene, clamp(p, ivec2(0), textureSize(scene, 0) - 1), 0).rgb; }
void main() {
    ivec2 p = ivec2(gl_FragCoord.xy);  // unfiltered reads for the contrast test (cheaper on llvmpipe)
    vec3 centre = pixel(p);
    float lc = luma(centre);
    float nw = luma(pixel(p + ivec2(-1, -1))), ne = luma(pixel(p + ivec2(1, -1)));
    float sw = luma(pixel(p + ivec2(-1, 1))), se = luma(pixel(p + ivec2(1, 1)));
    float lo = min(lc, min(min(nw, ne), min(sw, se)));
    float hi = max(lc, max(max(nw, ne), max(sw, se)));
    if (hi - lo < max(0.03, 0.12 * hi)) {
        colour = vec4(centre, 1.0);
        return;
    }
    vec2 dir = vec2((sw + se) - (nw + ne), (nw + sw) - (ne + se));
    float damp = max(0.03125 * (nw + ne + sw + se), 1.0 / 128.0);
    dir = clamp(dir / (min(abs(dir.x), abs(dir.y)) + damp), vec2(-8.0), vec2(8.0));
    vec3 near = 0.5 * (at(dir * (-1.0 / 6.0)) + at(dir * (1.0 / 6.0)));
    vec3 wide = 0.5 * near + 0.25 * (at(dir * -0.5) + at(dir * 0.5));
    float lw = luma(wide);
    colour = vec4((lw < lo || lw > hi) ? near : wide, 1.0);
}
"""
