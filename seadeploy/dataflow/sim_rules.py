"""The pixel simulator's own node rules (:mod:`seadeploy.dataflow.simulate_pixel`), written from ONNX semantics and
the hardware layers, sharing nothing with the analytic model: which input positions an output position reads, and
the cycles a folded layer spends per position."""

from __future__ import annotations

import numpy as np
import onnx

from seadeploy.graphs.index import attrs

WIRING = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Expand", "Tile", "Slice", "Split",
                    "Gather", "Concat", "Identity", "Cast", "Dropout", "Shape", "Constant"})
WINDOWS = frozenset({"Conv", "ConvInteger", "QLinearConv", "FusedConv", "MaxPool", "AveragePool", "LpPool",
                     "QLinearAveragePool"})
POOLS = frozenset({"MaxPool", "AveragePool", "LpPool", "QLinearAveragePool"})
ACCUMULATORS = frozenset({"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "ReduceMean", "ReduceMax",
                          "ReduceMin", "ReduceSum", "ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceProd",
                          "ReduceLogSum", "ReduceLogSumExp"})
MATMULS = frozenset({"Gemm", "MatMul", "MatMulInteger", "QLinearMatMul", "FusedMatMul"})


def _spatial(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(shape[2:]) if len(shape) >= 3 else ()


def count(shape: tuple[int, ...]) -> int:
    return int(np.prod(_spatial(shape))) if len(shape) >= 3 else 1


def _chan(shape: tuple[int, ...]) -> int:
    return int(shape[1]) if len(shape) >= 3 else int(np.prod(shape[1:])) if len(shape) > 1 else 1


def _window_axes(node, x, y, w) -> list[tuple[int, int, int, int]]:
    at = attrs(node)
    n = len(x) - 2
    k = list(at.get("kernel_shape") or (w[2:] if w is not None else [1] * n))
    s = list(at.get("strides") or [1] * n)
    dil = list(at.get("dilations") or [1] * n)
    pads = list(at.get("pads") or [0] * (2 * n))
    auto = at.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    out = []
    for i in range(n):
        pb = pads[i]
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            tot = max(0, (y[2 + i] - 1) * s[i] + dil[i] * (k[i] - 1) + 1 - x[2 + i])
            pb = tot // 2 if auto == "SAME_UPPER" else tot - tot // 2
        elif auto == "VALID":
            pb = 0
        out.append((int(k[i]), int(s[i]), int(pb), int(dil[i])))
    return out


def _resize_index(node, n_in: int, n_out: int, consts) -> tuple[np.ndarray, np.ndarray]:
    """(first, last) input index each output index of one axis reads under ONNX Resize semantics."""
    at = attrs(node)
    text = lambda v, d: (v or d).decode() if isinstance(v or d, bytes) else str(v or d)  # noqa: E731
    mode = text(at.get("mode"), b"nearest")
    ctm = text(at.get("coordinate_transformation_mode"), b"half_pixel" if node.op_type == "Resize" else b"asymmetric")
    near = text(at.get("nearest_mode"), b"round_prefer_floor")
    o = np.arange(n_out, dtype=float)
    scale = n_out / n_in
    if ctm == "align_corners":
        x = o * (n_in - 1) / max(n_out - 1, 1)
    elif ctm in ("asymmetric", "tf_crop_and_resize"):
        x = o / scale
    elif ctm == "pytorch_half_pixel" and n_out == 1:
        x = np.zeros_like(o)
    else:
        x = (o + 0.5) / scale - 0.5
    if mode == "nearest":
        f = {"floor": np.floor, "ceil": np.ceil, "round_prefer_ceil": lambda v: np.floor(v + 0.5)}.get(
            near, lambda v: np.ceil(v - 0.5))
        lo = hi = f(x)
    else:
        reach = 2 if mode == "cubic" else 1
        lo, hi = np.floor(x) + 1 - reach, np.floor(x) + reach
    return np.clip(lo, 0, n_in - 1).astype(np.int64), np.clip(hi, 0, n_in - 1).astype(np.int64)


def _crop_or_pad(node, x, y, consts) -> list[np.ndarray] | None:
    """Per spatial axis, the input index each output index carries: a Slice's ``start + i·step``; a Pad's
    ``i − pad_begin``, a pad position going out with its nearest real one (clamped)."""
    nd = len(x)
    if node.op_type == "Pad":
        pads = attrs(node).get("pads")
        if pads is None and len(node.input) > 1 and node.input[1] in consts:
            pads = [int(v) for v in np.atleast_1d(consts[node.input[1]])]
        if pads is None:
            return None
        axes = [int(a) % nd for a in np.atleast_1d(consts[node.input[3]])] if len(node.input) > 3 and \
            node.input[3] in consts else list(range(nd))
        begin = dict.fromkeys(range(nd), 0)
        for i, a in enumerate(axes):
            begin[a] = int(pads[i])
        return [np.clip(np.arange(y[a]) - begin[a], 0, x[a] - 1) for a in range(2, nd)]
    val = [consts.get(node.input[k]) if len(node.input) > k and node.input[k] else None for k in range(1, 5)]
    if val[0] is None or val[1] is None:
        return None
    axes = [int(a) % nd for a in np.atleast_1d(val[2])] if val[2] is not None else list(range(len(np.atleast_1d(val[0]))))
    steps = [int(s) for s in np.atleast_1d(val[3])] if val[3] is not None else [1] * len(axes)
    idx = {a: np.arange(x[a]) for a in range(nd)}
    for a, st, en, sp in zip(axes, np.atleast_1d(val[0]), np.atleast_1d(val[1]), steps):
        idx[a] = np.arange(x[a])[slice(*slice(int(st), int(en), sp).indices(x[a]))]
    return [idx[a] for a in range(2, nd)]


def reads(node: onnx.NodeProto, j: int, shapes: dict, consts: dict) -> tuple[np.ndarray, np.ndarray]:
    """(first, last) position of input ``j`` each output position of ``node`` reads (row-major positions)."""
    x, y = shapes[node.input[j]][0], shapes[node.output[0]][0]
    sx, sy = _spatial(x), _spatial(y)
    n_in, n_out = count(x), count(y)
    grid = np.arange(n_in).reshape(sx) if sx else np.zeros((), dtype=np.int64)
    op = node.op_type
    if op in WINDOWS and j == 0 and len(sx) == len(sy) and sx:
        w = shapes[node.input[3 if op == "QLinearConv" else 1]][0] if op not in POOLS else None
        lo_idx, hi_idx = [], []
        for axis, (k, s, pb, d) in enumerate(_window_axes(node, x, y, w)):
            o = np.arange(sy[axis])
            lo_idx.append(np.clip(s * o - pb, 0, sx[axis] - 1))
            hi_idx.append(np.clip(s * o - pb + d * (k - 1), 0, sx[axis] - 1))
        lo = grid[np.ix_(*lo_idx)].ravel()
        hi = grid[np.ix_(*hi_idx)].ravel()
        return lo, hi
    if op in ACCUMULATORS and sx:
        if op.startswith("Global"):
            axes = list(range(2, len(x)))
        else:
            at = attrs(node)
            axes = at.get("axes")
            if axes is None and len(node.input) > 1 and node.input[1] in consts:
                axes = [int(a) for a in np.atleast_1d(consts[node.input[1]])]
            axes = list(range(len(x))) if axes is None else [a % len(x) for a in axes]
        sp = tuple(a - 2 for a in axes if a >= 2)
        hi = grid.max(axis=sp) if sp else grid
        lo = grid.min(axis=sp) if sp else grid
        if hi.size == n_out:
            return np.ravel(lo), np.ravel(hi)
    if op in ("Resize", "Upsample") and len(sx) == len(sy) and sx:
        lo_idx, hi_idx = zip(*(_resize_index(node, sx[a], sy[a], consts) for a in range(len(sx))))
        return grid[np.ix_(*lo_idx)].ravel(), grid[np.ix_(*hi_idx)].ravel()
    if op in ("Pad", "Slice") and len(sx) == len(sy) and sx:
        idx = _crop_or_pad(node, x, y, consts)
        if idx is not None:
            g = grid[np.ix_(*idx)].ravel()
            return g, g
    if n_in == n_out:
        return np.arange(n_out), np.arange(n_out)  # same positions (elementwise, a reshape keeping them)
    if n_in == 1:
        return np.zeros(n_out, np.int64), np.zeros(n_out, np.int64)  # a broadcast operand
    return np.zeros(n_out, np.int64), np.full(n_out, n_in - 1)  # anything else: the whole input


def costs(node: onnx.NodeProto, shapes: dict, pe: int, simd: int) -> tuple[float, float]:
    """(cycles per output position, cycles per accumulated input position) for the folding."""
    op = node.op_type
    y = shapes[node.output[0]][0]
    x = shapes[node.input[0]][0]
    C = _chan(y)
    if op in WIRING:
        return 0.0, 0.0
    if op in WINDOWS and op not in POOLS:
        w = shapes[node.input[3 if op == "QLinearConv" else 1]][0]
        k2 = int(np.prod(w[2:]))
        group = attrs(node).get("group", 1)
        if group > 1 and group == _chan(x) == C:
            return C * k2 / (pe * simd), 0.0
        return (C / pe) * (k2 * int(w[1]) / simd), 0.0
    if op in MATMULS:
        a = shapes[node.input[0]][0]
        k = a[0] if op == "Gemm" and attrs(node).get("transA", 0) and len(a) == 2 else a[-1]
        return (int(y[-1]) / pe) * (int(k) / simd), 0.0
    if op in POOLS:
        k2 = int(np.prod(attrs(node).get("kernel_shape") or [1]))
        return C * k2 / pe, 0.0
    if op in ACCUMULATORS:
        return C / pe, C / pe
    if op == "Pad":
        return C / simd, 0.0
    return C / pe, 0.0
