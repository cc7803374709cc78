"""Preview rendering: the OpenGL renderer when it can run, else a numpy rasteriser; PNG and MP4 (H.264 + AAC).

:func:`make_renderer` picks :class:`facecast.characters.gl.GLRenderer` (moderngl on headless EGL: anti-aliased,
per-pixel lit, the dressed head of :mod:`facecast.characters.dressing`) and falls back, with one line on stderr
naming what to install, to :class:`Renderer` below.

The fallback needs no OpenGL: triangles are scan-converted all at once (every pixel centre in every triangle's
bounding box is a candidate, tested with edge functions), the nearest candidate per pixel wins through one
``np.minimum.at`` on packed (depth, candidate) keys, and only the winners are shaded (deferred shading with
interpolated normals).
Shading is Lambert from two lights plus a little Blinn-Phong specular; skin, lips, inner mouth, teeth, tongue
and eyes get their own colours, teeth and tongue darken with their depth behind the lips (the mouth's own
shadow), and the eyes get an iris and pupil from the angle to each eyeball's forward axis. A frame shows a front
view and a three-quarter view side by side.
"""

from __future__ import annotations

import os
import struct
import sys
import zlib
from collections.abc import Iterable, Iterator, Mapping
from fractions import Fraction
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from facecast.characters.camera import (  # noqa: F401 - View, PROFILE and VIEW_SETS are re-exported
    FRONT,
    PROFILE,
    THREE_QUARTER,
    VIEW_SETS,
    View,
    parse_colour,
    parse_views,
    rotation,
)
from facecast.characters.character import EYE_PARTS, Character, apply_weights
from facecast.constants import DEFAULT_FPS, SAMPLE_RATE
from facecast.timing import fps_fraction

BACKGROUND = (0.16, 0.17, 0.20)
SKIN = (0.87, 0.66, 0.55)
LIPS = (0.78, 0.40, 0.40)
MOUTH = (0.36, 0.13, 0.14)
PART_COLOURS = {
    "tongue": (0.86, 0.45, 0.48),
    "upper_teeth": (0.95, 0.93, 0.86),
    "lower_teeth": (0.95, 0.93, 0.86),
    "eye_right": (0.96, 0.95, 0.93),
    "eye_left": (0.96, 0.95, 0.93),
}
IRIS = (0.30, 0.42, 0.52)
PUPIL = (0.03, 0.03, 0.04)
IRIS_DEG, PUPIL_DEG = 24.0, 10.0  # angular radii on the eyeball (the hm08 eyeball radius is 1.5 cm)
SPECULAR = {"skin": (0.12, 24.0), "tongue": (0.35, 30.0), "upper_teeth": (0.3, 30.0), "lower_teeth": (0.3, 30.0)}
EYE_SPECULAR = (0.7, 80.0)
LIGHTS = (((-0.45, 0.55, 0.70), 0.75), ((0.6, 0.05, 0.8), 0.30))  # camera space: direction, intensity
AMBIENT = 0.22
CULLED_PARTS = ("skin", "eye_right", "eye_left")  # closed, outward-facing: back faces are never seen
MOUTH_PARTS = ("tongue", "upper_teeth", "lower_teeth")
MOUTH_SHADOW_CM = 1.5  # light inside the mouth falls off as exp(-depth behind the lips / this)
MOUTH_SHADOW_FLOOR = 0.2  # the darkest a point inside the mouth gets (a fraction of its lit colour)

_CANDIDATE_BITS = 40
_DEPTH_LEVELS = (1 << 22) - 1


# ----------------------------------------------------------------------------------------------------
# rasteriser


