"""Lip-sync metrics on real speech with no 3D ground truth: ARKit weights on the default head vs phone timings.

Every system's ARKit-52 weights (clipped to [0, 1]) pose the default head; the **lip gap** g(t) is the mean
vertical distance between the character's upper and lower lip landmark pairs (``characters.lip_gap``). The skin
is linear in the weights, so g = g0 + w . c exactly, with g0 the neutral gap (1.97 mm on the default head) and
c_k the gap change of shape k (jawOpen +22.2 mm, mouthClose -22.2 mm). Frame i sits at ``times[i]`` and carries
the phone whose span contains that time. With B the bilabial phones (P B M), O the open vowels (AA AE AH AO AW
AY EH ER EY OW), R the rounded vowels (UW OW AO UH) and S the spread vowels (IY EH AE):

* ``speech_gap_sd_mm`` = standard deviation of g over speech frames (mm): how much the mouth moves at all, the
  scale against which the scale-free numbers below should be read.
* ``closure_rate`` = |{p in B : min g over frames in [start_p - tol, end_p + tol] <= f * g0}| / |B|, with
  f = 0.5 (lips at least half-way from rest to contact) and tol = one frame (alignment error is 20-30 ms).
* ``bilabial_min_gap`` = mean over p in B of (min g in that window) / g0 (1 = at rest, 0 = lips touch).
* ``open_bilabial_mm`` = mean g over O frames - mean g over B frames (mm);
  ``open_bilabial_d`` = that difference / sqrt((var_O + var_B) / 2) (Cohen's d).
* ``openness_r0``, ``openness_r_best``, ``openness_lag_ms``: the target openness o(t) maps each phone to 0 (SIL,
  P B M) ... 1 (open vowels) (``phones.target_openness``), is smoothed by a Gaussian of sigma 40 ms and sampled
  at the frames; r(k) = Pearson correlation of the pairs (g[i + k], o[i]) pooled over utterances, for
  |k| <= 200 ms. Reported: r(0), max_k r(k) and the arg max in ms (positive: the mouth lags the phones).
* Stillness: silence runs are consecutive SIL phones lasting >= 200 ms; their frames more than 50 ms inside the
  run are silence frames, frames of speech phones are speech frames. ``silence_motion_ratio`` =
  mean |g[i+1] - g[i]| over silence-frame pairs / the same over speech-frame pairs; ``silence_offset_ratio`` =
  mean |g - g0| over silence frames / the same over speech frames (0 = the mouth rests in silences);
  ``silence_motion_mm_s`` = mean |g[i+1] - g[i]| * fps in silences (mm/s).
* Rounding, from the weights: r = mouthFunnel + mouthPucker. ``rounding_diff`` = mean r over R frames - mean r
  over S frames; ``rounding_d`` = Cohen's d of the two.

Values pool frames or phones over utterances; :func:`bootstrap_se` resamples utterances for a standard error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d

from facecast.constants import ARKIT_NAMES
from facecast.evaluation.align import Phone, phone_index
from facecast.evaluation.phones import BILABIAL, CMU_PHONES, OPEN, ROUNDED, SILENCE, SPEECH, SPREAD, target_openness


@dataclass(frozen=True)
class MetricSpec:
    key: str
    label: str
    better: str  # "higher", "lower" or "near 0"
    count: str  # what ``n`` counts


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("speech_gap_sd_mm", "lip-gap SD during speech (mm): how much the mouth moves", "context", "phones"),
    MetricSpec("closure_rate", "bilabial closure rate (gap <= 0.5 g0)", "higher", "P/B/M phones"),
    MetricSpec("bilabial_min_gap", "bilabial min gap / neutral gap", "lower", "P/B/M phones"),
    MetricSpec("open_bilabial_mm", "open-vowel minus bilabial gap (mm)", "higher", "open + P/B/M phones"),
    MetricSpec("open_bilabial_d", "open vs bilabial gap, Cohen's d", "higher", "open + P/B/M phones"),
    MetricSpec("openness_r0", "corr(gap, phone openness), lag 0", "higher", "phones"),
    MetricSpec("openness_r_best", "corr(gap, phone openness), best lag", "higher", "phones"),
    MetricSpec("openness_lag_ms", "best lag (ms, + = mouth late)", "near 0", "phones"),
    MetricSpec("silence_motion_ratio", "lip speed, silence / speech", "lower", "silences >= 200 ms"),
    MetricSpec("silence_offset_ratio", "distance from rest, silence / speech", "lower", "silences >= 200 ms"),
    MetricSpec("silence_motion_mm_s", "lip speed in silence (mm/s)", "lower", "silences >= 200 ms"),
    MetricSpec("rounding_diff", "funnel+pucker, rounded minus spread vowels", "higher", "rounded + spread phones"),
    MetricSpec("rounding_d", "funnel+pucker rounded vs spread, Cohen's d", "higher", "rounded + spread phones"),
)


@dataclass(frozen=True)
class MetricConfig:
    """Metric parameters (see the module docstring); ``closure_tolerance=None`` means one frame."""

    closure_fraction: float = 0.5
    closure_tolerance: float | None = None
    openness_sigma: float = 0.04
    max_lag: float = 0.2
    min_silence: float = 0.2
    silence_margin: float = 0.05


@dataclass(frozen=True)
class LipGeometry:
    """The lip gap as an affine function of ARKit weights on one character (cm)."""

    neutral_gap: float
    gap_basis: np.ndarray  # [52]

    def gap(self, weights: np.ndarray) -> np.ndarray:
        """Lip gap per frame for ARKit weights [N, 52] (clipped to [0, 1])."""
        w = np.clip(np.asarray(weights, np.float64), 0.0, 1.0)
        return self.neutral_gap + w @ self.gap_basis


def lip_geometry(char) -> LipGeometry:
    """The lip-gap model of a :class:`facecast.characters.Character` (exactly ``lip_gap`` of ``apply_weights``)."""
    from facecast.characters import lip_gap

    deltas = np.asarray(char.arkit_deltas["skin"], np.float64)  # [52, V, 3]
    basis = (deltas[:, char.lip_upper, 1] - deltas[:, char.lip_lower, 1]).mean(axis=1)
    return LipGeometry(float(lip_gap(char, char.skin.vertices)), basis)


def rounding_curve(weights: np.ndarray) -> np.ndarray:
    """mouthFunnel + mouthPucker per frame (weights clipped to [0, 1])."""
    w = np.clip(np.asarray(weights, np.float64), 0.0, 1.0)
    return w[:, ARKIT_NAMES.index("mouthFunnel")] + w[:, ARKIT_NAMES.index("mouthPucker")]


@dataclass
class Curves:
    """One system's mouth on one utterance: lip gap (cm) and rounding per frame, with the phone timings."""

    gap: np.ndarray
    rounding: np.ndarray
    times: np.ndarray
    phones: Sequence[Phone]
    neutral_gap: float
    name: str = ""

    @property
    def fps(self) -> float:
        return float((len(self.times) - 1) / (self.times[-1] - self.times[0])) if len(self.times) > 1 else 30.0


