"""Analytic timing of a layer-pipelined streaming accelerator on any static ONNX graph (issue 15).

Every node is a pipeline stage; tensors stream row by row as in the buffer model
(:mod:`seadeploy.profiling.dataflow`, docs/architecture.md §5). Built on the same row-arrival
propagation (:class:`~seadeploy.profiling.propagate.Propagation`), with service times added:

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
  :func:`~seadeploy.profiling.dataflow.analyse_buffers`' numbers) and the zero-stall depth in
  steady state (frames overlap: the next frame's rows arrive while this one's wait).
* **Bounded FIFOs** — a FIFO's depth is its capacity in rows, the arriving row included (a k×k window
  needs k). With given depths, a FIFO smaller than the rows the early operand must hold before the late
  one can exist (the *lead*, at infinite speed) deadlocks; one below the zero-stall depth stalls. FIFOs
  that rows stream straight through (no table row) get :data:`PASS_THROUGH_ROWS`. Measured stall
  cycles per node come from the simulator (:mod:`seadeploy.profiling.simulate`).

>>> rep = analyse_pipeline("model.onnx", hardware=Hardware(macs_per_cycle=4096))   # doctest: +SKIP
>>> rep.summary()["fps"]                                                           # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd

from seadeploy.backends.ort import shapes_by_running
from seadeploy.errors import ConfigError, InputError
from seadeploy.profiling import graph
from seadeploy.profiling.arrival import (
    BINARY,
    EPS,
    POOL_OPS,
    TOL,
    UNARY,
    WINDOW_OPS,
    compress,
    last_consumer,
    pad_dims,
    window_spec,
)
from seadeploy.profiling.dataflow import JOIN_OPS, held_elements
from seadeploy.profiling.propagate import Propagation
from seadeploy.profiling.rules import RULES, elementwise, global_reduce

MAC_OPS = frozenset({"Conv", "ConvTranspose", "QLinearConv", "ConvInteger", "FusedConv", "Gemm", "MatMul",
                     "MatMulInteger", "QLinearMatMul"})
MOVE_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Expand", "Tile", "Slice", "Split",
                      "Gather", "Concat", "Identity", "Cast", "Dropout", "Shape", "Constant"})
# Fixed pipeline depth in cycles per op class (MAC array + adder tree, reduction tree, ALU op, wiring).
DEFAULT_LATENCY = {"mac": 8, "reduce": 4, "elementwise": 2, "move": 0}
PASS_THROUGH_ROWS = 2  # depth of a FIFO that only streams rows through (double buffering)
NONE_NEEDED = 1e9


@dataclasses.dataclass
class Hardware:
    """A streaming accelerator: MAC budget (or per-node folding), clock and per-op latencies.

    Attributes:
        macs_per_cycle: global budget spread over the stages in proportion to their MACs (each stage
            gets ``max(1, ceil(budget · macs / total))`` MACs/cycle).
        folding: ``{node: MACs/cycle}`` overriding the budget per node (see :func:`load_folding`).
        clock_mhz: clock for FPS and seconds.
        latency: fixed cycles per op class (``mac``, ``reduce``, ``elementwise``, ``move``).
        dtype_bytes: bytes per element for FIFO bytes (default: each tensor's ONNX type).
    """

    macs_per_cycle: float = 4096.0
    folding: dict[str, float] | None = None
    clock_mhz: float = 200.0
    latency: dict[str, int] = dataclasses.field(default_factory=lambda: dict(DEFAULT_LATENCY))
    dtype_bytes: int | None = None

    def __post_init__(self) -> None:
        if not self.macs_per_cycle or self.macs_per_cycle <= 0:
            raise ConfigError(f"--macs-per-cycle must be > 0, got {self.macs_per_cycle}")
        if not self.clock_mhz or self.clock_mhz <= 0:
            raise ConfigError(f"--clock-mhz must be > 0, got {self.clock_mhz}")
        if self.dtype_bytes is not None and self.dtype_bytes not in (1, 2, 4):
            raise ConfigError(f"dtype bytes must be 1, 2 or 4, got {self.dtype_bytes}")


def load_folding(path: str | os.PathLike) -> dict[str, float]:
    """Per-node parallelism from JSON: ``{node: N}``, ``{node: {"PE": p, "SIMD": s}}`` (FINN folding
    config: MACs/cycle = PE × SIMD) or ``{node: {"macs_per_cycle": N}}``; a ``"Defaults"`` entry applies
    to every MAC-bearing node not listed."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError(f"folding file '{p}' does not exist") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"folding file '{p}' is not readable JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise InputError(f"folding file '{p}' must hold a JSON object {{node: PE×SIMD or {{PE, SIMD}}}}")
    out: dict[str, float] = {}
    for node, val in raw.items():
        if isinstance(val, (int, float)) and not isinstance(val, bool):
            par = float(val)
        elif isinstance(val, dict) and "macs_per_cycle" in val:
            par = float(val["macs_per_cycle"])
        elif isinstance(val, dict) and ("PE" in val or "SIMD" in val):
            par = float(val.get("PE", 1)) * float(val.get("SIMD", 1))
        else:
            raise InputError(f"folding file '{p}': entry '{node}' needs a number, PE/SIMD or macs_per_cycle")
        if par <= 0:
            raise InputError(f"folding file '{p}': entry '{node}' has parallelism {par}; it must be > 0")
        out[node] = par
    return out


def op_class(op_type: str) -> str:
    """``mac``, ``reduce``, ``elementwise`` or ``move``: which fixed latency an op gets."""
    if op_type in MAC_OPS:
        return "mac"
    if op_type.startswith(("Reduce", "Global")) or op_type in POOL_OPS:
        return "reduce"
    if op_type in MOVE_OPS:
        return "move"
    return "elementwise"


def rows_of(times: np.ndarray | None) -> int:
    """Rows a tensor streams in: the entries of its (compressed) arrival array."""
    return 0 if times is None else int(np.size(times))


def _node_blocks(static: onnx.ModelProto, modules: dict[str, str]) -> dict[str, str | None]:
    """``{node: attention block}`` from the structural detector (``graphs.attention`` via ``graph.node_blocks``)."""
    return graph.node_blocks(static)


@dataclasses.dataclass
class Graph:
    """A static graph ready for timing: shapes, constants, blocks and the infinite-speed propagation.

    ``base`` is the buffer model's own propagation (service times 0); its arrays define how many rows
    each tensor streams in, which the stage costs and the simulator use.
    """

    model: onnx.ModelProto
    shapes: dict
    consts: dict
    modules: dict[str, str]
    blocks: dict[str, str | None]
    base: Propagation
    source: str

    @classmethod
    def load(cls, source: str | os.PathLike | onnx.ModelProto, input_size: int | None = None) -> Graph:
        model = graph.load_model(source)
        static = graph.make_static(model, input_size=input_size, batch=1)
        shapes = graph.infer_shapes(static, shapes_by_running)
        consts = graph.constant_values(static)
        modules = graph.node_modules(static)
        blocks = graph.node_blocks(static)  # attention blocks found by graph structure
        base = Propagation(static, shapes, consts, blocks, window_lags=True).run()
        src = str(source) if not isinstance(source, onnx.ModelProto) else (model.graph.name or "<model>")
        return cls(static, shapes, consts, modules, blocks, base, src)

    @property
    def input_name(self) -> str:
        inits = {i.name for i in self.model.graph.initializer}
        return next(vi.name for vi in self.model.graph.input if vi.name not in inits)

    @property
    def input_rows(self) -> int:
        return int(self.base.ref_rows)


@dataclasses.dataclass
class Stage:
    """Hardware cost of one node: parallelism, cycles per frame, per-row service and fixed latency."""

    node: str
    op_type: str
    macs: float
    parallelism: float
    cycles_per_frame: float
    rows_out: int
    rows_in: int
    latency: float

    @property
    def service_row(self) -> float:
        """Cycles per output row (a non-reducing stage)."""
        return self.cycles_per_frame / max(self.rows_out, 1)

    @property
    def service_acc(self) -> float:
        """Cycles per accumulated input row (a reducing stage)."""
        return self.cycles_per_frame / max(self.rows_in, 1)


def stage_costs(g: Graph, hw: Hardware) -> dict[str, Stage]:
    """``{node: Stage}`` for every node that streams rows (constant subgraphs are left out)."""
    macs = graph.node_params_macs(g.model, g.shapes)
    live = [n for n in g.model.graph.node if n.output and g.base.times.get(n.output[0]) is not None]
    total = sum(macs[n.name][1] for n in live) or 1.0
    folding = dict(hw.folding or {})
    default = folding.pop("Defaults", None)
    unknown = sorted(set(folding) - {n.name for n in g.model.graph.node})
    if unknown:
        raise ConfigError(f"folding names {len(unknown)} node(s) not in the graph (e.g. '{unknown[0]}'); use the "
                          "ONNX node names")
    out = {}
    for n in live:
        m = float(macs[n.name][1])
        if n.name in folding:
            par = folding[n.name]
        elif hw.folding is not None and default is not None:
            par = float(default)
        else:
            par = max(1.0, math.ceil(hw.macs_per_cycle * m / total)) if m else 1.0
        ins = [g.base.times.get(i) for i in n.input if i]
        rows_in = max((rows_of(t) for t in ins if t is not None), default=1)
        out[n.name] = Stage(n.name, n.op_type, m, par, math.ceil(m / par) if m else 0.0,
                            rows_of(g.base.times[n.output[0]]), rows_in, float(hw.latency.get(op_class(n.op_type), 0)))
    return out


def rule_for(op: str):
    """The row rule of an op type (as :class:`Propagation` picks it)."""
    fn = RULES.get(op)
    if fn is None:
        fn = elementwise if op in UNARY | BINARY else global_reduce
    return fn


def row_index(g: Graph, node: onnx.NodeProto, j: int, sign: float) -> np.ndarray | None:
    """Per output row of ``node``: the extreme index (``sign`` +1 → last, −1 → first) of the rows of input ``j``
    it reads; ``-1`` / ``NONE_NEEDED`` where it reads none."""
    base = g.base
    ins = []
    for k, name in enumerate(node.input):
        t = base.times.get(name) if name else None
        if t is None:
            ins.append(None)
            continue
        t = pad_dims(t, len(base.shape(name)))
        if k == j:
            ins.append(sign * np.arange(t.size, dtype=float).reshape(t.shape))
        else:
            ins.append(np.full(t.shape, -NONE_NEEDED if sign < 0 else -1.0))
    outs, _ = rule_for(node.op_type)(base, node, ins)
    out_name = node.output[0]
    row = base.times[out_name]
    nd = max(len(base.shape(out_name)), row.ndim)
    o, row = pad_dims(np.asarray(outs[0], dtype=float), nd), pad_dims(row, nd)
    if o.ndim != nd:
        return None
    red = tuple(a for a in range(nd) if row.shape[a] == 1 and o.shape[a] > 1)
    o = o.max(axis=red, keepdims=True) if red else o
    try:
        o = np.broadcast_to(o, row.shape).ravel()
    except ValueError:
        return None
    return o * sign


class TimedPropagation(Propagation):
    """The buffer model's propagation with a service recurrence in place of its rate limit.

    Times are in input-row periods (as in :class:`Propagation`). ``costs`` maps a node to
    ``(service per output row, service per accumulated input row, latency)`` in the same unit. With all
    zeros every array equals the buffer model's. ``starts`` keeps each row's start time (when its
    inputs are read: the moment the rows it needs are released).
    """

    def __init__(self, *args, costs: dict[str, tuple[float, float, float]], steady: bool = False,
                 periods: dict[str, float] | None = None, row_shapes: dict[str, tuple[int, ...]] | None = None,
                 **kw) -> None:
        super().__init__(*args, **kw)
        self.costs = costs
        self.steady = steady
        self.fixed_periods = periods  # row periods of the design (from the infinite-speed run)
        self.row_shapes = row_shapes or {}  # the rows each tensor streams in (the infinite-speed run's arrays)
        self.accumulates: set[str] = set()  # reducing stages whose input rows queue for their accumulator
        self.queued: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # such a stage → (arrival, accumulation start)
        self.periods: dict[str, float] = {}
        self.starts: dict[str, np.ndarray] = {}
        self.reduced: dict[str, bool] = {}
        self._node: onnx.NodeProto | None = None

    def _step(self, node: onnx.NodeProto) -> None:
        self._node = node
        acc = self._accumulated(node)
        if acc is None:
            super()._step(node)
            return
        # The rule reads each input row at the time it has been accumulated rather than at its arrival (the
        # stage's service is in those times, see _accumulated); the arrival array is put back afterwards.
        name, arrived = acc
        try:
            super()._step(node)
        finally:
            self.times[name] = arrived

    def _accumulated(self, node: onnx.NodeProto) -> tuple[str, np.ndarray] | None:
        """A reducing stage with one streamed input (a squeeze) accumulates its input rows one after the
        other, ``service per accumulated row`` each: row m is done at ``D_m = max(A_m, D_{m−1}) + s_acc``,
        later than its arrival ``A_m`` when rows arrive closer than ``s_acc`` (bunched: the rows after a
        floor-mode crop or a Pad's padding). In steady state the first row also waits for the previous
        frame's last (``D_0 ≥ D_last − H_in + s_acc``). The output row that reads rows up to m is then ready
        at ``D_m``. Installs the done times as the input's times and returns ``(input, its arrival array)``;
        ``None`` for every other stage."""
        s_acc = self.costs.get(node.name, (0.0, 0.0, 0.0))[1]
        live = [i for i in node.input if i and self.times.get(i) is not None]
        if len(live) != 1 or s_acc <= 0:
            return None
        name = live[0]
        ins = [self.times.get(i) if i else None for i in node.input]
        if not rule_for(node.op_type)(self, node, ins)[1]:
            return None
        arrived = self.times[name]
        shape = self.row_shapes.get(name, arrived.shape)
        try:
            a = np.broadcast_to(arrived, shape).ravel()
        except ValueError:
            a, shape = arrived.ravel(), arrived.shape
        m = np.arange(1, a.size + 1) * s_acc
        done = m + np.maximum.accumulate(a - m + s_acc)  # max over j ≤ m of A_j + (m − j + 1)·s_acc
        if self.steady:
            done = np.maximum(done, done[-1] - self.ref_rows + m)
        self.times[name] = done.reshape(shape)
        self.accumulates.add(node.name)
        self.queued[node.name] = (a, done - s_acc)  # a row leaves the input FIFO when its accumulation starts
        return name, arrived

    def _label(self, node, ins, reduced):
        self.reduced[node.name] = bool(reduced)
        return super()._label(node, ins, reduced)

    def _rate_limit(self, name: str, t):
        node = self._node
        s_row, _s_acc, lat = self.costs.get(node.name, (0.0, 0.0, 0.0)) if node is not None else (0.0, 0.0, 0.0)
        # An accumulating stage's service is already in its input's done times (_accumulated); it emits rows
        # at its row period. Any other stage serves each output row.
        reduced = node is not None and node.name in self.accumulates
        serv = 0.0 if reduced else s_row
        if reduced and t is not None:
            # Its rows are ready s_acc after the last accumulated row arrives: the buffer model's EPS ("strictly
            # after the last row", added per squeeze) is not needed, and summed over a deep net's squeezes it is not 0.
            t = t - EPS
        if t is None or name not in self.shapes:
            out = compress(t)
            if out is not None:
                self.starts[name] = out
                out = out + (serv + lat) if serv + lat else out
            return out
        shp = self.shape(name)
        t = compress(pad_dims(t, len(shp)) if t.ndim <= len(shp) else t)
        if len(shp) != 4 or shp[2] <= 1 or t.ndim != 4 or t.shape[1] > 1 or t.shape[3] > 1:
            self.starts[name] = t
            return t + (serv + lat) if serv + lat else t
        need = np.broadcast_to(t, (1, 1, shp[2], 1))[0, 0, :, 0]
        # Row period exactly as the buffer model's rate limit (a floor-mode crop can make it shorter); with
        # service times, the period of the infinite-speed run (a property of the design, not of the timing).
        if self.fixed_periods is not None and name in self.fixed_periods:
            period = self.fixed_periods[name]
        else:
            steps = np.diff(need)
            steps = steps[steps > 0.5]
            period = min(self.ref_rows / shp[2], float(steps.min()) if steps.size else np.inf)
        self.periods[name] = period
        gap = period if reduced else max(period, s_row)
        r = np.arange(shp[2]) * gap
        start = r + np.maximum.accumulate(need - r)
        if self.steady:
            # Frames follow every H_in input rows: row 0 of the next frame starts no earlier than ``gap`` after
            # this frame's last row. The least periodic schedule (what a cold start settles into) is
            # max(single frame, last start − II + (r+1)·gap); it differs only for a stage kept busy all frame
            # whose rows arrive bunched (e.g. after an edge tile), which carries the bunching into the next frame.
            start = np.maximum(start, start[-1] - self.ref_rows + r + gap)
        start = np.round(start, 6)
        self.starts[name] = compress(start.reshape(1, 1, -1, 1))
        return compress((start + (serv + lat)).reshape(1, 1, -1, 1))


JOIN_FIFO_COLUMNS = ["node", "op_type", "kind", "block", "operand", "input_index", "H", "W", "C", "skew_cycles",
                     "buffer_rows", "buffer_elements", "attention_elements", "lead_rows", "fifo_rows",
                     "fifo_elements", "dtype_bytes", "fifo_bytes"]


def peak_resident(arrive: np.ndarray, consume: np.ndarray, multiplicity: int = 1) -> int:
    """Most elements resident at one instant, the arriving one included: ``max_τ #{e : arrive(e) ≤ τ ≤ consume(e)}``.

    The FIFO capacity a stream needs: unlike :func:`held_elements` (the buffer model's measure, resident over a
    stretch of time) a row that is read the instant it arrives still occupies a slot then (a k×k window
    holds its k−1 rows plus the arriving one).
    """
    a, c = (x.ravel() for x in np.broadcast_arrays(arrive, consume))
    if not a.size:
        return 0
    c = np.maximum(c, a)
    a_s, c_s = np.sort(a), np.sort(c)
    count = np.searchsorted(a_s, a_s, side="right") - np.searchsorted(c_s, a_s - TOL, side="left")
    return int(count.max()) * int(multiplicity)


def _steady_peak(a: np.ndarray, c: np.ndarray, mult: int, ii: float) -> int:
    """:func:`peak_resident` in steady state: the same intervals repeated every ``ii`` (enough frames to overlap)."""
    a, c = (x.ravel() for x in np.broadcast_arrays(a, c))
    if not a.size:
        return 0
    span = float(np.max(c) - np.min(a))
    k = math.ceil(max(span, 0.0) / ii) + 2 if ii > 0 else 1
    return peak_resident(np.concatenate([a + i * ii for i in range(k)]),
                         np.concatenate([c + i * ii for i in range(k)]), mult)


def _join_operands(p: TimedPropagation, node: onnx.NodeProto) -> list[tuple[int, np.ndarray, np.ndarray, int, bool]]:
    """``[(input index, arrive, consume, multiplicity, early)]`` of a join, aligned like the buffer model."""
    out_shape = p.shape(node.output[0])
    nd = len(out_shape)
    live = [j for j, i in enumerate(node.input) if i and p.times.get(i) is not None]
    res = []
    for idx in live:
        name = node.input[idx]
        op_shape = (1,) * (nd - len(p.shape(name))) + p.shape(name)
        a = pad_dims(p.times[name], nd)
        consume = pad_dims(p.starts[node.output[0]], nd)
        if node.op_type == "Concat":
            consume = consume.max(axis=graph.attrs(node)["axis"] % nd, keepdims=True)
        others = [pad_dims(p.times[node.input[j]], nd) for j in live if j != idx]
        early = node.op_type == "Concat" or not all(np.all(a >= o - TOL) for o in others)
        bcast = tuple(ax for ax in range(nd) if op_shape[ax] == 1 and consume.shape[ax] > 1)
        consume = consume.max(axis=bcast, keepdims=True) if bcast else consume
        entries = int(np.prod(np.broadcast_shapes(a.shape, consume.shape)))
        res.append((idx, a, consume, int(np.prod(op_shape)) // max(entries, 1), early))
    return res


def _stream_arrays(p: TimedPropagation, g: Graph, node: onnx.NodeProto, j: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(arrive, release) per row of input ``j`` of a node that streams rows one to one or resamples them (Pad,
    Resize, Slice, ...): a row is released when the last output row that reads it starts."""
    name, out = node.input[j], node.output[0]
    rows_in, rows_out = g.base.times.get(name), g.base.times.get(out)
    if rows_in is None or rows_out is None or rows_in.size < 2 or out not in p.starts:
        return None
    lo = row_index(g, node, j, -1.0)
    try:
        arrive = np.broadcast_to(pad_dims(p.times[name], rows_in.ndim), rows_in.shape).ravel()
        start = np.broadcast_to(pad_dims(p.starts[out], rows_out.ndim), rows_out.shape).ravel()
    except ValueError:
        return None
    if lo is None or lo.size != start.size:
        return None
    lo = np.minimum.accumulate(np.where(lo >= NONE_NEEDED / 2, rows_in.size, np.round(lo))[::-1])[::-1]
    last = np.searchsorted(lo, np.arange(rows_in.size), side="right") - 1  # last output row reading each input row
    release = np.where(last >= 0, start[np.maximum(last, 0)], arrive)
    return arrive, np.maximum(release, arrive)


def _row_geometry(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) == 4:
        return shape[2], shape[3], shape[1]
    if len(shape) >= 3:
        return shape[2], int(np.prod(shape[3:])), shape[1]
    return 1, int(np.prod(shape[1:])) if len(shape) > 1 else 1, 1


def _line_arrays(p: TimedPropagation, node: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray] | None:
    """(arrive, release) per input row of a window op whose window spans rows, else None."""
    in_shape, out_shape = p.shape(node.input[0]), p.shape(node.output[0])
    if len(in_shape) < 3:
        return None
    w_shape = p.shape(node.input[1]) if node.op_type not in POOL_OPS and len(node.input) > 1 else None
    k, s, pb, d = window_spec(node, in_shape, out_shape, w_shape)[0]
    if k <= 1 or (node.op_type in POOL_OPS and k <= s):
        return None
    red = tuple(a for a in range(len(in_shape)) if a != 2)
    arrive = np.broadcast_to(pad_dims(p.times[node.input[0]], len(in_shape)).max(axis=red), (in_shape[2],))
    red_o = tuple(a for a in range(len(out_shape)) if a != 2)
    emit = np.broadcast_to(pad_dims(p.starts[node.output[0]], len(out_shape)).max(axis=red_o), (out_shape[2],))
    last = last_consumer(k, s, pb, d, in_shape[2], out_shape[2])
    return arrive, np.where(last >= 0, emit[np.maximum(last, 0)], arrive)


def fifo_table(p: TimedPropagation, sq: TimedPropagation, g: Graph, hw: Hardware,
               period: float, cold: TimedPropagation | None = None,
               zero: TimedPropagation | None = None) -> pd.DataFrame:
    """One row per FIFO that must hold rows: early join operands and window line buffers.

    ``buffer_*`` is the single-frame held amount of the first frame (``cold``; the buffer model's measure);
    ``attention_elements`` what ``sq`` (squeeze lags only, no service times) makes the join hold;
    ``fifo_*`` the steady-state depth for zero stall (:func:`peak_resident`: the capacity, arriving row included); ``lead_rows`` that peak
    at infinite speed (a smaller FIFO deadlocks). Times in ``p`` are input-row periods; ``period`` converts them to cycles.
    """
    ii = float(g.input_rows)  # one frame every H_in input-row periods
    cold = cold or p
    base_t = zero or TimedPropagation(g.model, g.shapes, g.consts, g.blocks, window_lags=True, costs={}).run()
    rows = []
    for node in g.model.graph.node:
        if not node.output or node.output[0] not in p.shapes or p.times.get(node.output[0]) is None:
            continue
        items = []
        if node.op_type in JOIN_OPS:
            ops = _join_operands(p, node)
            if len(ops) >= 2:
                ops_sq = {o[0]: o for o in _join_operands(sq, node)}
                ops_c = {o[0]: o for o in _join_operands(cold, node)}
                ops_b = {o[0]: o for o in _join_operands(base_t, node)}
                for idx, a, c, mult, _early in ops:
                    _, a1, c1, m1, e1 = ops_c[idx]
                    single = held_elements(a1, c1, m1) if e1 else 0
                    _, a2, c2, m2, e2 = ops_sq[idx]
                    att = held_elements(a2, c2, m2) if e2 else 0
                    _, a3, c3, m3, _e3 = ops_b[idx]
                    lead = peak_resident(a3, c3, m3)
                    steady = _steady_peak(a, c, mult, ii)
                    if not (single or att or steady > mult or lead > mult):
                        continue  # streams straight through (one row in flight): a pass-through FIFO
                    skew = float(np.max(np.broadcast_arrays(c, a)[0] - np.broadcast_arrays(c, a)[1]))
                    items.append(("join", idx, single, att, lead, steady, max(skew, 0.0)))
        line = None
        if node.op_type in WINDOW_OPS and p.times.get(node.input[0]) is not None:
            arr = line = _line_arrays(p, node)
            if arr is not None:
                a, c = arr
                a0, c0 = _line_arrays(base_t, node)
                held = held_elements(*_line_arrays(cold, node))
                items.append(("line", 0, held, 0, peak_resident(a0, c0), _steady_peak(a, c, 1, ii),
                              float(np.max(c - a))))
        # A window one row high (1×1 conv, non-overlapping pool) has no line buffer, but its input queues like a
        # stream's when rows arrive closer than it serves them.
        if node.op_type not in JOIN_OPS and line is None and not p.reduced.get(node.name):
            for idx, name in enumerate(node.input):
                arr = _stream_arrays(p, g, node, idx) if name and p.times.get(name) is not None else None
                if arr is None:
                    continue
                a, c = arr
                steady = _steady_peak(a, c, 1, ii)
                if steady > PASS_THROUGH_ROWS:  # rows queue up (a Pad or Resize running at its own row rate)
                    a0, c0 = _stream_arrays(base_t, g, node, idx)
                    a1, c1 = _stream_arrays(cold, g, node, idx)
                    items.append(("stream", idx, held_elements(a1, c1), 0, peak_resident(a0, c0), steady,
                                  float(np.max(c - a))))
        if node.name in p.accumulates:  # rows queue for the accumulator when they arrive closer than its service
            a, c = p.queued[node.name]
            steady = _steady_peak(a, c, 1, ii)
            if steady > PASS_THROUGH_ROWS:
                a0 = np.broadcast_to(base_t.times[node.input[0]], g.base.times[node.input[0]].shape).ravel()
                a1, c1 = cold.queued.get(node.name, (a0, a0))
                items.append(("stream", 0, held_elements(a1, c1), 0, peak_resident(a0, a0), steady,
                              float(np.max(c - a))))
        for kind, idx, single, att, lead, steady, skew in items:
            name = node.input[idx]
            H, W, C = _row_geometry(p.shape(name))
            per_row = max(W * C, 1)
            if kind in ("line", "stream"):  # counted in rows; elements = rows × W × C
                single, lead, steady = single * per_row, lead * per_row, steady * per_row
            nbytes = hw.dtype_bytes or graph.elem_size(p.shapes[name][1])
            rows.append({"node": node.name, "op_type": node.op_type, "kind": kind,
                         "block": g.blocks.get(node.name) or (sq.labels.get(node.output[0]) if att else None),
                         "operand": name, "input_index": idx, "H": H, "W": W, "C": C,
                         "skew_cycles": skew * period, "buffer_rows": single / per_row, "buffer_elements": int(single),
                         "attention_elements": int(att), "lead_rows": lead / per_row,
                         "fifo_rows": math.ceil(steady / per_row - 1e-9), "fifo_elements": int(steady),
                         "dtype_bytes": nbytes, "fifo_bytes": int(steady) * nbytes})
    return pd.DataFrame(rows, columns=JOIN_FIFO_COLUMNS)


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


def resolve_depths(report: PipelineReport, spec: str | int | dict | None) -> dict[tuple[str, int], int]:
    """FIFO depths in rows for every FIFO of ``report``: ``"auto"`` (the zero-stall depths), an int cap
    (``min(auto, N)``), a dict or a JSON file ``{"node/operand": rows}`` (unlisted FIFOs stay at auto; a
    ``"default"`` entry applies to them instead)."""
    auto = report.auto_depths()
    if spec is None or spec == "auto":
        return dict(auto)
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        cap = int(spec)
        return {k: min(v, cap) for k, v in auto.items()}
    if isinstance(spec, str):
        path = Path(spec)
        if not path.is_file():
            raise InputError(f"--fifo-depths '{spec}' is neither auto, a number of rows nor an existing JSON file")
        try:
            spec = json.loads(path.read_text())
        except ValueError as exc:
            raise InputError(f"FIFO depth file '{path}' is not JSON ({exc})") from None
    if not isinstance(spec, dict):
        raise InputError("FIFO depths must be a JSON object {\"node/operand\": rows}")
    by_name = {f"{r.node}/{r.operand}": (r.node, int(r.input_index)) for r in report.fifos.itertuples()}
    unknown = [k for k in spec if k not in by_name and k != "default"]
    if unknown:
        raise InputError(f"FIFO depths name {len(unknown)} FIFO(s) that hold no rows here (e.g. '{unknown[0]}'); "
                         f"the FIFOs are node/operand pairs, e.g. '{next(iter(by_name), 'conv/x')}'")
    out = {k: int(spec.get("default", v)) for k, v in auto.items()}
    for key, rows in spec.items():
        if key != "default":
            if not isinstance(rows, (int, float)) or rows < 0:
                raise InputError(f"FIFO depth of '{key}' must be a number of rows ≥ 0, got {rows!r}")
            out[by_name[key]] = int(rows)
    return out


def bounded_fifos(report: PipelineReport, depths: dict[tuple[str, int], int]) -> pd.DataFrame:
    """Per FIFO: the given depth against the zero-stall depth and the lead; ``deadlock`` where the depth
    cannot hold the lead, ``stall`` where it is below the zero-stall depth.
    ``deficit_rows`` × the consumer's row period is a first-order estimate of the producer's blocked cycles
    per frame (the simulator measures them)."""
    nodes = report.nodes.set_index("node") if len(report.nodes) else None
    period = report.figures["initiation_interval_cycles"]
    rows = []
    for r in report.fifos.itertuples():
        d = depths.get((r.node, int(r.input_index)), int(r.fifo_rows))
        rows_n = int(nodes.loc[r.node, "rows"]) if nodes is not None and r.node in nodes.index else 1
        deficit = max(0, int(r.fifo_rows) - d)
        rows.append({"node": r.node, "operand": r.operand, "kind": r.kind, "depth_rows": d,
                     "zero_stall_rows": int(r.fifo_rows), "lead_rows": float(r.lead_rows),
                     "deadlock": bool(d < r.lead_rows - 1e-9), "stall": bool(d < r.fifo_rows),
                     "deficit_rows": deficit, "est_blocked_cycles_per_frame": deficit * period / max(rows_n, 1)})
    return pd.DataFrame(rows, columns=["node", "operand", "kind", "depth_rows", "zero_stall_rows", "lead_rows",
                                       "deadlock", "stall", "deficit_rows", "est_blocked_cycles_per_frame"])
