"""Pandas summaries for the reports: variant comparison, latency, attention share of time, buffers per block.

Every function takes long-form frames with a ``variant`` column (one row per measurement) and returns
a new frame; nothing here draws or formats. Input columns:

* ``runs``: ``variant, attn`` and optionally ``accuracy`` (%, the PyTorch test accuracy),
  ``acc_ort_fp32``/``acc_ort_fp16``/``acc_ort_int8`` (%), ``params``.
* ``latency``: ``variant, backend, precision, batch, median_ms`` and optionally ``iqr_ms``, ``p90_ms``,
  ``p99_ms``, ``throughput_ips`` (samples/s), ``spread`` and the side-by-side ratio to the baseline variant
  (``ratio``, ``ratio_low``, ``ratio_high``, ``ratio_clock``: see :mod:`seadeploy.profiling.latency`).
* ``layers``: the per-layer frame of :mod:`seadeploy.profiling.schema` plus ``variant``.
* ``buffer_blocks``: ``variant, block, elements`` (attention buffering of one attention block) and
  optionally ``bytes``; ``buffer_totals``: ``variant, attention_buffer_elements, total_buffer_elements``.

Ratios are to a baseline variant (``se`` by default, the global squeeze); a missing value is NaN.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from seadeploy.profiling.schema import ATTENTION_ROLES, attention_share

LATENCY_KEYS = ("backend", "precision", "batch")


def natural_key(text: object) -> tuple:
    """Sort key that orders ``layer2.0`` before ``layer10.0`` (numbers compared as numbers)."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(text)))


def _ordered_variants(*frames: pd.DataFrame | None) -> list[str]:
    """Variant names in first-seen order across frames."""
    seen: dict[str, None] = {}
    for df in frames:
        if df is not None and "variant" in df.columns:
            seen.update(dict.fromkeys(df["variant"].astype(str)))
    return list(seen)


def pick_baseline(variants: list[str], baseline: str = "se") -> str | None:
    """``baseline`` when present, else the first variant (``None`` for no variants)."""
    if baseline in variants:
        return baseline
    return variants[0] if variants else None


def _empty(df: pd.DataFrame | None, *cols: str) -> bool:
    return df is None or df.empty or any(c not in df.columns for c in cols)


def pick_latency_point(latency: pd.DataFrame | None, backend: str = "ort", precision: str = "fp32",
                       batch: int | None = None) -> pd.DataFrame:
    """Rows of ``latency`` for one backend × precision × batch (``batch=None``: the smallest batch measured)."""
    if _empty(latency, "variant", "backend", "precision", "batch", "median_ms"):
        return pd.DataFrame(columns=["variant", "median_ms"])
    sel = latency[(latency["backend"] == backend) & (latency["precision"] == precision)]
    if sel.empty:
        return pd.DataFrame(columns=["variant", "median_ms"])
    b = int(sel["batch"].min()) if batch is None else int(batch)
    return sel[sel["batch"] == b].drop_duplicates("variant", keep="last")


def attention_share_table(layers: pd.DataFrame | None) -> pd.DataFrame:
    """Share of per-layer time spent in attention, per variant × backend × precision × batch.

    Columns: ``variant, backend, precision, batch, total_ms, attention_ms, attention_pct`` and one
    ``<role>_pct`` per attention role (squeeze, excite, gate, scale) as % of all layer time, and
    ``blocks`` (attention blocks seen). Rows without any measured time are dropped.
    """
    cols = ["variant", *LATENCY_KEYS, "total_ms", "attention_ms", "attention_pct",
            *[f"{r.split('.')[1]}_pct" for r in ATTENTION_ROLES], "blocks"]
    if _empty(layers, "variant", "time_ms", "role", "block"):
        return pd.DataFrame(columns=cols)
    rows = []
    for variant, g in layers.groupby("variant", sort=False):
        for keys, part in g.groupby(list(LATENCY_KEYS), dropna=False, sort=True):
            total = float(part["time_ms"].sum(min_count=1))
            if total != total or total <= 0:  # NaN or nothing measured
                continue
            share = attention_share(part.drop(columns=list(LATENCY_KEYS)))
            tot = share[share["block"] == "TOTAL"].iloc[0]
            row = {"variant": variant, **dict(zip(LATENCY_KEYS, keys)), "total_ms": total,
                   "attention_ms": float(tot["attention"]), "attention_pct": 100.0 * float(tot["attention"]) / total}
            for role in ATTENTION_ROLES:
                row[f"{role.split('.')[1]}_pct"] = 100.0 * float(tot[role]) / total
            row["blocks"] = int((share["block"] != "TOTAL").sum())
            rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def paired_ratios(df: pd.DataFrame) -> bool:
    """Whether ``latency`` rows carry ratios measured side by side (``ratio`` with its interval)."""
    return {"ratio", "ratio_low", "ratio_high"} <= set(df.columns)