def curves_from_weights(
    geometry: LipGeometry, weights: np.ndarray, times: np.ndarray, phones: Sequence[Phone], name: str = ""
) -> Curves:
    """ARKit weights [N, 52] at ``times`` -> :class:`Curves` on the given head."""
    return Curves(geometry.gap(weights), rounding_curve(weights), np.asarray(times, np.float64), list(phones),
                  geometry.neutral_gap, name)  # fmt: skip


@dataclass
class UtteranceStats:
    """What one utterance contributes to each pooled metric."""

    bil_closed: np.ndarray
    bil_min_rel: np.ndarray
    open_gap: np.ndarray
    bil_gap: np.ndarray
    n_open: int
    n_bil: int
    gap: np.ndarray
    openness: np.ndarray
    n_phones: int
    speech_gap: np.ndarray
    sil_motion: np.ndarray
    speech_motion: np.ndarray
    sil_offset: np.ndarray
    speech_offset: np.ndarray
    n_silences: int
    round_r: np.ndarray
    spread_r: np.ndarray
    n_round: int
    n_spread: int
    fps: float
    extra: dict = field(default_factory=dict)


def openness_curve(phones: Sequence[Phone], times: np.ndarray, sigma: float = 0.04, step: float = 0.001) -> np.ndarray:
    """Target openness at ``times``: phone openness on a 1 ms grid, Gaussian-smoothed (``sigma`` s), sampled."""
    end = max(float(np.max(times)) if len(times) else 0.0, max((p.end for p in phones), default=0.0)) + 4 * sigma
    grid = np.arange(0.0, end + step, step)
    idx = phone_index(phones, grid)
    levels = np.array([target_openness(p.name) for p in phones] + [0.0])
    fine = levels[idx]  # idx -1 picks the trailing 0.0 (silence)
    if sigma > 0:
        fine = gaussian_filter1d(fine, sigma / step, mode="nearest")
    return np.interp(times, grid, fine)


def _silence_runs(phones: Sequence[Phone], min_len: float) -> list[tuple[float, float]]:
    runs: list[list[float]] = []
    for p in phones:
        if p.name != SILENCE:
            continue
        if runs and abs(runs[-1][1] - p.start) < 1e-6:
            runs[-1][1] = p.end
        else:
            runs.append([p.start, p.end])
    return [(a, b) for a, b in runs if b - a >= min_len - 1e-9]


