"""FIFO accounting of the row model: per join operand, window line buffer and queueing stream, the single-frame
held amount, the steady-state zero-stall depth and the lead (the depth below which the graph deadlocks)."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pandas as pd

from seadeploy.dataflow.arrival import POOL_OPS, TOL, last_consumer, pad_dims, window_spec
from seadeploy.dataflow.buffers import JOIN_OPS, held_elements
from seadeploy.dataflow.hardware import NONE_NEEDED, PASS_THROUGH_ROWS, Graph, Hardware, row_index
from seadeploy.dataflow.timed import TimedPropagation
from seadeploy.graphs.index import attrs
from seadeploy.graphs.ops import WINDOW_OPS
from seadeploy.graphs.shapes import elem_size

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
            consume = consume.max(axis=attrs(node)["axis"] % nd, keepdims=True)
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
            nbytes = hw.dtype_bytes or elem_size(p.shapes[name][1])
            rows.append({"node": node.name, "op_type": node.op_type, "kind": kind,
                         "block": g.blocks.get(node.name) or (sq.labels.get(node.output[0]) if att else None),
                         "operand": name, "input_index": idx, "H": H, "W": W, "C": C,
                         "skew_cycles": skew * period, "buffer_rows": single / per_row, "buffer_elements": int(single),
                         "attention_elements": int(att), "lead_rows": lead / per_row,
                         "fifo_rows": math.ceil(steady / per_row - 1e-9), "fifo_elements": int(steady),
                         "dtype_bytes": nbytes, "fifo_bytes": int(steady) * nbytes})
    return pd.DataFrame(rows, columns=JOIN_FIFO_COLUMNS)

