"""SE → TSE on an ONNX graph, with the zoo's deployable TSE lowering (models/attention/tse.py, pooling.py).

A squeeze-excite block in a graph is a global pooling of a tensor ``t`` (``GlobalAveragePool``, or
``ReduceMean`` over axes 2,3) whose result flows through an excitation (Gemm/MatMul/1×1 Conv, the
Flatten/Reshape/Squeeze/Unsqueeze around them, activations, BatchNormalization) into a gate (Sigmoid,
HardSigmoid, Clip, Tanh) that is multiplied back onto ``t`` (``Mul``, possibly after an ``Expand``).
This finder is written here against that definition because the rewrite needs exactly those node sets;
blocks it cannot rewrite safely (an unknown op on the path, a path tensor used elsewhere) are reported and
left as SE.

Rewrite of one block with tile ``(kh, kw)`` on an ``H×W`` map (the zoo's lowering, DEPLOYMENT.md "Tiled SE
export traps"): ``[Pad] → AveragePool(k, k) → [Mul k²/valid]`` instead of the global pool; the excitation
kept 4-D (Gemm/MatMul → 1×1 Conv with the same weights, the shape ops dropped, 1-D constants reshaped to
``(1, C, 1, 1)``); ``Resize(nearest, asymmetric, floor, integer scales) → [Slice]`` on the gate before the Mul.
A tile covering the map leaves the block as it is (exact SE).
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from seadeploy.errors import InputError

# Resize/Expand/Tile on the path only broadcast the (N, C, 1, 1) gate (export lowerings emit them); dropped.
SHAPE_OPS = {"Flatten", "Reshape", "Squeeze", "Unsqueeze", "Expand", "Identity", "Resize", "Tile"}
ELEMENTWISE = {"Add", "Mul", "Sub", "Div", "Relu", "Sigmoid", "HardSigmoid", "HardSwish", "Clip", "Tanh",
               "LeakyRelu", "Relu6", "Elu", "Selu", "Softplus", "Neg", "Cast"}
GATES = {"Sigmoid", "HardSigmoid", "Clip", "Tanh"}
MAX_PATH = 40


@dataclasses.dataclass
class Block:
    """One squeeze-excite block of a graph."""

    pool: str
    mul: str
    channels: int
    height: int
    width: int
    path: list[str]
    convertible: bool = True
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class _Graph:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.g = model.graph
        self.inits = {i.name: i for i in self.g.initializer}
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for n in self.g.node:
            for o in n.output:
                self.producer[o] = n
            for i in n.input:
                self.consumers[i].append(n)
        inferred = onnx.shape_inference.infer_shapes(model)
        self.shapes: dict[str, list[int | None]] = {}
        for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
            dims = vi.type.tensor_type.shape.dim
            self.shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        self.outputs = {o.name for o in self.g.output}

    def const(self, name: str) -> np.ndarray | None:
        if name in self.inits:
            return numpy_helper.to_array(self.inits[name])
        p = self.producer.get(name)
        if p is not None and p.op_type == "Constant":
            for a in p.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
        return None


def _is_global_pool(gr: _Graph, n: onnx.NodeProto) -> bool:
    if n.op_type == "GlobalAveragePool":
        return True
    if n.op_type != "ReduceMean":
        return False
    axes = next((list(a.ints) for a in n.attribute if a.name == "axes"), None)
    if axes is None and len(n.input) > 1 and n.input[1]:
        c = gr.const(n.input[1])
        axes = None if c is None else [int(v) for v in np.ravel(c)]
    rank = len(gr.shapes.get(n.input[0], []))
    return rank == 4 and axes is not None and sorted(a % 4 for a in axes) == [2, 3]


def find_blocks(model: onnx.ModelProto) -> list[Block]:
    """Every global-pool → … → gate → Mul-back-onto-the-pooled-tensor block, in graph order.

    Unnamed nodes get a name (``node_<i>``) in ``model`` so every block can refer to its nodes.
    """
    seen: set[str] = set()
    for i, n in enumerate(model.graph.node):
        if not n.name or n.name in seen:
            n.name = f"node_{i}"
        seen.add(n.name)
    gr = _Graph(model)
    blocks = []
    for pool in gr.g.node:
        if not _is_global_pool(gr, pool):
            continue
        t = pool.input[0]
        # forward reach from the pool output (bounded)
        reach: dict[str, onnx.NodeProto] = {}
        frontier = [pool.output[0]]
        while frontier and len(reach) < MAX_PATH:
            out = frontier.pop()
            for c in gr.consumers.get(out, []):
                if c.name not in reach:
                    reach[c.name] = c
                    frontier.extend(c.output)
        muls = [n for n in reach.values() if n.op_type == "Mul" and t in n.input]
        if not muls:
            continue
        mul = muls[0]
        gate_in = next(i for i in mul.input if i != t)
        # the path: reached nodes that lead to the gate input
        path: dict[str, onnx.NodeProto] = {}
        stack = [gate_in]
        while stack:
            p = gr.producer.get(stack.pop())
            if p is None or p.name in path or p.name not in reach:
                continue
            path[p.name] = p
            stack.extend(p.input)
        ordered = [n for n in gr.g.node if n.name in path]
        if not any(n.op_type in GATES for n in ordered):
            continue
        shape = gr.shapes.get(t, [])
        if len(shape) != 4 or shape[1] is None or shape[2] is None or shape[3] is None:
            blocks.append(Block(pool.name, mul.name, 0, 0, 0, [n.name for n in ordered], False,
                                f"'{t}' has no static C×H×W shape"))
            continue
        block = Block(pool.name, mul.name, int(shape[1]), int(shape[2]), int(shape[3]), [n.name for n in ordered])
        bad = [n for n in ordered if n.op_type not in SHAPE_OPS | ELEMENTWISE | {"Gemm", "MatMul", "Conv",
                                                                                 "BatchNormalization"}]
        shared = [o for n in ordered for o in n.output
                  if o in gr.outputs or any(c.name not in path and c.name != mul.name for c in gr.consumers.get(o, []))]
        if bad:
            block.convertible, block.reason = False, f"op {bad[0].op_type} ('{bad[0].name}') on the excitation path"
        elif shared:
            block.convertible, block.reason = False, f"excitation tensor '{shared[0]}' is also used outside the block"
        blocks.append(block)
    return blocks


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
    ``per_block``: ``tile`` lists one tile per convertible block, in graph order).

    Raises:
        InputError: the graph has no squeeze-excite block.
    """
    from seadeploy.convert.torch_rewrite import stage_tiles

    model = onnx.ModelProto.FromString(model.SerializeToString())
    blocks = find_blocks(model)
    if not blocks:
        raise InputError("the ONNX graph has no squeeze-excite (global pool → gate → Mul) block: nothing to convert")
    ok = [b for b in blocks if b.convertible]
    if not ok:
        raise InputError(f"none of the {len(blocks)} attention blocks can be rewritten: {blocks[0].reason}")
    if per_block:
        if len(tile) != len(ok):
            raise InputError(f"the graph has {len(ok)} convertible attention blocks but {len(tile)} tiles were given")
        tiles = [tuple(t) for t in tile]
    else:
        tiles = stage_tiles(tile, [(1, b.channels, b.height, b.width) for b in ok])
    gr = _Graph(model)
    nodes = {n.name: n for n in gr.g.node}
    used = {n.name for n in gr.g.node} | set(gr.producer) | set(gr.inits) | {i.name for i in gr.g.input}
    new_inits: list[onnx.TensorProto] = []
    replace: dict[str, list[onnx.NodeProto]] = {}
    records = []
    for b in blocks:
        rec = {**b.to_dict(), "tile": None, "rewritten": False}
        records.append(rec)
        if not b.convertible:
            continue
        kh, kw = tiles[ok.index(b)]
        kh, kw = min(kh, b.height), min(kw, b.width)
        rec["tile"] = [kh, kw]
        if kh == b.height and kw == b.width:
            rec["reason"] = "tile covers the map: SE kept (exact)"
            continue

        def init(base: str, arr: np.ndarray) -> str:
            name = _name(base, used)
            new_inits.append(numpy_helper.from_array(np.asarray(arr), name))
            return name

        pool = nodes[b.pool]
        x, y = pool.input[0], pool.output[0]
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
            n = nodes[name]
            if n.op_type in SHAPE_OPS:
                replace[name] = [helper.make_node("Identity", [n.input[0]], list(n.output), name=n.name)]
            elif n.op_type in ("Gemm", "MatMul"):
                replace[name] = [_as_conv(gr, n, init, b)]
            elif n.op_type in ("Add", "Mul", "Sub", "Div"):
                ins = list(n.input)
                for k, i in enumerate(ins):
                    c = gr.const(i)
                    if c is not None and c.ndim in (1, 2) and c.size > 1:
                        ins[k] = init(f"{prefix}/{n.name}/c4d", c.reshape(1, -1, 1, 1))
                if ins != list(n.input):
                    replace[name] = [helper.make_node(n.op_type, ins, list(n.output), name=n.name)]
        mul = nodes[b.mul]
        gate = next(i for i in mul.input if i != x)
        up = _name(f"{prefix}/gate_up", used)
        scales = init(f"{prefix}/scales", np.array([1, 1, kh, kw], np.float32))
        seq2 = [helper.make_node("Resize", [gate, "", scales], [up], name=_name(f"{prefix}/Resize", used),
                                 mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")]
        if gh * kh != b.height or gw * kw != b.width:
            cropped = _name(f"{prefix}/gate_crop", used)
            seq2.append(helper.make_node("Slice", [up, init(f"{prefix}/starts", np.array([0, 0], np.int64)),
                                                   init(f"{prefix}/ends", np.array([b.height, b.width], np.int64)),
                                                   init(f"{prefix}/axes", np.array([2, 3], np.int64))], [cropped],
                                         name=_name(f"{prefix}/Slice", used)))
            up = cropped
        ins = [up if i == gate else i for i in mul.input]
        replace[mul.name] = [*seq2, helper.make_node("Mul", ins, list(mul.output), name=mul.name)]
        rec["rewritten"] = True
    if not any(r["rewritten"] for r in records) and not any(r["tile"] for r in records):
        raise InputError(f"no attention block could be rewritten: {blocks[0].reason}")
    out_nodes = []
    for n in gr.g.node:
        out_nodes.extend(replace.get(n.name, [n]))
    del gr.g.node[:]
    gr.g.node.extend(out_nodes)
    gr.g.initializer.extend(new_inits)
    _prune(model)
    model.graph.ClearField("value_info")
    _ensure_opset(model, 13)
    onnx.checker.check_model(model)
    return model, records


def _as_conv(gr: _Graph, n: onnx.NodeProto, init, b: Block) -> onnx.NodeProto:
    """Gemm / MatMul with a constant weight → the same weights as a 1×1 Conv on the 4-D tile descriptors."""
    w = gr.const(n.input[1])
    if w is None or w.ndim != 2:
        raise InputError(f"'{n.name}': the excitation weight is not a constant matrix; cannot rewrite block "
                         f"'{b.pool}'")
    attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
    if n.op_type == "Gemm":
        if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
            raise InputError(f"'{n.name}': Gemm with transA/alpha/beta is not supported by the TSE rewrite")
        weight = w if attrs.get("transB", 0) else w.T
    else:
        weight = w.T
    ins = [n.input[0], init(f"{n.name}/w1x1", np.ascontiguousarray(weight)[:, :, None, None])]
    if n.op_type == "Gemm" and len(n.input) > 2 and n.input[2]:
        bias = gr.const(n.input[2])
        if bias is None:
            raise InputError(f"'{n.name}': Gemm bias is not constant")
        ins.append(init(f"{n.name}/b1x1", np.ravel(bias).astype(weight.dtype)))
    return helper.make_node("Conv", ins, list(n.output), name=n.name, kernel_shape=[1, 1])


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


def load_onnx_file(path: str | Path) -> onnx.ModelProto:
    """Load an ONNX file, following external-data sidecars only inside the model's own folder."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"ONNX file '{p}' does not exist" + (" (it is a folder: pass the .onnx file inside it, or "
                                                              "the folder as RUN_DIR)" if p.is_dir() else ""))
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf decode errors have several types
        raise InputError(f"'{p}' is not a readable ONNX file ({type(exc).__name__})") from exc
    folder = p.resolve().parent
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            loc = next((e.value for e in t.external_data if e.key == "location"), "")
            target = (folder / loc).resolve()
            if folder not in target.parents:
                raise InputError(f"'{p}': external data '{loc}' of tensor '{t.name}' is outside the model's folder; "
                                 "refusing to read it (move the sidecar next to the model)")
            if not target.is_file():
                raise InputError(f"'{p}': external data file '{loc}' of tensor '{t.name}' is missing")
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        from onnx.external_data_helper import load_external_data_for_model

        load_external_data_for_model(model, str(folder))
    return model
