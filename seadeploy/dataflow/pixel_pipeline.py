"""``analyse_pixel``: the pixel-granularity pipeline report (II, FPS, latencies, FIFOs, memory, SE/TSE bypasses).

The same report type and JSON keys as the row model (:class:`~seadeploy.dataflow.pipeline.PipelineReport`), with
the position figures added: per join ``fifo_words``, ``fifo_bits`` and memory blocks, the ``fifo_memory`` totals
and, per attention block, the bypass FIFO (docs/dataflow.md).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
import onnx
import pandas as pd

from seadeploy.dataflow.folding import folding_dict
from seadeploy.dataflow.hardware import Graph, Hardware
from seadeploy.dataflow.pipeline import PipelineReport
from seadeploy.dataflow.pixel import PixelDesign, design, frames_needed, latencies, ordered_limit, run
from seadeploy.dataflow.pixel_fifos import attention_table, bounded_table, fifo_memory, fifo_table, resolve_depths
from seadeploy.errors import ConfigError

DEFAULT_DTYPE_BITS = 8


@dataclasses.dataclass
class PixelReport(PipelineReport):
    """:class:`PipelineReport` at pixel granularity; ``attention`` is the per-block bypass table."""

    design: PixelDesign | None = None
    attention: pd.DataFrame | None = None
    memory: dict[str, Any] | None = None

    @property
    def deadlock(self) -> bool:
        return bool(self.bounded is not None and self.bounded["deadlock"].any())

    def auto_depths(self) -> dict[tuple[str, int], int]:
        """``{(node, input index): positions}``: the zero-stall depths (window buffer included)."""
        return {(r.node, int(r.input_index)): int(r.fifo_positions) for r in self.fifos.itertuples()}

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        joins = self.fifos[self.fifos["kind"] == "join"]
        out["joins"] = [{k: r[k] for k in ("node", "operand", "block", "skew_cycles", "buffer_rows", "buffer_elements",
                                           "attention_elements", "fifo_rows", "fifo_elements", "fifo_bytes",
                                           "fifo_positions", "lead_positions", "fifo_words", "fifo_bits", "bram18",
                                           "uram")} for r in joins.to_dict("records")]
        out["line_buffer_elements"] = int((self.fifos["window_positions"] * self.fifos["C"]).sum())
        out["fifo_memory"] = self.memory
        out["attention_bypass"] = self.attention.to_dict("records") if self.attention is not None else []
        out["folding"] = folding_dict(self.design.folds) if self.design is not None else {}
        return out


def analyse_pixel(source: str | os.PathLike | onnx.ModelProto | Graph, input_size: int | None = None,
                  hardware: Hardware | None = None, folding: dict | None = None,
                  dtype_bits: int = DEFAULT_DTYPE_BITS) -> PixelReport:
    """The pixel-granularity model of one graph at batch 1.

    Args:
        source: ONNX path, ``ModelProto`` or a loaded :class:`Graph`.
        hardware: clock, latencies and — without ``folding`` — the MAC budget that sets the folding target.
        folding: the folding file's dict (:mod:`~seadeploy.dataflow.folding`).
        dtype_bits: bits per element for the FIFO widths and memory blocks.
    """
    if dtype_bits < 1:
        raise ConfigError(f"--dtype-bits must be ≥ 1, got {dtype_bits}")
    hw = hardware or Hardware()
    g = source if isinstance(source, Graph) else Graph.load(source, input_size)
    d = design(g, hw, folding)
    frames = frames_needed(d)
    t = run(d, frames)
    zero = ordered_limit(d)
    fifos = fifo_table(d, t, zero, dtype_bits)
    fill, frame = latencies(d, t, frames - 1)
    fill0, frame0 = latencies(d, t, 0)
    rows = []
    for st in d.stages:
        f = st.fold
        s = t.start[st.name][-f.n_out:]
        c = f.cycles_per_position()
        wait = float(np.sum(np.maximum(np.diff(s) - c, 0.0))) if s.size > 1 else 0.0
        out = t.arrive[st.node.output[0]][-f.n_out:]
        rows.append({"node": st.name, "op_type": st.node.op_type, "kind": f.kind, "module": g.modules.get(st.name, ""),
                     "block": g.blocks.get(st.name), "PE": f.pe, "SIMD": f.simd, "positions": f.n_out,
                     "cycles_per_position": c, "cycles_per_frame": f.cycles_per_frame(), "latency_cycles": st.latency,
                     "first_position_cycles": float(out.min()) - (frames - 1) * d.ii,
                     "last_position_cycles": float(out.max()) - (frames - 1) * d.ii,
                     "wait_cycles_per_frame": wait, "utilisation": f.cycles_per_frame() / d.ii})
    nodes = pd.DataFrame(rows)
    top = max(d.stages, key=lambda s: s.fold.cycles_per_frame(), default=None)
    w_in = g.shapes[g.input_name][0][-1]
    mem = fifo_memory(fifos)
    joins = fifos[fifos["kind"] == "join"]
    blocks = list(dict.fromkeys(b for b in g.blocks.values() if b))
    figures = {"granularity": "pixel", "initiation_interval_cycles": d.ii, "fps": hw.clock_mhz * 1e6 / d.ii,
               "bottleneck": top.name if top is not None and top.fold.cycles_per_frame() >= d.n_in else "input",
               "bottleneck_op": top.node.op_type if top is not None else None,
               "input_position_period_cycles": d.period, "input_row_period_cycles": d.period * w_in,
               "fill_latency_cycles": fill, "frame_latency_cycles": frame,
               "first_frame_fill_latency_cycles": fill0, "first_frame_latency_cycles": frame0,
               "no_overlap_latency_cycles": d.ii + sum(s.fold.cycles_per_frame() + s.latency for s in d.stages),
               "frame_latency_ms": frame / (hw.clock_mhz * 1e3),
               "macs_per_cycle_used": float(sum(s.fold.pe * s.fold.simd for s in d.stages
                                                if s.fold.kind in ("mvau", "vvau"))),
               "buffer_elements": int(joins["buffer_elements"].sum()),
               "attention_buffer_elements": int(fifos["attention_elements"].sum()),
               "fifo_elements": int(fifos["fifo_elements"].sum()), "fifo_bytes": int(fifos["fifo_bytes"].sum()),
               "fifo_words": int(fifos["fifo_words"].sum()), "fifo_bits": int(fifos["fifo_bits"].sum()),
               "dtype_bits": dtype_bits, "frames_computed": frames, "service_scale": 1.0}
    att = attention_table(fifos, blocks)
    for col, key in (("bypass_elements", "elements"), ("bypass_bits", "bits"), ("bram18", "bram18"), ("uram", "uram")):
        figures[f"attention_bypass_{key}"] = int(att[col].sum())
    figures.update({"fifo_bram18": mem["bram18"], "fifo_uram": mem["uram"]})
    figures["no_overlap_latency_ms"] = figures["no_overlap_latency_cycles"] / (hw.clock_mhz * 1e3)
    shp = g.shapes[g.input_name][0]
    return PixelReport(g.source, tuple(shp), hw, nodes, fifos, figures, sorted(g.base.unknown), design=d,
                       attention=att, memory=mem)


def bound(report: PixelReport, spec) -> dict[tuple[str, int], int]:
    """Resolve ``--fifo-depths`` and attach the bounded table to ``report``; returns the capacities (positions)."""
    depths = resolve_depths(report.fifos, spec)
    service = {s.name: s.fold.cycles_per_position() for s in report.design.stages}
    report.bounded = bounded_table(report.fifos, depths, service)
    # Per node: the cycles its output waits for room, first order (a FIFO's deficit blocks the tensor's producer).
    producer = {o: s.name for s in report.design.stages for o in s.node.output}
    blocked: dict[str, float] = {}
    for r in report.bounded.itertuples():
        name = producer.get(r.operand, "input")
        blocked[name] = blocked.get(name, 0.0) + float(r.est_blocked_cycles_per_frame)
    report.nodes["est_blocked_cycles_per_frame"] = report.nodes["node"].map(blocked).fillna(0.0)
    return depths
