"""The ``pipeline`` command: sources, analytic-vs-simulated comparison, the tile sweep, text and plot.

Kept out of ``__main__`` so the command line only parses arguments, and so ``compare`` and the
benchmarks reuse the same functions.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

import onnx
import pandas as pd
from matplotlib.figure import Figure

from seadeploy import artifacts
from seadeploy.convert.onnx_rewrite import se_to_tse_onnx
from seadeploy.dataflow.bounded import bounded_fifos, resolve_depths
from seadeploy.dataflow.hardware import Graph, Hardware, load_folding
from seadeploy.dataflow.pipeline import PipelineReport, analyse_pipeline
from seadeploy.dataflow.simulate_rows import SimResult, simulate
from seadeploy.errors import ConfigError, InputError
from seadeploy.profiling import graph
from seadeploy.profiling.summaries import model_onnx

SWEEP_COLUMNS = ["tile", "attention_buffer_elements", "fifo_elements", "fifo_bytes", "fps",
                 "initiation_interval_cycles", "fill_latency_cycles", "frame_latency_cycles", "bottleneck"]


def load_graph(run_dir: str | None = None, onnx_file: str | None = None, model: str | None = None,
               attn: str | None = None, attn_kwargs: dict[str, Any] | None = None,
               input_size: int | None = None) -> Graph:
    """The graph of exactly one of: a run folder's fp32 ONNX, an ONNX file, or a zoo model (exported to a
    temporary folder)."""
    given = [x for x in (run_dir, onnx_file, model) if x]
    if len(given) != 1:
        raise ConfigError("give exactly one of RUN_DIR, --onnx FILE or --model NAME (with --attn/--attn-arg)")
    if model:
        with tempfile.TemporaryDirectory(prefix="seadeploy-pipeline-") as tmp:
            g = Graph.load(model_onnx(model, attn, attn_kwargs or {}, input_size, tmp))
        g.source = f"{model} attn={attn} {attn_kwargs or {}} @ {input_size or 'default'}"
        return g
    return Graph.load(onnx_path(run_dir, onnx_file), input_size)


def onnx_path(run_dir: str | None, onnx_file: str | None) -> Path:
    """The ONNX file to read: ``--onnx FILE``, or a run folder's fp32 export."""
    path = Path(onnx_file) if onnx_file else Path(run_dir) / artifacts.onnx_name("fp32")
    if run_dir and not path.is_file():
        raise InputError(f"'{path}' does not exist; export the run first (python -m seadeploy.export)")
    return path


def hardware_from(macs_per_cycle: float | None, folding: str | None, clock_mhz: float,
                  dtype_bytes: int | None = None) -> Hardware:
    if macs_per_cycle is not None and folding:
        raise ConfigError("give --macs-per-cycle or --folding, not both")
    return Hardware(macs_per_cycle=macs_per_cycle or 4096.0, folding=load_folding(folding) if folding else None,
                    clock_mhz=clock_mhz, dtype_bytes=dtype_bytes)


def compare_with_simulation(report: PipelineReport, g: Graph, depths: dict | None = None) -> tuple[dict, SimResult]:
    """Simulate (unbounded FIFOs, or ``depths``) and return the analytic-vs-simulated differences.

    ``*_diff_rows`` are differences in input-row periods (the agreement target is ≤ 1); FIFO differences
    in rows of the FIFO's own tensor.
    """
    sim = simulate(g, report.hardware, depths)
    f = report.figures
    period = f["input_row_period_cycles"]
    out: dict[str, Any] = {"simulated": sim.summary(), "deadlock": sim.deadlock}
    for key in ("initiation_interval_cycles", "fill_latency_cycles", "frame_latency_cycles"):
        diff = abs(f[key] - getattr(sim, key)) if not sim.deadlock else math.nan
        out[key.replace("_cycles", "_diff_cycles")] = diff
        out[key.replace("_cycles", "_diff_rows")] = diff / period
    worst_rows, worst_elems = 0, 0
    for r in report.fifos.itertuples():
        got = sim.fifo_rows.get((r.node, int(r.input_index)), 0)
        d = abs(int(r.fifo_rows) - got)
        if d > worst_rows:
            worst_rows, worst_elems = d, d * int(r.W) * int(r.C)
    out["fifo_max_diff_rows"] = worst_rows
    out["fifo_max_diff_elements"] = worst_elems
    out["stalls"] = {n: s for n, s in sim.stalls.items() if s["blocked"] > 0}
    return out, sim


