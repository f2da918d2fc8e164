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

from seadeploy import runfolder
from seadeploy.dataflow.bounded import bounded_fifos, resolve_depths
from seadeploy.dataflow.folding import read_folding
from seadeploy.dataflow.hardware import Graph, Hardware, load_folding
from seadeploy.dataflow.pipeline import PipelineReport, analyse_pipeline
from seadeploy.dataflow.pixel_check import compare_pixel
from seadeploy.dataflow.pixel_pipeline import DEFAULT_DTYPE_BITS, PixelReport, analyse_pixel, bound
from seadeploy.dataflow.simulate_rows import SimResult, simulate
from seadeploy.errors import ConfigError, InputError
from seadeploy.export.onnx_export import model_onnx
from seadeploy.graphs.classify import BlockClass
from seadeploy.graphs.load import load_model
from seadeploy.graphs.se_rewrite import se_to_tse_onnx
from seadeploy.graphs.shapes import make_static

SWEEP_COLUMNS = ["tile", "attention_buffer_elements", "fifo_elements", "fifo_bytes", "fps",
                 "initiation_interval_cycles", "fill_latency_cycles", "frame_latency_cycles", "bottleneck"]
# At pixel granularity the sweep also gives the attention blocks' bypass FIFOs and all FIFOs in memory blocks.
PIXEL_SWEEP_COLUMNS = ["attention_bypass_elements", "attention_bypass_bits", "attention_bypass_bram18",
                       "attention_bypass_uram", "fifo_bits", "fifo_bram18", "fifo_uram"]


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
    path = Path(onnx_file) if onnx_file else Path(run_dir) / runfolder.onnx_name("fp32")
    if run_dir and not path.is_file():
        raise InputError(f"'{path}' does not exist; export the run first (python -m seadeploy.export)")
    return path


def hardware_from(macs_per_cycle: float | None, folding: str | None, clock_mhz: float,
                  dtype_bytes: int | None = None, granularity: str = "row", dtype_bits: int | None = None) -> Hardware:
    """The accelerator of the command line; at pixel granularity the folding file is read as PE/SIMD per node."""
    if macs_per_cycle is not None and folding:
        raise ConfigError("give --macs-per-cycle or --folding, not both")
    pixel = granularity == "pixel"
    return Hardware(macs_per_cycle=macs_per_cycle or 4096.0,
                    folding=load_folding(folding) if folding and not pixel else None, clock_mhz=clock_mhz,
                    dtype_bytes=dtype_bytes, granularity=granularity,
                    pixel_folding=read_folding(folding) if folding and pixel else None, dtype_bits=dtype_bits)


def analyse(g: Graph, hw: Hardware) -> PipelineReport:
    """The model ``hw.granularity`` names: rows (:func:`analyse_pipeline`) or positions (:func:`analyse_pixel`)."""
    if hw.granularity != "pixel":
        return analyse_pipeline(g, hardware=hw)
    bits = hw.dtype_bits or (8 * hw.dtype_bytes if hw.dtype_bytes else DEFAULT_DTYPE_BITS)
    return analyse_pixel(g, hardware=hw, folding=hw.pixel_folding, dtype_bits=bits)


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
    report = analyse(g, hw)
    if isinstance(report, PixelReport):
        return _run_pixel(report, fifo_depths, sim)
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


def _run_pixel(report: PixelReport, fifo_depths: str | int | None, sim: bool) -> PixelReport:
    depths = bound(report, fifo_depths) if fifo_depths is not None else None
    if sim:
        cmp_, _ = compare_pixel(report)
        if depths is not None:
            bounded, bsim = compare_pixel(report, depths)
            cmp_["bounded"] = {"deadlock": bsim.deadlock, "reason": bsim.reason,
                               "throughput_vs_unbounded": (cmp_["simulated"]["initiation_interval_cycles"] /
                                                           bsim.initiation_interval_cycles) if not bsim.deadlock
                               else 0.0, "stalls": bounded["blocked"]}
        report.simulation = cmp_
    return report


def _sweep_row(tile: str, r: PipelineReport) -> dict[str, Any]:
    f = r.figures
    row = {"tile": tile, **{k: f[k] for k in SWEEP_COLUMNS[1:]}}
    if isinstance(r, PixelReport):
        row.update({k: f[k] for k in PIXEL_SWEEP_COLUMNS})
    return row


def _sweep_frame(rows: list[dict], hw: Hardware) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=SWEEP_COLUMNS + (PIXEL_SWEEP_COLUMNS if hw.granularity == "pixel" else []))


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
        rows.append(_sweep_row(tile, analyse(load_graph(model=model, attn=attn, attn_kwargs=kw,
                                                        input_size=input_size), hw)))
    return _sweep_frame(rows, hw)


