"""Export-time lowering of squeeze-and-excite blocks into the form ONNX Runtime's CPU fast path keeps.

The dynamo exporter writes an SE block as ``ReduceMean(H,W, keepdims=0) → Gemm → act → Gemm → Sigmoid →
Unsqueeze → Mul``. On ONNX Runtime CPU the 2-D excitation leaves the blocked NCHWc layout: the squeeze runs as
a plain ReduceMean, the Gemms on (N, C) vectors, and ORT inserts a ReorderOutput/ReorderInput pair around
the attention (56 reorder nodes on resnet56_cifar, 7 % of the time). The same function written as
``GlobalAveragePool → 1×1 Conv → act → 1×1 Conv → Sigmoid`` on (N, C, 1, 1) maps stays in NCHWc end to end
(GlobalAveragePool and Conv have NCHWc kernels, the activations fuse into the convs)::

    model = onnx_ir.load("model.onnx")
    report = lower_attention(model)          # {"squeeze_to_gap": 27, "vector_chains_to_4d": 27, ...}

The rewrite is the same function up to float summation order (a mean is a mean, ``x·Wᵀ + b`` on a (N, C)
vector is a 1×1 convolution on (N, C, 1, 1)), so fp32 parity with PyTorch is unchanged.

Hand-written over onnx_ir rather than onnxscript's pattern rewriter: the chain between the squeeze and the
broadcast has a variable length and content (relu/silu/gelu, optional biases, folded BatchNorms), and
every value on it changes rank, which is one walk here and a family of patterns there.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx
import onnx_ir as ir

from seadeploy.graphs.ops import LIFTABLE_BINARY, LIFTABLE_UNARY

_META_KEYS = ("module", "pkg.torch.onnx.name_scopes")
#: Gates are expanded only on maps whose channel count fills whole NCHWc blocks (MLAS uses 8 channels per block
#: with AVX2, 16 with AVX-512); elsewhere ORT runs the Mul in NCHW and the Resize would be a wasted copy.
NCHWC_ALIGN = 16
GATE_SUFFIX, SCALES_SUFFIX = "__gate_broadcast", "__gate_scales"
JOIN_SUFFIX, ONES_SUFFIX = "__residual_join", "__identity_weight"


def _const(value: ir.Value | None) -> np.ndarray | None:
    if value is None:
        return None
    tensor = ir.convenience.get_const_tensor(value)
    return None if tensor is None else tensor.numpy()


def _attr(node: ir.Node, name: str, default: int | float) -> int | float:
    attr = node.attributes.get(name)
    return default if attr is None else attr.value


def _reduce_axes(node: ir.Node) -> tuple[list[int], int] | None:
    """Axes and keepdims of a ReduceMean over H and W of a rank-4 tensor, else None."""
    x = node.inputs[0]
    if x is None or x.shape is None or len(x.shape) != 4:
        return None
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        axes = _const(node.inputs[1])
        if axes is None:
            return None
        axes = axes.tolist()
    else:
        attr = node.attributes.get("axes")
        if attr is None:
            return None
        axes = list(attr.value)
    axes = sorted(int(a) % 4 for a in np.ravel(axes))
    if axes != [2, 3]:
        return None
    return axes, int(_attr(node, "keepdims", 1))


def _terminal(node: ir.Node) -> bool:
    """``Unsqueeze(axes 2,3)`` or ``Reshape(N, C, 1, 1)``: the (N, C) → (N, C, 1, 1) broadcast step."""
    if node.op_type == "Unsqueeze":
        axes = _const(node.inputs[1]) if len(node.inputs) > 1 else None
        return axes is not None and sorted(int(a) % 4 for a in np.ravel(axes)) == [2, 3]
    if node.op_type == "Reshape":
        shape = _const(node.inputs[1])
        return shape is not None and shape.size == 4 and shape.ravel()[2:].tolist() == [1, 1]
    return False


def _chain_step(node: ir.Node, value: ir.Value, chain: set[ir.Value]) -> str | None:
    """How ``node`` (a consumer of chain value ``value``) takes part in the lifted chain, or None (abort)."""
    if _terminal(node) and node.inputs[0] is value:
        return "terminal"
    if node.op_type in LIFTABLE_UNARY and node.inputs[0] is value:
        if node.op_type == "BatchNormalization" or all(_const(v) is not None for v in node.inputs[1:] if v is not None):
            return "keep"
        return None
    if node.op_type == "Gemm" and node.inputs[0] is value and _const(node.inputs[1]) is not None:
        bias = node.inputs[2] if len(node.inputs) > 2 else None
        plain = _attr(node, "alpha", 1.0) == 1.0 and _attr(node, "beta", 1.0) == 1.0 and not _attr(node, "transA", 0)
        return "gemm" if plain and (bias is None or _const(bias) is not None) else None
    if node.op_type == "MatMul" and node.inputs[0] is value and _const(node.inputs[1]) is not None:
        return "matmul" if _const(node.inputs[1]).ndim == 2 else None
    if node.op_type in LIFTABLE_BINARY and len(node.inputs) == 2:
        other = node.inputs[1] if node.inputs[0] is value else node.inputs[0]
        if other in chain or other is value:
            return "keep"
        c = _const(other)
        if c is not None and (c.size == 1 or c.ndim == 1 or (c.ndim == 2 and c.shape[0] == 1)):
            return "binary_const"
    return None


def _collect_chain(start: ir.Value) -> dict[ir.Node, str] | None:
    """Every node fed (transitively) by ``start`` up to the broadcast steps; None when the chain is not closed."""
    steps: dict[ir.Node, str] = {}
    chain: set[ir.Value] = {start}
    frontier = [start]
    while frontier:
        value = frontier.pop()
        if value.is_graph_output():
            return None
        for node in value.consumers():
            if node in steps:
                continue
            step = _chain_step(node, value, chain)
            if step is None:
                # A binary op whose other input is a chain value not yet reached: retry once it is.
                if node.op_type in LIFTABLE_BINARY and any(v is not None and v.producer() is not None and v not in chain
                                                  for v in node.inputs):
                    continue
                return None
            steps[node] = step
            if step != "terminal":
                for out in node.outputs:
                    chain.add(out)
                    frontier.append(out)
    # Every consumer of every chain value must be in the chain (a value also used in 2-D elsewhere would break).
    for value in chain:
        if any(n not in steps for n in value.consumers()):
            return None
    return steps if any(s == "terminal" for s in steps.values()) else None


def _copy_meta(src: ir.Node, dst: ir.Node) -> None:
    for key in _META_KEYS:
        if key in src.metadata_props:
            dst.metadata_props[key] = src.metadata_props[key]


def _initializer(graph: ir.Graph, name: str, array: np.ndarray) -> ir.Value:
    value = ir.Value(name=name, const_value=ir.tensor(np.ascontiguousarray(array), name=name))
    graph.register_initializer(value)
    return value


def _replace(graph: ir.Graph, old: ir.Node, new: ir.Node) -> None:
    """Put ``new`` where ``old`` was, moving every use of old's outputs to new's, keeping the name and metadata."""
    _copy_meta(old, new)
    graph.insert_before(old, new)
    for a, b in zip(old.outputs, new.outputs, strict=True):
        name, b.type = a.name, a.type
        a.name = None
        b.name = name
        a.replace_all_uses_with(b)
    name = old.name
    graph.remove(old, safe=True)
    new.name = name


def _fresh(graph: ir.Graph, base: str) -> str:
    return f"{base}__4d"


def _drop_unused_initializers(graph: ir.Graph) -> None:
    """Remove initializers nothing reads any more, and give each 4-D replacement its original's name."""
    for name, value in list(graph.initializers.items()):
        if not value.uses() and not value.is_graph_output() and not value.is_graph_input():
            graph.initializers.pop(name)
    for name, value in list(graph.initializers.items()):
        if name.endswith("__4d") and name[:-4] not in graph.initializers:
            graph.initializers.pop(name)
            value.name = value.const_value.name = name[:-4]
            graph.register_initializer(value)


