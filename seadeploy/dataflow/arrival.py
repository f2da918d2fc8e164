"""Row-arrival propagation through an ONNX graph: the timing half of the dataflow model (docs/architecture.md §5).

Time is counted in rows of the network input. For every tensor we keep an array of arrival times
that broadcasts to the tensor's shape (batch 1) and has size 1 on every axis along which the time
does not change (so an NCHW activation is usually ``(1, 1, H, 1)``); constants have ``None``.

Rules (hand-written: no library models streaming row lags):

* a k×k window (Conv, pooling) with stride s emits output row r when its input rows up to
  ``s·r − pad + dilation·(k−1)`` have arrived (``s·r + ⌊k/2⌋`` for same padding);
* 1×1 and elementwise ops emit a row with the same row of every input (numpy broadcasting);
* a reduction over rows (ReduceMean/Max/…, GlobalAveragePool, softmax/normalisation over H) emits
  after its last input row, a tile reduction (pooling with kernel = stride, ReduceMean over a
  reshaped tile axis) tile row t after input row ``(t+1)·kh − 1`` — "after" is ``+EPS``;
* Reshape/Transpose/Slice/Concat/Gather/Resize move the times with the data;
* no tensor emits rows faster than its own row period (input rows per row, or less for a tensor that
  covers only part of the input), so a burst released by a global squeeze streams out again at the
  tensor's resolution;
* an op with no rule is treated as a global reduction (conservative) and reported.

With ``window_lags=False`` windows map row r to the centre of their window (no lag) and pooling
tiles count as squeezes only inside attention blocks: what remains are the squeeze-caused lags.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import onnx

from seadeploy.graphs.index import attrs
from seadeploy.graphs.ops import REDUCES, TILE_POOLS

EPS = 0.01  # "after the last row": smaller than any row period, summed over dozens of squeezes still < 1
TOL = 1e-4  # times closer than this are equal (float round-off between paths)
Arr = np.ndarray | None

POOL_OPS = TILE_POOLS
REDUCE_OPS = REDUCES | {"ArgMax", "ArgMin"}


def pad_dims(a: np.ndarray, ndim: int) -> np.ndarray:
    """Left-pad ``a`` with size-1 axes to ``ndim`` (numpy broadcasting alignment)."""
    return a.reshape((1,) * (ndim - a.ndim) + a.shape) if a.ndim < ndim else a


def compress(a: Arr) -> Arr:
    """Shrink every axis along which the times are constant to size 1."""
    if a is None:
        return None
    for ax in range(a.ndim):
        if a.shape[ax] > 1:
            hi, lo = a.max(axis=ax, keepdims=True), a.min(axis=ax, keepdims=True)
            if np.all(hi - lo <= TOL):
                a = hi
    return a


def max_of(arrays: list[Arr], ndim: int) -> Arr:
    """Elementwise max of the non-constant inputs, broadcast like ONNX does."""
    present = [pad_dims(a, ndim) for a in arrays if a is not None]
    return functools.reduce(np.maximum, present) if present else None


def window_spec(node: onnx.NodeProto, in_shape: tuple, out_shape: tuple, w_shape: tuple | None) -> list[tuple]:
    """``[(kernel, stride, pad_begin, dilation)]`` per spatial axis of a Conv/pool node."""
    at = attrs(node)
    nsp = len(in_shape) - 2
    kernel = list(at.get("kernel_shape") or (w_shape[2:] if w_shape else [1] * nsp))
    strides = list(at.get("strides") or [1] * nsp)
    dil = list(at.get("dilations") or [1] * nsp)
    pads = list(at.get("pads") or [0] * (2 * nsp))
    auto = at.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    spec = []
    for i in range(nsp):
        begin = pads[i]
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            total = max(0, (out_shape[2 + i] - 1) * strides[i] + dil[i] * (kernel[i] - 1) + 1 - in_shape[2 + i])
            begin = total // 2 if auto == "SAME_UPPER" else total - total // 2
        elif auto == "VALID":
            begin = 0
        spec.append((int(kernel[i]), int(strides[i]), int(begin), int(dil[i])))
    return spec


def window_rows(a: np.ndarray, axis: int, k: int, s: int, pb: int, d: int, out_len: int, lag: bool) -> np.ndarray:
    """Times of the output positions along ``axis`` of a sliding window over ``a``."""
    in_len = a.shape[axis]
    if in_len == 1:
        return a
    o = np.arange(out_len)
    if not lag:  # lag-free: the centre of the window
        return np.take(a, np.clip(s * o - pb + (d * (k - 1)) // 2, 0, in_len - 1), axis=axis)
    shape = [1] * a.ndim
    shape[axis] = out_len
    res = np.full((*a.shape[:axis], out_len, *a.shape[axis + 1:]), -np.inf)
    for j in range(k):
        idx = s * o - pb + d * j
        valid = ((idx >= 0) & (idx < in_len)).reshape(shape)
        res = np.maximum(res, np.where(valid, np.take(a, np.clip(idx, 0, in_len - 1), axis=axis), -np.inf))
    fallback = np.take(a, np.clip(s * o - pb, 0, in_len - 1), axis=axis)  # windows lying wholly in padding
    return np.where(np.isinf(res), fallback, res)


def last_consumer(k: int, s: int, pb: int, d: int, in_len: int, out_len: int) -> np.ndarray:
    """For each input row, the last output row whose window reads it (-1 when none does)."""
    last = np.full(in_len, -1)
    for o in range(out_len):
        idx = s * o - pb + d * np.arange(k)
        idx = idx[(idx >= 0) & (idx < in_len)]
        last[idx] = o
    return last


def resize_rows(a: np.ndarray, axis: int, out_len: int, node: onnx.NodeProto) -> np.ndarray:
    """Times of a Resize/Upsample output along ``axis``: the input rows its interpolation reads."""
    in_len = a.shape[axis]
    if in_len == 1:
        return a
    at = attrs(node)
    mode = (at.get("mode", b"nearest") or b"nearest")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    ctm = at.get("coordinate_transformation_mode", b"half_pixel" if node.op_type == "Resize" else b"asymmetric")
    ctm = ctm.decode() if isinstance(ctm, bytes) else str(ctm)
    nearest = at.get("nearest_mode", b"round_prefer_floor")
    nearest = nearest.decode() if isinstance(nearest, bytes) else str(nearest)
    o = np.arange(out_len, dtype=np.float64)
    scale = out_len / in_len
    if ctm == "align_corners":
        x = o * (in_len - 1) / max(out_len - 1, 1)
    elif ctm in ("asymmetric", "tf_crop_and_resize"):
        x = o / scale
    elif ctm == "pytorch_half_pixel" and out_len == 1:
        x = np.zeros_like(o)
    else:  # half_pixel, pytorch_half_pixel, half_pixel_symmetric
        x = (o + 0.5) / scale - 0.5
    if mode == "nearest":
        pick = {"floor": np.floor, "ceil": np.ceil, "round_prefer_ceil": lambda v: np.floor(v + 0.5)}.get(
            nearest, lambda v: np.ceil(v - 0.5))
        idx = [pick(x)]
    else:
        reach = 2 if mode == "cubic" else 1
        idx = [np.floor(x) + j for j in range(1 - reach, reach + 1)]
    taken = [np.take(a, np.clip(i.astype(int), 0, in_len - 1), axis=axis) for i in idx]
    return functools.reduce(np.maximum, taken)


def reshape_times(a: np.ndarray, in_shape: tuple, out_shape: tuple) -> np.ndarray:
    """Reshape ``a`` with the data: only the contiguous axis groups in which times vary are materialised."""
    if all(s == 1 for s in a.shape):
        return a.reshape((1,) * len(out_shape))
    a = pad_dims(a, len(in_shape))
    groups, i, j = [], 0, 0
    while i < len(in_shape) or j < len(out_shape):  # pair up axis groups with equal products
        gi, gj = [i], [j]
        pi, pj = (in_shape[i] if i < len(in_shape) else 1), (out_shape[j] if j < len(out_shape) else 1)
        while pi != pj:
            if pi < pj:
                i += 1
                gi.append(i)
                pi *= in_shape[i]
            else:
                j += 1
                gj.append(j)
                pj *= out_shape[j]
        groups.append(([x for x in gi if x < len(in_shape)], [y for y in gj if y < len(out_shape)]))
        i, j = i + 1, j + 1
    full = list(a.shape)
    new_shape: list[int] = []
    for gi, gj in groups:
        if any(a.shape[x] > 1 for x in gi):
            for x in gi:
                full[x] = in_shape[x]
            new_shape += [out_shape[y] for y in gj]
        else:
            new_shape += [1] * len(gj)
    return np.broadcast_to(a, full).reshape(new_shape)


Rule = Callable[..., list]