def utterance_stats(c: Curves, config: MetricConfig | None = None) -> UtteranceStats:
    """Per-utterance contributions to every metric (see the module docstring for the definitions)."""
    config = config or MetricConfig()
    gap, times, phones = np.asarray(c.gap, np.float64), np.asarray(c.times, np.float64), list(c.phones)
    fps = c.fps
    g0 = c.neutral_gap
    idx = phone_index(phones, times)
    names = np.array([p.name for p in phones] + [SILENCE], dtype=object)[idx]

    # bilabial closure: per phone, the smallest gap within the phone widened by the tolerance
    tol = config.closure_tolerance if config.closure_tolerance is not None else 1.0 / fps
    closed, min_rel = [], []
    for p in phones:
        if p.name not in BILABIAL:
            continue
        sel = np.flatnonzero((times >= p.start - tol - 1e-9) & (times <= p.end + tol + 1e-9))
        if len(sel) == 0:
            sel = [int(np.argmin(np.abs(times - 0.5 * (p.start + p.end))))]
        m = float(np.min(gap[sel]))
        closed.append(m <= config.closure_fraction * g0)
        min_rel.append(m / g0)

    is_open = np.isin(names, list(OPEN))
    is_bil = np.isin(names, list(BILABIAL))

    # stillness
    sil_frames = np.zeros(len(times), bool)
    runs = _silence_runs(phones, config.min_silence)
    for a, b in runs:
        sil_frames |= (times >= a + config.silence_margin) & (times <= b - config.silence_margin)
    speech_frames = np.isin(names, list(CMU_PHONES | {SPEECH})) & ~sil_frames
    step = np.abs(np.diff(gap))
    sil_pairs = sil_frames[:-1] & sil_frames[1:]
    speech_pairs = speech_frames[:-1] & speech_frames[1:]

    is_round = np.isin(names, list(ROUNDED))
    is_spread = np.isin(names, list(SPREAD))
    rounding = np.asarray(c.rounding, np.float64)

    def count(mask: np.ndarray) -> int:
        return len(np.unique(idx[mask & (idx >= 0)]))

    return UtteranceStats(
        bil_closed=np.array(closed, bool),
        bil_min_rel=np.array(min_rel),
        open_gap=gap[is_open],
        bil_gap=gap[is_bil],
        n_open=count(is_open),
        n_bil=count(is_bil),
        gap=gap,
        openness=openness_curve(phones, times, config.openness_sigma),
        n_phones=sum(p.name in CMU_PHONES or p.name == SPEECH for p in phones),
        speech_gap=gap[speech_frames],
        sil_motion=step[sil_pairs],
        speech_motion=step[speech_pairs],
        sil_offset=np.abs(gap[sil_frames] - g0),
        speech_offset=np.abs(gap[speech_frames] - g0),
        n_silences=sum(1 for a, b in runs if np.any((times >= a + config.silence_margin)
                                                    & (times <= b - config.silence_margin))),
        round_r=rounding[is_round],
        spread_r=rounding[is_spread],
        n_round=count(is_round),
        n_spread=count(is_spread),
        fps=fps,
    )  # fmt: skip


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if len(x) else float("nan")


def _ratio(a: float, b: float) -> float:
    return a / b if np.isfinite(a) and np.isfinite(b) and b > 0 else float("nan")


