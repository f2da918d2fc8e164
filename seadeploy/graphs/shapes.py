"""Concrete tensor shapes of a static graph: the one shape-inference entry for sizes, liveness and MACs.

:func:`make_static` fixes batch and spatial size; :func:`infer_shapes` gives ``{tensor: (shape, elem_type)}``
from ONNX shape inference; where inference leaves a dim unknown, a runner the caller passes measures it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import helper

from seadeploy.errors import ConfigError

Shape = tuple[int, ...]


def _dims(vi: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in vi.type.tensor_type.shape.dim]


def input_dims(model: onnx.ModelProto) -> dict[str, list[int | str]]:
    """Declared dims of the graph inputs (initializers excluded); symbolic dims are strings."""
    inits = {i.name for i in model.graph.initializer}
    return {vi.name: _dims(vi) for vi in model.graph.input if vi.name not in inits}


def make_static(model: onnx.ModelProto, input_size: int | None = None, batch: int = 1) -> onnx.ModelProto:
    """A copy with every input fixed to ``batch`` and (for 4-D image inputs) ``input_size`` × ``input_size``.

    Raises:
        ConfigError: the spatial dims are dynamic and no ``input_size`` is given, or ``input_size``
            contradicts fixed spatial dims.
    """
    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = {i.name for i in m.graph.initializer}
    for vi in m.graph.input:
        if vi.name in inits:
            continue
        dims = vi.type.tensor_type.shape.dim
        for axis, d in enumerate(dims):
            fixed = d.HasField("dim_value") and d.dim_value > 0
            if axis == 0:
                if fixed and d.dim_value != batch:
                    raise ConfigError(f"input '{vi.name}' has a fixed batch of {d.dim_value}, not {batch}; use batch "
                                      f"{d.dim_value} or re-export with a dynamic batch")
                d.Clear()
                d.dim_value = batch
            elif axis >= 2 and len(dims) == 4:
                if input_size is None and not fixed:
                    raise ConfigError(f"input '{vi.name}' has dynamic spatial dims {_dims(vi)}; pass --input-size N "
                                      f"to analyse it at N×N")
                if input_size is not None and fixed and d.dim_value != input_size:
                    raise ConfigError(f"input '{vi.name}' is fixed at {_dims(vi)[2:]}; --input-size {input_size} does "
                                      f"not match (drop --input-size or re-export at that size)")
                if input_size is not None:
                    d.Clear()
                    d.dim_value = input_size
            elif not fixed:
                raise ConfigError(f"input '{vi.name}' has a dynamic dim at axis {axis} ({_dims(vi)}); only batch and "
                                  f"spatial dims can be fixed here")
    del m.graph.value_info[:]
    for out in m.graph.output:
        out.type.tensor_type.ClearField("shape")
    return m


#: ``run(model, names) -> {tensor: (shape, elem_type)}``: measures the shapes of ``names`` by running the model.
ShapeRunner = Callable[[onnx.ModelProto, list[str]], dict[str, tuple[Shape, int]]]


def infer_shapes(model: onnx.ModelProto, run: ShapeRunner | None = None) -> dict[str, tuple[Shape, int]]:
    """``{tensor: (shape, onnx elem_type)}`` for every tensor, from ONNX shape inference.

    Where inference leaves a dim unknown (custom ops, shape arithmetic the inferencer cannot fold), ``run`` measures
    the rest (the ort backend's ``shapes_by_running``; graph code sits below the runtimes, so the caller passes it);
    without it those tensors are left out.
    """
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 - inference errors are model bugs; the run below finds the shapes
        inferred = model
    shapes: dict[str, tuple[Shape, int]] = {}
    for init in inferred.graph.initializer:
        shapes[init.name] = (tuple(init.dims), init.data_type)
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = _dims(vi)
        if vi.type.HasField("tensor_type") and dims and all(isinstance(d, int) and d > 0 for d in dims):
            shapes[vi.name] = (tuple(int(d) for d in dims), vi.type.tensor_type.elem_type)
        elif vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape") and not dims:
            shapes[vi.name] = ((), vi.type.tensor_type.elem_type)
    for node in inferred.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    shapes[node.output[0]] = (tuple(a.t.dims), a.t.data_type)
    missing = [o for n in inferred.graph.node for o in n.output if o and o not in shapes]
    if missing and run is not None:
        shapes.update(run(model, missing))
    return shapes


def elem_size(elem_type: int) -> int:
    """Bytes per element of an ONNX tensor type."""
    try:
        return int(np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).itemsize)
    except (KeyError, TypeError, ValueError):
        return 4