def _lift(graph: ir.Graph, steps: dict[ir.Node, str]) -> None:
    for node, step in list(steps.items()):
        for out in node.outputs:
            out.shape = None  # rank changes from 2 to 4; shape inference fills it in again
        if step == "gemm":
            w = _const(node.inputs[1])
            w = w if _attr(node, "transB", 0) else w.T
            inputs = [node.inputs[0], _initializer(graph, _fresh(graph, node.inputs[1].name), w[:, :, None, None])]
            bias = node.inputs[2] if len(node.inputs) > 2 else None
            if bias is not None:
                b = _const(bias)
                inputs.append(_initializer(graph, _fresh(graph, bias.name),
                                           np.broadcast_to(b.ravel(), (w.shape[0],)).astype(b.dtype)))
            _replace(graph, node, ir.node("Conv", inputs, attributes={"kernel_shape": [1, 1]}, num_outputs=1))
        elif step == "matmul":
            w = _const(node.inputs[1])
            conv = ir.node("Conv", [node.inputs[0], _initializer(graph, _fresh(graph, node.inputs[1].name),
                                                                 w.T[:, :, None, None])],
                           attributes={"kernel_shape": [1, 1]}, num_outputs=1)
            _replace(graph, node, conv)
        elif step == "binary_const":
            i = 0 if _const(node.inputs[0]) is not None and node.inputs[0].producer() is None else 1
            c = _const(node.inputs[i])
            if c.size > 1:
                node.replace_input_with(i, _initializer(graph, _fresh(graph, node.inputs[i].name),
                                                        c.reshape(-1, 1, 1)))
        elif step == "terminal":
            out, src = node.outputs[0], node.inputs[0]
            name, out.name = out.name, None
            src.name = name  # keep the tensor name the consumers knew
            out.replace_all_uses_with(src)
            graph.remove(node, safe=True)