def cohens_d(a: np.ndarray, b: np.ndarray) -> float:
    """(mean a - mean b) / sqrt((var a + var b) / 2); NaN when either is empty or both are constant."""
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    sd = np.sqrt(0.5 * (np.var(a) + np.var(b)))
    return float((np.mean(a) - np.mean(b)) / sd) if sd > 1e-12 else float("nan")


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; NaN when fewer than 3 pairs or either side is constant."""
    if len(x) < 3:
        return float("nan")
    x, y = x - x.mean(), y - y.mean()
    den = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / den) if den > 1e-15 else float("nan")


def lag_correlations(stats: Sequence[UtteranceStats], max_lag_frames: int) -> dict[int, float]:
    """r(k) of the pooled pairs (gap[i + k], openness[i]) for k in [-max, max] frames."""
    out = {}
    for k in range(-max_lag_frames, max_lag_frames + 1):
        xs, ys = [], []
        for s in stats:
            n = len(s.gap)
            lo, hi = max(0, -k), min(n, n - k)
            if hi > lo:
                xs.append(s.gap[lo + k : hi + k])
                ys.append(s.openness[lo:hi])
        out[k] = pearson(np.concatenate(xs), np.concatenate(ys)) if xs else float("nan")
    return out


def summarize(stats: Sequence[UtteranceStats], config: MetricConfig | None = None) -> dict[str, float]:
    """Pooled metric values over utterances (keys of :data:`METRICS`)."""
    config = config or MetricConfig()
    cat = np.concatenate
    closed = cat([s.bil_closed for s in stats]) if stats else np.zeros(0, bool)
    min_rel = cat([s.bil_min_rel for s in stats]) if stats else np.zeros(0)
    open_gap = cat([s.open_gap for s in stats]) if stats else np.zeros(0)
    bil_gap = cat([s.bil_gap for s in stats]) if stats else np.zeros(0)
    fps = float(np.median([s.fps for s in stats])) if stats else 30.0
    max_lag = int(round(config.max_lag * fps))
    r = lag_correlations(stats, max_lag) if stats else {}
    finite = {k: v for k, v in r.items() if np.isfinite(v)}
    best = max(finite, key=lambda k: (finite[k], -abs(k))) if finite else None
    sil_motion = _mean(cat([s.sil_motion for s in stats])) if stats else float("nan")
    speech_motion = _mean(cat([s.speech_motion for s in stats])) if stats else float("nan")
    sil_off = _mean(cat([s.sil_offset for s in stats])) if stats else float("nan")
    speech_off = _mean(cat([s.speech_offset for s in stats])) if stats else float("nan")
    round_r = cat([s.round_r for s in stats]) if stats else np.zeros(0)
    spread_r = cat([s.spread_r for s in stats]) if stats else np.zeros(0)
    speech_gap = cat([s.speech_gap for s in stats]) if stats else np.zeros(0)
    return {
        "speech_gap_sd_mm": 10.0 * float(np.std(speech_gap)) if len(speech_gap) else float("nan"),
        "closure_rate": _mean(closed.astype(np.float64)),
        "bilabial_min_gap": _mean(min_rel),
        "open_bilabial_mm": 10.0 * (_mean(open_gap) - _mean(bil_gap)),
        "open_bilabial_d": cohens_d(open_gap, bil_gap),
        "openness_r0": r.get(0, float("nan")),
        "openness_r_best": finite[best] if best is not None else float("nan"),
        "openness_lag_ms": 1000.0 * best / fps if best is not None else float("nan"),
        "silence_motion_ratio": _ratio(sil_motion, speech_motion),
        "silence_offset_ratio": _ratio(sil_off, speech_off),
        "silence_motion_mm_s": 10.0 * sil_motion * fps,
        "rounding_diff": _mean(round_r) - _mean(spread_r),
        "rounding_d": cohens_d(round_r, spread_r),
    }


def counts(stats: Sequence[UtteranceStats]) -> dict[str, int]:
    """How many phones (or silences) each metric used."""
    bil = sum(len(s.bil_closed) for s in stats)
    open_bil = sum(s.n_open + s.n_bil for s in stats)
    phones = sum(s.n_phones for s in stats)
    silences = sum(s.n_silences for s in stats)
    rounding = sum(s.n_round + s.n_spread for s in stats)
    return {
        "speech_gap_sd_mm": phones,
        "closure_rate": bil,
        "bilabial_min_gap": bil,
        "open_bilabial_mm": open_bil,
        "open_bilabial_d": open_bil,
        "openness_r0": phones,
        "openness_r_best": phones,
        "openness_lag_ms": phones,
        "silence_motion_ratio": silences,
        "silence_offset_ratio": silences,
        "silence_motion_mm_s": silences,
        "rounding_diff": rounding,
        "rounding_d": rounding,
    }


def bootstrap_se(
    stats: Sequence[UtteranceStats],
    statistic: Callable[[Sequence[UtteranceStats]], dict[str, float]],
    n_boot: int = 200,
    seed: int = 0,
) -> dict[str, float]:
    """Bootstrap standard error of each value over utterances (resampled with replacement); NaN with < 2."""
    keys = list(statistic(stats).keys()) if stats else [m.key for m in METRICS]
    if len(stats) < 2 or n_boot < 2:
        return {k: float("nan") for k in keys}
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {k: [] for k in keys}
    for _ in range(n_boot):
        sample = [stats[i] for i in rng.integers(0, len(stats), len(stats))]
        for k, v in statistic(sample).items():
            draws[k].append(v)
    out = {}
    for k, vals in draws.items():
        v = np.asarray(vals, np.float64)
        v = v[np.isfinite(v)]
        out[k] = float(np.std(v, ddof=1)) if len(v) >= 2 else float("nan")
    return out


def evaluate_curves(
    curves: Sequence[Curves], config: MetricConfig | None = None, n_boot: int = 200, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Every metric over a set of utterances: {key: {"value", "se", "n"}}."""
    config = config or MetricConfig()
    stats = [utterance_stats(c, config) for c in curves]
    values = summarize(stats, config)
    se = bootstrap_se(stats, lambda s: summarize(s, config), n_boot, seed)
    n = counts(stats)
    return {k: {"value": values[k], "se": se.get(k, float("nan")), "n": n[k]} for k in values}
