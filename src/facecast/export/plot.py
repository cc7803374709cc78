"""Plot an animation: the audio waveform on top, chosen blendshape curves below it, one shared time axis (PNG)."""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facecast.animation import Animation
from facecast.constants import SAMPLE_RATE
from facecast.fileio import OutputError, atomic_write, writing

DEFAULT_CURVES = ("jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "eyeBlinkLeft")
_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
_MAX_WAVE_POINTS = 20_000


def _waveform(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times, min, max) envelope of the audio, at most ``_MAX_WAVE_POINTS`` columns."""
    samples = np.asarray(audio, np.float32).reshape(-1)
    step = max(1, int(np.ceil(len(samples) / _MAX_WAVE_POINTS)))
    usable = len(samples) // step * step
    blocks = samples[:usable].reshape(-1, step) if usable else samples.reshape(-1, 1)
    times = (np.arange(len(blocks)) * step + step / 2) / sample_rate
    return times, blocks.min(axis=1), blocks.max(axis=1)


def _check_curves(anim: Animation, curves: Sequence[str]) -> list[str]:
    names = [c.strip() for c in curves if c.strip()]
    if not names:
        raise ValueError("no curves to plot")
    known = set(anim.skin_names if anim.skin_weights is not None else ())
    known |= set(anim.tongue_names if anim.tongue_weights is not None else ())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown curve {', '.join(unknown)}; the animation has {', '.join(sorted(known)) or 'none'}")
    return names


def plot_animation(
    anim: Animation,
    audio: np.ndarray | None,
    curves: Sequence[str] = DEFAULT_CURVES,
    path: str | os.PathLike = "plot.png",
    *,
    sample_rate: int = SAMPLE_RATE,
    width: int = 1200,
    height: int = 600,
    title: str | None = None,
) -> Path:
    """Write a ``width`` x ``height`` PNG: the waveform (``audio``, else ``anim.audio``, else none) above the
    ``curves`` (skin or tongue pose names), all on the animation's time axis. Returns the path."""
    try:
        from matplotlib.figure import Figure  # no pyplot: the user's backend is left alone
    except ImportError:
        raise RuntimeError('plotting needs matplotlib: pip install "facecast[plot]"') from None

    names = _check_curves(anim, curves)
    path = Path(path)
    if path.is_dir():
        raise OutputError(path, "is a folder; name the PNG to write", errno.EISDIR)
    if audio is None:
        audio = anim.audio
    dpi = 100
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    rows = 2 if audio is not None and len(audio) else 1
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False, gridspec_kw={"height_ratios": [1, 2][-rows:]})[:, 0]
    end = max(anim.duration, len(audio) / sample_rate if rows == 2 else 0.0)
    if rows == 2:
        t, lo, hi = _waveform(audio, sample_rate)
        axes[0].fill_between(t, lo, hi, color="#555555", linewidth=0.5)
        axes[0].set_ylabel("audio")
        axes[0].set_ylim(-1.05, 1.05)
    ax = axes[-1]
    for i, name in enumerate(names):
        ax.plot(anim.times, anim.weights(name), label=name, color=_COLOURS[i % len(_COLOURS)], linewidth=1.4)
    low = min(0.0, *(float(anim.weights(n).min()) for n in names)) if len(anim) else 0.0
    high = max(1.0, *(float(anim.weights(n).max()) for n in names)) if len(anim) else 1.0
    ax.set_ylim(low - 0.05, high + 0.05)  # weights live in [0, 1]: the same axis for every curve
    ax.set_ylabel("weight")
    ax.set_xlabel("time (s)")
    ax.set_xlim(0.0, end if end > 0 else 1.0)
    ax.legend(loc="upper right", fontsize="small")
    for a in axes:
        a.grid(True, alpha=0.3)
    if title:
        axes[0].set_title(title)
    fig.subplots_adjust(
        left=72 / width, right=1 - 16 / width, bottom=48 / height, top=1 - (34 if title else 12) / height, hspace=0.08
    )  # fixed margins: the layout does not depend on the data
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    with writing(path):  # a full or read-only file system: one OutputError naming the file
        atomic_write(path, lambda fh: fh.write(buf.getvalue()))
    return path
