"""facecast compare-lipsync: two evaluate-lipsync reports, every shared metric in standard errors."""

from __future__ import annotations

import json
import math

import pytest

from facecast.evaluation.compare import compare_reports, comparison_markdown

METRICS = [
    {"key": "openness_r0", "label": "corr", "better": "higher"},
    {"key": "silence_motion_mm_s", "label": "pause speed", "better": "lower"},
    {"key": "openness_lag_ms", "label": "lag", "better": "near 0"},
    {"key": "speech_gap_sd_mm", "label": "gap SD", "better": "context"},
]


def report(values: dict[str, tuple[float, float]], system: str = "facecast", condition: dict | None = None) -> dict:
    cells = {key: {system: {"value": v, "se": se, "utterances": 10}} for key, (v, se) in values.items()}
    out = {"metrics": METRICS, "corpora": {"recorded": {"metrics": cells}}, "conditions": {}}
    if condition:
        name, vals = next(iter(condition.items()))
        out["conditions"][name] = {"corpora": {"recorded": {"metrics": {
            k: {system: {"value": v, "se": se}} for k, (v, se) in vals.items()}}}}  # fmt: skip
    return out


def test_verdicts_follow_each_metric_direction_and_the_combined_error() -> None:
    base = report({"openness_r0": (0.80, 0.03), "silence_motion_mm_s": (0.5, 0.1), "openness_lag_ms": (-33.0, 10.0),
                   "speech_gap_sd_mm": (2.8, 0.1)})  # fmt: skip
    new = report({"openness_r0": (0.86, 0.04), "silence_motion_mm_s": (0.9, 0.2), "openness_lag_ms": (10.0, 10.0),
                  "speech_gap_sd_mm": (2.7, 0.1)})  # fmt: skip
    changes = {c.key: c for c in compare_reports(base, new)}
    corr = changes["openness_r0"]
    assert corr.z == pytest.approx(0.06 / math.hypot(0.03, 0.04)) and corr.verdict == "better"  # z = 1.2
    assert changes["silence_motion_mm_s"].verdict == "worse"  # lower is better: 0.4 / 0.224 = +1.79
    lag = changes["openness_lag_ms"]  # near 0: |10| against |-33|
    assert lag.z == pytest.approx((10 - 33) / math.hypot(10, 10)) and lag.verdict == "better"
    assert changes["speech_gap_sd_mm"].verdict == "within error"  # -0.71
    strict = {c.key: c.verdict for c in compare_reports(base, new, threshold=2.0)}
    assert strict["openness_r0"] == strict["silence_motion_mm_s"] == "within error"
    assert strict["openness_lag_ms"] == "within error"  # |z| = 1.63
    assert {c.key: c.verdict for c in compare_reports(base, new, threshold=0.5)}["speech_gap_sd_mm"] == "less"


def test_only_shared_cells_and_systems_are_compared() -> None:
    base = report(
        {"openness_r0": (0.7, 0.02)}, system="loudness", condition={"telephone": {"openness_r0": (0.6, 0.02)}}
    )
    new = report({"openness_r0": (0.75, 0.02), "silence_motion_mm_s": (0.1, 0.01)},
                 condition={"telephone": {"openness_r0": (0.5, 0.02)}, })  # fmt: skip
    changes = compare_reports(base, new, base_system="loudness")
    assert [(c.condition, c.key, c.verdict) for c in changes] == [
        ("clean", "openness_r0", "better"), ("telephone", "openness_r0", "worse")]  # fmt: skip
    with pytest.raises(ValueError, match="share no measured metric"):
        compare_reports(base, new)  # no facecast column in the baseline
    with pytest.raises(ValueError, match="not a facecast evaluate-lipsync"):
        compare_reports({"rows": []}, new)
    nan = report({"openness_r0": (float("nan"), 0.0)})
    with pytest.raises(ValueError, match="share no measured metric"):
        compare_reports(nan, new)  # a metric that could not be measured is not compared


def test_markdown_lists_every_cell_and_counts_the_verdicts() -> None:
    base = report({"openness_r0": (0.8, 0.01), "silence_motion_mm_s": (0.5, 0.1)})
    new = report({"openness_r0": (0.7, 0.01), "silence_motion_mm_s": (0.5, 0.1)})
    text = comparison_markdown(compare_reports(base, new), "shipped", "mine")
    assert "## recorded, clean" in text and "| metric | better | shipped | mine | z | verdict |" in text
    assert (
        "1 worse, 1 within error" in text and "| corr | higher | 0.8 ± 0.01 | 0.7 ± 0.01 | -7.07 | **worse** |" in text
    )


def test_cli_writes_the_comparison_and_fails_on_worse_when_asked(tmp_path, capsys) -> None:
    from facecast.cli import main

    base, new = tmp_path / "base.json", tmp_path / "new.json"
    base.write_text(json.dumps(report({"openness_r0": (0.8, 0.01)})))
    new.write_text(json.dumps(report({"openness_r0": (0.7, 0.01)})))
    out = tmp_path / "cmp.md"
    assert main(["compare-lipsync", str(base), str(new), "--out", str(out)]) == 0
    assert "**worse**" in out.read_text() and "| base | new |" in out.read_text()
    assert main(["compare-lipsync", str(base), str(new), "--fail-on-worse"]) == 1
    assert main(["compare-lipsync", str(base), str(base), "--fail-on-worse"]) == 0
    capsys.readouterr()
    assert main(["compare-lipsync", str(base), str(new), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["verdict"] == "worse" and rows[0]["z"] == pytest.approx(-0.1 / math.hypot(0.01, 0.01))
    (tmp_path / "b").mkdir()
    same_name = tmp_path / "b" / "base.json"
    same_name.write_text(new.read_text())
    assert main(["compare-lipsync", str(base), str(same_name)]) == 0
    assert f"| {tmp_path.name}/base | b/base |" in capsys.readouterr().out  # files of the same name told apart
    bad = tmp_path / "report.md"
    bad.write_text("# a Markdown report")
    assert main(["compare-lipsync", str(bad), str(new)]) != 0
    assert "not JSON" in capsys.readouterr().err