def sweep_tiles_onnx(source: str | os.PathLike | onnx.ModelProto, tiles: list[str], hw: Hardware,
                     input_size: int | None = None) -> pd.DataFrame:
    """The tile sweep of a user's SE graph: each tile through the ONNX SE→TSE rewrite
    (:func:`seadeploy.graphs.se_rewrite.se_to_tse_onnx`, the zoo's TSE lowering); ``global`` is the graph as
    given. Blocks the rewrite cannot convert stay as they are in every row.

    Raises:
        InputError: the graph has no SE block the rewrite can convert (one line, exit 2).
    """
    sizes = parse_tiles(tiles)
    model = make_static(load_model(source), input_size, batch=1)  # the rewrite infers the rest
    rows = []
    for tile, size in zip(tiles, sizes, strict=True):
        variant = model
        if size is not None:
            try:
                variant, _records = se_to_tse_onnx(model, size)
            except InputError as exc:
                raise InputError(f"--sweep-tile rewrites SE blocks to TSE tiles: {exc}") from None
        rows.append(_sweep_row(tile, analyse(Graph.load(variant), hw)))
    return _sweep_frame(rows, hw)


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
    if isinstance(report, PixelReport):
        return format_pixel(report, top)
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
    lines += _bounded_lines(report.bounded, top)
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


def _bounded_lines(bounded: pd.DataFrame | None, top: int) -> list[str]:
    """The given-depth FIFOs that stall or deadlock (both granularities' reports)."""
    if bounded is None:
        return []
    bad = bounded[bounded["stall"] | bounded["deadlock"]]
    return ["", f"bounded FIFOs: {int(bounded['deadlock'].sum())} deadlock, {int(bounded['stall'].sum())} stall",
            fmt_table(bad.head(top))]


def summary_with_sweep(report: PipelineReport | None, sweep: pd.DataFrame | None,
                       blocks: list[BlockClass] | None = None) -> dict[str, Any]:
    out = report.summary() if report is not None else {}
    if blocks is not None:
        out["attention_kinds"] = [b.to_dict() for b in blocks]
    if sweep is not None:
        out["tile_sweep"] = sweep.to_dict("records")
    return out


def format_pixel(report: PixelReport, top: int = 10) -> str:
    """The pixel-granularity report as text: figures, largest FIFOs, memory, attention bypasses, checks."""
    f, hw, m = report.figures, report.hardware, report.memory
    lines = [f"streaming pipeline (pixel granularity): {report.source}  input {list(report.input_shape)}",
             f"hardware: {'folding file' if hw.pixel_folding else f'folded to {hw.macs_per_cycle:g} MACs/cycle'}, "
             f"{hw.clock_mhz:g} MHz, {f['dtype_bits']}-bit data, {f['macs_per_cycle_used']:,.0f} MACs/cycle used",
             f"initiation interval {f['initiation_interval_cycles']:,.0f} cycles  → {f['fps']:,.2f} FPS  "
             f"(bottleneck {f['bottleneck']})",
             f"fill latency  {f['fill_latency_cycles']:,.0f} cycles   frame latency {f['frame_latency_cycles']:,.0f} "
             f"cycles ({f['frame_latency_ms']:.3f} ms)   no-overlap bound {f['no_overlap_latency_cycles']:,.0f} cycles",
             f"FIFOs for zero stall: {m['fifo_bits']:,} bits in {m['bram18']} BRAM18 or {m['uram']} URAM; window "
             f"buffers {m['window_buffer_bits']:,} bits; attention bypasses {f['attention_bypass_elements']:,} elements",
             "", "largest FIFOs:"]
    fifos = report.fifos.sort_values("fifo_bits", ascending=False).head(top)
    lines.append(fmt_table(fifos[["node", "kind", "block", "operand", "input_index", "lead_positions",
                                  "fifo_positions", "fifo_rows", "fifo_words", "fifo_bits", "bram18", "uram"]]))
    if report.attention is not None and len(report.attention):
        lines += ["", "attention bypass FIFOs:", fmt_table(report.attention)]
    lines += _bounded_lines(report.bounded, top)
    if report.simulation is not None:
        s = report.simulation
        lines += ["", "simulated (unbounded FIFOs, {} frames): II {:,.0f}, fill {:,.0f}, frame {:,.0f} cycles; "
                  "differences: II {:.3g}, fill {:.3g}, frame {:.3g} position periods; FIFO {} positions".format(
                      s["simulated"]["frames"], s["simulated"]["initiation_interval_cycles"],
                      s["simulated"]["fill_latency_cycles"], s["simulated"]["frame_latency_cycles"],
                      s["initiation_interval_diff_positions"], s["fill_latency_diff_positions"],
                      s["frame_latency_diff_positions"], s["fifo_max_diff_positions"])]
        if "bounded" in s:
            b = s["bounded"]
            lines.append(f"simulated with the given depths: deadlock {b['deadlock']}, throughput "
                         f"{b['throughput_vs_unbounded']:.4%} of unbounded, {len(b['stalls'])} layers blocked "
                         f"{b['reason']}")
    if report.unknown_ops:
        lines.append(f"WARNING: no rule for {', '.join(report.unknown_ops)}; treated as global reductions")
    return "\n".join(lines)