def noise_label(low: float, high: float) -> str:
    """``within noise`` when the interval holds 1, ``slower`` / ``faster`` when it does not, ``no interval``."""
    if not (low == low and high == high):
        return "no interval"
    return "within noise" if low <= 1.0 <= high else ("slower" if low > 1.0 else "faster")


def latency_table(latency: pd.DataFrame | None, baseline: str = "se") -> pd.DataFrame:
    """Latency per variant × backend × precision × batch with ``ratio`` to the baseline and its interval.

    ``ratio``, ``ratio_low``, ``ratio_high`` come from the side-by-side timing (``profiling.latency``: median of
    paired per-round ratios, bootstrap interval) when the rows carry them; older rows without them get the ratio
    of medians and no interval. ``difference`` says ``within noise`` when the interval includes 1.
    Also ``ms_per_sample`` (median / batch) and, when absent, ``throughput_ips`` = batch / median.
    """
    if _empty(latency, "variant", *LATENCY_KEYS, "median_ms"):
        return pd.DataFrame(columns=["variant", *LATENCY_KEYS, "median_ms", "ms_per_sample", "ratio", "ratio_low",
                                     "ratio_high", "difference"])
    df = latency.copy()
    df["batch"] = df["batch"].astype(int)
    df["ms_per_sample"] = df["median_ms"] / df["batch"]
    if "throughput_ips" not in df.columns:
        df["throughput_ips"] = 1000.0 * df["batch"] / df["median_ms"]
    base = pick_baseline(_ordered_variants(df), baseline)
    if not paired_ratios(df):
        ref = df[df["variant"] == base].set_index(list(LATENCY_KEYS))["median_ms"]
        ref = ref[~ref.index.duplicated(keep="last")]
        idx = pd.MultiIndex.from_frame(df[list(LATENCY_KEYS)])
        df["ratio"] = df["median_ms"].to_numpy() / ref.reindex(idx).to_numpy()
        df["ratio_low"] = df["ratio_high"] = np.nan
    df["difference"] = [noise_label(lo, hi) for lo, hi in zip(df["ratio_low"], df["ratio_high"])]
    df.loc[df["variant"] == base, "difference"] = "baseline"
    if "cpu_spread" in df and "clock" in df:  # the spread of the figure the ratio uses (thread CPU time when measured)
        df["spread"] = df["cpu_spread"].where(df["clock"] == "thread_cpu", df.get("spread"))
    keep = ["variant", *LATENCY_KEYS, "median_ms"] + [c for c in ("iqr_ms", "p10_ms", "p90_ms", "p99_ms",
                                                               "cpu_median_ms", "spread", "stable") if c in df]
    order = {v: i for i, v in enumerate(_ordered_variants(df))}
    df = df.sort_values(["backend", "precision", "batch"], kind="stable")
    df = df.sort_values("variant", key=lambda s: s.map(order), kind="stable")
    extra = [c for c in ("ratio_clock",) if c in df]
    return df[[*keep, "ms_per_sample", "throughput_ips", "ratio", "ratio_low", "ratio_high", "difference", *extra]
              ].reset_index(drop=True)


def buffer_block_table(buffer_blocks: pd.DataFrame | None, value: str = "elements",
                       baseline: str = "se") -> pd.DataFrame:
    """Attention buffering per block (rows, natural order) × variant (columns), with a ``TOTAL`` row.

    A ``<variant>/<baseline>`` column gives each variant's ratio to the baseline (global squeeze).
    Variants without attention have no blocks and so no column.
    """
    if _empty(buffer_blocks, "variant", "block", value):
        return pd.DataFrame(columns=["block"])
    wide = buffer_blocks.pivot_table(index="block", columns="variant", values=value, aggfunc="sum", sort=False)
    variants = [v for v in _ordered_variants(buffer_blocks) if v in wide.columns]
    wide = wide[variants].loc[sorted(wide.index, key=natural_key)]
    wide.loc["TOTAL"] = wide.sum(axis=0, min_count=1)
    base = pick_baseline(variants, baseline)
    for v in variants:
        if v != base:
            wide[f"{v}/{base}"] = wide[v] / wide[base]
    wide.columns.name = None
    return wide.reset_index()


