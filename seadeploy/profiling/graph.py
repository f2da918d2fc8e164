"""ONNX graph helpers shared by the profilers: loading, static shapes, module paths, roles, params and MACs.

Everything here works on any ONNX file: module paths come from the exporter's per-node metadata when
present (``module`` written by seadeploy's export, else ``pkg.torch.onnx.name_scopes``) and are empty
otherwise. Attention blocks and roles come from the structural analysis of :mod:`seadeploy.graphs.attention`
(names never decide them); the other nodes get plain op-type roles.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from seadeploy.backends.ort import with_extra_outputs
from seadeploy.errors import ConfigError, InputError
from seadeploy.graphs.attention import AttentionGraph, find_attention, node_module
from seadeploy.profiling.schema import SQUEEZE_OPS, classify_role

Shape = tuple[int, ...]


def load_model(source: str | os.PathLike | onnx.ModelProto) -> onnx.ModelProto:
    """Load an ONNX file (or pass a ``ModelProto`` through) with a readable error."""
    if isinstance(source, onnx.ModelProto):
        return source
    path = Path(source)
    if not path.is_file():
        raise InputError(f"ONNX file '{path}' does not exist; export one with python -m seadeploy.export")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError / OSError / ValueError depending on the damage
        raise InputError(f"'{path}' is not a readable ONNX model ({exc})") from exc
    if not model.graph.node or not model.graph.input:  # a 0-byte file parses as an empty ModelProto
        raise InputError(f"'{path}' is not a readable ONNX model (empty or truncated: no graph nodes or inputs); "
                         "re-export it")
    return model


def node_modules(model: onnx.ModelProto) -> dict[str, str]:
    """``{node name: PyTorch module path}``; ``""`` where the graph carries no module metadata."""
    return {n.name: node_module(n) for n in model.graph.node}  # graphs.attention: the one module-metadata reader


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


def infer_shapes(model: onnx.ModelProto) -> dict[str, tuple[Shape, int]]:
    """``{tensor: (shape, onnx elem_type)}`` for every tensor, from ONNX shape inference.

    Falls back to running ONNX Runtime once on zeros when inference leaves a dim unknown (custom
    ops, shape arithmetic the inferencer cannot fold).
    """
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as exc:  # inference errors are model bugs; report and fall back
        inferred, _ = model, exc
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
    if missing:
        shapes.update(_shapes_by_running(model, missing))
    return shapes


def _shapes_by_running(model: onnx.ModelProto, names: list[str]) -> dict[str, tuple[Shape, int]]:
    """Run ONNX Runtime once on zeros with ``names`` exposed as outputs and read their shapes."""
    import onnxruntime as ort  # noqa: PLC0415  optional: onnxruntime comes with the cpu/gpu extra (train runs without it)

    produced = {o for n in model.graph.node for o in n.output}
    m = with_extra_outputs(model, [n for n in names if n in produced])
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    try:
        sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise InputError(f"cannot infer tensor shapes of this ONNX model ({exc})") from exc
    feed = {}
    for i in sess.get_inputs():
        dtype = {"tensor(int64)": np.int64, "tensor(float16)": np.float16, "tensor(int32)": np.int32}.get(i.type,
                                                                                                        np.float32)
        feed[i.name] = np.zeros([d if isinstance(d, int) else 1 for d in i.shape], dtype=dtype)
    outs = sess.run(None, feed)
    out: dict[str, tuple[Shape, int]] = {}
    for meta, value in zip(sess.get_outputs(), outs):
        if meta.name in names:
            out[meta.name] = (tuple(np.asarray(value).shape), helper.np_dtype_to_tensor_dtype(np.asarray(value).dtype))
    return out


def elem_size(elem_type: int) -> int:
    """Bytes per element of an ONNX tensor type."""
    try:
        return int(np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).itemsize)
    except (KeyError, TypeError, ValueError):
        return 4


def constant_values(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Values of initializers and ``Constant`` node outputs (reduction axes, reshape targets, pads...)."""
    vals = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    vals[node.output[0]] = numpy_helper.to_array(a.t)
                elif a.name in ("value_ints", "value_int", "value_floats", "value_float"):
                    vals[node.output[0]] = np.asarray(helper.get_attribute_value(a))
    return vals


def attrs(node: onnx.NodeProto) -> dict:
    """Node attributes as plain Python values."""
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def attention(model: onnx.ModelProto | str | os.PathLike) -> AttentionGraph:
    """The channel-attention blocks and roles of ``model``, found by structure (:mod:`seadeploy.graphs.attention`)."""
    return find_attention(model if isinstance(model, onnx.ModelProto) else load_model(model))


def attention_roles(model: onnx.ModelProto, modules: dict[str, str] | None = None,
                    found: AttentionGraph | None = None) -> dict[str, str]:
    """``{node: role}``: the ``attention.*`` role of every node of a block found by structure, the plain op-type
    role (:func:`classify_role`) elsewhere."""
    modules = node_modules(model) if modules is None else modules
    found = attention(model) if found is None else found
    return {n.name: found.roles.get(n.name) or classify_role(n.op_type, modules.get(n.name, ""))
            for n in model.graph.node}


def node_blocks(model: onnx.ModelProto, found: AttentionGraph | None = None) -> dict[str, str | None]:
    """``{node: attention block name or None}`` for every node (the buffer model's and pipeline's block map)."""
    found = attention(model) if found is None else found
    return {n.name: found.block_of.get(n.name) for n in model.graph.node}


def node_params_macs(model: onnx.ModelProto, shapes: dict[str, tuple[Shape, int]]) -> dict[str, tuple[float, float]]:
    """``{node: (parameter count, multiply-accumulates per batch item)}``.

    MACs are counted like fvcore/FlopCounterMode for Conv/Gemm/MatMul; the attention's reduction,
    gate and broadcast multiply count one op per output element (per input element for reductions)
    so the SE/TSE cost shows up instead of vanishing (docs/deployment.md "Numerics").
    """
    inits = {i.name: int(np.prod(i.dims)) if len(i.dims) else 1 for i in model.graph.initializer}
    out: dict[str, tuple[float, float]] = {}
    for n in model.graph.node:
        params = float(sum(inits.get(i, 0) for i in n.input))
        oshape = shapes.get(n.output[0], ((), 1))[0] if n.output else ()
        onum = float(np.prod(oshape[1:])) if len(oshape) > 1 else float(np.prod(oshape) if oshape else 1)
        macs = 0.0
        if n.op_type in ("Conv", "ConvTranspose", "QLinearConv", "ConvInteger"):
            w = shapes.get(n.input[1 if n.op_type != "QLinearConv" else 3], ((), 1))[0]
            macs = onum * float(np.prod(w[1:])) if len(w) > 1 else 0.0
        elif n.op_type in ("Gemm", "MatMul", "MatMulInteger", "QLinearMatMul"):
            a = shapes.get(n.input[0], ((), 1))[0]
            k = a[-1] if a else 0
            if n.op_type == "Gemm" and attrs(n).get("transA", 0) and len(a) == 2:
                k = a[0]
            macs = onum * float(k)
        elif n.op_type in SQUEEZE_OPS or n.op_type in ("Mul", "Add", "Sigmoid", "HardSigmoid", "Resize", "Expand"):
            ishape = shapes.get(n.input[0], ((), 1))[0] if n.input else ()
            macs = float(np.prod(ishape[1:])) if n.op_type in SQUEEZE_OPS and len(ishape) > 1 else onum
        out[n.name] = (params, macs)
    return out
