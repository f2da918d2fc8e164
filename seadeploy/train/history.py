"""Per-epoch history: ``metrics.csv`` and ``curves.png`` (loss and accuracy against epoch)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from seadeploy.fileio import atomic_path, write_text
from seadeploy.runfolder import CURVES_PNG, METRICS_CSV
from seadeploy.runfolder import METRICS_COLUMNS as COLUMNS

#: Columns of metrics.csv, in order (accuracies in percent).


def history_frame(history: list[dict]) -> pd.DataFrame:
    """The history as a DataFrame with :data:`COLUMNS` (missing values NaN)."""
    frame = pd.DataFrame(history)
    for col in COLUMNS:
        if col not in frame:
            frame[col] = math.nan
    return frame[list(COLUMNS)]


def write_metrics_csv(run_dir: str | os.PathLike, history: list[dict]) -> Path:
    """Atomically write ``RUN/metrics.csv``."""
    return write_text(Path(run_dir) / METRICS_CSV, history_frame(history).to_csv(index=False, float_format="%.6g"))


def plot_curves(history: list[dict], title: str | None = None):
    """Figure with two panels: train/test loss and train/test top-1 (and top-5) accuracy against epoch."""
    # a bare Figure renders with Agg; pyplot's global state is never touched
    from matplotlib.figure import Figure  # noqa: PLC0415  heavy (~0.4 s): only the curves plot needs it, not training

    frame = history_frame(history)
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    style = {"marker": "o", "markersize": 3}
    ax_loss.plot(frame.epoch, frame.train_loss, label="train", **style)
    ax_loss.plot(frame.epoch, frame.test_loss, label="test", **style)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    ax_acc.plot(frame.epoch, frame.train_top1, label="train top-1", **style)
    ax_acc.plot(frame.epoch, frame.test_top1, label="test top-1", **style)
    if frame.test_top5.notna().any():
        ax_acc.plot(frame.epoch, frame.test_top5, label="test top-5", linestyle="--", **style)
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    return fig


def save_curves(run_dir: str | os.PathLike, history: list[dict], title: str | None = None) -> Path:
    """Atomically write ``RUN/curves.png``."""
    path = Path(run_dir) / CURVES_PNG
    fig = plot_curves(history, title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path
