"""The per-op rules that move row-arrival times through a graph (see :mod:`seadeploy.dataflow.arrival`)."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx

from seadeploy.dataflow import movement  # noqa: F401  (registers the data-movement rules)
from seadeploy.dataflow.arrival import (
    EPS,
    POOL_OPS,
    REDUCE_OPS,
    Arr,
    compress,
    pad_dims,
    window_rows,
    window_spec,
)
from seadeploy.dataflow.row_rules import RULES, elementwise, global_reduce, rule
from seadeploy.graphs.index import attrs
from seadeploy.graphs.ops import BINARY, CONSTANT_OPS, NORMALISE_OPS, UNARY, WINDOW_OPS


def is_tile_pool(node: onnx.NodeProto) -> bool:
    """A pooling whose kernel equals its stride (non-overlapping tiles) with more than one row per tile."""
    at = attrs(node)
    k, s = list(at.get("kernel_shape") or []), list(at.get("strides") or [])
    return node.op_type in POOL_OPS and bool(k) and k[0] > 1 and (s or [1] * len(k)) == k


@dataclasses.dataclass
class Propagation:
    """Arrival times of every tensor of a static-shape graph under one set of lag rules.

    Attributes:
        times: tensor name → arrival array (or ``None`` for constants).
        labels: tensor name → the squeeze (attention block, or reduction node name) whose lag it carries.
        unknown: op types that had no rule and were treated as global reductions.
    """

    model: onnx.ModelProto
    shapes: dict[str, tuple[tuple[int, ...], int]]
    consts: dict[str, np.ndarray]
    blocks: dict[str, str | None]
    window_lags: bool = True
    times: dict[str, Arr] = dataclasses.field(default_factory=dict)
    labels: dict[str, str | None] = dataclasses.field(default_factory=dict)
    squeezed: dict[str, bool] = dataclasses.field(default_factory=dict)
    unknown: set[str] = dataclasses.field(default_factory=set)

    def shape(self, name: str) -> tuple[int, ...]:
        return self.shapes[name][0]

    def const(self, node: onnx.NodeProto, index: int) -> np.ndarray | None:
        if index < len(node.input) and node.input[index]:
            return self.consts.get(node.input[index])
        return None

    def run(self) -> Propagation:
        """Propagate from the graph inputs through every node (the graph is topologically sorted)."""
        inits = {i.name for i in self.model.graph.initializer}
        ref = [self.shape(vi.name)[2] for vi in self.model.graph.input
               if vi.name not in inits and len(self.shape(vi.name)) == 4]
        self.ref_rows = ref[0] if ref else 1
        for vi in self.model.graph.input:
            if vi.name in inits:
                continue
            shp = self.shape(vi.name)
            self.times[vi.name] = (np.arange(shp[2], dtype=float).reshape(1, 1, -1, 1) * self.ref_rows / shp[2]
                                   if len(shp) == 4 else np.zeros((1,) * len(shp)))
            self.labels[vi.name] = None
        # A tile pool is a squeeze only inside an attention block found by structure: a ResNet-D shortcut's
        # 2×2 average pool or a stem pool is an ordinary window.
        self.tile_squeeze = lambda n: is_tile_pool(n) and self.blocks.get(n.name) is not None
        for node in self.model.graph.node:
            self._step(node)
        return self

    def _step(self, node: onnx.NodeProto) -> None:
        ins = [self.times.get(i) if i else None for i in node.input]
        fn = RULES.get(node.op_type)
        if fn is None and node.op_type in UNARY | BINARY:
            fn = elementwise
        if fn is None:
            self.unknown.add(node.op_type)
            fn = global_reduce
        outs, reduced = fn(self, node, ins)
        label = self._label(node, ins, reduced)
        flags = [self.squeezed.get(i, False) for i, t in zip(node.input, ins) if t is not None]
        # On the squeeze path (downstream of a row reduction) until it meets the feature map again.
        squeezed = reduced or (any(flags) and (len(flags) < 2 or all(flags)))
        for name, t in zip(node.output, outs):
            if not name:
                continue
            if t is not None and reduced:
                t = t + EPS
            self.times[name] = self._rate_limit(name, t)
            self.labels[name] = label
            self.squeezed[name] = squeezed

    def _label(self, node: onnx.NodeProto, ins: list[Arr], reduced: bool) -> str | None:
        """The squeeze whose lag an output carries: the reduction itself, else that of the input that
        arrives last for the earliest rows (its minimum arrival is the largest)."""
        if reduced:
            return self.blocks.get(node.name) or node.name
        live = [(float(np.min(t)), self.labels.get(i)) for i, t in zip(node.input, ins) if t is not None]
        return max(live, key=lambda x: x[0])[1] if live else None

    def _rate_limit(self, name: str, t: Arr) -> Arr:
        """No tensor emits rows faster than its period: ``T_r = max(need_r, T_{r-1} + period)``."""
        if t is None or name not in self.shapes:
            return compress(t)
        shp = self.shape(name)
        t = compress(pad_dims(t, len(shp)) if t.ndim <= len(shp) else t)
        if len(shp) != 4 or shp[2] <= 1 or t.ndim != 4 or t.shape[1] > 1 or t.shape[3] > 1:
            return t
        need = np.broadcast_to(t, (1, 1, shp[2], 1))[0, 0, :, 0]
        # The natural period is input rows per row; a tensor that covers only part of the input (pooling in
        # floor mode crops the last rows) arrives faster, so its own spacing of rows caps the period.
        steps = np.diff(need)
        steps = steps[steps > 0.5]
        period = min(self.ref_rows / shp[2], float(steps.min()) if steps.size else np.inf)
        r = np.arange(shp[2]) * period
        out = np.round(r + np.maximum.accumulate(need - r), 6)
        return compress(out.reshape(1, 1, -1, 1))


@rule(*CONSTANT_OPS)
def _constant(p, node, ins):
    return [None] * len(node.output), False


@rule(*WINDOW_OPS)
def _window(p, node, ins):
    x = ins[0]
    if x is None:
        return [None], False
    in_shape, out_shape = p.shape(node.input[0]), p.shape(node.output[0])
    w_shape = p.shape(node.input[{"QLinearConv": 3}.get(node.op_type, 1)]) if node.op_type not in POOL_OPS else None
    t = pad_dims(x, len(in_shape))
    group = attrs(node).get("group", 1)
    if node.op_type not in POOL_OPS and group != in_shape[1]:
        t = t.max(axis=1, keepdims=True)  # every output channel reads every input channel
    squeeze = p.tile_squeeze(node)
    # windows over squeezed descriptors (RGSE/SPSE fusion convs) are part of the squeeze: keep their lag
    lag = p.window_lags or squeeze or p.squeezed.get(node.input[0], False)
    for i, (k, s, pb, d) in enumerate(window_spec(node, in_shape, out_shape, w_shape)):
        t = window_rows(t, 2 + i, k, s, pb, d, out_shape[2 + i], lag)
    return [t], squeeze and in_shape[2] > 1


@rule("ConvTranspose")
def _conv_transpose(p, node, ins):
    x = ins[0]
    if x is None:
        return [None], False
    in_shape, out_shape = p.shape(node.input[0]), p.shape(node.output[0])
    t = pad_dims(x, len(in_shape)).max(axis=1, keepdims=True)
    for i, (k, s, pb, d) in enumerate(window_spec(node, in_shape, out_shape, p.shape(node.input[1]))):
        axis, n_in = 2 + i, in_shape[2 + i]
        if t.shape[axis] == 1:
            continue
        o = np.arange(out_shape[axis])
        if not p.window_lags:
            t = np.take(t, np.clip((o + pb - (d * (k - 1)) // 2) // s, 0, n_in - 1), axis=axis)
            continue
        cols = []
        for j in range(k):  # output o receives input i where o = s·i − pb + d·j
            num = o + pb - d * j
            ok = (num % s == 0) & (num // s >= 0) & (num // s < n_in)
            cols.append(np.where(ok, np.clip(num // s, 0, n_in - 1), -1))
        last = np.max(np.stack(cols), axis=0)
        t = np.take(t, np.maximum(last, 0), axis=axis)
    return [t], False


def _axes(p, node, ins_index: int = 1) -> list[int] | None:
    at = attrs(node)
    if "axes" in at:
        return list(at["axes"])
    if "axis" in at and node.op_type in ("ArgMax", "ArgMin"):
        return [at["axis"]]
    val = p.const(node, ins_index)
    return None if val is None else [int(v) for v in np.atleast_1d(val)]


@rule(*REDUCE_OPS, "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool")
def _reduce(p, node, ins):
    x = ins[0]
    if x is None:
        return [None], False
    in_shape = p.shape(node.input[0])
    t = pad_dims(x, len(in_shape))
    at = attrs(node)
    if node.op_type.startswith("Global"):
        axes, keep = list(range(2, len(in_shape))), True
    else:
        axes, keep = _axes(p, node), bool(at.get("keepdims", 1))
        if axes is None:
            axes = [] if at.get("noop_with_empty_axes", 0) else list(range(len(in_shape)))
    axes = [a % len(in_shape) for a in axes]
    reduced = any(t.shape[a] > 1 for a in axes)
    t = t.max(axis=tuple(axes), keepdims=True) if axes else t
    if not keep:
        t = t.reshape([s for i, s in enumerate(t.shape) if i not in axes])
    return [t], reduced


@rule(*NORMALISE_OPS, "CumSum")
def _normalise(p, node, ins):
    x = ins[0]
    if x is None:
        return [None], False
    shp = p.shape(node.input[0])
    t, at, nd = pad_dims(x, len(shp)), attrs(node), len(shp)
    if node.op_type in ("Softmax", "LogSoftmax", "Hardmax"):
        axis = at.get("axis", -1 if p.model.opset_import[0].version >= 13 else 1) % nd
        axes = [axis] if p.model.opset_import[0].version >= 13 else list(range(axis, nd))
    elif node.op_type == "CumSum":
        axis = int(np.atleast_1d(p.const(node, 1))[0]) % nd
        return [np.maximum.accumulate(t, axis=axis)], False
    elif node.op_type == "LayerNormalization":
        axes = list(range(at.get("axis", -1) % nd, nd))
    elif node.op_type == "LpNormalization":
        axes = [at.get("axis", -1) % nd]
    elif node.op_type == "MeanVarianceNormalization":
        axes = [a % nd for a in at.get("axes", [0, 2, 3])]
    else:  # InstanceNormalization, GroupNormalization: statistics over the spatial extent
        axes = list(range(1 if node.op_type == "GroupNormalization" else 2, nd))
    reduced = any(t.shape[a] > 1 for a in axes)
    return [t.max(axis=tuple(axes), keepdims=True)] + [None] * (len(node.output) - 1), reduced

