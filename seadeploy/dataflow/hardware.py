"""The row model's description of a streaming accelerator: hardware, per-node costs and the timed graph.

* :class:`Hardware` — a MAC budget spread over the stages in proportion to their MACs, or a per-node folding
  (FINN-style ``PE``/``SIMD``); clock; small fixed latencies per op class.
* :class:`Graph` — a static graph with shapes, constants, attention blocks and the infinite-speed row propagation.
* :func:`stage_costs` — a stage's parallelism and cycles per frame; :func:`row_index` — which rows of an input an
  output row reads (the per-op rules applied to row indices).
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np
import onnx

from seadeploy.backends.ort import shapes_by_running
from seadeploy.dataflow.arrival import POOL_OPS, pad_dims
from seadeploy.dataflow.folding import read_folding
from seadeploy.dataflow.propagate import Propagation
from seadeploy.dataflow.row_rules import RULES, elementwise, global_reduce
from seadeploy.errors import ConfigError, InputError
from seadeploy.graphs.attention import node_blocks
from seadeploy.graphs.index import constant_values, node_modules
from seadeploy.graphs.load import load_model
from seadeploy.graphs.macs import node_params_macs
from seadeploy.graphs.ops import BINARY, MAC_OPS, MOVE_OPS, UNARY
from seadeploy.graphs.shapes import infer_shapes, make_static

# Fixed pipeline depth in cycles per op class (MAC array + adder tree, reduction tree, ALU op, wiring).
DEFAULT_LATENCY = {"mac": 8, "reduce": 4, "elementwise": 2, "move": 0}
PASS_THROUGH_ROWS = 2  # depth of a FIFO that only streams rows through (double buffering)
NONE_NEEDED = 1e9
GRANULARITIES = ("row", "pixel")


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
        granularity: ``row`` (this model) or ``pixel`` (:mod:`seadeploy.dataflow.pixel_pipeline`).
        pixel_folding: the folding file's dict at pixel granularity (PE/SIMD per node, :mod:`~.folding`).
        dtype_bits: bits per element at pixel granularity (FIFO widths, memory blocks; default 8).
    """

    macs_per_cycle: float = 4096.0
    folding: dict[str, float] | None = None
    clock_mhz: float = 200.0
    latency: dict[str, int] = dataclasses.field(default_factory=lambda: dict(DEFAULT_LATENCY))
    dtype_bytes: int | None = None
    granularity: str = "row"
    pixel_folding: dict | None = None
    dtype_bits: int | None = None

    def __post_init__(self) -> None:
        if self.granularity not in GRANULARITIES:
            raise ConfigError(f"--granularity must be one of {', '.join(GRANULARITIES)}, got '{self.granularity}'")
        if self.dtype_bits is not None and self.dtype_bits < 1:
            raise ConfigError(f"--dtype-bits must be ≥ 1, got {self.dtype_bits}")
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
    raw = read_folding(p)
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
    """``{node: attention block}`` from the structural detector (``graphs.attention`` via ``node_blocks``)."""
    return node_blocks(static)


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
        model = load_model(source)
        static = make_static(model, input_size=input_size, batch=1)
        shapes = infer_shapes(static, shapes_by_running)
        consts = constant_values(static)
        modules = node_modules(static)
        blocks = node_blocks(static)  # attention blocks found by graph structure
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
    macs = node_params_macs(g.model, g.shapes)
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