def comparison_table(runs: pd.DataFrame, latency: pd.DataFrame | None = None, layers: pd.DataFrame | None = None,
                     buffer_totals: pd.DataFrame | None = None, *, baseline: str = "se", backend: str = "ort",
                     precision: str = "fp32", batch: int | None = None) -> pd.DataFrame:
    """One row per variant: accuracy, latency and its ratio to the baseline, attention share, buffers.

    Latency is the median of ``backend``/``precision`` at ``batch`` (default: the smallest measured);
    the attention share is taken from the per-layer frame of the same backend/precision (any batch,
    the smallest). Buffer ratios are to the baseline's buffers; a variant without attention has 0
    attention buffering, so its ratio is 0.
    """
    if _empty(runs, "variant"):
        return pd.DataFrame(columns=["variant"])
    out = runs.drop_duplicates("variant", keep="last").set_index("variant")
    keep = [c for c in ("attn", "accuracy", "acc_ort_fp32", "acc_ort_fp16", "acc_ort_int8", "int8_target", "params") if c in out]
    out = out[keep].copy()
    point = pick_latency_point(latency, backend, precision, batch)
    out["latency_ms"] = point.set_index("variant")["median_ms"].reindex(out.index).astype(float)
    if not point.empty:
        out.attrs["latency_point"] = (backend, precision, int(point["batch"].iloc[0]))
    share = attention_share_table(layers)
    share = share[(share["backend"] == backend) & (share["precision"] == precision)] if not share.empty else share
    if not share.empty:
        share = share.sort_values("batch").drop_duplicates("variant", keep="first").set_index("variant")
    out["attention_pct"] = share["attention_pct"].reindex(out.index).astype(float) if not share.empty else np.nan
    if not _empty(buffer_totals, "variant"):
        totals = buffer_totals.drop_duplicates("variant", keep="last").set_index("variant")
        for col in ("attention_buffer_elements", "total_buffer_elements"):
            out[col] = totals[col].reindex(out.index).astype(float) if col in totals else np.nan
    else:
        out["attention_buffer_elements"] = out["total_buffer_elements"] = np.nan
    base = pick_baseline(list(out.index), baseline)
    for col, ratio in (("latency_ms", "latency_x"), ("attention_buffer_elements", "attn_buffer_x"),
                       ("total_buffer_elements", "total_buffer_x")):
        ref = out.at[base, col] if base is not None else np.nan
        out[ratio] = out[col] / ref if ref == ref and ref else np.nan
    # latency ratios come from the side-by-side timing when measured so (with their interval); otherwise the
    # ratio of medians above stands, with no interval, and the answer claims no difference from it
    paired = point.set_index("variant") if not point.empty and paired_ratios(point) else None
    for col in ("latency_x", "latency_x_low", "latency_x_high"):
        src = {"latency_x": "ratio", "latency_x_low": "ratio_low", "latency_x_high": "ratio_high"}[col]
        if paired is not None:
            out[col] = paired[src].reindex(out.index).astype(float)
        elif col != "latency_x":
            out[col] = np.nan
    out["latency_clock"] = paired["ratio_clock"].reindex(out.index) if paired is not None and "ratio_clock" in paired \
        else None
    if "accuracy" in out and base is not None:
        out["accuracy_delta_pp"] = out["accuracy"] - out.at[base, "accuracy"]
    out.attrs["baseline"] = base
    return out.reset_index()


def role_time_table(layers: pd.DataFrame | None) -> pd.DataFrame:
    """Per-layer time summed per role: rows variant × backend × precision × batch, one column per role (ms)."""
    if _empty(layers, "variant", "role", "time_ms"):
        return pd.DataFrame(columns=["variant", *LATENCY_KEYS])
    df = layers.dropna(subset=["time_ms"])
    if df.empty:
        return pd.DataFrame(columns=["variant", *LATENCY_KEYS])
    wide = df.pivot_table(index=["variant", *LATENCY_KEYS], columns="role", values="time_ms", aggfunc="sum",
                          sort=False, fill_value=0.0)
    wide.columns.name = None
    return wide.reset_index()


def layer_gap_table(layers: pd.DataFrame | None, latency: pd.DataFrame | None) -> pd.DataFrame:
    """Sum of per-layer times against the end-to-end median of the same backend × precision × batch.

    ``gap_pct`` = (end-to-end − Σ layers) / end-to-end: what the per-layer profile does not explain
    (framework overhead between layers, or profiler attribution). NaN where no latency was measured
    (e.g. ``ort-noopt``, the one-to-one unoptimised ORT graph, has no end-to-end timing of its own).
    """
    cols = ["variant", *LATENCY_KEYS, "layers", "layers_sum_ms", "end_to_end_ms", "gap_pct"]
    if _empty(layers, "variant", *LATENCY_KEYS, "time_ms"):
        return pd.DataFrame(columns=cols)
    keys = ["variant", *LATENCY_KEYS]
    agg = layers.groupby(keys, sort=False, dropna=False)["time_ms"].agg(layers="count", layers_sum_ms="sum")
    agg = agg.reset_index()
    agg["batch"] = agg["batch"].astype(int)
    if not _empty(latency, *keys, "median_ms"):
        lat = latency[[*keys, "median_ms"]].copy()
        lat["batch"] = lat["batch"].astype(int)
        agg = agg.merge(lat.drop_duplicates(keys, keep="last"), on=keys, how="left")
    else:
        agg["median_ms"] = np.nan
    agg = agg.rename(columns={"median_ms": "end_to_end_ms"})
    agg["gap_pct"] = 100.0 * (agg["end_to_end_ms"] - agg["layers_sum_ms"]) / agg["end_to_end_ms"]
    return agg[cols]