def lower_attention(model: ir.Model) -> dict[str, int]:
    """Rewrite every global-mean squeeze and its (N, C) excitation chain into the 4-D form, in place.

    * ``ReduceMean(axes=H,W, keepdims=1)`` → ``GlobalAveragePool``;
    * ``ReduceMean(axes=H,W, keepdims=0)`` → ``GlobalAveragePool``, and the chain it feeds up to the
      ``Unsqueeze``/``Reshape`` back to (N, C, 1, 1) is lifted to 4-D: ``Gemm``/``MatMul`` with constant weights
      become 1×1 ``Conv``, 1-D constants of binary ops become (C, 1, 1), the final unsqueeze is dropped.

    A chain that does not close (e.g. the classifier's pooled vector feeding the logits) is left alone, and
    so is its squeeze. Returns counts of what was rewritten.
    """
    graph = model.graph
    counts = {"squeeze_to_gap": 0, "vector_chains_to_4d": 0}
    for node in list(graph):
        if node.op_type != "ReduceMean" or node.domain not in ("", "ai.onnx"):
            continue
        found = _reduce_axes(node)
        if found is None:
            continue
        _, keepdims = found
        if not keepdims:
            steps = _collect_chain(node.outputs[0])
            if steps is None:
                continue
            _lift(graph, steps)
            counts["vector_chains_to_4d"] += 1
        gap = ir.node("GlobalAveragePool", [node.inputs[0]], num_outputs=1)
        _replace(graph, node, gap)
        gap.outputs[0].shape = None
        counts["squeeze_to_gap"] += 1
    _drop_unused_initializers(graph)
    graph.sort()
    return counts


def lowered_ops(model: ir.Model, names: Iterable[str] = ("GlobalAveragePool", "ReduceMean", "Gemm", "Unsqueeze")) -> dict[str, int]:
    """Op-type counts, for reports and tests."""
    wanted = set(names)
    out: dict[str, int] = dict.fromkeys(wanted, 0)
    for node in model.graph:
        if node.op_type in wanted:
            out[node.op_type] += 1
    return out


def _gate_muls(graph: ir.Graph) -> list[tuple[ir.Node, int]]:
    """``Mul(x, g)`` nodes with x a (N, C, H, W) map and g a (N, C, 1, 1) gate; returns (node, index of g)."""
    found = []
    for node in graph:
        if node.op_type != "Mul" or len(node.inputs) != 2 or any(v is None for v in node.inputs):
            continue
        for i in (0, 1):
            g, x = node.inputs[i], node.inputs[1 - i]
            if g.const_value is not None or x.shape is None or g.shape is None or len(x.shape) != 4 or len(g.shape) != 4:
                continue
            hw = list(x.shape[2:])
            channels = x.shape[1]
            if (all(isinstance(d, int) for d in hw) and list(g.shape[2:]) == [1, 1] and max(hw) > 1
                    and isinstance(channels, int) and channels % NCHWC_ALIGN == 0):
                found.append((node, i))
                break
    return found


def broadcast_gates(model: ir.Model) -> int:
    """Expand each (N, C, 1, 1) gate of a ``Mul`` to the full map with ``Resize(nearest)`` (a pure copy).

    ORT's NCHWc transformer keeps a binary op in the blocked layout only when both inputs have the same
    shape (``NchwcTransformerImpl::TransformBinary``), so a broadcasting ``Mul`` falls back to NCHW with a
    ReorderOutput/ReorderInput pair around it; ``Resize`` (nearest, asymmetric, floor, integer scales) has an
    NCHWc kernel. This is how the TSE lowering broadcasts its tile gates. Returns the number of gates expanded.
    """
    graph = model.graph
    count = 0
    for node, i in _gate_muls(graph):
        x = node.inputs[1 - i]
        scales = _initializer(graph, f"{node.name}{SCALES_SUFFIX}",
                              np.array([1.0, 1.0, float(x.shape[2]), float(x.shape[3])], dtype=np.float32))
        resize = ir.node("Resize", [node.inputs[i], None, scales], num_outputs=1,
                         attributes={"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
                                     "nearest_mode": "floor"})
        _copy_meta(node, resize)
        resize.name = f"{node.name}{GATE_SUFFIX}"
        resize.outputs[0].name = f"{node.name}__gate_full"
        # The full shape, symbolic batch included: ONNX shape inference loses the batch symbol through Resize's
        # float scales, and NCHWc only keeps a binary op blocked when it can prove both shapes equal.
        resize.outputs[0].shape, resize.outputs[0].type = ir.Shape(list(x.shape)), x.type
        graph.insert_before(node, resize)
        node.replace_input_with(i, resize.outputs[0])
        count += 1
    return count


