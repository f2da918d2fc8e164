"""Squeezes: which ONNX nodes reduce spatial extent (global, tiled, by matrix product or drawn at random) and
which reduce channels (CBAM's spatial pooling); the attention detector's and the TSE rewrite's predicates."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from seadeploy.graphs.index import GraphIndex
from seadeploy.graphs.ops import GLOBAL_POOLS, MATMULS, RANDOMS, REDUCES, TILE_POOLS


def _axes(ix: GraphIndex, node: ir.Node) -> list[int] | None:
    axes = ix.attr(node, "axes")
    if axes is None and len(node.inputs) > 1:
        val = ix.const(node.inputs[1])
        axes = None if val is None else [int(a) for a in np.atleast_1d(val)]
    return None if axes is None else list(axes)


def reduced_axes(ix: GraphIndex, node: ir.Node) -> list[int] | None:
    """Normalised axes a Reduce* node reduces (``None`` when they cannot be known)."""
    x = node.inputs[0] if node.inputs else None
    shape = ix.shape(x)
    axes = _axes(ix, node)
    if axes is None:
        return None if ix.attr(node, "noop_with_empty_axes", 0) else list(range(len(shape))) if shape else None
    if shape is None:
        return list(axes) if all(a >= 0 for a in axes) else None
    return sorted({a % len(shape) for a in axes})


def squeeze_kind(ix: GraphIndex, node: ir.Node) -> str | None:
    """``"global"``, ``"tile"``, ``"matmul"`` when ``node`` reduces spatial extent (``"random"`` for a drawn
    descriptor), else ``None``."""
    op = node.op_type
    if op in RANDOMS:
        return "random"
    if op in GLOBAL_POOLS:
        return "global"
    if op in REDUCES:
        shape = ix.shape(node.inputs[0])
        axes = reduced_axes(ix, node)
        if axes is None:
            axes = [a for a in (_axes(ix, node) or []) if a < 0]
            return "global" if axes and all(a in (-1, -2) for a in axes) else None  # rank unknown: H/W from the end
        rank = len(shape) if shape else 0
        if rank < 3 or not axes or 0 in axes or 1 in axes:
            return None
        return "tile" if rank >= 5 else "global"
    if op in TILE_POOLS:
        kernel = list(ix.attr(node, "kernel_shape") or [])
        strides = list(ix.attr(node, "strides") or [1] * len(kernel))
        if not (kernel and kernel == strides and max(kernel) > 1):
            return None
        out = ix.shape(node.outputs[0])
        return "global" if out is not None and len(out) >= 3 and all(d == 1 for d in out[2:]) else "tile"
    if op in MATMULS:
        data = ix.data_inputs(node)
        ranks = [len(s) for s in (ix.shape(v) for v in node.inputs[:2]) if s is not None]
        if data and ranks and max(ranks) >= 3 and (len(data) == 2 or all(r >= 3 for r in ranks[:1])):
            return "matmul"
    return None


def channel_reduction(ix: GraphIndex, node: ir.Node) -> bool:
    """A reduction over the channel axis only (CBAM's spatial-attention pooling)."""
    if node.op_type not in REDUCES:
        return False
    shape = ix.shape(node.inputs[0])
    return bool(shape) and len(shape) == 4 and reduced_axes(ix, node) == [1]

