"""Two lip-sync reports side by side: what changed from a baseline, in standard errors.

A trained model is judged against the one it should replace (the built-in model, or an earlier run) on the same
clips: ``facecast evaluate-lipsync --out base.json`` for each, then :func:`compare_reports`. Every metric of every
corpus and listening condition the two reports share gets the difference and ``z``, the difference over the
combined standard error ``sqrt(se_base² + se_new²)``; a metric is *better* or *worse* when ``|z|`` reaches
``threshold`` (1 by default: outside the errors) in the metric's direction, else *within error*. Metrics whose
direction is "near 0" compare absolute values; "context" metrics (how much the mouth moves) say *more* or *less*.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

VERDICTS = ("better", "worse", "within error", "more", "less")


@dataclass(frozen=True)
class MetricChange:
    """One metric of one corpus in one condition, baseline against candidate."""

    condition: str
    corpus: str
    key: str
    label: str
    better: str
    base: float
    base_se: float
    new: float
    new_se: float
    z: float
    verdict: str


def _cells(report: Mapping[str, Any]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """{(condition, corpus): metrics} of a report, ``clean`` for its main corpora."""
    if not isinstance(report, Mapping) or not isinstance(report.get("corpora"), Mapping):
        raise ValueError("not a facecast evaluate-lipsync JSON report (no 'corpora')")
    out = {("clean", name): c.get("metrics", {}) for name, c in report["corpora"].items()}
    for cond, entry in (report.get("conditions") or {}).items():
        for name, c in entry.get("corpora", {}).items():
            out[(cond, name)] = c.get("metrics", {})
    return out


def _verdict(better: str, base: float, new: float, se: float, threshold: float) -> tuple[float, str]:
    if better == "near 0":
        base, new = abs(base), abs(new)
    z = (new - base) / se if se > 0 else (0.0 if new == base else math.copysign(math.inf, new - base))
    if abs(z) < threshold:
        return z, "within error"
    if better == "higher":
        return z, "better" if z > 0 else "worse"
    if better in ("lower", "near 0"):
        return z, "better" if z < 0 else "worse"
    return z, "more" if z > 0 else "less"


def compare_reports(
    base: Mapping[str, Any],
    new: Mapping[str, Any],
    system: str = "facecast",
    base_system: str | None = None,
    threshold: float = 1.0,
) -> list[MetricChange]:
    """Every metric both reports hold for ``system`` (``base_system`` in ``base``, default the same), per
    condition and corpus, in the candidate report's order."""
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    base_system = base_system or system
    labels = {m["key"]: (m.get("label", m["key"]), m.get("better", "higher")) for m in new.get("metrics", [])}
    old_cells, new_cells = _cells(base), _cells(new)
    changes: list[MetricChange] = []
    for where, metrics in new_cells.items():
        if where not in old_cells:
            continue
        for key, systems in metrics.items():
            a, b = old_cells[where].get(key, {}).get(base_system), systems.get(system)
            if not a or not b or a.get("value") is None or b.get("value") is None:
                continue
            values = [float(a["value"]), float(b["value"])]
            if not all(math.isfinite(v) for v in values):
                continue
            ses = [float(x.get("se") or 0.0) for x in (a, b)]
            label, better = labels.get(key, (key, "higher"))
            z, verdict = _verdict(better, *values, math.hypot(*ses), threshold)
            changes.append(MetricChange(*where, key, label, better, values[0], ses[0], values[1], ses[1], z, verdict))
    if not changes:
        raise ValueError(
            f"the reports share no measured metric for {base_system!r} -> {system!r} "
            "(same corpora and conditions, and the system in both?)"
        )
    return changes


def format_value(x: float | None, digits: int = 3) -> str:
    """A metric value as the reports print it: ``digits`` significant digits, tiny values in e-notation."""
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.{digits}g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.1e}"


def format_cell(value: float | None, se: float | None) -> str:
    """``value ± se`` as the reports print it (``n/a`` for a value that could not be measured)."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{format_value(value)} ± {format_value(se, 2)}" if se is not None and math.isfinite(se) else \
        format_value(value)  # fmt: skip


def comparison_markdown(changes: list[MetricChange], base_name: str = "base", new_name: str = "new") -> str:
    """A Markdown table per condition and corpus, and a count of the verdicts."""
    lines = [f"# Lip-sync: {new_name} against {base_name}", ""]
    counts = {v: sum(c.verdict == v for c in changes) for v in VERDICTS}
    lines.append(", ".join(f"{n} {v}" for v, n in counts.items() if n) + " (|z| >= threshold: outside the errors)")
    current = None
    for c in changes:
        if (c.condition, c.corpus) != current:
            current = (c.condition, c.corpus)
            header = f"| metric | better | {base_name} | {new_name} | z | verdict |"
            lines += ["", f"## {c.corpus}, {c.condition}", "", header, "|---|---|---|---|---|---|"]
        mark = f"**{c.verdict}**" if c.verdict in ("better", "worse") else c.verdict
        lines.append(f"| {c.label} | {c.better} | {format_cell(c.base, c.base_se)} | {format_cell(c.new, c.new_se)} | "
                     f"{c.z:+.2f} | {mark} |")  # fmt: skip
    return "\n".join(lines) + "\n"
