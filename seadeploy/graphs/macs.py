"""The one MAC counter over ONNX nodes: parameters and multiply-accumulates per node, and graph totals.

MACs are counted like fvcore/FlopCounterMode for Conv/Gemm/MatMul; the attention's reduction, gate and
broadcast multiply count one op per output element (per input element for reductions) so the SE/TSE cost
shows up instead of vanishing (docs/deployment.md "Numerics").
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import onnx

from seadeploy.graphs.index import attrs
from seadeploy.graphs.ops import CONV_MACS, ELEMENT_MACS, MATMUL_MACS, SQUEEZE_OPS
from seadeploy.graphs.shapes import Shape, ShapeRunner, infer_shapes


def node_params_macs(model: onnx.ModelProto, shapes: dict[str, tuple[Shape, int]]) -> dict[str, tuple[float, float]]:
    """``{node: (parameter count, multiply-accumulates per batch item)}`` of a static graph with ``shapes`` from
    :func:`~seadeploy.graphs.shapes.infer_shapes`."""
    inits = {i.name: int(np.prod(i.dims)) if len(i.dims) else 1 for i in model.graph.initializer}
    return {n.name: _count(n, inits, shapes) for n in model.graph.node}


def total_macs(model: onnx.ModelProto, ops: Collection[str], run: ShapeRunner | None = None) -> int:
    """Multiply-accumulates per batch item of the nodes whose op type is in ``ops``, on a static graph (``run``:
    measures the shapes inference leaves unknown, :func:`~seadeploy.graphs.shapes.infer_shapes`)."""
    shapes = infer_shapes(model, run)
    inits = {i.name: int(np.prod(i.dims)) if len(i.dims) else 1 for i in model.graph.initializer}
    return int(sum(_count(n, inits, shapes)[1] for n in model.graph.node if n.op_type in ops))


def _count(n: onnx.NodeProto, inits: dict[str, int], shapes: dict[str, tuple[Shape, int]]) -> tuple[float, float]:
    params = float(sum(inits.get(i, 0) for i in n.input))
    oshape = shapes.get(n.output[0], ((), 1))[0] if n.output else ()
    onum = float(np.prod(oshape[1:])) if len(oshape) > 1 else float(np.prod(oshape) if oshape else 1)
    macs = 0.0
    if n.op_type in CONV_MACS:
        w = shapes.get(n.input[1 if n.op_type != "QLinearConv" else 3], ((), 1))[0]
        macs = onum * float(np.prod(w[1:])) if len(w) > 1 else 0.0
    elif n.op_type in MATMUL_MACS:
        a = shapes.get(n.input[0], ((), 1))[0]
        k = a[-1] if a else 0
        if n.op_type == "Gemm" and attrs(n).get("transA", 0) and len(a) == 2:
            k = a[0]
        macs = onum * float(k)
    elif n.op_type in SQUEEZE_OPS or n.op_type in ELEMENT_MACS:
        ishape = shapes.get(n.input[0], ((), 1))[0] if n.input else ()
        macs = float(np.prod(ishape[1:])) if n.op_type in SQUEEZE_OPS and len(ishape) > 1 else onum
    return params, macs
