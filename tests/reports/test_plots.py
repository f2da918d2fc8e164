"""Every plot returns a Figure with the expected bars / series, from schema-valid frames."""

from __future__ import annotations

import subprocess
import sys

import matplotlib
import pandas as pd
import pytest
from matplotlib.container import BarContainer, ErrorbarContainer
from matplotlib.figure import Figure

from seadeploy.reports import plots, tables


def _bars(ax) -> list[BarContainer]:
    return [c for c in ax.containers if isinstance(c, BarContainer)]


def test_png_is_rendered_without_pyplot(study):
    png = plots.figure_png(plots.plot_latency_vs_batch(study.latency))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    code = ("import sys, pandas as pd; from seadeploy.reports import plots; "
            "plots.figure_png(plots.plot_tradeoff(pd.DataFrame({'variant': ['se'], 'accuracy': [90.0]}))); "
            "print('matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_layer_latency_one_bar_per_layer_coloured_by_role(study):
    g = study.layers[(study.layers["variant"] == "se") & (study.layers["backend"] == "ort")]
    fig = plots.plot_layer_latency(g)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    (bars,) = _bars(ax)
    assert len(bars) == len(g)
    colours = {matplotlib.colors.to_hex(p.get_facecolor()) for p in bars}
    assert matplotlib.colors.to_hex(plots.ROLE_COLORS["attention.squeeze"]) in colours
    assert matplotlib.colors.to_hex(plots.ROLE_COLORS["conv"]) in colours
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert set(legend) == set(g["role"])
    heights = sorted(p.get_height() for p in bars)
    assert heights == pytest.approx(sorted(g["time_ms"]))


def test_layer_latency_skips_unmeasured_rows(study):
    g = study.layers[(study.layers["variant"] == "se") & (study.layers["backend"] == "ort")].copy()
    g.loc[g.index[:5], "time_ms"] = float("nan")
    (bars,) = _bars(plots.plot_layer_latency(g).axes[0])
    assert len(bars) == len(g) - 5
    g["time_ms"] = float("nan")
    with pytest.raises(ValueError, match="no layer has a measured time"):
        plots.plot_layer_latency(g)


def test_attention_share_stacks_four_roles_per_bar(study):
    share = tables.attention_share_table(study.layers)
    fig = plots.plot_attention_share(share)
    bars = _bars(fig.axes[0])
    assert len(bars) == 4 and all(len(b) == len(share) for b in bars)
    tops = [sum(b[i].get_height() for b in bars) for i in range(len(share))]
    assert tops == pytest.approx(share["attention_pct"].tolist())


def test_buffer_blocks_one_series_per_variant(study):
    fig = plots.plot_buffer_blocks(study.buffer_blocks)
    bars = _bars(fig.axes[0])
    assert len(bars) == 2 and all(len(b) == 9 for b in bars)
    assert fig.axes[0].get_yscale() == "linear"  # se/tse span 16× here: proportional bars
    assert plots.plot_buffer_blocks(study.buffer_blocks, log=True).axes[0].get_yscale() == "log"
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["se", "tse"]


def test_latency_vs_batch_one_line_per_variant_backend_precision(study):
    fig = plots.plot_latency_vs_batch(study.latency)
    ax = fig.axes[0]
    n = study.latency.groupby(["variant", "backend", "precision"]).ngroups
    series = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert n == 9 and len(series) == n
    assert all(len(c.lines[0].get_xdata()) == len(g) for c, (_, g) in
               zip(series, study.latency.groupby(["variant", "backend", "precision"], sort=False)))
    assert len(ax.get_legend().get_texts()) == n


def test_tradeoff_one_point_per_variant_and_missing_panel(study):
    comp = tables.comparison_table(study.runs, study.latency, study.layers, study.buffer_totals)
    fig = plots.plot_tradeoff(comp)
    left, right = fig.axes
    assert len(left.collections) == 3 and len(right.collections) == 3
    fig = plots.plot_tradeoff(tables.comparison_table(study.runs))
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any(t.startswith("not measured") for t in texts)


@pytest.mark.parametrize("fn", [plots.plot_layer_latency, plots.plot_attention_share, plots.plot_buffer_blocks,
                                plots.plot_latency_vs_batch, plots.plot_tradeoff])
def test_empty_frame_raises_clear_error(fn):
    with pytest.raises(ValueError, match="nothing to plot"):
        fn(pd.DataFrame())
