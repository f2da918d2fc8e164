"""Report figures. Every function takes a frame and returns a :class:`matplotlib.figure.Figure`; none calls ``show()``.

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot): no global figure registry to
leak, no GUI backend, and PNG output always goes through Agg. :func:`figure_png` encodes one.
Input frames follow :mod:`seadeploy.reports.tables` (long form, a ``variant`` column).
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from seadeploy.profiling.schema import ATTENTION_ROLES, ROLES
from seadeploy.reports.tables import natural_key

#: One colour per role: attention roles warm (reds/oranges), the rest cool or grey.
ROLE_COLORS: dict[str, str] = {
    "conv": "#4c72b0", "norm": "#8c9fca", "act": "#64b5cd", "pool": "#55a868", "linear": "#2f4b7c",
    "attention.squeeze": "#d62728", "attention.excite": "#ff7f0e", "attention.gate": "#bcbd22",
    "attention.scale": "#8c564b", "other": "#9e9e9e",
}
_CYCLE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974", "#64b5cd")


def variant_color(i: int) -> str:
    """The i-th colour of the report's variant palette."""
    return _CYCLE[i % len(_CYCLE)]


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (rendered with Agg)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _require(df: pd.DataFrame | None, *cols: str) -> pd.DataFrame:
    if df is None or df.empty:
        raise ValueError("nothing to plot: the frame is empty")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"cannot plot: the frame lacks columns {missing}")
    return df


