"""SE → TSE on an ONNX graph, with the zoo's deployable TSE lowering (models/attention/tse.py, pooling.py).

The blocks come from the one structural attention analysis (:func:`seadeploy.graphs.attention.find_attention`,
run on the graph index this module builds once):
its squeeze nodes, the tensor ``X`` they read, the excitation/gate/scale nodes and the scale join. This module
only decides which of those blocks the lowering can rewrite and rewrites them. A block is rewritten when it
is a multiplicative channel block (``X ⊙ g(squeeze(X))``) with exactly one global *average* squeeze reading
``X`` directly (``GlobalAveragePool``, ``ReduceMean`` over H,W, an ``AveragePool`` whose window is the map)
and an excitation of ops with a 4-D tiled form (Gemm/MatMul with a constant weight, 1×1 Conv,
BatchNormalization, pointwise ops, the Flatten/Reshape/Squeeze/Unsqueeze/Expand around them) whose tensors
are used nowhere else. Every other block — CBAM's spatial part, SB's or global context's additive join,
max/std/avg+max squeezes, ECA's Conv1d, a squeeze that is already tiled — is kept as it is and its record
says why (``reason``).

Rewrite of one block with tile ``(kh, kw)`` on an ``H×W`` map (the zoo's lowering, docs/deployment.md "Tiled SE
export traps"): ``[Pad] → AveragePool(k, k) → [Mul k²/valid]`` instead of the global pool; the excitation
kept 4-D (Gemm/MatMul → 1×1 Conv with the same weights, the shape ops dropped, 1-D constants reshaped to
``(1, C, 1, 1)``); ``Resize(nearest, asymmetric, floor, integer scales) → [Slice]`` on the gate before the Mul.
A tile covering the map leaves the block as it is (exact SE).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir
from onnx import helper, numpy_helper

from seadeploy.errors import InputError
from seadeploy.graphs.attention import find_attention
from seadeploy.graphs.blocks import AttentionBlock
from seadeploy.graphs.classify import join_node, tse_reason
from seadeploy.graphs.index import GraphIndex
from seadeploy.graphs.load import load_ir
from seadeploy.graphs.ops import SHAPE_READS, TSE_MIXING, TSE_POINTWISE, TSE_SHAPE_OPS
from seadeploy.tiles import stage_tiles


@dataclasses.dataclass
class Block:
    """One attention block of a graph as the rewrite sees it (names of nodes and tensors of the graph).

    ``pool``: the squeeze node; ``mul``: the scale join; ``input``: the tensor ``X`` the squeeze reads;
    ``gate``: the join operand that carries the gate; ``path``: the data nodes between squeeze and join.
    """

    block: str
    pool: str
    mul: str
    input: str
    gate: str
    channels: int
    height: int
    width: int
    path: list[str]
    convertible: bool = True
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _name_nodes(model: onnx.ModelProto) -> None:
    """Unnamed or duplicate-named nodes get a name (``node_<i>``) so every block can refer to its nodes."""
    seen: set[str] = set()
    for i, n in enumerate(model.graph.node):
        if not n.name or n.name in seen:
            n.name = f"node_{i}"
        seen.add(n.name)


def _unsupported(ix: GraphIndex, node: ir.Node) -> str:
    """Why ``node`` on the excitation path has no 4-D tiled form (``""`` when it has one)."""
    op = node.op_type
    if op not in TSE_SHAPE_OPS | TSE_POINTWISE | TSE_MIXING:
        return f"op {op} ('{node.name}') on the excitation path"
    if op == "Conv":
        w = ix.shape(node.inputs[1]) if len(node.inputs) > 1 else None
        if w is None or len(w) != 4 or tuple(w[2:]) != (1, 1):
            return f"'{node.name}' is not a 1×1 Conv2d (ECA's Conv1d over channels has no tiled form here)"
    if op in ("Gemm", "MatMul"):
        w = ix.const(node.inputs[1]) if len(node.inputs) > 1 else None
        if w is None or w.ndim != 2:
            return f"'{node.name}': the excitation weight is not a constant matrix"
        if op == "Gemm" and (ix.attr(node, "transA", 0) or ix.attr(node, "alpha", 1.0) != 1.0
                             or ix.attr(node, "beta", 1.0) != 1.0):
            return f"'{node.name}': Gemm with transA/alpha/beta"
        if op == "Gemm" and len(node.inputs) > 2 and node.inputs[2] is not None and ix.const(node.inputs[2]) is None:
            return f"'{node.name}': Gemm bias is not constant"
    return ""


def _plan(ix: GraphIndex, b: AttentionBlock) -> Block:
    """The rewrite's view of one detected block, ``convertible=False`` with a reason when it is kept as is."""
    members = [ix.by_name[n] for n in b.nodes]
    join = join_node(ix, b)
    pool = ix.by_name[b.reductions[0]] if b.reductions else None
    shape = ix.shape(pool.inputs[0]) if pool is not None and pool.inputs else None
    static = shape is not None and len(shape) == 4 and all(d is not None for d in shape[1:])
    c, h, w = (int(d) for d in shape[1:]) if static else (0, 0, 0)
    reason = tse_reason(ix, b)  # the one classification every command reports (graphs/classify.py)
    blk = Block(b.name, pool.name if pool is not None else "", join.name if join is not None else "", b.input, "",
                c, h, w, [], convertible=not reason, reason=reason)
    if not blk.convertible:
        return blk
    # The data path: block nodes fed (transitively) by the squeeze's output, shape reads excluded.
    live = {id(o) for o in pool.outputs}
    path = []
    for n in sorted(members, key=lambda n: ix.order[id(n)]):
        if n is pool or n is join or n.op_type in SHAPE_READS:
            continue
        if any(v is not None and id(v) in live for v in n.inputs):
            path.append(n)
            live.update(id(o) for o in n.outputs)
    gate = [v for v in join.inputs if v is not None and id(v) in live]
    blk.path = [n.name for n in path]
    allowed = {id(n) for n in (*path, join)} | {id(n) for n in members if n.op_type in SHAPE_READS}
    shared = [o.name for n in (pool, *path) for o in n.outputs
              if o.is_graph_output() or any(id(u) not in allowed for u in o.consumers())]
    bad = next((r for r in (_unsupported(ix, n) for n in path) if r), "")
    if len(gate) != 1:
        blk.convertible, blk.reason = False, "the scale join does not multiply one gate onto the map"
    elif bad:
        blk.convertible, blk.reason = False, bad
    elif shared:
        blk.convertible, blk.reason = False, f"excitation tensor '{shared[0]}' is also used outside the block"
    else:
        blk.gate = gate[0].name
    return blk


