"""Dataflow (row-streaming) buffer model of docs/architecture.md §5 on any static-shape ONNX graph.

Every node is a pipeline stage; tensors stream row by row (a row = W × C values). Where two paths
that split from one tensor join again (the attention scale ``x * a``, a residual ``skip + main``),
the operand that arrives early is held until the other arrives. Row-arrival times come from
:mod:`seadeploy.dataflow.propagate` twice: with window lags (→ **total pipeline buffering**, k×k
line buffers added) and without them (→ **attention buffering**: only squeeze-caused lags remain).

A row of an operand is *held* from its arrival until the join consumes it; the held amount of an
operand is the largest number of its elements resident at once (``#{e: arrive(e) ≤ τ < consume(e)}``).

>>> report = analyse_buffers("model.onnx", input_size=768)          # doctest: +SKIP
>>> report.summary()["attention_buffer_elements"]                    # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
import onnx
import pandas as pd

from seadeploy.backends.ort import shapes_by_running
from seadeploy.dataflow.arrival import POOL_OPS, TOL, last_consumer, pad_dims, window_spec
from seadeploy.dataflow.propagate import Propagation
from seadeploy.graphs.attention import AttentionGraph, find_attention, node_blocks, print_warnings
from seadeploy.graphs.index import attrs, constant_values, node_modules
from seadeploy.graphs.load import load_model
from seadeploy.graphs.ops import BINARY, WINDOW_OPS
from seadeploy.graphs.shapes import elem_size, infer_shapes, make_static

JOIN_OPS = BINARY | {"Concat"}
JOIN_COLUMNS = ["node", "op_type", "module", "block", "operand", "held_rows", "attention_rows", "H", "W", "C",
                "total_elements", "attention_elements", "dtype_bytes", "total_bytes", "attention_bytes"]
LINE_COLUMNS = ["node", "op_type", "module", "block", "kernel", "stride", "held_rows", "H", "W", "C", "elements",
                "dtype_bytes", "bytes"]


def held_elements(arrive: np.ndarray, consume: np.ndarray, multiplicity: int = 1) -> int:
    """Largest number of elements resident at once: ``max_τ #{e : arrive(e) ≤ τ < consume(e)}``.

    ``arrive`` and ``consume`` broadcast together; each entry stands for ``multiplicity`` elements.
    """
    a, c = (x.ravel() for x in np.broadcast_arrays(arrive, consume))
    wait = c > a + TOL
    if not wait.any():
        return 0
    a, c = np.sort(a[wait]), np.sort(c[wait])
    count = np.searchsorted(a, a, side="right") - np.searchsorted(c, a, side="right")
    return int(count.max()) * int(multiplicity)


@dataclasses.dataclass
class BufferReport:
    """Result of :func:`analyse_buffers`: per-join and per-block buffers plus the two totals.

    ``bool(report)`` is False when some op had no row rule (treated as a global reduction, so the
    numbers are an upper bound); ``to_frame()`` gives the per-join table.
    """

    source: str
    input_shape: tuple[int, ...]
    joins: pd.DataFrame
    line_buffers: pd.DataFrame
    blocks: pd.DataFrame
    unknown_ops: list[str]
    attention: AttentionGraph | None = None

    @property
    def attention_buffer_elements(self) -> int:
        return int(self.joins["attention_elements"].sum())

    @property
    def total_buffer_elements(self) -> int:
        return int(self.joins["total_elements"].sum() + self.line_buffers["elements"].sum())

    def __bool__(self) -> bool:
        return not self.unknown_ops

    def to_frame(self) -> pd.DataFrame:
        return self.joins.copy()

    def node_elements(self) -> dict[str, float]:
        """``{node: total buffered elements}`` (join + line buffers): the frame's ``buffer_elems``."""
        out: dict[str, float] = {}
        for df, col in ((self.joins, "total_elements"), (self.line_buffers, "elements")):
            for node, val in df.groupby("node")[col].sum().items():
                out[node] = out.get(node, 0.0) + float(val)
        return out

    def summary(self) -> dict[str, Any]:
        """The JSON summary (``buffers.json``)."""
        att_b = float(self.joins["attention_bytes"].sum())
        tot_b = float(self.joins["total_bytes"].sum() + self.line_buffers["bytes"].sum())
        return {"format_version": 1, "source": self.source, "input_shape": list(self.input_shape),
                "attention_buffer_elements": self.attention_buffer_elements, "attention_buffer_bytes": att_b,
                "total_buffer_elements": self.total_buffer_elements, "total_buffer_bytes": tot_b,
                "join_buffer_elements": int(self.joins["total_elements"].sum()),
                "line_buffer_elements": int(self.line_buffers["elements"].sum()),
                "complete": bool(self), "unknown_ops": self.unknown_ops,
                "attention_blocks": len(self.attention.blocks) if self.attention is not None else len(self.blocks),
                "warnings": list(self.attention.warnings) if self.attention is not None else [],
                "blocks": self.blocks.to_dict("records"), "joins": self.joins.to_dict("records"),
                "line_buffers": self.line_buffers.to_dict("records")}


