"""The rule registry of the row-arrival propagation (:mod:`seadeploy.dataflow.propagate`) and the two fallback rules.

A rule is ``fn(prop, node, inputs) -> (outputs, reduced_rows)``; :mod:`~seadeploy.dataflow.propagate` holds the
compute/window rules and :mod:`~seadeploy.dataflow.movement` the data-movement ones, both registered here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import onnx

from seadeploy.dataflow.arrival import Arr, max_of

if TYPE_CHECKING:
    from seadeploy.dataflow.propagate import Propagation

RULES: dict[str, Callable[[Propagation, onnx.NodeProto, list[Arr]], tuple[list[Arr], bool]]] = {}


def rule(*ops: str):
    """Register a rule ``fn(prop, node, inputs) -> (outputs, reduced_rows)`` for ``ops``."""

    def deco(fn):
        for op in ops:
            RULES[op] = fn
        return fn

    return deco


def out_ndim(p: Propagation, node: onnx.NodeProto) -> int:
    return len(p.shape(node.output[0])) if node.output[0] in p.shapes else max(
        (len(p.shape(i)) for i in node.input if i in p.shapes), default=0)


def elementwise(p: Propagation, node: onnx.NodeProto, ins: list[Arr]) -> tuple[list[Arr], bool]:
    # Quantize/Dequantize/BatchNorm parameters are per-channel constants; only input 0 carries rows.
    live = ins[:1] if node.op_type in ("QuantizeLinear", "DequantizeLinear", "BatchNormalization") else ins
    return [max_of(live, out_ndim(p, node))] * len(node.output), False


def global_reduce(p: Propagation, node: onnx.NodeProto, ins: list[Arr]) -> tuple[list[Arr], bool]:
    present = [t for t in ins if t is not None]
    if not present:
        return [None] * len(node.output), False
    top = max(float(np.max(t)) for t in present)
    varied = any(float(np.max(t) - np.min(t)) > 0 for t in present)
    outs = [np.full((1,) * (len(p.shape(o)) if o in p.shapes else 1), top) for o in node.output]
    return outs, varied