def plot_layer_latency(layers: pd.DataFrame, title: str | None = None, max_labels: int = 70) -> Figure:
    """Per-layer time as bars in execution (frame) order, coloured by role; one bar per row.

    ``layers`` is one backend × precision × batch of the per-layer frame. Layers without a measured
    time (NaN) get no bar. Tick labels (module path, else layer name) are shown up to ``max_labels`` layers.
    """
    df = _require(layers, "time_ms", "role").dropna(subset=["time_ms"]).reset_index(drop=True)
    if df.empty:
        raise ValueError("nothing to plot: no layer has a measured time")
    n = len(df)
    fig = Figure(figsize=(max(8.0, min(0.14 * n + 3, 16.0)), 3.8), layout="constrained")
    ax = fig.subplots()
    roles = df["role"].fillna("other").where(df["role"].isin(ROLES), "other")
    ax.bar(np.arange(n), df["time_ms"].to_numpy(float), color=[ROLE_COLORS[r] for r in roles], width=0.85)
    if n <= max_labels:
        names = df["module"].where(df["module"].notna() & (df["module"] != ""), df.get("layer", ""))
        ax.set_xticks(np.arange(n), [str(s)[-28:] for s in names], rotation=90, fontsize=6)
    else:
        ax.set_xlabel(f"{n} layers in execution order")
    ax.set_ylabel("time per run (ms)")
    present = [r for r in ROLES if r in set(roles)]
    ax.legend(handles=[Patch(color=ROLE_COLORS[r], label=r) for r in present], fontsize=7, loc="upper left",
              bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_title(title or "per-layer latency by role")
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_attention_share(share: pd.DataFrame, title: str | None = None) -> Figure:
    """Attention share of time per backend: one stacked bar per (backend, precision, variant) row.

    ``share`` is :func:`~seadeploy.reports.tables.attention_share_table`; the bar stacks squeeze,
    excite, gate and scale as % of all layer time (one bar container per attention role).
    """
    parts = [f"{r.split('.')[1]}_pct" for r in ATTENTION_ROLES]
    df = _require(share, "variant", "backend", "precision", *parts).reset_index(drop=True)
    n = len(df)
    fig = Figure(figsize=(max(6.0, 0.7 * n + 2.5), 4.2), layout="constrained")
    ax = fig.subplots()
    x = np.arange(n)
    bottom = np.zeros(n)
    for role, col in zip(ATTENTION_ROLES, parts):
        vals = df[col].fillna(0.0).to_numpy(float)
        ax.bar(x, vals, bottom=bottom, color=ROLE_COLORS[role], label=role, width=0.7)
        bottom += vals
    for xi, total in zip(x, bottom):
        ax.annotate(f"{total:.1f}%", (xi, total), ha="center", va="bottom", fontsize=7)
    batch = df["batch"].astype(str) if "batch" in df else ""
    labels = df["variant"].astype(str) + "\n" + df["backend"].astype(str) + " " + df["precision"].astype(str)
    ax.set_xticks(x, labels + ("\nb=" + batch if "batch" in df else ""), fontsize=7)
    ax.set_ylabel("share of per-layer time (%)")
    ax.set_ylim(0, max(5.0, float(bottom.max()) * 1.25))
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title or "attention share of time (squeeze / excite / gate / scale)")
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_buffer_blocks(buffer_blocks: pd.DataFrame, value: str = "elements", title: str | None = None,
                       log: bool | None = None) -> Figure:
    """Attention buffer per block, grouped bars: one bar container per variant (global vs tiled squeeze).

    ``log=None`` uses a log axis only when the values span more than 50× (else bar heights stay proportional).
    """
    df = _require(buffer_blocks, "variant", "block", value)
    blocks = sorted(df["block"].astype(str).unique(), key=natural_key)
    variants = list(dict.fromkeys(df["variant"].astype(str)))
    fig = Figure(figsize=(max(7.0, 0.45 * len(blocks) * max(1, len(variants)) / 2 + 3), 4.4), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(1, len(variants))
    x = np.arange(len(blocks))
    for i, v in enumerate(variants):
        vals = df[df["variant"] == v].groupby("block")[value].sum().reindex(blocks).to_numpy(float)
        ax.bar(x + (i - (len(variants) - 1) / 2) * width, np.nan_to_num(vals), width=width, label=v,
               color=variant_color(i))
    ax.set_xticks(x, [b.replace(".attn", "") for b in blocks], rotation=60, fontsize=7)
    positive = df.loc[df[value] > 0, value]
    if log is None:
        log = len(positive) > 0 and float(positive.max()) > 50 * float(positive.min())
    if log and len(positive):
        ax.set_yscale("log")
    ax.set_ylabel(f"attention buffer ({value})")
    ax.set_xlabel("attention block")
    ax.legend(fontsize=8)
    ax.set_title(title or "attention buffering per block: global vs tiled squeeze")
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_latency_vs_batch(latency: pd.DataFrame, per_sample: bool = True, title: str | None = None) -> Figure:
    """Median latency against batch size: one line per variant × backend × precision, IQR as error bars."""
    df = _require(latency, "variant", "backend", "precision", "batch", "median_ms").copy()
    df["batch"] = df["batch"].astype(int)
    scale = df["batch"] if per_sample else 1
    df["y"] = df["median_ms"] / scale
    df["err"] = (df["iqr_ms"] / scale / 2) if "iqr_ms" in df else np.nan
    fig = Figure(figsize=(7.5, 4.4), layout="constrained")
    ax = fig.subplots()
    variants = list(dict.fromkeys(df["variant"].astype(str)))
    styles = {}
    for key, g in df.groupby(["variant", "backend", "precision"], sort=False):
        g = g.sort_values("batch")
        style = styles.setdefault((key[1], key[2]), ("-", "--", ":", "-.")[len(styles) % 4])
        ax.errorbar(g["batch"], g["y"], yerr=g["err"].fillna(0.0), marker="o", ms=4, capsize=3, linestyle=style,
                    color=variant_color(variants.index(str(key[0]))), label=f"{key[0]} · {key[1]} {key[2]}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(df["batch"].unique()), [str(b) for b in sorted(df["batch"].unique())])
    ax.set_xlabel("batch size")
    ax.set_ylabel("median latency per sample (ms)" if per_sample else "median latency per batch (ms)")
    ax.legend(fontsize=7)
    ax.set_title(title or "latency vs batch (error bars: IQR)")
    ax.grid(alpha=0.3)
    return fig


def plot_tradeoff(comparison: pd.DataFrame, title: str | None = None) -> Figure:
    """Accuracy against latency (left) and against attention buffering (right): one point per variant.

    ``comparison`` is :func:`~seadeploy.reports.tables.comparison_table`. A panel whose x values are
    all missing says so instead of plotting.
    """
    df = _require(comparison, "variant", "accuracy")
    fig = Figure(figsize=(10.0, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    panels = (("latency_ms", "median latency (ms)"), ("attention_buffer_elements", "attention buffer (elements)"))
    for ax, (col, label) in zip(axes, panels):
        sub = df.reindex(columns=["variant", "accuracy", col]).dropna()
        if sub.empty:
            ax.text(0.5, 0.5, f"not measured: no {label}", ha="center", va="center", transform=ax.transAxes)
        for i, row in sub.iterrows():
            ax.scatter([row[col]], [row["accuracy"]], s=60, color=variant_color(int(i)), zorder=3)
            ax.annotate(str(row["variant"]), (row[col], row["accuracy"]), textcoords="offset points",
                        xytext=(6, 4), fontsize=8)
        if col == "attention_buffer_elements" and (sub[col] > 0).sum() >= 2:
            ax.set_xscale("symlog", linthresh=max(1.0, float(sub.loc[sub[col] > 0, col].min()) / 2))
        ax.margins(x=0.15, y=0.15)
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    fig.suptitle(title or "what the attention buys (accuracy) for what it costs (latency, buffering)")
    return fig
