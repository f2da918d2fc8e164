"""One classification of every channel-attention block: its kind and whether the TSE lowering can rewrite it.

Every command that lists attention blocks (``models stats``, ``profiling layers|buffers|pipeline``, ``convert``)
reads it from here, so they agree on the count, the kind and the reason a block is kept:

* ``kind`` is the structural detector's (:class:`~seadeploy.graphs.attention.AttentionBlock`): ``channel``
  (SE-like), ``channel+spatial`` (CBAM), ``shift`` (SB), ``global-context``, ``selective-kernel``;
* ``reason`` is ``""`` when the block has the form the TSE lowering rewrites — a multiplicative join, one
  global *average* squeeze reading the map ``X`` directly, a static ``C×H×W`` — and otherwise says why it is
  kept as it is (``convert`` adds its excitation-path checks on top: graphs/se_rewrite.py).

>>> [c.to_dict() for c in classify("model.onnx")]   # doctest: +SKIP
[{'block': 'features.3', 'kind': 'global-context', 'squeeze': 'MatMul', 'reason': 'additive join (...)'}]
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import onnx
import onnx_ir as ir

from seadeploy.graphs.attention import find_attention
from seadeploy.graphs.blocks import AttentionBlock, AttentionGraph
from seadeploy.graphs.index import GraphIndex
from seadeploy.graphs.load import load_ir
from seadeploy.graphs.squeeze import reduced_axes


@dataclasses.dataclass(frozen=True)
class BlockClass:
    """One block as every command reports it (``reason``: why the TSE lowering keeps it, ``""`` if it may not)."""

    block: str
    kind: str
    squeeze: str
    reason: str = ""

    @property
    def convertible(self) -> bool:
        return not self.reason

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """``features.3: global-context (MatMul squeeze); TSE keeps it: additive join ...``."""
        return f"{self.block}: {self.kind} ({self.squeeze} squeeze)" + (
            f"; TSE keeps it: {self.reason}" if self.reason else "; TSE-convertible")


def global_average(ix: GraphIndex, node: ir.Node, shape: tuple) -> bool:
    """A global average over H,W of a 4-D tensor (the squeezes the TSE lowering rewrites)."""
    if node.op_type == "GlobalAveragePool":
        return True
    if node.op_type == "ReduceMean":
        return reduced_axes(ix, node) == [2, 3]
    if node.op_type == "AveragePool":
        kernel, strides = list(ix.attr(node, "kernel_shape") or []), list(ix.attr(node, "strides") or [])
        return (kernel == list(shape[2:]) and strides in ([], kernel) and not any(ix.attr(node, "pads") or [])
                and ix.attr(node, "auto_pad", "NOTSET") in ("NOTSET", "VALID"))
    return False


def join_node(ix: GraphIndex, b: AttentionBlock) -> ir.Node | None:
    """The node of ``b`` that writes its output (the scale join)."""
    return next((ix.by_name[n] for n in b.nodes if n in ix.by_name
                 and any(o.name == b.output for o in ix.by_name[n].outputs)), None)


def tse_reason(ix: GraphIndex, b: AttentionBlock) -> str:
    """Why the TSE lowering keeps block ``b`` as it is, ``""`` when its form is one the lowering rewrites."""
    join = join_node(ix, b)
    pool = ix.by_name.get(b.reductions[0]) if b.reductions else None
    shape = ix.shape(pool.inputs[0]) if pool is not None and pool.inputs else None
    static = shape is not None and len(shape) == 4 and all(d is not None for d in shape[1:])
    if b.kind == "channel+spatial":
        return "CBAM: its spatial attention has no tiled form in the TSE lowering; block kept as SE"
    if join is not None and join.op_type == "Add":
        return f"additive join ({b.kind}); the TSE lowering rewrites x·g(x) only"
    if len(b.reductions) != 1:
        return f"{len(b.reductions)} squeezes ({', '.join(b.squeeze_ops)}); the lowering rewrites one average"
    if b.tiled:
        return "the squeeze is already tiled"
    if join is None or join.op_type != "Mul":
        return "no Mul scale join"
    if not static:
        return f"'{b.input}' has no static C×H×W shape"
    if not global_average(ix, pool, shape):
        return f"{pool.op_type} squeeze ('{pool.name}'); the TSE lowering has average squeezes only"
    if pool.inputs[0].name != b.input:
        return f"the squeeze reads '{b.input}' through other ops; the lowering pools X directly"
    return ""


def classify_found(ix: GraphIndex, found: AttentionGraph) -> list[BlockClass]:
    """The classification of the blocks ``found`` on the graph indexed by ``ix``."""
    return [BlockClass(b.name, b.kind, "+".join(b.squeeze_ops), tse_reason(ix, b)) for b in found.blocks]


def classify(source: str | os.PathLike | onnx.ModelProto | ir.Model) -> list[BlockClass]:
    """Every channel-attention block of an ONNX graph (path, proto or IR model) in graph order, classified."""
    model = load_ir(source)
    return classify_found(GraphIndex(model), find_attention(model))


def kinds_line(classes: list[BlockClass]) -> str:
    """``8 global-context`` / ``3 channel, 1 selective-kernel`` (``none`` without blocks)."""
    counts: dict[str, int] = {}
    for c in classes:
        counts[c.kind] = counts.get(c.kind, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in counts.items()) or "none"


def block_lines(classes: list[BlockClass]) -> list[str]:
    """The count by kind, then one line per block the TSE lowering keeps, with the reason (text reports)."""
    kept = [f"  {c.describe()}" for c in classes if not c.convertible]
    return [f"attention blocks found by graph structure: {len(classes)} ({kinds_line(classes)}); "
            f"{len(classes) - len(kept)} TSE-convertible", *kept]
