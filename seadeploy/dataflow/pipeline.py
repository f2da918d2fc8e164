"""Analytic timing of a layer-pipelined streaming accelerator on any static ONNX graph (row granularity).

Every node is a pipeline stage; tensors stream row by row as in the buffer model
(:mod:`seadeploy.dataflow.buffers`, docs/architecture.md §5). Built on the same row-arrival
propagation (:class:`~seadeploy.dataflow.propagate.Propagation`), with service times added:

* **Hardware** — a stage's parallelism (MACs/cycle) comes from a global budget spread over the
  layers in proportion to their MACs (every MAC-bearing stage then needs the same cycles per frame:
  a balanced pipeline), or per node from a folding file (FINN-style ``PE``/``SIMD`` keys); a clock
  in MHz; small fixed latencies per op class. MAC-free ops (ReLU, reshapes) cost no cycles.
* **Stage timing** (times in cycles; the graph input streams one row every ``P = II / H_in``):
  a stage may start output row r once the input rows it needs have arrived and ``gap`` after its
  previous start, ``gap = max(row period, service per row)`` (the row period is the buffer model's
  ``H_in / H`` input rows); row r leaves ``service + latency`` after its start. A reduction
  accumulates its input rows as they stream in (one input row's share of its work each) and emits
  ``latency`` after accumulating the last row it needs.
* **Per graph** — initiation interval ``II = max_n cycles_per_frame(n)`` (the bottleneck), FPS,
  fill latency (first output row) and frame latency (last output row), next to the pessimistic
  no-overlap bound (receive the frame, then every stage one after the other). Latencies are those of
  the steady state (frames back to back: a stage busy all frame carries bunched rows into the next
  frame) and, as ``first_frame_*``, of one frame through an idle pipeline.
* **Per FIFO** (every join operand, every window's line buffer, and any input whose rows queue: a Pad or
  Resize at its own row rate, a stage — an accumulator too — fed rows closer than it serves them) — skew (longest wait of a row),
  the single-frame held rows (the buffer model's figure; with ``service_scale=0`` exactly
  :func:`~seadeploy.dataflow.buffers.analyse_buffers`' numbers) and the zero-stall depth in
  steady state (frames overlap: the next frame's rows arrive while this one's wait).
* **Bounded FIFOs** — a FIFO's depth is its capacity in rows, the arriving row included (a k×k window
  needs k). With given depths, a FIFO smaller than the rows the early operand must hold before the late
  one can exist (the *lead*, at infinite speed) deadlocks; one below the zero-stall depth stalls. FIFOs
  that rows stream straight through (no table row) get :data:`PASS_THROUGH_ROWS`. Measured stall
  cycles per node come from the simulator (:mod:`seadeploy.dataflow.simulate_rows`).

>>> rep = analyse_pipeline("model.onnx", hardware=Hardware(macs_per_cycle=4096))   # doctest: +SKIP
>>> rep.summary()["fps"]                                                           # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
import onnx
import pandas as pd

from seadeploy.dataflow.fifos import fifo_table
from seadeploy.dataflow.hardware import Graph, Hardware, stage_costs
from seadeploy.dataflow.timed import TimedPropagation


@dataclasses.dataclass
class PipelineReport:
    """Result of :func:`analyse_pipeline`: per-node stage timing, per-FIFO depths and graph figures."""

    source: str
    input_shape: tuple[int, ...]
    hardware: Hardware
    nodes: pd.DataFrame
    fifos: pd.DataFrame
    figures: dict[str, Any]
    unknown_ops: list[str]
    bounded: pd.DataFrame | None = None
    simulation: dict[str, Any] | None = None

    @property
    def deadlock(self) -> bool:
        return bool(self.bounded is not None and self.bounded["deadlock"].any())

    def auto_depths(self) -> dict[tuple[str, int], int]:
        """``{(node, input index): rows}``: the computed zero-stall depths."""
        return {(r.node, int(r.input_index)): int(r.fifo_rows) for r in self.fifos.itertuples()}

    def summary(self) -> dict[str, Any]:
        joins = self.fifos[self.fifos["kind"] == "join"]
        out = {"format_version": 1, "source": self.source, "input_shape": list(self.input_shape),
               "hardware": dataclasses.asdict(self.hardware), **self.figures, "deadlock": self.deadlock,
               "complete": not self.unknown_ops, "unknown_ops": self.unknown_ops,
               "joins": [{"node": r["node"], "operand": r["operand"], "block": r["block"],
                          "skew_cycles": r["skew_cycles"], "buffer_rows": r["buffer_rows"],
                          "buffer_elements": r["buffer_elements"], "attention_elements": r["attention_elements"],
                          "fifo_rows": r["fifo_rows"], "fifo_elements": r["fifo_elements"],
                          "fifo_bytes": r["fifo_bytes"]} for r in joins.to_dict("records")],
               "line_buffer_elements": int(self.fifos.loc[self.fifos["kind"] == "line", "buffer_elements"].sum())}
        if self.bounded is not None:
            out["bounded_fifos"] = self.bounded.to_dict("records")
        if self.simulation is not None:
            out["simulation"] = self.simulation
        return out


def analyse_pipeline(source: str | os.PathLike | onnx.ModelProto | Graph, input_size: int | None = None,
                     hardware: Hardware | None = None, service_scale: float = 1.0) -> PipelineReport:
    """The analytic pipeline model of one graph at batch 1.

    Args:
        source: ONNX path, ``ModelProto`` or a loaded :class:`Graph`.
        input_size: spatial size for inputs with dynamic H/W.
        hardware: the accelerator (default :class:`Hardware()`).
        service_scale: multiplies every service time and latency (0 → the buffer model's infinite-speed
            limit; cycles are then still counted with the nominal row period).
    """
    hw = hardware or Hardware()
    g = source if isinstance(source, Graph) else Graph.load(source, input_size)
    stages = stage_costs(g, hw)
    h_in = g.input_rows
    bottleneck = max(stages.values(), key=lambda s: s.cycles_per_frame, default=None)
    ii = max(bottleneck.cycles_per_frame if bottleneck else 0.0, float(h_in))  # the source sends ≤ 1 row/cycle
    period = ii / h_in  # cycles per input row
    costs = {n: (service_scale * s.service_row / period, service_scale * s.service_acc / period,
                 service_scale * s.latency / period) for n, s in stages.items()}
    steady = service_scale > 0
    args = (g.model, g.shapes, g.consts, g.blocks)
    zero = TimedPropagation(*args, window_lags=True, costs={}).run()
    zero_sq = TimedPropagation(*args, window_lags=False, costs={}).run()
    rows = {name: t.shape for name, t in g.base.times.items() if t is not None}
    p = TimedPropagation(*args, window_lags=True, costs=costs, steady=steady, periods=zero.periods,
                         row_shapes=rows).run()
    # The first frame through an idle pipeline (no frame ahead of it): the buffer model's single-frame view.
    cold = (TimedPropagation(*args, window_lags=True, costs=costs, periods=zero.periods, row_shapes=rows).run()
            if steady else p)
    rows = []
    for n in g.model.graph.node:
        st = stages.get(n.name)
        if st is None:
            continue
        out_t = p.times[n.output[0]]
        rows.append({"node": n.name, "op_type": n.op_type, "module": g.modules.get(n.name, ""),
                     "block": g.blocks.get(n.name), "macs": st.macs, "parallelism": st.parallelism,
                     "cycles_per_frame": st.cycles_per_frame, "rows": st.rows_out, "service_row_cycles":
                     service_scale * (st.service_acc if p.reduced.get(n.name) else st.service_row),
                     "latency_cycles": service_scale * st.latency, "reduces_rows": bool(p.reduced.get(n.name)),
                     "first_row_cycles": float(np.min(out_t)) * period, "last_row_cycles": float(np.max(out_t)) * period,
                     "utilisation": st.cycles_per_frame / ii})
    nodes = pd.DataFrame(rows)
    outs = [o.name for o in g.model.graph.output if p.times.get(o.name) is not None]
    fill = min(float(np.min(p.times[o])) for o in outs) * period if outs else 0.0
    frame = max(float(np.max(p.times[o])) for o in outs) * period if outs else 0.0
    first_fill = min(float(np.min(cold.times[o])) for o in outs) * period if outs else 0.0
    first_frame = max(float(np.max(cold.times[o])) for o in outs) * period if outs else 0.0
    no_overlap = ii + service_scale * sum(s.cycles_per_frame + s.latency for s in stages.values())
    # attention_elements: what the squeeze lags alone make a join hold (window lags and service times left out), the
    # buffer model's attention buffering, so it separates SE from TSE and is 0 without attention. Service-time skew
    # between a residual's two branches is in the FIFO depths, not in this figure.
    fifos = fifo_table(p, zero_sq, g, hw, period, cold, zero)
    figures = {"initiation_interval_cycles": ii, "fps": hw.clock_mhz * 1e6 / ii, "bottleneck": bottleneck.node
               if bottleneck and bottleneck.cycles_per_frame >= h_in else "input",
               "bottleneck_op": bottleneck.op_type if bottleneck else None, "input_row_period_cycles": period,
               "fill_latency_cycles": fill, "frame_latency_cycles": frame, "no_overlap_latency_cycles": no_overlap,
               "first_frame_fill_latency_cycles": first_fill, "first_frame_latency_cycles": first_frame,
               "frame_latency_ms": frame / (hw.clock_mhz * 1e3), "no_overlap_latency_ms": no_overlap / (hw.clock_mhz * 1e3),
               "macs_per_cycle_used": float(sum(s.parallelism for s in stages.values() if s.macs)),
               "buffer_elements": int(fifos.loc[fifos["kind"] == "join", "buffer_elements"].sum()),
               "attention_buffer_elements": int(fifos["attention_elements"].sum()),
               "fifo_elements": int(fifos["fifo_elements"].sum()),
               "fifo_bytes": int(fifos["fifo_bytes"].sum()), "service_scale": service_scale}
    shp = g.shapes[g.input_name][0]
    return PipelineReport(g.source, tuple(shp), hw, nodes, fifos, figures, sorted(p.unknown | zero_sq.unknown))