def rasterize(
    xy: np.ndarray, inv_depth: np.ndarray, faces: np.ndarray, height: int, width: int, keep: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scan-convert triangles: returns (pixel ids, triangle ids, barycentrics [P, 3]) of the covered pixels.

    ``xy`` are pixel coordinates ([V, 2], x right, y down, pixel centres at +0.5), ``inv_depth`` is 1/z per
    vertex (larger is nearer; it is affine in screen space, so interpolating it is exact), ``keep`` an optional
    [F] mask of triangles to draw. Pixel ids are ``y * width + x``.
    """
    tri = faces if keep is None else faces[keep]
    tri_ids = np.arange(len(faces)) if keep is None else np.flatnonzero(keep)
    p = xy[tri].astype(np.float64)  # [F, 3, 2]
    xmin = np.clip(np.ceil(p[:, :, 0].min(axis=1) - 0.5), 0, width).astype(np.int32)
    xmax = np.clip(np.floor(p[:, :, 0].max(axis=1) - 0.5), -1, width - 1).astype(np.int32)
    ymin = np.clip(np.ceil(p[:, :, 1].min(axis=1) - 0.5), 0, height).astype(np.int32)
    ymax = np.clip(np.floor(p[:, :, 1].max(axis=1) - 0.5), -1, height - 1).astype(np.int32)
    # corners relative to each triangle's first covered pixel centre: small numbers, so float32 stays exact
    p[:, :, 0] -= xmin[:, None] + 0.5
    p[:, :, 1] -= ymin[:, None] + 0.5
    x0, y0, x1, y1, x2, y2 = p[:, 0, 0], p[:, 0, 1], p[:, 1, 0], p[:, 1, 1], p[:, 2, 0], p[:, 2, 1]
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    bw, bh = xmax - xmin + 1, ymax - ymin + 1
    ok = (bw > 0) & (bh > 0) & (np.abs(area) > 1e-9)
    t = np.flatnonzero(ok)
    if t.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3), np.float32)
    inv = 1.0 / area[t]
    # barycentric weight of vertex k is affine in the pixel's offset (u, v) from the first pixel centre
    coef = np.stack(
        [
            (y1 - y2)[t] * inv, (x2 - x1)[t] * inv, (x1 * y2 - x2 * y1)[t] * inv,
            (y2 - y0)[t] * inv, (x0 - x2)[t] * inv, (x2 * y0 - x0 * y2)[t] * inv,
        ],
        axis=1,
    ).astype(np.float32)  # fmt: skip
    count = (bw[t] * bh[t]).astype(np.int64)
    cand_tri = np.repeat(np.arange(len(t), dtype=np.int32), count)
    start = np.cumsum(count) - count
    local = (np.arange(int(count.sum()), dtype=np.int64) - np.repeat(start, count)).astype(np.int32)
    row_w = bw[t][cand_tri]
    v = local // row_w
    u = local - v * row_w
    fu, fv = u.astype(np.float32), v.astype(np.float32)
    c = coef[cand_tri]
    w0 = c[:, 0] * fu + c[:, 1] * fv + c[:, 2]
    w1 = c[:, 3] * fu + c[:, 4] * fv + c[:, 5]
    w2 = 1.0 - w0 - w1
    inside = np.flatnonzero((w0 >= -1e-5) & (w1 >= -1e-5) & (w2 >= -1e-5))
    cand_tri, w0, w1, w2 = cand_tri[inside], w0[inside], w1[inside], w2[inside]
    px = u[inside] + xmin[t][cand_tri]
    py = v[inside] + ymin[t][cand_tri]
    zi = inv_depth[tri[t]].astype(np.float32)[cand_tri]
    depth = w0 * zi[:, 0] + w1 * zi[:, 1] + w2 * zi[:, 2]
    lo, hi = float(inv_depth.min()), float(inv_depth.max())
    level = ((hi - depth) * (_DEPTH_LEVELS / max(hi - lo, 1e-12))).clip(0, _DEPTH_LEVELS).astype(np.int64)
    key = (level << _CANDIDATE_BITS) | np.arange(len(level), dtype=np.int64)
    pix = py.astype(np.int64) * width + px
    zbuf = np.full(height * width, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(zbuf, pix, key)
    covered = np.flatnonzero(zbuf != np.iinfo(np.int64).max)
    win = zbuf[covered] & ((1 << _CANDIDATE_BITS) - 1)
    bary = np.stack([w0[win], w1[win], w2[win]], axis=1)
    return covered, tri_ids[t[cand_tri[win]]], bary


# ----------------------------------------------------------------------------------------------------
# scene


def _rotation(view: View) -> np.ndarray:
    return rotation(view)


class Renderer:
    """Renders posed parts of one character: views side by side, each ``size`` x ``size`` pixels."""

    def __init__(
        self,
        char: Character,
        size: int = 384,
        views: tuple[View, ...] = (FRONT, THREE_QUARTER),
        background: tuple[float, float, float] = BACKGROUND,
    ) -> None:
        if size < 16:
            raise ValueError(f"size must be at least 16 pixels, got {size}")
        self.char, self.size, self.views = char, int(size), tuple(views)
        self.background = tuple(float(c) for c in background)
        names = list(char.parts)
        counts = [len(char.parts[n].vertices) for n in names]
        offsets = np.concatenate([[0], np.cumsum(counts)])
        self.slices = {n: slice(int(offsets[i]), int(offsets[i + 1])) for i, n in enumerate(names)}
        self.num_vertices = int(offsets[-1])
        self.faces = np.concatenate([char.parts[n].faces + offsets[i] for i, n in enumerate(names)])
        part_of_face = np.concatenate([np.full(len(char.parts[n].faces), i) for i, n in enumerate(names)])
        self.face_part = part_of_face.astype(np.int32)
        self.culled = np.isin(part_of_face, [names.index(n) for n in CULLED_PARTS if n in names])
        self.part_names = names
        rows = self.faces.reshape(-1)
        cols = np.repeat(np.arange(len(self.faces)), 3)
        self._incidence = sp.csr_matrix(
            (np.ones(len(rows), np.float32), (rows, cols)), shape=(self.num_vertices, len(self.faces))
        )
        self.colours, self.eye_dirs = self._vertex_attributes()
        spec = [SPECULAR.get(n, EYE_SPECULAR) for n in names]
        self.face_spec = np.array([s[0] for s in spec], np.float32)[part_of_face]
        self.face_shine = np.array([s[1] for s in spec], np.float32)[part_of_face]
        skin = char.parts["skin"].vertices
        lo, hi = skin.min(axis=0), skin.max(axis=0)
        self.centre = ((lo + hi) / 2).astype(np.float32)
        half_height = 0.54 * float(hi[1] - lo[1])  # the head and neck fill the frame's height with a margin
        self.distance = 8.0 * half_height
        self.focal = 0.5 * self.size * self.distance / half_height
        self._rotations = [_rotation(v) for v in self.views]
        eye_ids = [names.index(e) for e in EYE_PARTS]
        self.is_eye_face = np.isin(part_of_face, eye_ids)
        self._lights = [(np.asarray(d, np.float32) / np.linalg.norm(d), float(k)) for d, k in LIGHTS]

    def _vertex_attributes(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-vertex base colours, and eye-local rest directions (zero off the eyes) for the iris rule."""
        colours = np.zeros((self.num_vertices, 3), np.float32)
        dirs = np.zeros((self.num_vertices, 3), np.float32)
        regions = self.char.skin_regions
        nskin = len(self.char.parts["skin"].vertices)
        lips = regions.get("lips", np.zeros(nskin, np.float32))[:, None]
        mouth = regions.get("mouth", np.zeros(nskin, np.float32))[:, None]
        skin = np.asarray(SKIN) * (1 - lips) + np.asarray(LIPS) * lips
        colours[self.slices["skin"]] = skin * (1 - mouth) + np.asarray(MOUTH) * mouth
        for name, colour in PART_COLOURS.items():
            colours[self.slices[name]] = colour
        for e, name in enumerate(EYE_PARTS):
            rel = self.char.parts[name].vertices - self.char.eye_pivots[e]
            dirs[self.slices[name]] = rel / np.linalg.norm(rel, axis=1, keepdims=True)
        return colours, dirs

    def stack(self, posed: Mapping[str, np.ndarray], frame: int | None = None) -> np.ndarray:
        """All parts' vertices of one frame as one [V, 3] array (``posed`` from :func:`apply_weights`)."""
        out = np.empty((self.num_vertices, 3), np.float32)
        for name in self.part_names:
            v = posed[name] if frame is None else posed[name][frame]
            out[self.slices[name]] = v
        return out

    def render(self, vertices: np.ndarray) -> np.ndarray:
        """One frame ([V, 3] stacked vertices) -> [size, size * views, 3] uint8."""
        v = np.asarray(vertices, np.float32)
        a, b, c = v[self.faces[:, 0]], v[self.faces[:, 1]], v[self.faces[:, 2]]
        face_n = np.cross(b - a, c - a)
        normals = _normalise(np.asarray(self._incidence @ face_n))
        lit = self.mouth_light(v)
        return np.concatenate([self._render_view(v, normals, r, lit) for r in self._rotations], axis=1)

    def mouth_light(self, vertices: np.ndarray) -> np.ndarray:
        """[V] light reaching each vertex: 1 outside the mouth; teeth and tongue darken with their depth behind
        the lips (the head's z of the lip landmarks this frame), a cheap stand-in for the mouth's own shadow."""
        light = np.ones(self.num_vertices, np.float32)
        lips = vertices[self.slices["skin"]][np.concatenate([self.char.lip_upper, self.char.lip_lower])]
        front = float(lips[:, 2].mean()) if len(lips) else float(vertices[:, 2].max())
        for name in MOUTH_PARTS:
            if name in self.slices:
                depth = np.clip(front - vertices[self.slices[name], 2], 0.0, None)
                fall = np.exp(-depth / MOUTH_SHADOW_CM)
                light[self.slices[name]] = MOUTH_SHADOW_FLOOR + (1.0 - MOUTH_SHADOW_FLOOR) * fall
        return light

    def _render_view(self, v: np.ndarray, normals: np.ndarray, rot: np.ndarray, lit: np.ndarray) -> np.ndarray:
        size = self.size
        cam = (v - self.centre) @ rot.T
        n_cam = normals @ rot.T
        z = self.distance - cam[:, 2]
        inv_z = 1.0 / z
        xy = np.empty((len(v), 2), np.float32)
        xy[:, 0] = size / 2 + self.focal * cam[:, 0] * inv_z
        xy[:, 1] = size / 2 - self.focal * cam[:, 1] * inv_z
        p = xy[self.faces]
        signed = (p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1]) - (p[:, 2, 0] - p[:, 0, 0]) * (
            p[:, 1, 1] - p[:, 0, 1]
        )
        keep = ~self.culled | (signed < 0)  # < 0: counter-clockwise as seen (y is down here), i.e. front-facing
        pix, tri, bary = rasterize(xy, inv_z, self.faces, size, size, keep)
        image = np.empty((size * size, 3), np.float32)
        image[:] = self.background
        if pix.size:
            image[pix] = self._shade(tri, bary, n_cam, cam, lit)
        return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).reshape(size, size, 3)

    def _shade(
        self, tri: np.ndarray, bary: np.ndarray, n_cam: np.ndarray, cam: np.ndarray, lit: np.ndarray
    ) -> np.ndarray:
        """Colours of the covered pixels: interpolated normal, base colour and eye texture, two lights, scaled by
        the light that reaches the point (:meth:`mouth_light`)."""
        corners = self.faces[tri]
        b = [bary[:, k : k + 1] for k in range(3)]

        def interp(attr: np.ndarray) -> np.ndarray:
            return attr[corners[:, 0]] * b[0] + attr[corners[:, 1]] * b[1] + attr[corners[:, 2]] * b[2]

        n = _normalise(interp(n_cam))
        view = -interp(cam)
        view[:, 2] += self.distance
        view = _normalise(view)
        facing = np.einsum("ij,ij->i", n, view)
        n[(facing < 0) & ~self.culled[tri]] *= -1.0  # two-sided parts (teeth, tongue) seen from behind
        base = interp(self.colours)
        eye = np.flatnonzero(self.is_eye_face[tri])
        if eye.size:
            c, w = corners[eye], bary[eye]
            d = sum(self.eye_dirs[c[:, k]] * w[:, k : k + 1] for k in range(3))
            cos = d[:, 2] / np.maximum(np.linalg.norm(d, axis=1), 1e-9)
            angle = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
            iris = np.clip((IRIS_DEG - angle) / 1.5, 0.0, 1.0)[:, None]
            pupil = np.clip((PUPIL_DEG - angle) / 1.0, 0.0, 1.0)[:, None]
            colour = base[eye] * (1 - iris) + np.asarray(IRIS, np.float32) * iris
            base[eye] = colour * (1 - pupil) + np.asarray(PUPIL, np.float32) * pupil
        diffuse = np.full(len(tri), AMBIENT, np.float32)
        spec = np.zeros(len(tri), np.float32)
        ks, shine = self.face_spec[tri], self.face_shine[tri]
        for light, strength in self._lights:
            diffuse += strength * np.clip(n @ light, 0.0, None)
            half = _normalise(view + light)
            spec += strength * ks * np.clip(np.einsum("ij,ij->i", n, half), 0.0, None) ** shine
        reach = interp(lit[:, None])
        return (base * diffuse[:, None] + spec[:, None]) * reach


