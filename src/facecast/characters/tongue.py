"""The 16 Audio2Face tongue poses, made by simple procedural deformations of the character's tongue part.

What the CC0 data can and cannot give: the Face Units pack has a single tongue target, ``tongueOut`` (the
tongue pushed forward out of the mouth), and the jaw targets (``jawOpen``, ``jawForward``, ``jawLeft``,
``jawRight``) carry the tongue along with the lower jaw. None of Audio2Face's 16 tongue poses (tip up/down/
left/right, roll up/down/left/right, whole tongue up/down/left/right, in, stretch, wide, narrow) is in the data,
and no captured tongue motion is. So they are synthesised here: each pose is a smooth bend, twist, shift or scale
of the neutral tongue in its own frame (long axis z from root to tip, y up, x to the character's left), with the
root held still and the motion growing toward the tip. They have plausible sizes (0.5 to 1.5 cm) and the right
directions for the blendshape solver and for previews; they are not anatomy and carry no volume preservation.

Sign conventions: "Left" is the character's left (+x); ``tongueRollLeft`` turns the upper surface toward the
character's left; ``tongueIn`` pulls the tip back toward the throat.
"""

from __future__ import annotations

import numpy as np

from facecast.constants import TONGUE_NAMES


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _rotation(axis: str, angle: np.ndarray) -> np.ndarray:
    """Right-handed rotation matrices about a coordinate axis, one per angle ([N, 3, 3])."""
    c, s = np.cos(angle), np.sin(angle)
    one, zero = np.ones_like(angle), np.zeros_like(angle)
    if axis == "x":
        rows = [[one, zero, zero], [zero, c, -s], [zero, s, c]]
    elif axis == "y":
        rows = [[c, zero, s], [zero, one, zero], [-s, zero, c]]
    else:
        rows = [[c, -s, zero], [s, c, zero], [zero, zero, one]]
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)


def _rotate_about(points: np.ndarray, pivots: np.ndarray, axis: str, angle: np.ndarray) -> np.ndarray:
    """Displacement that rotates each point about its own pivot by its own angle."""
    rel = points - pivots
    return np.einsum("nij,nj->ni", _rotation(axis, angle), rel) - rel


class TongueFrame:
    """The tongue's own coordinates: s in [0, 1] from root to tip, q in [-1, 1] across, and the centre line."""

    def __init__(self, tongue: np.ndarray, bins: int = 12) -> None:
        self.points = tongue
        z = tongue[:, 2]
        self.length = float(np.ptp(z))
        self.s = (z - z.min()) / max(self.length, 1e-9)
        half = max(float(np.abs(tongue[:, 0]).max()), 1e-9)
        self.q = tongue[:, 0] / half
        edges = np.linspace(0.0, 1.0, bins + 1)
        which = np.clip(np.digitize(self.s, edges) - 1, 0, bins - 1)
        centres, mids = [], []
        for b in range(bins):
            sel = which == b
            if sel.any():
                centres.append(0.5 * (edges[b] + edges[b + 1]))
                mids.append(tongue[sel, 1].mean())
        self._centre_s = np.array(centres)
        self._centre_y = np.array(mids)

    def centre_y(self, s: np.ndarray) -> np.ndarray:
        """Height of the tongue's centre line at ``s``."""
        return np.interp(s, self._centre_s, self._centre_y)

    def pivot_at(self, s0: float) -> np.ndarray:
        """The point on the centre line at ``s0`` (x = 0)."""
        z = self.points[:, 2].min() + s0 * self.length
        return np.array([0.0, float(self.centre_y(np.array([s0]))[0]), z])


def tongue_pose_deltas(tongue: np.ndarray) -> np.ndarray:
    """Deltas [16, Vt, 3] of the tongue part (same units as ``tongue``, sized for centimetres) in TONGUE_NAMES order."""
    f = TongueFrame(tongue)
    p, s, q, n = f.points, f.s, f.q, len(tongue)
    unit = f.length / 7.5  # the deformation sizes below are for a 7.5 cm tongue
    front = _smoothstep(0.0, 0.45, s)  # 0 at the root, 1 over the front half
    tip = np.clip((s - 0.35) / 0.65, 0.0, 1.0) ** 1.5  # bends act on the front part, most at the tip
    yc = f.centre_y(s)
    bend_pivot = np.broadcast_to(f.pivot_at(0.35), (n, 3))
    line = np.stack([np.zeros(n), yc, p[:, 2]], axis=1)
    out: dict[str, np.ndarray] = {}

    def shift(dx: np.ndarray | float = 0.0, dy: np.ndarray | float = 0.0, dz: np.ndarray | float = 0.0) -> np.ndarray:
        d = np.zeros((n, 3))
        d[:, 0], d[:, 1], d[:, 2] = dx, dy, dz
        return d

    tip_bend, tip_turn, twist = np.radians(30.0), np.radians(25.0), np.radians(30.0)
    out["tongueTipUp"] = _rotate_about(p, bend_pivot, "x", -tip_bend * tip)
    out["tongueTipDown"] = _rotate_about(p, bend_pivot, "x", tip_bend * tip)
    out["tongueTipLeft"] = _rotate_about(p, bend_pivot, "y", tip_turn * tip)
    out["tongueTipRight"] = _rotate_about(p, bend_pivot, "y", -tip_turn * tip)
    out["tongueRollUp"] = shift(dy=0.8 * unit * q**2 * front)
    out["tongueRollDown"] = shift(dy=-0.6 * unit * q**2 * front)
    out["tongueRollLeft"] = _rotate_about(p, line, "z", -twist * front * s)
    out["tongueRollRight"] = _rotate_about(p, line, "z", twist * front * s)
    ramp = 0.35 + 0.65 * s
    out["tongueUp"] = shift(dy=1.0 * unit * ramp)
    out["tongueDown"] = shift(dy=-0.8 * unit * ramp)
    out["tongueLeft"] = shift(dx=0.8 * unit * ramp)
    out["tongueRight"] = shift(dx=-0.8 * unit * ramp)
    out["tongueIn"] = shift(dz=-1.2 * unit * s)
    out["tongueStretch"] = shift(dx=-0.2 * p[:, 0] * s, dz=1.5 * unit * s)
    out["tongueWide"] = shift(dx=0.3 * p[:, 0] * front, dy=-0.2 * (p[:, 1] - yc) * front)
    out["tongueNarrow"] = shift(dx=-0.3 * p[:, 0] * front, dy=0.15 * (p[:, 1] - yc) * front)
    return np.stack([out[name] for name in TONGUE_NAMES]).astype(np.float32)
