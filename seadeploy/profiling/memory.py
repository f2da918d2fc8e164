"""Activation memory: tensor sizes from shape inference, peak live memory under the execution order,
ONNX Runtime's per-node memory fields and TensorRT's engine device memory.

Liveness: nodes run in graph order (the topological order every runtime here starts from); a tensor
is live from the node that writes it until its last reader; reshape-like ops (Reshape, Flatten,
Squeeze, Unsqueeze, Identity) alias their input instead of allocating; what nodes compute from weights
alone (TorchScript's Identity-passed initializers) is weights, not activations. Attention tags (``role``,
``block``) come from the structural analysis of :mod:`seadeploy.graphs.attention`. The peak of the live sum is
the activation memory a runtime with perfect reuse needs; the plain sum is what one without reuse
allocates.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd

from seadeploy import fileio, runfolder
from seadeploy.backends.ort import shapes_by_running
from seadeploy.graphs.attention import find_attention, print_warnings
from seadeploy.graphs.index import GraphIndex, node_modules
from seadeploy.graphs.load import load_model
from seadeploy.graphs.ops import ALIAS_OPS
from seadeploy.graphs.shapes import elem_size, infer_shapes, make_static
from seadeploy.profiling.schema import attention_roles


@dataclasses.dataclass
class MemoryReport:
    """Per-node activation memory (``frame``) and totals. ``bool()`` is False when some sizes are unknown."""

    frame: pd.DataFrame
    totals: dict[str, Any]

    def __bool__(self) -> bool:
        return not self.totals.get("unknown_tensors")

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()


def _buffers(ix: GraphIndex) -> tuple[dict[str, str], dict[str, list[int]]]:
    """Map each activation tensor to its buffer (aliases share one) and each buffer to [birth, death]: born at
    its producer, dead after its last consumer (from the graph index), held to the end when a graph output."""
    g = ix.graph
    weights = {v.name for v in g.initializers.values()} | {o.name for n in ix.nodes if n.op_type == "Constant"
                                                          for o in n.outputs}
    # Nodes that read only weights compute weights: the TorchScript exporter passes initializers through
    # Identity nodes (and casts/reshapes constants); their outputs are not activations.
    for node in ix.nodes:
        ins = [v.name for v in node.inputs if v is not None and v.name]
        if ins and all(t in weights for t in ins):
            weights.update(o.name for o in node.outputs if o.name)
    owner: dict[str, str] = {}
    span: dict[str, list[int]] = {}
    last = len(ix.nodes) - 1
    for v in g.inputs:
        if v.name not in weights:
            owner[v.name] = v.name
            span[v.name] = [0, 0]
    for i, node in enumerate(ix.nodes):
        if node.op_type == "Constant" or any(o.name in weights for o in node.outputs if o.name):
            continue
        for j, out in enumerate(node.outputs):
            if not out.name:
                continue
            src = node.inputs[0].name if node.inputs and node.inputs[0] is not None else ""
            if j == 0 and node.op_type in ALIAS_OPS and src in owner:
                owner[out.name] = owner[src]
            else:
                owner[out.name] = out.name
                span[out.name] = [i, i]
    for name, buf in owner.items():
        v = ix.value(name)
        readers = [ix.position(u) for u in ix.consumers(v)] if v is not None else []
        span[buf][1] = max([span[buf][1], *readers, *([last] if v is not None and v.is_graph_output() else [])])
    return owner, span


def liveness(model: onnx.ModelProto, sizes: dict[str, float]) -> tuple[np.ndarray, dict[str, Any]]:
    """Live activation bytes at each node step and the totals (peak, its node, the no-reuse sum)."""
    owner, span = _buffers(GraphIndex.of(model, shapes=False))
    size = {b: max((sizes.get(t, np.nan) for t, o in owner.items() if o == b), default=np.nan) for b in span}
    n = len(model.graph.node)
    diff = np.zeros(n + 1)
    for b, (lo, hi) in span.items():
        s = 0.0 if np.isnan(size[b]) else size[b]
        diff[lo] += s
        diff[hi + 1] -= s
    live = np.cumsum(diff)[:n]
    peak = int(np.argmax(live)) if n else 0
    totals = {"peak_live_bytes": float(live.max()) if n else 0.0,
              "peak_at_node": model.graph.node[peak].name if n else None,
              "activation_bytes_no_reuse": float(np.nansum(list(size.values()))),
              "buffers": len(span), "unknown_tensors": sorted(b for b, v in size.items() if np.isnan(v))}
    return live, totals


def activation_memory(source: str | os.PathLike | onnx.ModelProto, batch: int = 1,
                      input_size: int | None = None) -> MemoryReport:
    """Per-node output bytes and live bytes at ``batch``, with peak and totals."""
    model = load_model(source)
    static = make_static(model, input_size=input_size, batch=batch)
    shapes = infer_shapes(static, shapes_by_running)
    sizes = {t: float(np.prod(s)) * elem_size(e) for t, (s, e) in shapes.items()}
    live, totals = liveness(static, sizes)
    modules = node_modules(static)
    found = find_attention(static)
    print_warnings(found, source if not isinstance(source, onnx.ModelProto) else "")
    roles = attention_roles(static, modules, found)
    rows = []
    for i, n in enumerate(static.graph.node):
        out = n.output[0] if n.output else ""
        rows.append({"onnx_node": n.name, "module": modules.get(n.name, ""), "op_type": n.op_type,
                     "role": roles[n.name], "block": found.block_of.get(n.name),
                     "out_shape": "x".join(map(str, shapes[out][0])) if out in shapes else None,
                     "out_bytes": sizes.get(out, np.nan) if n.op_type not in ALIAS_OPS else 0.0,
                     "live_bytes": float(live[i])})
    inits = {i.name for i in static.graph.initializer}
    first = [vi.name for vi in static.graph.input if vi.name not in inits]
    totals.update({"attention_blocks": len(found.blocks), "warnings": list(found.warnings), "batch": batch,
                   "input_bytes": float(sum(sizes.get(t, 0.0) for t in first)),
                   "output_bytes": float(sum(sizes.get(o.name, 0.0) for o in static.graph.output)),
                   "weight_bytes": float(sum(sizes.get(t, 0.0) for t in inits))})
    return MemoryReport(pd.DataFrame(rows), totals)


def ort_memory_fields(frame: pd.DataFrame) -> dict[str, float]:
    """Whole-run figures from ORT's per-node memory fields in a layers frame (NaN where ORT gave none)."""
    out = {}
    for key in ("mem_in_use_peak", "mem_arena_held", "mem_bytes_in_use"):
        out[f"ort_{key}"] = float(frame[key].max()) if key in frame and frame[key].notna().any() else float("nan")
    return out


def engine_memory(run_dir: str | os.PathLike) -> dict[str, float]:
    """``{precision: engine device memory bytes}`` from the ``model.<precision>.engine.json`` sidecars."""
    out = {}
    for p in runfolder.PRECISIONS:
        side = Path(run_dir) / f"{runfolder.engine_name(p)}.json"
        if side.is_file():
            data = fileio.read_json(side)
            value = data.get("device_memory_size_v2", data.get("device_memory_size"))
            if value is not None:
                out[p] = float(value)
    return out