def _operand_held(prop: Propagation, node: onnx.NodeProto, idx: int) -> int:
    """Elements of input ``idx`` of a join held until the join consumes them (0 for the late operand)."""
    out_shape = prop.shape(node.output[0])
    nd = len(out_shape)
    name = node.input[idx]
    op_shape = (1,) * (nd - len(prop.shape(name))) + prop.shape(name)
    a = pad_dims(prop.times[name], nd)
    consume = pad_dims(prop.times[node.output[0]], nd)
    if node.op_type == "Concat":
        consume = consume.max(axis=attrs(node)["axis"] % nd, keepdims=True)
    others = [pad_dims(prop.times[i], nd) for j, i in enumerate(node.input) if j != idx and prop.times.get(i) is not None]
    if node.op_type != "Concat" and all(np.all(a >= o - TOL) for o in others):
        return 0  # the late operand: nothing waits for it
    bcast = tuple(ax for ax in range(nd) if op_shape[ax] == 1 and consume.shape[ax] > 1)
    consume = consume.max(axis=bcast, keepdims=True) if bcast else consume
    entries = int(np.prod(np.broadcast_shapes(a.shape, consume.shape)))
    return held_elements(a, consume, int(np.prod(op_shape)) // max(entries, 1))


def _row_geometry(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(H, W, C) of an operand: NCHW for 4-D, otherwise rows along axis 2 (or one row)."""
    if len(shape) == 4:
        return shape[2], shape[3], shape[1]
    if len(shape) >= 3:
        return shape[2], int(np.prod(shape[3:])), shape[1]
    return 1, int(np.prod(shape[1:])) if len(shape) > 1 else 1, 1


def _joins(full: Propagation, sq: Propagation, ctx: dict) -> list[dict]:
    rows = []
    for node in ctx["model"].graph.node:
        if node.op_type not in JOIN_OPS or not node.output or node.output[0] not in full.shapes:
            continue
        live = [j for j, i in enumerate(node.input) if i and full.times.get(i) is not None]
        if len(live) < 2:
            continue
        for j in live:
            tot, att = _operand_held(full, node, j), _operand_held(sq, node, j)
            if not tot and not att:
                continue
            name = node.input[j]
            H, W, C = _row_geometry(full.shape(name))
            nbytes = ctx["dtype_bytes"] or elem_size(full.shapes[name][1])
            block = ctx["blocks"].get(node.name) or (sq.labels.get(node.output[0]) if att else None)
            rows.append({"node": node.name, "op_type": node.op_type, "module": ctx["modules"].get(node.name, ""),
                         "block": block, "operand": name, "held_rows": tot / max(W * C, 1),
                         "attention_rows": att / max(W * C, 1), "H": H, "W": W, "C": C, "total_elements": tot,
                         "attention_elements": att, "dtype_bytes": nbytes, "total_bytes": tot * nbytes,
                         "attention_bytes": att * nbytes})
    return rows


def _line_buffers(full: Propagation, ctx: dict) -> list[dict]:
    rows = []
    for node in ctx["model"].graph.node:
        if node.op_type not in WINDOW_OPS or full.times.get(node.input[0]) is None:
            continue
        in_shape, out_shape = full.shape(node.input[0]), full.shape(node.output[0])
        if len(in_shape) < 3:
            continue
        w_shape = full.shape(node.input[1]) if node.op_type not in POOL_OPS and len(node.input) > 1 else None
        k, s, pb, d = window_spec(node, in_shape, out_shape, w_shape)[0]
        if k <= 1 or (node.op_type in POOL_OPS and k <= s):
            continue  # 1×1 rows stream straight through; non-overlapping pools accumulate in place
        arrive = np.broadcast_to(pad_dims(full.times[node.input[0]], len(in_shape)).max(
            axis=tuple(a for a in range(len(in_shape)) if a != 2), keepdims=False), (in_shape[2],))
        emit = np.broadcast_to(pad_dims(full.times[node.output[0]], len(out_shape)).max(
            axis=tuple(a for a in range(len(out_shape)) if a != 2), keepdims=False), (out_shape[2],))
        last = last_consumer(k, s, pb, d, in_shape[2], out_shape[2])
        release = np.where(last >= 0, emit[np.maximum(last, 0)], arrive)
        held = held_elements(arrive, release)
        H, W, C = _row_geometry(in_shape)
        nbytes = ctx["dtype_bytes"] or elem_size(full.shapes[node.input[0]][1])
        rows.append({"node": node.name, "op_type": node.op_type, "module": ctx["modules"].get(node.name, ""),
                     "block": ctx["blocks"].get(node.name), "kernel": k, "stride": s, "held_rows": held, "H": H,
                     "W": W, "C": C, "elements": held * W * C, "dtype_bytes": nbytes, "bytes": held * W * C * nbytes})
    return rows


def _blocks_table(joins: pd.DataFrame, found: AttentionGraph) -> pd.DataFrame:
    """One row per attention block found by structure (a block whose join holds nothing still has a row)."""
    rows = []
    for block in found.blocks:
        name = block.name
        part = joins[joins["block"] == name]
        rows.append({"block": name, "kind": block.kind, "squeeze": "+".join(block.squeeze_ops),
                     "joins": len(part), "attention_rows": float(part["attention_rows"].max())
                     if len(part) else 0.0, "attention_elements": int(part["attention_elements"].sum()),
                     "total_elements": int(part["total_elements"].sum()),
                     "attention_bytes": float(part["attention_bytes"].sum()),
                     "total_bytes": float(part["total_bytes"].sum())})
    return pd.DataFrame(rows, columns=["block", "kind", "squeeze", "joins", "attention_rows", "attention_elements",
                                       "total_elements", "attention_bytes", "total_bytes"])


def analyse_buffers(source: str | os.PathLike | onnx.ModelProto, input_size: int | None = None,
                    dtype_bytes: int | None = None) -> BufferReport:
    """Run the buffer model on an ONNX file or model at batch 1.

    Args:
        source: ONNX path or ``ModelProto`` (any static-shape graph; dynamic batch is fixed to 1).
        input_size: spatial size N for inputs with dynamic H/W (required then: ``ConfigError`` otherwise).
        dtype_bytes: bytes per element for the byte columns; default each tensor's own ONNX type.
    """
    model = load_model(source)
    static = make_static(model, input_size=input_size, batch=1)
    shapes = infer_shapes(static, shapes_by_running)
    consts = constant_values(static)
    modules = node_modules(static)
    found = find_attention(static)
    print_warnings(found, source if not isinstance(source, onnx.ModelProto) else "")
    blocks = node_blocks(static, found)
    full = Propagation(static, shapes, consts, blocks, window_lags=True).run()
    sq = Propagation(static, shapes, consts, blocks, window_lags=False).run()
    ctx = {"model": static, "modules": modules, "blocks": blocks, "dtype_bytes": dtype_bytes}
    joins = pd.DataFrame(_joins(full, sq, ctx), columns=JOIN_COLUMNS)
    lines = pd.DataFrame(_line_buffers(full, ctx), columns=LINE_COLUMNS)
    inits = {i.name for i in static.graph.initializer}
    first = next(vi.name for vi in static.graph.input if vi.name not in inits)
    src = str(source) if not isinstance(source, onnx.ModelProto) else (model.graph.name or "<model>")
    return BufferReport(source=src, input_shape=tuple(shapes[first][0]), joins=joins, line_buffers=lines,
                        blocks=_blocks_table(joins, found), unknown_ops=sorted(full.unknown | sq.unknown),
                        attention=found)
