"""Rules for ops that move data without mixing rows: reshapes, slices, concatenation, resizes, matmuls.

Each rule maps the arrival times with the data (see :mod:`seadeploy.dataflow.arrival`).
"""

from __future__ import annotations

import numpy as np

from seadeploy.dataflow.arrival import pad_dims, reshape_times, resize_rows, window_rows
from seadeploy.dataflow.row_rules import global_reduce, out_ndim, rule
from seadeploy.graphs.index import attrs


@rule("Reshape", "Flatten")
def _reshape(p, node, ins):
    x = ins[0]
    if x is None:
        return [None], False
    return [reshape_times(x, p.shape(node.input[0]), p.shape(node.output[0]))], False


@rule("Squeeze", "Unsqueeze")
def _squeeze(p, node, ins):
    x = ins[0]
    if x is None:
        return [None], False
    return [reshape_times(x, p.shape(node.input[0]), p.shape(node.output[0]))], False


@rule("Transpose")
def _transpose(p, node, ins):
    x = ins[0]
    if x is None:
        return [None], False
    nd = len(p.shape(node.input[0]))
    perm = attrs(node).get("perm") or list(range(nd))[::-1]
    return [np.transpose(pad_dims(x, nd), perm)], False


@rule("Expand")
def _expand(p, node, ins):
    return [None if ins[0] is None else pad_dims(ins[0], out_ndim(p, node))], False


@rule("Tile")
def _tile(p, node, ins):
    x, reps = ins[0], p.const(node, 1)
    if x is None:
        return [None], False
    t = pad_dims(x, out_ndim(p, node))
    if reps is None:
        return global_reduce(p, node, ins)
    return [np.tile(t, [int(r) if t.shape[i] > 1 else 1 for i, r in enumerate(reps)])], False


@rule("Resize", "Upsample")
def _resize(p, node, ins):
    x = ins[0]
    if x is None:
        return [None], False
    out_shape = p.shape(node.output[0])
    t = pad_dims(x, len(out_shape))
    for axis in range(len(out_shape)):
        if t.shape[axis] > 1 and t.shape[axis] != out_shape[axis]:
            t = resize_rows(t, axis, out_shape[axis], node)
    return [t], False


@rule("Concat")
def _concat(p, node, ins):
    if all(t is None for t in ins):
        return [None], False
    nd = out_ndim(p, node)
    axis = attrs(node)["axis"] % nd
    parts = [pad_dims(t, nd) if t is not None else np.full((1,) * nd, -np.inf) for t in ins]
    other = [max(t.shape[a] for t in parts) if a != axis else 0 for a in range(nd)]
    full = []
    for name, t in zip(node.input, parts):
        size = list(other)
        size[axis] = p.shape(name)[axis] if len(p.shape(name)) == nd else 1
        full.append(np.broadcast_to(t, size))
    out = np.concatenate(full, axis=axis)
    return [np.where(np.isinf(out), np.nanmax(np.where(np.isinf(out), np.nan, out)), out)], False


def _slice_axis(t: np.ndarray, axis: int, idx: np.ndarray) -> np.ndarray:
    return t if t.shape[axis] == 1 else np.take(t, idx, axis=axis)


@rule("Slice")
def _slice(p, node, ins):
    x = ins[0]
    if x is None:
        return [None], False
    shp = p.shape(node.input[0])
    t = pad_dims(x, len(shp))
    at = attrs(node)
    starts = at.get("starts", p.const(node, 1))
    ends = at.get("ends", p.const(node, 2))
    if starts is None or ends is None:
        return global_reduce(p, node, ins)
    axes = at.get("axes", p.const(node, 3))
    axes = list(range(len(starts))) if axes is None else [int(a) % len(shp) for a in np.atleast_1d(axes)]
    steps = p.const(node, 4)
    steps = [1] * len(axes) if steps is None else [int(s) for s in np.atleast_1d(steps)]
    for a, st, en, sp in zip(axes, np.atleast_1d(starts), np.atleast_1d(ends), steps):
        idx = np.arange(shp[a])[slice(*slice(int(st), int(en), sp).indices(shp[a]))]
        t = _slice_axis(t, a, idx)
    return [t], False


