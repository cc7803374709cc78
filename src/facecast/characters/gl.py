"""The OpenGL preview renderer: moderngl on a headless EGL context (Mesa's llvmpipe on a CPU machine).

Depth-tested, anti-aliased (a post-process edge blend by default, about half the CPU time of 4x multisampling on
llvmpipe; ``samples=4`` for MSAA), per-pixel lighting (:mod:`facecast.characters.shaders`) of the dressed head
(:mod:`facecast.characters.dressing`) with smooth per-vertex normals computed each frame. All views of a frame
are drawn into one framebuffer side by side and read back once.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp

from facecast.characters.camera import FRONT, THREE_QUARTER, View, framing, rotation
from facecast.characters.character import Character
from facecast.characters.dressing import dress
from facecast.characters.shaders import EDGE_SMOOTH_FRAGMENT, FRAGMENT, SCREEN_VERTEX, VERTEX

CULL = True
GL_HINT = (
    "the fast OpenGL preview needs moderngl and Mesa's EGL (pip install 'facecast[preview]'; on Debian/Ubuntu: "
    "apt-get install libegl1 libgl1-mesa-dri, or make system-deps)"
)


class GLUnavailableError(RuntimeError):
    """No headless OpenGL context could be made here."""


def gl_context():
    """A standalone OpenGL 3.3 context: EGL first (no display needed), then the platform default."""
    try:
        import moderngl
    except ImportError as exc:
        raise GLUnavailableError(f"{GL_HINT} ({exc})") from None
    errors = []
    for kwargs in ({"backend": "egl"}, {}):
        try:
            return moderngl.create_standalone_context(require=330, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any failure means: try the next way, then give the hint
            errors.append(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    raise GLUnavailableError(f"{GL_HINT} ({'; '.join(errors)})")


def vertex_normals_matrix(faces: np.ndarray, count: int) -> sp.csr_matrix:
    """[V, F] incidence: summing face normals (area-weighted cross products) per vertex."""
    rows = faces.reshape(-1)
    cols = np.repeat(np.arange(len(faces)), 3)
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(count, len(faces)))


class GLRenderer:
    """Renders posed parts of one character: views side by side, each ``size`` x ``size`` pixels."""

    def __init__(
        self,
        char: Character,
        size: int = 384,
        views: tuple[View, ...] = (FRONT, THREE_QUARTER),
        background: tuple[float, float, float] = (0.16, 0.17, 0.20),
        samples: int = 0,
    ) -> None:
        """``samples`` > 0: multisampled anti-aliasing (4x on llvmpipe whatever is asked, about twice the CPU time);
        0: the cheaper post-process edge blend (:data:`~facecast.characters.shaders.EDGE_SMOOTH_FRAGMENT`)."""
        if size < 16:
            raise ValueError(f"size must be at least 16 pixels, got {size}")
        self.char, self.size, self.views = char, int(size), tuple(views)
        self.background = tuple(float(c) for c in background)
        self.part_names = list(char.parts)
        counts = np.cumsum([0] + [len(char.parts[n].vertices) for n in self.part_names])
        self.slices = {n: slice(int(counts[i]), int(counts[i + 1])) for i, n in enumerate(self.part_names)}
        self.num_vertices = int(counts[-1])
        self.dressed = d = dress(char)
        frame = framing(d.rest[d.slices["skin"]], self.size)
        self.centre, self.distance, self.focal = frame.centre, frame.distance, frame.focal
        self._incidence = vertex_normals_matrix(d.faces, len(d.rest))
        self._lips = np.concatenate([char.lip_upper, char.lip_lower])
        self.ctx = ctx = gl_context()
        self.prog = ctx.program(vertex_shader=VERTEX, fragment_shader=FRAGMENT)
        static = np.concatenate([d.rest, d.colour, d.material[:, None], d.lash, d.eye_dir], axis=1)
        self._static = ctx.buffer(np.ascontiguousarray(static, np.float32).tobytes())
        self._dynamic = ctx.buffer(reserve=len(d.rest) * 6 * 4, dynamic=True)
        self._index = ctx.buffer(np.ascontiguousarray(d.faces, np.int32).tobytes())
        self.vao = ctx.vertex_array(
            self.prog,
            [
                (self._static, "3f 3f 1f 2f 3f", "in_rest", "in_colour", "in_material", "in_lash", "in_eye"),
                (self._dynamic, "3f 3f", "in_pos", "in_normal"),
            ],
            self._index,
        )
        width, height = self.size * len(self.views), self.size
        samples = min(int(samples), int(ctx.max_samples))
        self._resolved = ctx.framebuffer(ctx.renderbuffer((width, height), 4))
        if samples > 0:
            colour = ctx.renderbuffer((width, height), 4, samples=samples)
            self._smooth = None
        else:  # draw into a texture, then blend its edges into _resolved
            colour = self._scene = ctx.texture((width, height), 4)
            self._scene.filter = (ctx.LINEAR, ctx.LINEAR)
            self._scene.repeat_x = self._scene.repeat_y = False
            smooth = ctx.program(vertex_shader=SCREEN_VERTEX, fragment_shader=EDGE_SMOOTH_FRAGMENT)
            smooth["texel"].value = (1.0 / width, 1.0 / height)
            self._smooth = ctx.vertex_array(smooth, [])
        self._msaa = ctx.framebuffer(colour, ctx.depth_renderbuffer((width, height), samples=samples))
        self._rotations = [rotation(v) for v in self.views]
        self.prog["centre"].value = tuple(float(c) for c in self.centre)
        self.prog["distance_"].value = self.distance
        self.prog["focal"].value = self.focal / (self.size / 2)
        self.prog["near_"].value = 0.5 * self.distance
        self.prog["far_"].value = 1.5 * self.distance

    def stack(self, posed: Mapping[str, np.ndarray], frame: int | None = None) -> np.ndarray:
        """All parts' vertices of one frame as one [V, 3] array (``posed`` from :func:`apply_weights`)."""
        out = np.empty((self.num_vertices, 3), np.float32)
        for name in self.part_names:
            out[self.slices[name]] = posed[name] if frame is None else posed[name][frame]
        return out

    def dressed_vertices(self, vertices: np.ndarray) -> np.ndarray:
        """The render mesh's vertices for stacked part vertices."""
        v = np.asarray(vertices, np.float32)
        return self.dressed.pose({n: v[s] for n, s in self.slices.items()})

    def render(self, vertices: np.ndarray) -> np.ndarray:
        """One frame ([V, 3] stacked part vertices) -> [size, size * views, 3] uint8."""
        v = self.dressed_vertices(vertices)
        f = self.dressed.faces
        a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
        normals = np.asarray(self._incidence @ np.cross(b - a, c - a))
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        self._dynamic.write(np.ascontiguousarray(np.concatenate([v, normals], axis=1), np.float32).tobytes())
        skin = np.asarray(vertices, np.float32)[self.slices["skin"]]
        self.prog["lip_front"].value = float(skin[self._lips, 2].mean()) if len(self._lips) else 0.0
        ctx = self.ctx
        self._msaa.use()
        ctx.enable(ctx.DEPTH_TEST)
        ctx.enable(ctx.CULL_FACE) if CULL else ctx.disable(ctx.CULL_FACE)
        self._msaa.clear(*self.background, 1.0, depth=1.0)
        for k, rot in enumerate(self._rotations):
            self._msaa.viewport = (k * self.size, 0, self.size, self.size)
            self.prog["rot"].write(np.ascontiguousarray(rot.T, np.float32).tobytes())  # GLSL is column-major
            self.vao.render()
        if self._smooth is None:
            ctx.copy_framebuffer(self._resolved, self._msaa)
        else:
            self._resolved.use()
            ctx.disable(ctx.DEPTH_TEST)
            self._scene.use(0)
            self._smooth.render(vertices=3)
        data = self._resolved.read(components=3, alignment=1)
        image = np.frombuffer(data, np.uint8).reshape(self.size, self.size * len(self.views), 3)
        return np.ascontiguousarray(image[::-1])

    def release(self) -> None:
        """Free the GL objects and the context."""
        self.ctx.release()
