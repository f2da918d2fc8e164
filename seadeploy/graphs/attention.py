"""Channel attention found by graph structure: blocks and a role per node of any ONNX graph.

One analysis (over ``onnx_ir``) serves the per-layer roles, the memory tags, the dataflow buffer blocks, the
fp16 keep-fp32 set and the statistics (docs/architecture.md §2). It walks the graph index
(:mod:`seadeploy.graphs.index`); the op-type sets are in :mod:`seadeploy.graphs.ops`.

**The criterion.** A *squeeze* is a reduction over spatial axes — global (``GlobalAveragePool``,
``GlobalMaxPool``, ``ReduceMean/Max/L2/…`` over H,W or over a flattened H·W, the Sub/Mul/Sqrt chain of a
std) or tiled (``AveragePool``/``MaxPool`` with kernel = stride, ``ReduceMean`` over the tile axes of a
6-D reshape) or a ``MatMul`` that contracts H·W (global-context attention pooling, adaptive pooling
matrices); SsENet's random squeeze (a drawn descriptor, ``RandomUniformLike``) counts as one too.
A *join* ``Mul``/``Add`` of two activations ``p`` and ``q`` closes a block when

1. every path into ``q`` passes through squeezes (``q`` carries no un-reduced pixel of the trunk),
2. the squeezes read a tensor ``X`` from which ``p`` derives by elementwise/shape ops only (``X`` itself
   included), so the result is multiplied (or, for SB and additive global context, added) back onto it,
3. between the squeezes and ``q`` there is channel mixing (Conv/Gemm/MatMul with a weight: the FC or
   1×1 excitation, ECA's Conv1d over channels), and
4. ``q`` broadcasts over ``p`` spatially, or is re-expanded to it (Resize/Upsample/Expand/Tile).

Pooling that is not attention fails (1) or (2): a ResNet-D shortcut's 2×2 average pool feeds an ``Add``
whose other operand comes through convolutions, stem pools and the classifier GAP feed no join back onto
their source at all.

**Roles** inside a block: *squeeze* = the reductions, the ops between ``X`` and them (flatten, pad, the std's
centring, GC's attention-logit conv and softmax) and elementwise ops right after them (std's Div/Sqrt, the
sum of avg and max descriptors); *gate* = the chain of single-input pointwise ops next to the scale that
contains a gate function (Sigmoid, HardSigmoid, Tanh, Softmax, the ``relu6(x + 3)/6`` Add/Clip/Div form,
SB's per-channel λ multiply); *scale* = the join and the shape/broadcast ops between the gate and it; the
rest (FC/1×1/Conv1d, norms, inner activations, flatten/reshape around them) is the *excitation*. Shape
arithmetic (``Shape``/``Gather``/``Constant`` feeding a reshape) takes the role of the node it feeds.

**CBAM's spatial attention** (mean/max over channels → 7×7 conv → sigmoid → multiply) follows a channel
block and is folded into that block (one CBAM = one block, ``kind="channel+spatial"``): the channel
reductions are its squeeze, the conv/BN its excitation, the sigmoid its gate and the multiply its scale. It
causes no row lag of its own, so the buffer model sees only its window. A spatial attention without a
channel block before it is not counted (this analysis finds *channel* attention).

Module-path metadata (``metadata_props`` ``module`` / ``pkg.torch.onnx.name_scopes``, or TorchScript's
``/stage1/se/Mul`` node names) only NAMES a block: the longest common module prefix of its nodes.

>>> found = find_attention("model.onnx")                              # doctest: +SKIP
>>> len(found.blocks), found.roles["node_mean"], found.block_of["node_mean"]  # doctest: +SKIP
(16, 'attention.squeeze', 'blocks.1.se')
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterable

import onnx
import onnx_ir as ir

from seadeploy.graphs.blocks import (
    ATTENTION_ROLES,
    EXCITE,
    GATE,
    SCALE,
    SQUEEZE,
    AttentionBlock,
    AttentionGraph,
)
from seadeploy.graphs.index import GraphIndex, node_module
from seadeploy.graphs.load import load_ir
from seadeploy.graphs.ops import BROADCASTS, GATE_FUNCS, JOINS, MATMULS, MIXING, NORMS, POINTWISE, SHAPE_OPS
from seadeploy.graphs.squeeze import channel_reduction, squeeze_kind

_WALK_LIMIT = 400  # nodes one backward walk may visit before giving up (a join far from any squeeze)


# ------------------------------------------------------------------------------------------ the analysis
def _transparent_chain(ix: GraphIndex, v: ir.Value) -> list[ir.Value]:
    """``v`` and the tensors it derives from by elementwise (with constants) or data-movement ops only."""
    out, cur = [v], v
    while True:
        node = ix.producer(cur)
        if node is None or node.op_type in MIXING or squeeze_kind(ix, node):
            return out
        data = ix.data_inputs(node)
        if len(data) != 1 or node.op_type not in POINTWISE | SHAPE_OPS or node.op_type in NORMS - {
                "BatchNormalization"}:
            return out
        cur = data[0]
        out.append(cur)


def _walk_branch(ix: GraphIndex, q: ir.Value, stop, forbidden: set[int]) -> tuple[list[ir.Node], list[ir.Node]] | None:
    """Nodes on the data paths into ``q`` up to the nodes where ``stop(node)`` holds (returned separately).

    ``None`` when a path reaches a graph input or a ``forbidden`` tensor (un-reduced trunk data) first.
    """
    seen: dict[int, ir.Node] = {}
    stops: dict[int, ir.Node] = {}
    stack = [q]
    while stack:
        v = stack.pop()
        if id(v) in forbidden:
            return None
        node = ix.producer(v)
        if node is None:
            return None  # a graph input reached without a squeeze
        if id(node) in seen or id(node) in stops:
            continue
        if stop(node):
            stops[id(node)] = node
            continue
        seen[id(node)] = node
        if len(seen) > _WALK_LIMIT:
            return None
        stack.extend(ix.data_inputs(node))
    return list(seen.values()), list(stops.values())


def _reaches(ix: GraphIndex, nodes: Iterable[ir.Node], root: ir.Value) -> list[ir.Node]:
    """The ``nodes`` whose inputs derive from ``root`` (within ``nodes``), in graph order."""
    ordered = sorted(nodes, key=lambda n: ix.order[id(n)])
    live = {id(root)}
    out = []
    for n in ordered:
        if any(id(v) in live for v in n.inputs if v is not None):
            out.append(n)
            live.update(id(o) for o in n.outputs)
    return out


def _walk_up_to(ix: GraphIndex, starts: Iterable[ir.Value], root: ir.Value) -> list[ir.Node]:
    """Nodes between ``root`` and ``starts`` (ancestors of ``starts`` that descend from ``root``)."""
    seen: dict[int, ir.Node] = {}
    stack = list(starts)
    top = ix.producer(root)
    floor = ix.order[id(top)] if top is not None else -1  # nodes before root's producer cannot descend from it
    while stack and len(seen) <= _WALK_LIMIT:
        v = stack.pop()
        if v is root:
            continue
        node = ix.producer(v)
        if node is None or id(node) in seen or ix.order[id(node)] <= floor:
            continue
        seen[id(node)] = node
        stack.extend(ix.data_inputs(node))
    return _reaches(ix, seen.values(), root)


def _broadcasts(ix: GraphIndex, p: ir.Value, q: ir.Value, branch: list[ir.Node]) -> bool:
    """``q`` is spatially smaller than ``p`` (broadcast multiply) or re-expanded to it on the branch."""
    if any(n.op_type in BROADCASTS for n in branch):
        return True
    ps, qs = ix.shape(p), ix.shape(q)
    if ps is None or qs is None:
        return True  # no shapes: trust the structure
    if len(qs) < len(ps):
        return True
    spatial_p, spatial_q = ps[2:], qs[len(qs) - len(ps) + 2:]
    return any(b == 1 and a != 1 for a, b in zip(spatial_p, spatial_q))


def _scale_and_gate(ix: GraphIndex, q: ir.Value, branch: set[int]) -> tuple[list[ir.Node], list[ir.Node]]:
    """Walk back from ``q``: shape/broadcast ops are the scale, then single-input pointwise ops are the gate
    when they contain a gate function."""
    scale, gate = [], []
    cur = ix.producer(q)
    while cur is not None and id(cur) in branch and cur.op_type in SHAPE_OPS and len(ix.data_inputs(cur)) == 1:
        scale.append(cur)
        cur = ix.producer(ix.data_inputs(cur)[0])
    while (cur is not None and id(cur) in branch and cur.op_type in POINTWISE and cur.op_type not in NORMS
           and len(ix.data_inputs(cur)) == 1):
        gate.append(cur)
        cur = ix.producer(ix.data_inputs(cur)[0])
    if not any(n.op_type in GATE_FUNCS for n in gate):
        return scale, []
    while gate and gate[-1].op_type not in GATE_FUNCS and gate[-1].op_type in ("Identity", "Cast"):
        gate.pop()
    return scale, gate


def _squeeze_tail(ix: GraphIndex, branch: list[ir.Node], squeezes: list[ir.Node]) -> list[ir.Node]:
    """Pointwise ops right after the reductions, before any channel mixing (std's Div/Sqrt, avg + max)."""
    made = {id(o) for s in squeezes for o in s.outputs}
    tail = []
    for n in sorted(branch, key=lambda n: ix.order[id(n)]):
        data = ix.data_inputs(n)
        if (n.op_type in POINTWISE - NORMS - GATE_FUNCS or n.op_type in ("Concat", "Max", "Min")) and data and all(
                id(v) in made for v in data):
            tail.append(n)
            made.update(id(o) for o in n.outputs)
    return tail


@dataclasses.dataclass
class _Found:
    join: ir.Node
    x: ir.Value
    squeeze: list[ir.Node]
    excite: list[ir.Node]
    gate: list[ir.Node]
    scale: list[ir.Node]
    reductions: list[ir.Node]
    kind: str


def _try_join(ix: GraphIndex, join: ir.Node, p: ir.Value, q: ir.Value) -> _Found | None:
    chain = _transparent_chain(ix, p)
    chain_ids = {id(v) for v in chain}
    walked = _walk_branch(ix, q, lambda n: squeeze_kind(ix, n) is not None, chain_ids)
    if walked is None:
        return None
    branch, squeezes = walked
    if not squeezes or not any(n.op_type in MIXING and n not in squeezes for n in branch):
        return None
    # Every squeeze must read (something derived from) a tensor of p's chain: X is the one nearest the join.
    rank = {id(v): i for i, v in enumerate(chain)}
    hits = [0] if all(squeeze_kind(ix, s) == "random" for s in squeezes) else []
    for s in squeezes:
        if squeeze_kind(ix, s) == "random":
            continue
        found = [rank[id(v)] for d in ix.data_inputs(s) for v in _transparent_chain(ix, d) if id(v) in rank]
        if not found:
            pre = _walk_up_to(ix, ix.data_inputs(s), chain[-1])
            found = [rank[id(v)] for n in pre for v in n.inputs if v is not None and id(v) in rank]
        if not found:
            return None
        hits.append(min(found))
    x = chain[min(hits)]
    if not _broadcasts(ix, p, q, branch):
        return None
    pre = _walk_up_to(ix, [v for s in squeezes for v in ix.data_inputs(s)], x)
    branch_ids = {id(n) for n in branch}
    scale, gate = _scale_and_gate(ix, q, branch_ids)
    tail = _squeeze_tail(ix, branch, squeezes)
    taken = {id(n) for n in (*scale, *gate, *tail)}
    excite = [n for n in branch if id(n) not in taken]
    squeeze = [*pre, *squeezes, *tail]
    kind = "channel" if join.op_type == "Mul" else "shift"
    if any(n.op_type in MATMULS and len(ix.data_inputs(n)) == 2 for n in squeezes):
        kind = "global-context"  # the pooling weights are computed from the map (softmax over H·W)
    elif len(ix.shape(x) or ()) >= 5 and any(n.op_type in ("Softmax", "LogSoftmax") for n in (*gate, *excite)):
        kind = "selective-kernel"  # stacked branches, weighted by a softmax across them
    return _Found(join, x, squeeze, excite, gate, [*scale, join], squeezes, kind)


def _try_spatial(ix: GraphIndex, join: ir.Node, p: ir.Value, q: ir.Value) -> tuple | None:
    """CBAM's spatial attention on ``p``: channel reductions → conv → gate → ``p * q``."""
    chain = _transparent_chain(ix, p)
    walked = _walk_branch(ix, q, lambda n: channel_reduction(ix, n), {id(v) for v in chain})
    if walked is None:
        return None
    branch, reductions = walked
    if not reductions or not any(n.op_type in MIXING for n in branch):
        return None
    if not all(any(id(v) in {id(c) for c in chain} for d in ix.data_inputs(r) for v in _transparent_chain(ix, d))
               for r in reductions):
        return None
    scale, gate = _scale_and_gate(ix, q, {id(n) for n in branch})
    tail = _squeeze_tail(ix, branch, reductions)
    taken = {id(n) for n in (*scale, *gate, *tail)}
    return chain, [*reductions, *tail], [n for n in branch if id(n) not in taken], gate, [*scale, join]


def _glue(ix: GraphIndex, members: dict[int, str]) -> dict[int, str]:
    """Static helper nodes (Shape, Constant, Gather … feeding a block node) take the role of the node they feed."""
    out: dict[int, str] = {}
    for n in reversed(ix.nodes):
        if id(n) in members or id(n) in out or not n.outputs or not all(ix.is_static(o) for o in n.outputs):
            continue
        users = [u for o in n.outputs for u in o.consumers()]
        roles = {members.get(id(u)) or out.get(id(u)) for u in users}
        if users and len(roles) == 1 and None not in roles:
            out[id(n)] = roles.pop()
    return out


def _common_module(modules: Iterable[str]) -> str:
    paths = [m.split(".") for m in modules if m]
    if not paths:
        return ""
    prefix = paths[0]
    for p in paths[1:]:
        k = 0
        while k < min(len(prefix), len(p)) and prefix[k] == p[k]:
            k += 1
        prefix = prefix[:k]
    return ".".join(prefix)


def _hints(ix: GraphIndex) -> int:
    """Attention-like ops: a gate function or a broadcast Mul/Add whose operand is spatially reduced."""
    count = 0
    for n in ix.nodes:
        if n.op_type in ("Sigmoid", "HardSigmoid", "Tanh") and n.inputs:
            s = ix.shape(n.inputs[0])
            count += bool(s and (len(s) == 2 or (len(s) == 4 and s[2:] == (1, 1))))
        elif n.op_type in JOINS and len(ix.data_inputs(n)) == 2:
            a, b = (ix.shape(v) for v in ix.data_inputs(n))
            if a and b and len(a) == 4 and len(b) == 4 and (a[2:] == (1, 1)) != (b[2:] == (1, 1)):
                count += 1
    return count


def find_attention(source: str | os.PathLike | onnx.ModelProto | ir.Model | GraphIndex) -> AttentionGraph:
    """Find the channel-attention blocks of an ONNX graph by structure (see the module docstring); a
    :class:`~seadeploy.graphs.index.GraphIndex` the caller already built is reused."""
    ix = source if isinstance(source, GraphIndex) else GraphIndex(load_ir(source))
    found: list[_Found] = []
    claimed: set[int] = set()
    for node in ix.nodes:
        if node.op_type not in JOINS or id(node) in claimed:
            continue
        data = ix.data_inputs(node)
        if len(data) != 2:
            continue
        for p, q in ((data[0], data[1]), (data[1], data[0])):
            hit = _try_join(ix, node, p, q)
            if hit is not None:
                found.append(hit)
                claimed.update(id(n) for n in (*hit.squeeze, *hit.excite, *hit.gate, *hit.scale))
                break
    # CBAM: spatial attention right after a channel block joins that block.
    out_of = {id(f.join.outputs[0]): f for f in found}
    for node in ix.nodes:
        if node.op_type != "Mul" or id(node) in claimed or len(ix.data_inputs(node)) != 2:
            continue
        data = ix.data_inputs(node)
        for p, q in ((data[0], data[1]), (data[1], data[0])):
            hit = _try_spatial(ix, node, p, q)
            owner = next((out_of[id(v)] for v in hit[0] if id(v) in out_of), None) if hit else None
            if hit is not None and owner is not None:
                _, sq, ex, gt, sc = hit
                owner.squeeze += sq
                owner.excite += ex
                owner.gate += gt
                owner.scale += sc
                owner.kind = "channel+spatial"
                owner.join = node
                claimed.update(id(n) for n in (*sq, *ex, *gt, *sc))
                break

    node_modules = {id(n): node_module(n) for n in ix.nodes}
    blocks: list[AttentionBlock] = []
    roles: dict[str, str | None] = {n.name: None for n in ix.nodes}
    block_of: dict[str, str | None] = {n.name: None for n in ix.nodes}
    used_names: dict[str, int] = {}
    for i, f in enumerate(sorted(found, key=lambda f: ix.order[id(f.join)])):
        members: dict[int, str] = {}
        for role, nodes in ((SQUEEZE, f.squeeze), (EXCITE, f.excite), (GATE, f.gate), (SCALE, f.scale)):
            for n in nodes:
                members.setdefault(id(n), role)
        members.update(_glue(ix, members))
        ordered = sorted((n for n in ix.nodes if id(n) in members), key=lambda n: ix.order[id(n)])
        red = sorted(f.reductions, key=lambda n: ix.order[id(n)])
        name = _common_module(node_modules[id(n)] for n in ordered) or red[0].name or f"block{i}"
        used_names[name] = used_names.get(name, 0) + 1
        if used_names[name] > 1:
            name = f"{name}#{used_names[name]}"
        by_role = {r: tuple(n.name for n in ordered if members[id(n)] == r) for r in ATTENTION_ROLES}
        block = AttentionBlock(name=name, kind=f.kind, input=f.x.name or "", output=f.join.outputs[0].name or "",
                               squeeze=by_role[SQUEEZE], excite=by_role[EXCITE], gate=by_role[GATE],
                               scale=by_role[SCALE], squeeze_ops=tuple(dict.fromkeys(n.op_type for n in red)),
                               tiled=any(squeeze_kind(ix, n) == "tile" for n in red),
                               reductions=tuple(n.name for n in red))
        blocks.append(block)
        for n in ordered:
            roles[n.name] = members[id(n)]
            block_of[n.name] = name
    warnings = []
    if not blocks and _hints(ix):
        warnings.append(f"the graph has {_hints(ix)} attention-like op(s) (a gate or broadcast multiply on a "
                        "spatially reduced tensor) but no channel-attention block was found; attention figures "
                        "are 0 for it")
    return AttentionGraph(blocks=blocks, roles=roles, block_of=block_of,
                          modules={n.name: node_modules[id(n)] for n in ix.nodes}, warnings=warnings)


def print_warnings(found: AttentionGraph, source: object = "") -> None:
    """Print each warning of ``found`` to stderr (a caller analyses a graph once and prints its warnings once)."""
    for text in found.warnings:
        print(f"WARNING: {source}: {text}" if source else f"WARNING: {text}", file=sys.stderr)


def keep_fp32_nodes(proto: onnx.ModelProto) -> set[str]:
    """Node names the fp16 policy keeps in fp32 (see :meth:`AttentionGraph.keep_fp32_nodes`)."""
    return find_attention(proto).keep_fp32_nodes()


def node_blocks(model: onnx.ModelProto, found: AttentionGraph | None = None) -> dict[str, str | None]:
    """``{node: attention block name or None}`` for every node of ``model`` (the buffer model's and pipeline's
    block map); ``found`` is the analysis of ``model`` when the caller has it."""
    found = find_attention(model) if found is None else found
    return {n.name: found.block_of.get(n.name) for n in model.graph.node}
