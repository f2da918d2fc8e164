"""The ``profiling pipeline`` command: parsed arguments in, the streaming-accelerator report (``seadeploy.dataflow``)
printed, plotted or written."""

from __future__ import annotations

from pathlib import Path

from seadeploy import fileio
from seadeploy.cli import parse_kv_args, print_json
from seadeploy.dataflow.analysis import (
    fmt_table,
    format_pipeline,
    hardware_from,
    load_graph,
    onnx_path,
    plot_tile_sweep,
    run_pipeline,
    summary_with_sweep,
    sweep_tiles,
    sweep_tiles_onnx,
)
from seadeploy.dataflow.pixel_fifos import write_depth_file
from seadeploy.errors import ConfigError
from seadeploy.graphs.classify import block_lines, classify


def main_pipeline(a) -> int:
    """``python -m seadeploy.profiling pipeline``: parsed arguments in, report printed (and plotted)."""
    attn_kwargs = parse_kv_args(a.attn_arg)
    if a.granularity != "pixel" and (a.write_fifo_depths or a.dtype_bits):
        raise ConfigError("--write-fifo-depths and --dtype-bits size FIFOs in words: add --granularity pixel")
    hw = hardware_from(a.macs_per_cycle, a.folding, a.clock_mhz, a.dtype_bytes, a.granularity, a.dtype_bits)
    sweep = None
    if a.sweep_tile:
        if a.attn not in (None, "se", "tse"):
            raise ConfigError(f"--sweep-tile compares SE and TSE tiles; --attn {a.attn} has no tile")
        if a.model:
            sweep = sweep_tiles(a.model, a.sweep_tile, hw, a.input_size, attn_kwargs)
        else:  # a user's graph (--onnx FILE or RUN_DIR): each tile through the ONNX SE→TSE rewrite
            if not (a.run_dir or a.onnx) or (a.run_dir and a.onnx):
                raise ConfigError("--sweep-tile needs exactly one of RUN_DIR, --onnx FILE or --model NAME")
            sweep = sweep_tiles_onnx(onnx_path(a.run_dir, a.onnx), a.sweep_tile, hw, a.input_size)
        if a.plot:
            name = a.model or Path(a.onnx or a.run_dir).name
            fig = plot_tile_sweep(sweep, f"{name} @ {a.input_size or 'default'}")
            with fileio.atomic_path(a.plot) as tmp:
                fig.savefig(tmp, format="png", dpi=100)
    depths: str | None = a.fifo_depths
    report, blocks = None, []
    if not sweep_only(a):
        g = load_graph(a.run_dir, a.onnx, a.model, a.attn, attn_kwargs, a.input_size)
        report = run_pipeline(g, hw, depths, a.simulate)
        blocks = classify(g.model)
        if a.write_fifo_depths:
            write_depth_file(report.fifos, a.write_fifo_depths)
    if a.json:
        print_json(summary_with_sweep(report, sweep, blocks if report is not None else None))
        return 0
    if report is not None:
        print("\n".join([format_pipeline(report), *block_lines(blocks)]))
    if sweep is not None:
        print("\ntile sweep:\n" + fmt_table(sweep))
    return 0


def sweep_only(a) -> bool:
    """A tile sweep without --attn reports the sweep alone (the model itself is one of its rows)."""
    return bool(a.sweep_tile) and a.attn is None
