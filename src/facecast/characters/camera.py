"""Preview cameras: named views, and the framing both renderers share (so a point lands on the same pixel)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class View:
    """A camera direction: the head turns ``yaw`` degrees about the vertical axis (+ shows its right cheek)."""

    yaw: float = 0.0
    pitch: float = 0.0


FRONT = View(0.0, 0.0)
THREE_QUARTER = View(35.0, 5.0)
PROFILE = View(88.0, 0.0)
VIEW_SETS: dict[str, tuple[View, ...]] = {
    "front": (FRONT,),
    "three-quarter": (THREE_QUARTER,),
    "profile": (PROFILE,),
    "both": (FRONT, THREE_QUARTER),
    "all": (FRONT, THREE_QUARTER, PROFILE),
}
"""``--preview-views`` names -> the views drawn side by side."""


def parse_views(spec: str | tuple[View, ...]) -> tuple[View, ...]:
    """Views from a name in :data:`VIEW_SETS` or a comma list of them (``front,profile``), or views as they are."""
    if not isinstance(spec, str):
        views = tuple(spec)
        if not views or not all(isinstance(v, View) for v in views):
            raise ValueError("views must be a non-empty sequence of View")
        return views
    out: list[View] = []
    for name in [s.strip().lower() for s in spec.split(",") if s.strip()]:
        if name not in VIEW_SETS:
            raise ValueError(f"unknown preview view {name!r}; choose from {', '.join(VIEW_SETS)}")
        out += VIEW_SETS[name]
    if not out:
        raise ValueError(f"no preview view named; choose from {', '.join(VIEW_SETS)}")
    return tuple(out)


def parse_colour(spec: str | tuple[float, float, float]) -> tuple[float, float, float]:
    """An RGB colour in 0..1 from ``#rrggbb``, ``r,g,b`` (0..255) or a 3-tuple of floats in 0..1."""
    if not isinstance(spec, str):
        rgb = tuple(float(c) for c in spec)
        if len(rgb) != 3 or not all(0.0 <= c <= 1.0 for c in rgb):
            raise ValueError(f"a colour is three numbers in 0..1, got {spec!r}")
        return rgb  # type: ignore[return-value]
    text = spec.strip()
    named = {"dark": "#292b33", "black": "#000000", "white": "#ffffff", "grey": "#808080", "gray": "#808080",
             "green": "#00b140", "blue": "#3a5f8a"}  # fmt: skip
    text = named.get(text.lower(), text)
    try:
        if text.startswith("#") and len(text) == 7:
            values = [int(text[i : i + 2], 16) for i in (1, 3, 5)]
        else:
            values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        choices = ", ".join(named)
        raise ValueError(f"background {spec!r} is not a colour: use #rrggbb, r,g,b (0-255) or one of {choices}")
    return tuple(v / 255.0 for v in values)  # type: ignore[return-value]


def views_option(text: str) -> str:
    """``--preview-views``: the text, checked (an unknown name is a usage error naming the choices)."""
    try:
        parse_views(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def colour_option(text: str) -> str:
    """``--preview-background``: the text, checked."""
    try:
        parse_colour(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def rotation(view: View) -> np.ndarray:
    """Model -> camera rotation of a view ([3, 3] float32)."""
    a, b = np.radians(view.yaw), np.radians(view.pitch)
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return (rx @ ry).astype(np.float32)


@dataclass(frozen=True)
class Framing:
    """Where the camera looks (``centre``), how far away it is and its focal length in pixels."""

    centre: np.ndarray
    distance: float
    focal: float


def framing(skin: np.ndarray, size: int) -> Framing:
    """Frame the skin's bounding box (the head and neck) with a margin, in a ``size``-pixel square view."""
    lo, hi = skin.min(axis=0), skin.max(axis=0)
    centre = ((lo + hi) / 2).astype(np.float32)
    half_height = 0.6 * float(hi[1] - lo[1])
    distance = 8.0 * half_height
    return Framing(centre, distance, 0.5 * size * distance / half_height)
