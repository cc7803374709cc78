"""Training metrics: a CSV per run (rank 0), TensorBoard scalars when installed, loss curves as a PNG."""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

METRIC_FIELDS = ("step", "epoch", "lr", "loss", "mse", "motion", "emotion_reg", "lip_distance", "lip_shape",
                 "quiet_jitter", "r2", "seconds")  # fmt: skip


def plot_metrics(csv_path: Path, png_path: Path) -> Path | None:
    """Loss curves (total, MSE, R²) from the metrics CSV as a PNG; None when matplotlib is missing."""
    try:  # the Agg canvas directly: no pyplot, no global backend switch
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        log.warning("matplotlib is not installed: no loss plot (pip install matplotlib)")
        return None
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return None
    steps = [int(r["step"]) for r in rows]
    fig = Figure(figsize=(13, 3.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    for ax, keys, title in (
        (axes[0], ("loss",), "training loss (normalised, annealed)"),
        (axes[1], ("mse", "motion", "lip_distance"), "raw losses"),
        (axes[2], ("r2",), "R² of the PCA targets"),
    ):
        log_scale = title == "raw losses"
        for key in keys:
            values = [float(r[key]) for r in rows]
            if log_scale and max(values) <= 0:
                continue  # a disabled term
            ax.plot(steps, values, label=key)
        if log_scale:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend()
    fig.tight_layout()
    tmp = png_path.with_name(f".{png_path.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    os.replace(tmp, png_path)
    return png_path


class MetricsWriter:
    """CSV rows (and TensorBoard scalars when the tensorboard package is installed), rank 0 only."""

    def __init__(self, out_dir: Path, resume_step: int | None) -> None:
        self.path = out_dir / "metrics.csv"
        kept: list[dict] = []
        if resume_step is not None and self.path.is_file():
            with open(self.path, newline="") as fh:
                kept = [r for r in csv.DictReader(fh) if int(r["step"]) <= resume_step]
        with open(self.path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, METRIC_FIELDS)
            writer.writeheader()
            writer.writerows(kept)
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out_dir / "tensorboard"))
        except ImportError:
            pass

    def write(self, row: dict) -> None:
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, METRIC_FIELDS).writerow(row)
        if self.tb is not None:
            for key in METRIC_FIELDS[2:]:
                self.tb.add_scalar(key, row[key], row["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
