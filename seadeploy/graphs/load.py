"""Reading ONNX graphs: the one loader.

:func:`load_model` reads a file (external-data sidecars only from the model's own folder, docs/promises.md);
:func:`load_ir` gives the ``onnx_ir`` model the graph index walks, with symbolic shapes from ONNX inference.
Concrete shapes of a static graph are :mod:`seadeploy.graphs.shapes`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
from onnx import helper
from onnx.external_data_helper import load_external_data_for_model

from seadeploy.errors import InputError

#: Initializers above this many elements are declared as typed inputs for shape inference instead of copied.
_LIGHT_LIMIT = 64


def load_model(source: str | os.PathLike | onnx.ModelProto, *, external_data: bool = True) -> onnx.ModelProto:
    """Load an ONNX file (or pass a ``ModelProto`` through) with a readable one-line error.

    External data is read only from sidecars inside the model's own folder; ``external_data=False`` leaves
    it unread (the lint reports sidecars itself).

    Raises:
        InputError: missing, a folder, unreadable, empty, or external data outside the folder or missing.
    """
    if isinstance(source, onnx.ModelProto):
        return source
    p = Path(source)
    if not p.is_file():
        raise InputError(f"ONNX file '{p}' does not exist" + (" (it is a folder: pass the .onnx file inside it, or "
                                                              "the folder as RUN_DIR)" if p.is_dir() else
                                                              "; export one with python -m seadeploy.export"))
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf DecodeError / OSError / ValueError depending on the damage
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise InputError(f"'{p}' is not a readable ONNX model ({type(exc).__name__}{': ' + first if first else ''});"
                         " it is truncated or not ONNX, re-export it") from exc
    if not model.graph.node or not model.graph.input or not model.opset_import:  # a 0-byte file parses as empty
        raise InputError(f"'{p}' is not a readable ONNX model (no graph nodes, inputs or opset); it is truncated or "
                         "not ONNX, re-export it")
    if not external_data:
        return model
    folder = check_external_data(p, model)
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        load_external_data_for_model(model, str(folder))
    return model


def check_external_data(p: Path, model: onnx.ModelProto) -> Path:
    """Refuse (one line) external-data sidecars outside the model's folder or missing; returns the folder."""
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
    return folder


def load_ir(source: str | os.PathLike | onnx.ModelProto | ir.Model) -> ir.Model:
    """An ``onnx_ir`` model with inferred shapes (static or symbolic) from a path, proto or IR model."""
    if isinstance(source, ir.Model):
        return source
    proto = load_model(source)
    model = ir.from_proto(proto)
    shapes = _inferred_dims(proto)
    for v in [*model.graph.inputs, *(o for n in model.graph for o in n.outputs)]:
        if v.name in shapes and (v.shape is None or any(not isinstance(d, int) for d in v.shape)):
            v.shape = ir.Shape(shapes[v.name])
    return model


def _inferred_dims(proto: onnx.ModelProto) -> dict[str, list[int | str | None]]:
    """``{tensor: dims}`` from ONNX shape inference on a weight-free copy of the graph.

    Large weights are declared as inputs of their shape instead of being carried along: inference only
    needs their shapes, and serialising megabytes of weights is what made inference slow.
    """
    g = proto.graph
    small = [t for t in g.initializer if int(np.prod(t.dims)) <= _LIGHT_LIMIT]
    big = [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in g.initializer
           if int(np.prod(t.dims)) > _LIGHT_LIMIT]
    inits = {t.name for t in g.initializer}
    light_graph = helper.make_graph(list(g.node), g.name, [*(i for i in g.input if i.name not in inits), *big],
                                    list(g.output), small, value_info=list(g.value_info))
    light = helper.make_model(light_graph, opset_imports=list(proto.opset_import), ir_version=proto.ir_version)
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