def run_pipeline(g: Graph, hw: Hardware, fifo_depths: str | int | None = None, sim: bool = False) -> PipelineReport:
    """Analytic report; with ``fifo_depths`` the bounded-FIFO table; with ``sim`` the simulator's figures
    (unbounded, and with the given depths when there are any)."""
    report = analyse_pipeline(g, hardware=hw)
    depths = None
    if fifo_depths is not None:
        depths = resolve_depths(report, fifo_depths)
        report.bounded = bounded_fifos(report, depths)
    if sim:
        cmp_, _ = compare_with_simulation(report, g)
        if depths is not None:
            bounded, bsim = compare_with_simulation(report, g, depths)
            cmp_["bounded"] = {"deadlock": bsim.deadlock, "reason": bsim.reason,
                               "throughput_vs_unbounded": (cmp_["simulated"]["initiation_interval_cycles"] /
                                                           bsim.initiation_interval_cycles) if not bsim.deadlock
                               else 0.0, "stalls": bounded["stalls"]}
        report.simulation = cmp_
    return report


def parse_tiles(tiles: list[str]) -> list[int | None]:
    """``--sweep-tile`` values: an int tile each, None for ``global``; checked before any export runs."""
    for tile in tiles:
        if tile != "global" and not tile.isdigit():
            raise ConfigError(f"--sweep-tile takes integers and 'global', got '{tile}'")
    return [None if tile == "global" else int(tile) for tile in tiles]


def sweep_tiles(model: str, tiles: list[str], hw: Hardware, input_size: int | None = None,
                attn_kwargs: dict[str, Any] | None = None) -> pd.DataFrame:
    """Buffer vs FPS vs fill latency per TSE tile (``global`` = SE) for a zoo model, one export each."""
    rows = []
    for tile, size in zip(tiles, parse_tiles(tiles), strict=True):
        kw = dict(attn_kwargs or {})
        if size is None:
            attn = "se"
            kw.pop("tile", None)
        else:
            kw["tile"] = size
            attn = "tse"
        r = analyse_pipeline(load_graph(model=model, attn=attn, attn_kwargs=kw, input_size=input_size), hardware=hw)
        f = r.figures
        rows.append({"tile": tile, **{k: f[k] for k in SWEEP_COLUMNS[1:]}})
    return pd.DataFrame(rows, columns=SWEEP_COLUMNS)


def sweep_tiles_onnx(source: str | os.PathLike | onnx.ModelProto, tiles: list[str], hw: Hardware,
                     input_size: int | None = None) -> pd.DataFrame:
    """The tile sweep of a user's SE graph: each tile through the ONNX SE→TSE rewrite
    (:func:`seadeploy.convert.onnx_rewrite.se_to_tse_onnx`, the zoo's TSE lowering); ``global`` is the graph as
    given. Blocks the rewrite cannot convert stay as they are in every row.

    Raises:
        InputError: the graph has no SE block the rewrite can convert (one line, exit 2).
    """
    sizes = parse_tiles(tiles)
    model = graph.make_static(graph.load_model(source), input_size, batch=1)  # the rewrite infers the rest
    rows = []
    for tile, size in zip(tiles, sizes, strict=True):
        variant = model
        if size is not None:
            try:
                variant, _records = se_to_tse_onnx(model, size)
            except InputError as exc:
                raise InputError(f"--sweep-tile rewrites SE blocks to TSE tiles: {exc}") from None
        f = analyse_pipeline(Graph.load(variant), hardware=hw).figures
        rows.append({"tile": tile, **{k: f[k] for k in SWEEP_COLUMNS[1:]}})
    return pd.DataFrame(rows, columns=SWEEP_COLUMNS)


