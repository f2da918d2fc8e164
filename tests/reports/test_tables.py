"""Report tables from synthetic, schema-valid frames."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from seadeploy.reports import tables
from seadeploy.reports.sections import answer_lines, latency_section


def test_attention_share_table_splits_roles(study):
    share = tables.attention_share_table(study.layers)
    assert len(share) == 6  # 3 variants × 2 backends, batch 1
    none = share[share["variant"] == "none"]
    assert (none["attention_pct"] == 0).all() and (none["blocks"] == 0).all()
    se = share[(share["variant"] == "se") & (share["backend"] == "ort")].iloc[0]
    assert se["blocks"] == 9
    parts = se[["squeeze_pct", "excite_pct", "gate_pct", "scale_pct"]].sum()
    assert parts == pytest.approx(se["attention_pct"])
    layers = study.layers[(study.layers["variant"] == "se") & (study.layers["backend"] == "ort")]
    attn = layers[layers["role"].str.startswith("attention.")]["time_ms"].sum()
    assert se["attention_pct"] == pytest.approx(100 * attn / layers["time_ms"].sum())
    tse = share[(share["variant"] == "tse") & (share["backend"] == "ort")].iloc[0]
    assert tse["attention_pct"] > se["attention_pct"]


def test_latency_table_ratio_to_baseline(study):
    lat = tables.latency_table(study.latency, baseline="se")
    se = lat[(lat["variant"] == "se")]
    assert se["ratio"].tolist() == pytest.approx([1.0] * len(se))
    tse = lat[(lat["variant"] == "tse") & (lat["backend"] == "ort") & (lat["batch"] == 8)].iloc[0]
    assert tse["ratio"] == pytest.approx(1.3 / 1.1)
    assert tse["ms_per_sample"] == pytest.approx(tse["median_ms"] / 8)
    assert list(dict.fromkeys(lat["variant"])) == ["none", "se", "tse"]


def test_latency_table_falls_back_to_first_variant(study):
    lat = tables.latency_table(study.latency[study.latency["variant"] != "se"], baseline="se")
    none = lat[lat["variant"] == "none"]
    assert none["ratio"].tolist() == pytest.approx([1.0] * len(none))


def test_buffer_block_table_totals_and_ratio(study):
    wide = tables.buffer_block_table(study.buffer_blocks)
    assert list(wide.columns) == ["block", "se", "tse", "tse/se"]
    assert wide["block"].tolist()[:2] == ["layer1.0.attn", "layer1.1.attn"] and wide["block"].iloc[-1] == "TOTAL"
    first = wide.iloc[0]
    assert first["se"] == 32 * 32 * 16 and first["tse/se"] == pytest.approx(2 / 32)
    assert wide.iloc[-1]["se"] == study.buffer_blocks.query("variant == 'se'")["elements"].sum()


def test_comparison_table(study):
    comp = tables.comparison_table(study.runs, study.latency, study.layers, study.buffer_totals, baseline="se")
    assert comp.attrs["baseline"] == "se" and comp.attrs["latency_point"] == ("ort", "fp32", 1)
    row = comp.set_index("variant")
    assert row.at["se", "latency_x"] == pytest.approx(1.0)
    assert row.at["tse", "latency_x"] == pytest.approx(1.3 / 1.1)
    assert row.at["none", "attn_buffer_x"] == 0.0
    assert row.at["tse", "attn_buffer_x"] < 0.2
    assert row.at["tse", "accuracy_delta_pp"] == pytest.approx(-0.3)
    assert row.at["none", "attention_pct"] == 0.0 and row.at["tse", "attention_pct"] > row.at["se", "attention_pct"]


def test_comparison_table_missing_measurements_are_nan(study):
    comp = tables.comparison_table(study.runs, None, None, None)
    assert comp["latency_ms"].isna().all() and comp["attn_buffer_x"].isna().all()
    assert math.isnan(comp.set_index("variant").at["tse", "attention_pct"])
    assert tables.comparison_table(pd.DataFrame()).columns.tolist() == ["variant"]


def test_role_time_table(study):
    roles = tables.role_time_table(study.layers)
    assert len(roles) == 6 and {"conv", "attention.squeeze", "other"} <= set(roles.columns)
    none = roles[(roles["variant"] == "none")]
    assert (none["attention.squeeze"] == 0).all()


def test_paired_latency_ratios_drive_tables_and_the_answer(study):
    """Rows timed side by side carry ratio + interval; the answer states a difference only outside the interval."""
    lat = study.latency.copy()
    intervals = {"none": (0.97, 0.95, 1.02), "se": (1.0, 1.0, 1.0), "tse": (1.25, 1.21, 1.30)}  # none: within noise
    for col, i in (("ratio", 0), ("ratio_low", 1), ("ratio_high", 2)):
        lat[col] = lat["variant"].map(lambda v, i=i: intervals[v][i])
    lat["ratio_clock"] = "thread_cpu"
    study.latency = lat
    table = tables.latency_table(lat, "se")
    by = table[(table["backend"] == "ort") & (table["batch"] == 1) & (table["precision"] == "fp32")].set_index("variant")
    assert by.loc["tse", "ratio"] == 1.25 and by.loc["tse", "difference"] == "slower"
    assert by.loc["none", "difference"] == "within noise"  # not the ratio of medians (0.91): the paired figure
    comp = tables.comparison_table(study.runs, lat, study.layers, study.buffer_totals, baseline="se")
    lines = {ln.split("**")[1]: ln for ln in answer_lines(comp)}
    assert "within noise: 0.97× [0.95, 1.02] (thread CPU time" in lines["none"]
    assert "slower: 1.25× [1.21, 1.30]" in lines["tse"]
    text = " ".join(str(i) for i in latency_section(study).items)
    assert by.loc["se", "difference"] == "baseline"
    assert "5 of 10 ratios are within noise" in text and "thread CPU time (one intra-op thread)" in text
    # rows not timed side by side: no interval, and the answer claims no difference
    comp = tables.comparison_table(study.runs, study.latency.drop(columns=["ratio", "ratio_low", "ratio_high"]),
                                   study.layers, study.buffer_totals, baseline="se")
    assert all("no difference is claimed" in ln for ln in answer_lines(comp))