def join_residuals(model: ir.Model) -> int:
    """Let ORT fuse the residual ``Add`` (+ ``Relu``) after a gated ``Mul`` into a convolution again.

    Without attention the residual Add and its Relu ride on conv2 (NCHWc Conv with a Sum input and a fused
    activation); with SE the gate Mul sits between conv2 and the Add, so Add and Relu each make a pass over the
    map. Routing the skip tensor through a depthwise 1×1 Conv with weight 1 (``r·1 + 0 = r`` exactly in float)
    gives the Add a Conv to fuse into (``Conv(r) + Sum(mul)`` then Relu): one pass instead of two, the same
    numbers bit for bit. Only where the map fills whole NCHWc blocks and the skip is not already a single-use
    Conv (a projection shortcut, which ORT fuses by itself). Returns the number of joins rewritten.
    """
    graph = model.graph
    # Gated maps: a Mul of two equal-shaped rank-4 maps, neither constant (SE after broadcast_gates, TSE's
    # Resize-broadcast tiles); only those stay in NCHWc, where the Conv/Sum fusion exists.
    gated = {n.outputs[0] for n in graph if n.op_type == "Mul" and len(n.inputs) == 2
             and all(v is not None and v.const_value is None and v.shape is not None and len(v.shape) == 4
                     for v in n.inputs) and list(n.inputs[0].shape) == list(n.inputs[1].shape)}
    count = 0
    for node in list(graph):
        if node.op_type != "Add" or len(node.inputs) != 2 or sum(v in gated for v in node.inputs) != 1:
            continue
        i = 0 if node.inputs[1] in gated else 1
        r = node.inputs[i]
        if r.shape is None or len(r.shape) != 4 or not isinstance(r.shape[1], int) or r.shape[1] % NCHWC_ALIGN:
            continue
        producer = r.producer()
        if producer is not None and producer.op_type == "Conv" and len(r.uses()) == 1:
            continue
        c = r.shape[1]
        ones = _initializer(graph, f"{node.name}{ONES_SUFFIX}", np.ones((c, 1, 1, 1), dtype=np.float32))
        conv = ir.node("Conv", [r, ones], attributes={"group": c, "kernel_shape": [1, 1]}, num_outputs=1)
        _copy_meta(node, conv)
        conv.name, conv.outputs[0].name = f"{node.name}{JOIN_SUFFIX}", f"{node.name}__skip"
        conv.outputs[0].shape, conv.outputs[0].type = r.shape, r.type
        graph.insert_before(node, conv)
        node.replace_input_with(i, conv.outputs[0])
        count += 1
    return count


def lower_for_ort(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, int]]:
    """Both rewrites on a ModelProto (metadata kept): 4-D squeeze/excitation, then gates expanded to the map.

    Shape inference runs in between, since the gate expansion needs the attended map's static H×W.
    """
    model = ir.from_proto(proto)
    counts = lower_attention(model)
    model = ir.from_proto(onnx.shape_inference.infer_shapes(ir.to_proto(model)))
    counts["gates_expanded"] = broadcast_gates(model)
    counts["residual_joins"] = join_residuals(model)
    model.graph.sort()
    return ir.to_proto(model), counts


def drop_gate_broadcasts(proto: onnx.ModelProto) -> int:
    """Undo :func:`broadcast_gates` and :func:`join_residuals` in place (the Resize and identity Conv nodes they
    added are bypassed and removed).

    For int8 on ORT CPU: the quantized graph runs in NHWC QLinear kernels that broadcast the gate and add
    the skip themselves, so both would only cost passes (and a requantised identity). Returns the number removed.
    """
    graph = proto.graph
    drop = {n.output[0]: n.input[0] for n in graph.node
            if (n.op_type == "Resize" and n.name.endswith(GATE_SUFFIX)) or (n.op_type == "Conv" and n.name.endswith(JOIN_SUFFIX))}
    kept = [n for n in graph.node if n.output[0] not in drop]
    for node in kept:
        node.input[:] = [drop.get(i, i) for i in node.input]
    used = {i for n in kept for i in n.input}
    inits = [t for t in graph.initializer if t.name in used or not t.name.endswith((SCALES_SUFFIX, ONES_SUFFIX))]
    vinfo = [v for v in graph.value_info if v.name not in drop]
    for field, items in ((graph.node, kept), (graph.initializer, inits), (graph.value_info, vinfo)):
        del field[:]
        field.extend(items)
    return len(drop)
