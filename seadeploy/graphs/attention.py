"""Channel attention found by graph structure: blocks and a role per node of any ONNX graph.

One analysis (over ``onnx_ir``) serves the per-layer roles, the memory tags, the dataflow buffer blocks, the
fp16 keep-fp32 set and the statistics (docs/architecture.md §2). It is also the one home of the graph index
(producers, consumers, constant-ness) the profilers walk.

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

import ast
import dataclasses
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir

from seadeploy.errors import InputError
from seadeploy.graphs.ops import GLOBAL_POOLS, NORMS, REDUCES, TILE_POOLS

SQUEEZE, EXCITE, GATE, SCALE = "attention.squeeze", "attention.excite", "attention.gate", "attention.scale"
ATTENTION_ROLES = (SQUEEZE, EXCITE, GATE, SCALE)

#: Data-free "squeezes": SsENet's random squeeze draws the channel descriptor instead of pooling it.
RANDOMS = frozenset({"RandomUniform", "RandomNormal", "RandomUniformLike", "RandomNormalLike"})
MATMULS = frozenset({"MatMul", "QLinearMatMul", "MatMulInteger", "FusedMatMul"})
#: Channel mixing with a weight: the excitation's FC, 1×1 conv or ECA's Conv1d.
MIXING = frozenset({"Conv", "ConvTranspose", "QLinearConv", "ConvInteger", "FusedConv", "Gemm", "FusedGemm", "Einsum",
                    *MATMULS})
#: Re-expansion of a (tiled) squeeze back to the map.
BROADCASTS = frozenset({"Resize", "Upsample", "Expand", "Tile"})
#: Data-movement ops: they move values without computing (transparent between X and the join / squeeze).
SHAPE_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Identity", "Cast", "CastLike",
                       "Slice", "Pad", "Concat", "Gather", "Split", "Dropout", "QuantizeLinear", "DequantizeLinear",
                       *BROADCASTS})
GATE_FUNCS = frozenset({"Sigmoid", "HardSigmoid", "Tanh", "Softmax", "LogSoftmax", "Softsign", "Clip", "Relu",
                        "Min", "Max", "HardSwish"})
POINTWISE = frozenset({"Abs", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Reciprocal", "Neg", "Exp", "Log", "Erf",
                       "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Gelu", "Sigmoid", "HardSigmoid", "Tanh",
                       "HardSwish", "Softplus", "Softsign", "Mish", "Swish", "Clip", "Min", "Max", "Softmax",
                       "LogSoftmax", "BatchNormalization", "InstanceNormalization", "LayerNormalization",
                       "GroupNormalization", "Identity", "Cast", "Dropout", "QuantizeLinear", "DequantizeLinear"})
JOINS = frozenset({"Mul", "Add"})
MODULE_KEY, SCOPES_KEY = "module", "pkg.torch.onnx.name_scopes"
_WALK_LIMIT = 400  # nodes one backward walk may visit before giving up (a join far from any squeeze)


@dataclasses.dataclass(frozen=True)
class AttentionBlock:
    """One channel-attention block: its nodes by role and the tensors it starts from and writes.

    Attributes:
        name: the common module prefix of its nodes (metadata), else the name of its first reduction node.
        kind: ``channel`` (SE-like ``x·g(squeeze(x))``), ``channel+spatial`` (CBAM), ``shift`` (additive join: SB),
            ``global-context`` (attention pooling: a MatMul with weights computed from the map, joined by Add or
            Mul) or ``selective-kernel`` (stacked branches weighted by a softmax across them);
            :mod:`seadeploy.graphs.classify` says which the TSE lowering can rewrite.
        input: the tensor ``X`` the squeezes read; ``output``: what the (last) join writes.
        squeeze_ops: op types of the reductions; ``tiled``: a squeeze keeps a grid of tiles (TSE);
        ``reductions``: the reduction nodes themselves (part of ``squeeze``).
    """

    name: str
    kind: str
    input: str
    output: str
    squeeze: tuple[str, ...]
    excite: tuple[str, ...]
    gate: tuple[str, ...]
    scale: tuple[str, ...]
    squeeze_ops: tuple[str, ...]
    tiled: bool
    reductions: tuple[str, ...] = ()

    @property
    def nodes(self) -> tuple[str, ...]:
        return (*self.squeeze, *self.excite, *self.gate, *self.scale)

    def roles(self) -> dict[str, str]:
        out = {}
        for role, names in ((SQUEEZE, self.squeeze), (EXCITE, self.excite), (GATE, self.gate), (SCALE, self.scale)):
            out.update(dict.fromkeys(names, role))
        return out


@dataclasses.dataclass
class AttentionGraph:
    """Result of :func:`find_attention`: the blocks, ``roles`` and ``block_of`` for every node name.

    ``roles`` holds the four ``attention.*`` roles for block nodes and ``None`` elsewhere (callers add their
    plain op-type roles); ``modules`` is the module path per node (``""`` without metadata); ``warnings``
    says when the graph has attention-like ops (a gate or broadcast multiply on a spatially reduced tensor)
    but no block was found.
    """

    blocks: list[AttentionBlock]
    roles: dict[str, str | None]
    block_of: dict[str, str | None]
    modules: dict[str, str]
    warnings: list[str]

    def __len__(self) -> int:
        return len(self.blocks)

    def block_modules(self) -> dict[str, str]:
        """``{module path: block}`` for the nodes of blocks that carry module metadata (maps PyTorch ops to blocks)."""
        out: dict[str, str] = {}
        for b in self.blocks:
            for n in b.nodes:
                if self.modules.get(n):
                    out.setdefault(self.modules[n], b.name)
        return out

    def block_of_module(self, module: str | None) -> str | None:
        """The block holding nodes of ``module`` or of its nearest parent module, else ``None``."""
        if not module:
            return None
        known = self.block_modules()
        while module:
            if module in known:
                return known[module]
            module = module.rpartition(".")[0]
        return None

    def keep_fp32_nodes(self) -> set[str]:
        """Nodes an fp16 graph keeps in fp32: every squeeze node from the first reduction on (the sums of H×W
        values that overflow fp16), the excitation and the gate. The ops before the reduction and the scale
        run on the full map and stay fp16."""
        out: set[str] = set()
        for b in self.blocks:
            out.update(b.excite, b.gate, _after_reductions(b))
        return out

    def summary(self) -> dict[str, Any]:
        """``attention_blocks`` and per-block role counts (the JSON the profiling commands embed)."""
        return {"attention_blocks": len(self.blocks),
                "blocks": [{"name": b.name, "kind": b.kind, "squeeze_ops": list(b.squeeze_ops), "tiled": b.tiled,
                            "squeeze": len(b.squeeze), "excite": len(b.excite), "gate": len(b.gate),
                            "scale": len(b.scale)} for b in self.blocks],
                "warnings": list(self.warnings)}


# --------------------------------------------------------------------------------------------- graph index
class GraphIndex:
    """Producers, consumers, constant-ness, shapes and module paths of one ``onnx_ir`` graph.

    Hand-written walks on top of ``onnx_ir`` (it gives producers and uses; the data/constant split and the
    spatial reasoning below are specific to this analysis).
    """

    def __init__(self, model: ir.Model) -> None:
        self.model = model
        self.graph = model.graph
        self.nodes: list[ir.Node] = list(self.graph)
        self.order = {id(n): i for i, n in enumerate(self.nodes)}
        self.by_name = {n.name: n for n in self.nodes if n.name}
        self._static: dict[int, bool] = {}
        self._data: dict[int, list[ir.Value]] = {}

    def producer(self, v: ir.Value | None) -> ir.Node | None:
        return v.producer() if v is not None else None

    def consumers(self, v: ir.Value) -> list[ir.Node]:
        return list(v.consumers())

    def is_static(self, v: ir.Value | None) -> bool:
        """True for values that carry no activation data: initializers, constants, shapes and what is computed
        from them only."""
        if v is None:
            return True
        key = id(v)
        if key not in self._static:
            node = v.producer()
            if v.const_value is not None or v.is_initializer():
                self._static[key] = True
            elif node is None or node.op_type in RANDOMS:
                self._static[key] = False  # a graph input, or random values (data, not constants)
            elif node.op_type in ("Constant", "Shape", "Size", "ConstantOfShape", "Range"):
                self._static[key] = True
            else:
                self._static[key] = all(self.is_static(i) for i in node.inputs)
        return self._static[key]

    def data_inputs(self, node: ir.Node) -> list[ir.Value]:
        key = id(node)
        if key not in self._data:
            self._data[key] = [v for v in node.inputs if v is not None and not self.is_static(v)]
        return self._data[key]

    @staticmethod
    def shape(v: ir.Value | None) -> tuple | None:
        if v is None or v.shape is None:
            return None
        return tuple(d if isinstance(d, int) else None for d in v.shape)

    def const(self, v: ir.Value | None) -> np.ndarray | None:
        if v is None:
            return None
        if v.const_value is not None:
            return v.const_value.numpy()
        node = v.producer()
        if node is not None and node.op_type == "Constant":
            attr = node.attributes.get("value")
            if attr is not None:
                return attr.as_tensor().numpy()
            for key in ("value_ints", "value_int"):
                if key in node.attributes:
                    return np.asarray(node.attributes[key].value)
        return None

    def attr(self, node: ir.Node, name: str, default: Any = None) -> Any:
        a = node.attributes.get(name)
        return default if a is None else a.value


def load_ir(source: str | os.PathLike | onnx.ModelProto | ir.Model) -> ir.Model:
    """An ``onnx_ir`` model with inferred shapes (static or symbolic) from a path, proto or IR model."""
    if isinstance(source, ir.Model):
        return source
    if isinstance(source, onnx.ModelProto):
        proto = source
    else:
        path = Path(source)
        if not path.is_file():
            raise InputError(f"ONNX file '{path}' does not exist")
        try:
            proto = onnx.load(str(path))
        except Exception as exc:  # DecodeError / OSError / ValueError depending on the damage
            raise InputError(f"'{path}' is not a readable ONNX model ({exc})") from exc
    model = ir.from_proto(proto)
    shapes = _inferred_shapes(proto)
    for v in [*model.graph.inputs, *(o for n in model.graph for o in n.outputs)]:
        if v.name in shapes and (v.shape is None or any(not isinstance(d, int) for d in v.shape)):
            v.shape = ir.Shape(shapes[v.name])
    return model


def _inferred_shapes(proto: onnx.ModelProto) -> dict[str, list[int | str | None]]:
    """``{tensor: dims}`` from ONNX shape inference on a weight-free copy of the graph.

    Large weights are declared as inputs of their shape instead of being carried along: inference only
    needs their shapes, and serialising megabytes of weights is what made inference slow.
    """
    g = proto.graph
    small = [t for t in g.initializer if int(np.prod(t.dims)) <= 64]
    big = [onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in g.initializer
           if int(np.prod(t.dims)) > 64]
    inits = {t.name for t in g.initializer}
    light_graph = onnx.helper.make_graph(list(g.node), g.name, [*(i for i in g.input if i.name not in inits), *big],
                                         list(g.output), small, value_info=list(g.value_info))
    light = onnx.helper.make_model(light_graph, opset_imports=list(proto.opset_import), ir_version=proto.ir_version)
    light.functions.extend(proto.functions)
    # Custom ops can make inference fail: the structure still works, the broadcast test then trusts ranks.
    try:
        inferred = onnx.shape_inference.infer_shapes(light, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 — any inference failure leaves shapes unknown
        return {}
    out = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        t = vi.type.tensor_type
        if vi.type.HasField("tensor_type") and t.HasField("shape"):
            out[vi.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]
    return out


def node_module(node: ir.Node | onnx.NodeProto) -> str:
    """Module path of a node: ``module`` metadata, the dynamo exporter's name scopes, or a TorchScript
    ``/stage1/se/Mul`` name (``stage1.se``); ``""`` when none says."""
    props = dict(node.metadata_props) if isinstance(node, ir.Node) else {p.key: p.value for p in node.metadata_props}
    if props.get(MODULE_KEY):
        return props[MODULE_KEY]
    if props.get(SCOPES_KEY):
        try:
            names = ast.literal_eval(props[SCOPES_KEY])
        except (ValueError, SyntaxError):
            names = None
        if isinstance(names, list) and len(names) >= 2:
            return str(names[-2])
    name = node.name or ""
    if name.startswith("/") and name.count("/") >= 2:
        path: list[str] = []
        for part in (p for p in name.split("/")[1:-1] if p):
            # TorchScript scopes repeat a container's name: /stem/stem.0/Conv is module stem.0.
            path.append(part[len(path[-1]) + 1:] if path and part.startswith(path[-1] + ".") else part)
        return ".".join(path)
    return ""


# -------------------------------------------------------------------------------------------- squeezes
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


def _after_reductions(block: AttentionBlock) -> list[str]:
    """Squeeze nodes from the first reduction on (``squeeze`` is in graph order)."""
    first = next((i for i, n in enumerate(block.squeeze) if n in block.reductions), None)
    return [] if first is None else list(block.squeeze[first:])


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


def find_attention(source: str | os.PathLike | onnx.ModelProto | ir.Model) -> AttentionGraph:
    """Find the channel-attention blocks of an ONNX graph by structure (see the module docstring)."""
    model = load_ir(source)
    ix = GraphIndex(model)
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


_WARNED: set[tuple[str, str]] = set()


def print_warnings(found: AttentionGraph, source: object = "") -> None:
    """Print each warning of ``found`` to stderr, once per source and process (a command analyses a graph
    several times: roles, memory, buffers)."""
    for text in found.warnings:
        key = (str(source), text)
        if key not in _WARNED:
            _WARNED.add(key)
            print(f"WARNING: {source}: {text}" if source else f"WARNING: {text}", file=sys.stderr)


def keep_fp32_nodes(proto: onnx.ModelProto) -> set[str]:
    """Node names the fp16 policy keeps in fp32 (see :meth:`AttentionGraph.keep_fp32_nodes`)."""
    return find_attention(proto).keep_fp32_nodes()
