"""What the ``profiling`` commands print and write: text tables, JSON summaries and buffer-model sources.

Kept out of ``__main__`` so the command line only parses arguments (and so F's reports can reuse
the same tables).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from seadeploy import runfolder
from seadeploy.dataflow.buffers import BufferReport, analyse_buffers
from seadeploy.errors import ConfigError, InputError
from seadeploy.export.onnx_export import model_onnx
from seadeploy.graphs.classify import block_lines, classify
from seadeploy.profiling.memory import MemoryReport, activation_memory, engine_memory, ort_memory_fields
from seadeploy.profiling.per_layer import LayerProfile


def _fmt(df: pd.DataFrame) -> str:
    return df.to_string(index=False, float_format=lambda v: f"{v:,.3f}") if len(df) else "(none)"


def buffers_for(run_dir: str | None = None, onnx_file: str | None = None, model: str | None = None,
                attn: str | None = None, attn_kwargs: dict[str, Any] | None = None, input_size: int | None = None,
                dtype_bytes: int | None = None) -> BufferReport:
    """The buffer model on exactly one of: a run folder's ``model.onnx``, an ONNX file, or a zoo model."""
    given = [x for x in (run_dir, onnx_file, model) if x]
    if len(given) != 1:
        raise ConfigError("give exactly one of RUN_DIR, --onnx FILE or --model NAME (with --attn/--attn-arg)")
    if dtype_bytes is not None and dtype_bytes not in (1, 2, 4):
        raise ConfigError(f"--dtype-bytes must be 1, 2 or 4, got {dtype_bytes}")
    if input_size is not None and input_size < 1:
        raise ConfigError(f"--input-size must be ≥ 1, got {input_size}")
    if model:
        with tempfile.TemporaryDirectory(prefix="seadeploy-buffers-") as tmp:
            path = model_onnx(model, attn, attn_kwargs or {}, input_size, tmp)
            report = _with_reasons(analyse_buffers(path, dtype_bytes=dtype_bytes), path)
        report.source = f"{model} attn={attn} {attn_kwargs or {}} @ {input_size or 'default'}"
        return report
    path = Path(onnx_file) if onnx_file else Path(run_dir) / runfolder.onnx_name("fp32")
    if run_dir and not path.is_file():
        raise InputError(f"'{path}' does not exist; export the run first (python -m seadeploy.export)")
    return _with_reasons(analyse_buffers(path, input_size=input_size, dtype_bytes=dtype_bytes), path)


def _with_reasons(report: BufferReport, path: Path) -> BufferReport:
    """The per-block table with the one classification's TSE reason (graphs/classify.py; ``""``: convertible)."""
    if len(report.blocks):
        reasons = {c.block: c.reason for c in classify(path)}
        report.blocks["tse_reason"] = report.blocks["block"].map(reasons).fillna("")
    return report


def format_buffers(report: BufferReport) -> str:
    """Per-block table, per-join table, line buffers and the two totals."""
    s = report.summary()
    blocks = report.blocks.copy()
    joins = report.joins[["node", "op_type", "block", "operand", "held_rows", "attention_rows", "W", "C",
                          "total_elements", "attention_elements", "total_bytes"]]
    lines = [f"buffer model: {report.source}  input {list(report.input_shape)}",
             "", f"per attention block ({s['attention_blocks']} found by graph structure):", _fmt(blocks), "", "per join:", _fmt(joins),
             "", f"line buffers: {len(report.line_buffers)} window layers, {s['line_buffer_elements']:,} elements",
             "", f"attention_buffer_elements {s['attention_buffer_elements']:,}  "
             f"({s['attention_buffer_bytes']:,.0f} bytes)",
             f"total_buffer_elements     {s['total_buffer_elements']:,}  ({s['total_buffer_bytes']:,.0f} bytes)"]
    if report.unknown_ops:
        lines.append(f"WARNING: no row rule for {', '.join(report.unknown_ops)}; treated as global reductions "
                     "(the totals are upper bounds)")
    return "\n".join(lines)


def format_layers(profile: LayerProfile, top: int = 15) -> str:
    """Gap table, attention share per backend, and the slowest layers of each backend."""
    att = profile.attention()
    lines = ["per-layer sum vs end-to-end (gap = end-to-end − per-run layer sum):",
             _fmt(profile.gaps[["backend", "precision", "batch", "layers", "run_sum_ms", "end_to_end_ms", "gap_pct",
                                "layers_sum_ms", "interference_pct"]]),
             "", f"attention share ({profile.attention_blocks if profile.attention_blocks is not None else '?'} blocks "
                 "found by graph structure; ms per role; pct_of_total = attention / all layers):",
             _fmt(att[att["block"] == "TOTAL"].drop(columns=["block"]))]
    for backend, part in profile.frame.groupby("backend", sort=False):
        cols = ["layer", "module", "op_type", "role", "time_ms", "time_pct"]
        lines += ["", f"slowest {top} layers ({backend}):", _fmt(part.nlargest(top, "time_ms")[cols])]
    if profile.blocks:
        lines += ["", *block_lines(profile.blocks)]
    lines += [""] * bool(profile.all_warnings()) + [f"WARNING: {w}" for w in profile.all_warnings()]
    return "\n".join(lines)


def memory_for(run_dir: str | None, onnx_file: str | None, batch: int, input_size: int | None) -> MemoryReport:
    """Activation memory of a run's ``model.onnx`` (plus engine device memory) or of any ONNX file."""
    if bool(run_dir) == bool(onnx_file):
        raise ConfigError("give exactly one of RUN_DIR or --onnx FILE")
    path = Path(onnx_file) if onnx_file else Path(run_dir) / runfolder.onnx_name("fp32")
    report = activation_memory(path, batch=batch, input_size=input_size)
    if run_dir:
        report.totals["trt_engine_device_memory"] = engine_memory(run_dir)
        layers = Path(run_dir) / runfolder.layers_csv("ort")
        if layers.is_file():
            report.totals.update(ort_memory_fields(pd.read_csv(layers)))
    return report


def format_memory(report: MemoryReport, top: int = 10) -> str:
    t = report.totals
    lines = [f"batch {t['batch']}: peak live activations {t['peak_live_bytes']:,.0f} bytes at {t['peak_at_node']}; "
             f"without reuse {t['activation_bytes_no_reuse']:,.0f}; weights {t['weight_bytes']:,.0f}; "
             f"attention blocks {t.get('attention_blocks', 0)} (roles tagged in the table)",
             "", "largest outputs:", _fmt(report.frame.nlargest(top, "out_bytes"))]
    extra = {k: v for k, v in t.items() if k.startswith(("ort_", "trt_"))}
    if extra:
        lines += ["", *[f"{k}: {v}" for k, v in extra.items()]]
    return "\n".join(lines)