def _analyse(model: onnx.ModelProto) -> tuple[list[Block], GraphIndex]:
    """Blocks of ``model`` (nodes named first, in place) and the index they were found on."""
    _name_nodes(model)
    ix = GraphIndex(load_ir(model))
    return [_plan(ix, b) for b in find_attention(ix).blocks], ix


def find_blocks(model: onnx.ModelProto) -> list[Block]:
    """Every channel-attention block of ``model`` (:func:`~seadeploy.graphs.attention.find_attention`) in graph
    order, with whether the TSE lowering can rewrite it. Unnamed nodes get a name (``node_<i>``) in ``model``."""
    return _analyse(model)[0]


def _names(values: Iterable[ir.Value | None]) -> list[str]:
    """Tensor names of node inputs or outputs as the proto spells them (``""`` for an omitted optional input)."""
    return [v.name or "" if v is not None else "" for v in values]


def _name(base: str, used: set[str]) -> str:
    i, name = 0, base
    while name in used:
        i += 1
        name = f"{base}_{i}"
    used.add(name)
    return name


def se_to_tse_onnx(model: onnx.ModelProto, tile: Any, per_block: bool = False
                   ) -> tuple[onnx.ModelProto, list[dict[str, Any]]]:
    """A rewritten copy of ``model`` and one record per block (``tile``: int, (kh, kw) or per-map-size list;
    ``per_block``: ``tile`` lists one tile per convertible block, in graph order). Blocks the lowering cannot
    rewrite are kept and their record's ``reason`` says why.

    Raises:
        InputError: the graph has no channel-attention block, or none that can be rewritten.
    """
    model = _checked_input(onnx.ModelProto.FromString(model.SerializeToString()))
    blocks, ix = _analyse(model)
    if not blocks:
        raise InputError("the ONNX graph has no squeeze-excite (channel-attention) block: nothing to convert")
    ok = [b for b in blocks if b.convertible]
    if not ok:
        raise InputError(f"none of the {len(blocks)} attention blocks can be rewritten: {blocks[0].reason}")
    if per_block:
        if len(tile) != len(ok):
            raise InputError(f"the graph has {len(ok)} convertible attention blocks but {len(tile)} tiles were given")
        tiles = [tuple(t) for t in tile]
    else:
        tiles = stage_tiles(tile, [(1, b.channels, b.height, b.width) for b in ok])
    tile_of = {b.pool: t for b, t in zip(ok, tiles, strict=True)}
    g = model.graph
    used = ({n.name for n in g.node} | {o for n in g.node for o in n.output} | {i.name for i in g.initializer}
            | {i.name for i in g.input})
    new_inits: list[onnx.TensorProto] = []
    replace: dict[str, list[onnx.NodeProto]] = {}
    records = []
    for b in blocks:
        rec = {**b.to_dict(), "tile": None, "rewritten": False}
        records.append(rec)
        if not b.convertible:
            continue
        kh, kw = tile_of[b.pool]
        kh, kw = min(kh, b.height), min(kw, b.width)
        rec["tile"] = [kh, kw]
        if kh == b.height and kw == b.width:
            rec["reason"] = "tile covers the map: SE kept (exact)"
            continue

        def init(base: str, arr: np.ndarray) -> str:
            name = _name(base, used)
            new_inits.append(numpy_helper.from_array(np.asarray(arr), name))
            return name

        pool = ix.by_name[b.pool]
        x, y = pool.inputs[0].name, pool.outputs[0].name
        gh, gw = math.ceil(b.height / kh), math.ceil(b.width / kw)
        prefix = f"tse{len([r for r in records if r['rewritten']])}"
        seq: list[onnx.NodeProto] = []
        src = x
        if gh * kh != b.height or gw * kw != b.width:
            pads = init(f"{prefix}/pads", np.array([0, 0, 0, 0, 0, 0, gh * kh - b.height, gw * kw - b.width], np.int64))
            padded = _name(f"{prefix}/padded", used)
            seq.append(helper.make_node("Pad", [x, pads], [padded], name=_name(f"{prefix}/Pad", used)))
            src = padded
        pooled = y if src == x else _name(f"{prefix}/pooled", used)
        seq.append(helper.make_node("AveragePool", [src], [pooled], name=_name(f"{prefix}/AveragePool", used),
                                    kernel_shape=[kh, kw], strides=[kh, kw]))
        if src != x:
            scale = np.array([[kh * kw / (min(kh, b.height - i * kh) * min(kw, b.width - j * kw)) for j in range(gw)]
                              for i in range(gh)], np.float32)[None, None]
            seq.append(helper.make_node("Mul", [pooled, init(f"{prefix}/edge_scale", scale)], [y],
                                        name=_name(f"{prefix}/EdgeScale", used)))
        replace[pool.name] = seq
        for name in b.path:
            node = ix.by_name[name]
            if node.op_type in TSE_SHAPE_OPS:
                replace[name] = [helper.make_node("Identity", _names(node.inputs[:1]), _names(node.outputs), name=name)]
            elif node.op_type in ("Gemm", "MatMul"):
                replace[name] = [_as_conv(ix, node, init)]
            elif node.op_type in ("Add", "Mul", "Sub", "Div"):
                ins = _names(node.inputs)
                for k, v in enumerate(node.inputs):
                    c = ix.const(v)
                    if c is not None and c.ndim in (1, 2) and c.size > 1:
                        ins[k] = init(f"{prefix}/{name}/c4d", c.reshape(1, -1, 1, 1))
                if ins != _names(node.inputs):
                    replace[name] = [helper.make_node(node.op_type, ins, _names(node.outputs), name=name)]
        mul = ix.by_name[b.mul]
        up = _name(f"{prefix}/gate_up", used)
        scales = init(f"{prefix}/scales", np.array([1, 1, kh, kw], np.float32))
        seq2 = [helper.make_node("Resize", [b.gate, "", scales], [up], name=_name(f"{prefix}/Resize", used),
                                 mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")]
        if gh * kh != b.height or gw * kw != b.width:
            cropped = _name(f"{prefix}/gate_crop", used)
            seq2.append(helper.make_node("Slice", [up, init(f"{prefix}/starts", np.array([0, 0], np.int64)),
                                                   init(f"{prefix}/ends", np.array([b.height, b.width], np.int64)),
                                                   init(f"{prefix}/axes", np.array([2, 3], np.int64))], [cropped],
                                         name=_name(f"{prefix}/Slice", used)))
            up = cropped
        ins = [up if i == b.gate else i for i in _names(mul.inputs)]
        replace[mul.name] = [*seq2, helper.make_node("Mul", ins, _names(mul.outputs), name=mul.name)]
        rec["rewritten"] = True
    out_nodes = []
    for n in g.node:
        out_nodes.extend(replace.get(n.name, [n]))
    del g.node[:]
    g.node.extend(out_nodes)
    g.initializer.extend(new_inits)
    _prune(model)
    model.graph.ClearField("value_info")
    _ensure_opset(model, 13)
    onnx.checker.check_model(model)
    return model, records


def _checked_input(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with inferred shapes, checked: some exporters leave a graph output's shape out, which the checker
    (run again on the rewritten graph) refuses; inference fills it. A graph the checker still refuses is bad input.

    Raises:
        InputError: the graph fails the ONNX checker before any rewrite.
    """
    with contextlib.suppress(Exception):  # best effort (any inference error type): the checker below decides
        model = onnx.shape_inference.infer_shapes(model)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"the ONNX graph fails the ONNX checker before conversion: {first}") from exc
    return model


def _as_conv(ix: GraphIndex, node: ir.Node, init) -> onnx.NodeProto:
    """Gemm / MatMul with a constant weight (checked by :func:`_unsupported`) → the same weights as a 1×1 Conv
    on the 4-D tile descriptors."""
    w = ix.const(node.inputs[1])
    weight = w if node.op_type == "Gemm" and ix.attr(node, "transB", 0) else w.T
    ins = [node.inputs[0].name, init(f"{node.name}/w1x1", np.ascontiguousarray(weight)[:, :, None, None])]
    if node.op_type == "Gemm" and len(node.inputs) > 2 and node.inputs[2] is not None:
        ins.append(init(f"{node.name}/b1x1", np.ravel(ix.const(node.inputs[2])).astype(weight.dtype)))
    return helper.make_node("Conv", ins, _names(node.outputs), name=node.name, kernel_shape=[1, 1])


def _prune(model: onnx.ModelProto) -> None:
    """Drop nodes and initializers nothing uses any more (the Shape→Gather→Concat of dropped Reshapes)."""
    g = model.graph
    while True:
        used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        keep = [n for n in g.node if any(o in used for o in n.output)]
        if len(keep) == len(g.node):
            break
        del g.node[:]
        g.node.extend(keep)
    used = {i for n in g.node for i in n.input}
    inits = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(inits)


def _ensure_opset(model: onnx.ModelProto, minimum: int) -> None:
    for op in model.opset_import:
        if op.domain in ("", "ai.onnx") and op.version < minimum:
            raise InputError(f"the graph uses opset {op.version}; the TSE rewrite needs opset ≥ {minimum} "
                             "(re-export with a newer opset)")