def plot_tile_sweep(sweep: pd.DataFrame, title: str | None = None) -> Figure:
    """Buffer (elements) and fill latency against tile size, FPS in the labels."""
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot(1, 1, 1)
    x = range(len(sweep))
    ax.bar(x, sweep["fifo_elements"] / 1e6, color="#4c72b0", label="FIFO elements (M)")
    ax.set_xticks(list(x), [str(t) for t in sweep["tile"]])
    ax.set_xlabel("TSE tile (global = SE)")
    ax.set_ylabel("zero-stall FIFO elements (M)")
    ax2 = ax.twinx()
    ax2.plot(list(x), sweep["fill_latency_cycles"] / 1e6, "o-", color="#dd8452", label="fill latency (Mcycles)")
    ax2.set_ylabel("fill latency (M cycles)")
    for i, fps in zip(x, sweep["fps"]):
        ax.annotate(f"{fps:.1f} fps", (i, 0), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)
    ax.set_title(title or "streaming accelerator: tile trade-off")
    fig.tight_layout()
    return fig


def fmt_table(df: pd.DataFrame) -> str:
    return df.to_string(index=False, float_format=lambda v: f"{v:,.2f}") if len(df) else "(none)"


def format_pipeline(report: PipelineReport, top: int = 10) -> str:
    f = report.figures
    hw = report.hardware
    lines = [f"streaming pipeline: {report.source}  input {list(report.input_shape)}",
             f"hardware: {'folding file' if hw.folding else f'{hw.macs_per_cycle:g} MACs/cycle (balanced by MACs)'}, "
             f"{hw.clock_mhz:g} MHz, {f['macs_per_cycle_used']:,.0f} MACs/cycle used",
             f"initiation interval {f['initiation_interval_cycles']:,.0f} cycles  → {f['fps']:,.2f} FPS  "
             f"(bottleneck {f['bottleneck']})",
             f"fill latency  {f['fill_latency_cycles']:,.0f} cycles   frame latency {f['frame_latency_cycles']:,.0f} "
             f"cycles ({f['frame_latency_ms']:.3f} ms)   no-overlap bound {f['no_overlap_latency_cycles']:,.0f} cycles",
             f"FIFOs for zero stall: {f['fifo_elements']:,} elements ({f['fifo_bytes']:,} bytes); "
             f"single-frame join buffering {f['buffer_elements']:,}, attention {f['attention_buffer_elements']:,}",
             "", "largest FIFOs:"]
    fifos = report.fifos.sort_values("fifo_elements", ascending=False).head(top)
    lines.append(fmt_table(fifos[["node", "kind", "block", "operand", "skew_cycles", "buffer_rows", "lead_rows",
                             "fifo_rows", "fifo_elements"]]))
    if report.bounded is not None:
        bad = report.bounded[report.bounded["stall"] | report.bounded["deadlock"]]
        lines += ["", f"bounded FIFOs: {int(report.bounded['deadlock'].sum())} deadlock, "
                  f"{int(report.bounded['stall'].sum())} stall", fmt_table(bad.head(top))]
    if report.simulation is not None:
        s = report.simulation
        lines += ["", "simulated (unbounded FIFOs): II {:,.0f}, fill {:,.0f}, frame {:,.0f} cycles; differences: II "
                  "{:.3g}, fill {:.3g}, frame {:.3g} row periods; FIFO {} rows".format(
                      s["simulated"]["initiation_interval_cycles"], s["simulated"]["fill_latency_cycles"],
                      s["simulated"]["frame_latency_cycles"], s["initiation_interval_diff_rows"],
                      s["fill_latency_diff_rows"], s["frame_latency_diff_rows"], s["fifo_max_diff_rows"])]
        if "bounded" in s:
            b = s["bounded"]
            lines.append(f"simulated with the given depths: deadlock {b['deadlock']}, throughput "
                         f"{b['throughput_vs_unbounded']:.4%} of unbounded, {len(b['stalls'])} stages blocked "
                         f"{b['reason']}")
    if report.unknown_ops:
        lines.append(f"WARNING: no row rule for {', '.join(report.unknown_ops)}; treated as global reductions")
    return "\n".join(lines)


def summary_with_sweep(report: PipelineReport | None, sweep: pd.DataFrame | None) -> dict[str, Any]:
    out = report.summary() if report is not None else {}
    if sweep is not None:
        out["tile_sweep"] = sweep.to_dict("records")
    return out