def _normalise(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.sqrt(np.einsum("ij,ij->i", v, v)), 1e-12)[:, None]


# ----------------------------------------------------------------------------------------------------
# frames, PNG, MP4


_FALLBACK_NOTED: list[str] = []


def make_renderer(
    char: Character,
    size: int = 384,
    views: str | tuple[View, ...] = "both",
    background: str | tuple[float, float, float] = BACKGROUND,
    engine: str = "auto",
):
    """The preview renderer: ``engine`` "gl" (OpenGL, fast and anti-aliased), "numpy" (no OpenGL), or "auto"
    (OpenGL where it can run, else numpy after one line on stderr naming what to install)."""
    views, colour = parse_views(views), parse_colour(background)
    if engine not in ("auto", "gl", "numpy"):
        raise ValueError(f"unknown render engine {engine!r}; choose auto, gl or numpy")
    if engine != "numpy":
        from facecast.characters.gl import GLRenderer, GLUnavailableError

        try:
            return GLRenderer(char, size, views, colour)
        except GLUnavailableError as exc:
            if engine == "gl":
                raise
            if not _FALLBACK_NOTED:
                _FALLBACK_NOTED.append(str(exc))
                print(f"facecast: NOTE: slower, plainer preview: {exc}", file=sys.stderr)
    return Renderer(char, size, views, colour)


