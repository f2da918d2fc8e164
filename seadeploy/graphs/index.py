"""The graph index: producers, consumers, constant-ness, shapes, initializers and module paths of one graph.

Built once per graph (``GraphIndex.of(source)``) and handed to whatever walks it: the attention detector, the
TSE rewrite, the fp16 passes, the per-layer mapping of ORT's optimised graph, liveness and the layer-wise
check. Hand-written walks on top of ``onnx_ir`` (it gives producers and uses; the data/constant split is
specific to these analyses).
"""

from __future__ import annotations

import ast
import os
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir
from onnx import helper, numpy_helper

from seadeploy.graphs.load import load_ir, load_model
from seadeploy.graphs.ops import RANDOMS, STATIC_SOURCES

MODULE_KEY, SCOPES_KEY = "module", "pkg.torch.onnx.name_scopes"


class GraphIndex:
    """Producers, consumers, constant-ness, shapes and module paths of one ``onnx_ir`` graph.

    ``nodes`` are in graph order (one per proto node, so ``zip(proto.graph.node, ix.nodes)`` pairs them);
    name-based lookups (:meth:`value`, :meth:`producer_of`, :meth:`consumers_of`) serve code that holds tensor
    names of the proto.
    """

    def __init__(self, model: ir.Model) -> None:
        self.model = model
        self.graph = model.graph
        self.nodes: list[ir.Node] = list(self.graph)
        self.order = {id(n): i for i, n in enumerate(self.nodes)}
        self.by_name = {n.name: n for n in self.nodes if n.name}
        self._static: dict[int, bool] = {}
        self._data: dict[int, list[ir.Value]] = {}
        self._values: dict[str, ir.Value] | None = None

    @classmethod
    def of(cls, source: str | os.PathLike | onnx.ModelProto | ir.Model, *, shapes: bool = True) -> GraphIndex:
        """The index of a path, proto or IR model; ``shapes=False`` skips shape inference (walks by name only)."""
        if isinstance(source, ir.Model) or shapes:
            return cls(load_ir(source))
        return cls(ir.from_proto(load_model(source)))

    # ----------------------------------------------------------------------------------- by value
    def producer(self, v: ir.Value | None) -> ir.Node | None:
        return v.producer() if v is not None else None

    def consumers(self, v: ir.Value) -> list[ir.Node]:
        return list(v.consumers())

    def position(self, node: ir.Node) -> int:
        """The node's place in graph order."""
        return self.order[id(node)]

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
            elif node.op_type in STATIC_SOURCES:
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

    # ------------------------------------------------------------------------------------ by name
    def value(self, name: str) -> ir.Value | None:
        """The tensor called ``name`` (graph input, initializer or node output), else ``None``."""
        if self._values is None:
            found: dict[str, ir.Value] = {}
            for v in [*self.graph.inputs, *self.graph.initializers.values()]:
                if v.name:
                    found[v.name] = v
            for n in self.nodes:
                for o in n.outputs:
                    if o.name:
                        found[o.name] = o
            self._values = found
        return self._values.get(name) if name else None

    def producer_of(self, name: str) -> ir.Node | None:
        """The node writing tensor ``name`` (``None`` for graph inputs, initializers and unknown names)."""
        return self.producer(self.value(name))

    def consumers_of(self, name: str) -> list[ir.Node]:
        """The nodes reading tensor ``name``, each once."""
        v = self.value(name)
        return [] if v is None else list(v.consumers())

    def uses_of(self, name: str) -> int:
        """How many node inputs read tensor ``name`` (a node reading it twice counts twice)."""
        v = self.value(name)
        return 0 if v is None else len(v.uses())


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


def node_modules(model: onnx.ModelProto) -> dict[str, str]:
    """``{node name: PyTorch module path}``; ``""`` where the graph carries no module metadata."""
    return {n.name: node_module(n) for n in model.graph.node}


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