@rule("Split")
def _split(p, node, ins):
    x = ins[0]
    if x is None:
        return [None] * len(node.output), False
    shp = p.shape(node.input[0])
    t = pad_dims(x, len(shp))
    axis = attrs(node).get("axis", 0) % len(shp)
    outs, start = [], 0
    for name in node.output:
        size = p.shape(name)[axis]
        outs.append(_slice_axis(t, axis, np.arange(start, start + size)))
        start += size
    return outs, False


@rule("Gather")
def _gather(p, node, ins):
    x, idx = ins[0], p.const(node, 1)
    if x is None:
        return [None], False
    if idx is None:
        return global_reduce(p, node, ins)
    shp = p.shape(node.input[0])
    t = pad_dims(x, len(shp))
    axis = attrs(node).get("axis", 0) % len(shp)
    idx = np.asarray(idx) % shp[axis]
    if t.shape[axis] > 1:
        return [np.take(t, idx, axis=axis)], False
    return [t.reshape(t.shape[:axis] + (1,) * idx.ndim + t.shape[axis + 1:])], False


@rule("Pad")
def _pad(p, node, ins):
    x = ins[0]
    if x is None:
        return [None], False
    shp, out = p.shape(node.input[0]), p.shape(node.output[0])
    t = pad_dims(x, len(shp))
    pads = attrs(node).get("pads", p.const(node, 1))
    if pads is None:
        return global_reduce(p, node, ins)
    pads = [int(v) for v in np.atleast_1d(pads)]
    axes = p.const(node, 3)
    axes = list(range(len(shp))) if axes is None else [int(a) % len(shp) for a in np.atleast_1d(axes)]
    for i, a in enumerate(axes):
        if t.shape[a] > 1:  # padded rows come with their nearest real row
            t = np.take(t, np.clip(np.arange(out[a]) - pads[i], 0, shp[a] - 1), axis=a)
    return [t], False


@rule("MatMul", "MatMulInteger", "Gemm", "FusedMatMul")
def _matmul(p, node, ins):
    """``(…, M, K) × (…, K, N)``: an output element waits for the whole contracted K axis of both operands."""
    at, nd = attrs(node), out_ndim(p, node)
    out, reduced = None, False
    for pos, (t, trans) in enumerate(((ins[0], at.get("transA", 0)), (ins[1] if len(ins) > 1 else None,
                                                                     at.get("transB", 0)))):
        if t is None:
            continue
        t = pad_dims(t, max(2, len(p.shape(node.input[pos]))))
        k_axis = (-2 if trans else -1) if pos == 0 else (-1 if trans else -2)
        weights = p.const(node, 1 - pos)
        if pos == 1 and not trans and t.shape[-2] > 1 and weights is not None and weights.ndim == 2:
            # constant @ x (e.g. adaptive pooling as an averaging matrix): row i reads rows with a nonzero weight
            t = np.stack([np.where((weights[i] != 0).reshape(-1, 1), t, -np.inf).max(axis=-2)
                          for i in range(weights.shape[0])], axis=-2)
            reduced = True
            out = pad_dims(t, nd) if out is None else np.maximum(out, pad_dims(t, nd))
            continue
        reduced = reduced or t.shape[k_axis] > 1
        t = t.max(axis=k_axis, keepdims=True)
        if trans:
            t = np.swapaxes(t, -1, -2)
        out = pad_dims(t, nd) if out is None else np.maximum(out, pad_dims(t, nd))
    if len(ins) > 2 and ins[2] is not None:
        out = pad_dims(ins[2], nd) if out is None else np.maximum(out, pad_dims(ins[2], nd))
    return [out], reduced


@rule("DepthToSpace")
def _depth_to_space(p, node, ins):
    x = ins[0]
    if x is None:
        return [None], False
    out = p.shape(node.output[0])
    t, b = pad_dims(x, 4).max(axis=1, keepdims=True), attrs(node)["blocksize"]
    for axis in (2, 3):
        t = t if t.shape[axis] == 1 else np.take(t, np.arange(out[axis]) // b, axis=axis)
    return [t], False


@rule("SpaceToDepth")
def _space_to_depth(p, node, ins):
    x = ins[0]
    if x is None:
        return [None], False
    out = p.shape(node.output[0])
    t, b = pad_dims(x, 4).max(axis=1, keepdims=True), attrs(node)["blocksize"]
    for axis in (2, 3):
        t = window_rows(t, axis, b, b, 0, 1, out[axis], p.window_lags)
    return [t], False