def render_frames(
    char: Character, per_frame_vertices: Mapping[str, np.ndarray], size: int = 384, renderer=None
) -> Iterator[np.ndarray]:
    """Yield one H x W x 3 uint8 image per frame of ``per_frame_vertices`` ({part: [N, V, 3]})."""
    renderer = renderer or make_renderer(char, size)
    count = len(next(iter(per_frame_vertices.values())))
    for i in range(count):
        yield renderer.render(renderer.stack(per_frame_vertices, i))


def save_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an H x W x 3 uint8 image as PNG (no imaging library needed), atomically."""
    from facecast.fileio import atomic_write

    img = np.ascontiguousarray(image, np.uint8)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 image, got shape {img.shape}")
    h, w, _ = img.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), img.reshape(h, w * 3)], axis=1).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
    atomic_write(Path(path), lambda fh: fh.write(png))


def _load_audio(audio: str | os.PathLike | np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
    """Mono float32 samples and their rate, from a file (its own rate, 8-48 kHz) or an array at ``sample_rate``."""
    if isinstance(audio, np.ndarray):
        x = np.asarray(audio, np.float32)
        return (x.mean(axis=1) if x.ndim == 2 else x.reshape(-1)).astype(np.float32), int(sample_rate)
    import soundfile as sf

    from facecast.audio import load_audio

    try:
        rate = int(sf.info(str(audio)).samplerate)
    except Exception:
        rate = SAMPLE_RATE
    rate = min(max(rate, 8000), 48000)
    return load_audio(audio, rate), rate


def _progress(total: int, show: bool | None):
    show = sys.stderr.isatty() if show is None else show
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, unit="frame", desc="render", disable=not show, leave=False)


def write_preview_mp4(
    path: str | os.PathLike,
    char: Character,
    arkit_weights: np.ndarray,
    tongue_weights: np.ndarray | None = None,
    jaw: np.ndarray | None = None,
    eyes: np.ndarray | None = None,
    audio: str | os.PathLike | np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE,
    fps: float = DEFAULT_FPS,
    size: int = 384,
    progress: bool | None = None,
    crf: int = 23,
    views: str | tuple[View, ...] = "both",
    background: str | tuple[float, float, float] = BACKGROUND,
    engine: str = "auto",
) -> Path:
    """Render the animation and write an H.264 MP4 (yuv420p) with the audio muxed as AAC; returns the path.

    ``audio`` is a file path (kept at its own sample rate, 8-48 kHz) or mono samples at ``sample_rate``;
    ``size`` is each view's height and width in pixels, ``views`` a name of
    :data:`facecast.characters.camera.VIEW_SETS` (front, three-quarter, profile, both, all) or a comma list,
    ``background`` a colour (``#rrggbb``, ``r,g,b`` or a name). The file is written under a temporary name in
    the same folder and renamed when complete. Needs PyAV (``pip install av``).
    """
    if not 16 <= int(size) <= 4096:
        raise ValueError(f"preview size must be 16 to 4096 pixels, got {size}")
    try:
        import av
    except ImportError:
        raise RuntimeError('writing MP4 previews needs PyAV: pip install "facecast[preview]"') from None
    path = Path(path)
    size += size % 2  # H.264 with 4:2:0 chroma needs even sizes
    renderer = make_renderer(char, size, views, background, engine)
    weights = np.asarray(arkit_weights, np.float32)
    n = len(weights)
    samples, rate = _load_audio(audio, sample_rate) if audio is not None else (None, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    from facecast.fileio import temporary_path

    tmp = temporary_path(path, path.suffix or ".mp4")  # .NAME.PID.HOST.tmp.mp4; stale ones of dead runs removed
    rate_q = fps_fraction(fps)  # the frame clock's rate (29.97 -> 30000/1001), as the video's frame rate
    bar = _progress(n, progress)
    try:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            video = container.add_stream("libx264", rate=rate_q)
            video.width, video.height = size * len(renderer.views), size
            video.pix_fmt = "yuv420p"
            video.options = {"crf": str(crf), "preset": "superfast", "tune": "animation"}
            sound = _AudioTrack(av, container, samples, rate) if samples is not None else None
            for start in range(0, n, 64):
                block = slice(start, min(n, start + 64))
                posed = apply_weights(
                    char,
                    weights[block],
                    None if tongue_weights is None else np.asarray(tongue_weights)[block],
                    None if jaw is None else np.asarray(jaw)[block],
                    None if eyes is None else np.asarray(eyes)[block],
                )
                for i in range(block.stop - block.start):
                    frame = av.VideoFrame.from_ndarray(renderer.render(renderer.stack(posed, i)), format="rgb24")
                    frame.pts = start + i
                    frame.time_base = 1 / rate_q
                    container.mux(video.encode(frame))
                    if sound is not None:  # keep the streams interleaved
                        sound.feed_until((start + i + 1) / float(rate_q))
                    if bar is not None:
                        bar.update(1)
            container.mux(video.encode())
            if sound is not None:
                sound.finish()
        os.replace(tmp, path)
    finally:
        if hasattr(renderer, "release"):
            renderer.release()
        if bar is not None:
            bar.close()
        if tmp.exists():
            tmp.unlink()
    return path


class _AudioTrack:
    """Feeds mono float samples to an AAC stream in 1024-sample frames, as far as a given time."""

    def __init__(self, av, container, samples: np.ndarray, rate: int, chunk: int = 1024) -> None:
        self.av, self.container, self.samples, self.rate, self.chunk = av, container, samples, rate, chunk
        self.stream = container.add_stream("aac", rate=rate)
        self.stream.layout = "mono"
        self.pos = 0

    def feed_until(self, seconds: float) -> None:
        stop = min(len(self.samples), int(round(seconds * self.rate)))
        while self.pos < stop:
            block = np.ascontiguousarray(self.samples[self.pos : self.pos + self.chunk], np.float32)[None]
            frame = self.av.AudioFrame.from_ndarray(block, format="fltp", layout="mono")
            frame.sample_rate = self.rate
            frame.pts = self.pos
            frame.time_base = Fraction(1, self.rate)
            self.container.mux(self.stream.encode(frame))
            self.pos += block.shape[1]

    def finish(self) -> None:
        self.feed_until(len(self.samples) / self.rate)
        self.container.mux(self.stream.encode())


def render_pngs(
    char: Character,
    poses: Iterable[tuple[str, np.ndarray]],
    folder: str | os.PathLike,
    size: int = 384,
    views: str | tuple[View, ...] = "both",
    background: str | tuple[float, float, float] = BACKGROUND,
    engine: str = "auto",
) -> list[Path]:
    """Render named ARKit weight vectors ([52] each) to ``folder/<name>.png``; returns the paths."""
    renderer = make_renderer(char, size, views, background, engine)
    folder = Path(folder)
    paths = []
    for name, weights in poses:
        posed = apply_weights(char, np.asarray(weights, np.float32)[None])
        target = folder / f"{name}.png"
        save_png(target, renderer.render(renderer.stack(posed, 0)))
        paths.append(target)
    return paths
