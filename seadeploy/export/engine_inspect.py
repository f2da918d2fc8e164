"""Engine inspector JSON (TensorRT 10.x and 11.x schemas) and layer-precision verification.

Pure Python, no TensorRT needed: ``trt_engine`` feeds it ``get_engine_information(JSON)`` after a build, the
profiling stage may reuse :func:`parse_inspector_json` for layer shapes and datatypes.

* 10.x: top-level ``Bindings`` (names); each tensor has one ``"Format/Datatype"`` string such as
  ``"Row major linear FP32"`` or ``"Channel major FP16 format where channel % 8 == 0"``.
* 11.x: top-level ``"I/O Tensors"`` (objects); tensors have separate ``Format`` and ``Datatype`` fields.

A value TensorRT could not resolve (``"N/A due to dynamic shapes"`` when the inspector has no execution
context attached) is read as ``"n/a"`` and skipped by the verification, like Polygraphy does; it never
counts as a wrong precision. :func:`seadeploy.backends.trt_support.engine_information` attaches the context.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable
from typing import Any

import onnx
import onnx_ir as ir

from seadeploy.errors import InputError
from seadeploy.graphs.index import GraphIndex
from seadeploy.graphs.ops import CONVS

#: ONNX ops whose engine layers must run in the requested precision. Gemm/MatMul (the classifier, an SE MLP)
#: are left out: TensorRT may legitimately run a tiny FC in a wider type, and the verdict must not depend on it.
_DTYPE_WORDS = (("bfloat16", "bf16"), ("fp8", "fp8"), ("int8", "int8"), ("fp16", "fp16"), ("half", "fp16"),
                ("fp32", "fp32"), ("float", "fp32"), ("int32", "int32"), ("int64", "int64"), ("bool", "bool"),
                ("uint8", "uint8"))


UNKNOWN, NOT_AVAILABLE = "unknown", "n/a"


# ----------------------------------------------------------------------------------------- inspector
@dataclasses.dataclass
class EngineLayer:
    """One engine layer from the inspector JSON."""

    name: str
    layer_type: str
    inputs: list[tuple[str, str, list[int]]]  # (tensor name, dtype, dims)
    outputs: list[tuple[str, str, list[int]]]
    onnx_nodes: list[str]
    tactic: str = ""

    @property
    def precision(self) -> str:
        """Datatype of the first input (what the kernel reads), else of the first output.

        ``"n/a"`` when every tensor's type was unresolved ("N/A due to dynamic shapes"), ``"unknown"`` when
        a type was given but not recognised.
        """
        dtypes = [dtype for _, dtype, _ in [*self.inputs, *self.outputs]]
        for dtype in dtypes:
            if dtype not in (UNKNOWN, NOT_AVAILABLE):
                return dtype
        return UNKNOWN if UNKNOWN in dtypes else NOT_AVAILABLE


def normalise_dtype(text: str) -> str:
    """``"Row major linear FP32"``/``"Channel major FP16 format where channel % 8 == 0"``/``"Half"``/``"INT8"`` → fp32/fp16/int8...

    ``"N/A due to dynamic shapes"`` → ``"n/a"``; an absent or unrecognised type → ``"unknown"``.
    """
    low = (text or "").lower()
    if "n/a" in low:
        return NOT_AVAILABLE
    for word in re.findall(r"[a-z0-9]+", low):
        for key, dtype in _DTYPE_WORDS:
            if word == key:
                return dtype
    return UNKNOWN


def _tensor(t: dict[str, Any]) -> tuple[str, str, list[int]]:
    if "Format/Datatype" in t:  # TensorRT 10.x: one descriptive string
        dtype = normalise_dtype(str(t["Format/Datatype"]))
    else:  # TensorRT 11.x: separate fields ("Datatype"; some builds spell it "DataType")
        dtype = normalise_dtype(str(t.get("Datatype", t.get("DataType", ""))))
    return str(t.get("Name", "")), dtype, list(t.get("Dimensions", []))


def _onnx_names(layer: dict[str, Any], known: set[str]) -> list[str]:
    meta = str(layer.get("Metadata", "")).replace("\x1e", "+").replace("\x1f", "+")
    names = re.findall(r"\[ONNX Layer: ([^\]]+)\]", meta)
    parts = [p.strip() for p in str(layer.get("Name", "")).split(" + ")]
    names += [p for p in parts if p in known]
    return list(dict.fromkeys(names))


def parse_inspector_json(text: str | dict[str, Any], onnx_nodes: Iterable[str] = ()) -> dict[str, Any]:
    """Parse ``get_engine_information(JSON)`` output (10.x or 11.x schema).

    Returns ``{"schema": "10.x"|"11.x", "io": [names], "layers": [EngineLayer]}``.

    Raises:
        InputError: not JSON, or layers given as bare names (engine built without DETAILED verbosity).
    """
    try:
        data = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError as exc:
        raise InputError(f"engine inspector output is not JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("Layers"), list):
        raise InputError("engine inspector JSON has no 'Layers' list")
    if "I/O Tensors" in data:
        schema, io = "11.x", [t.get("Name", "") if isinstance(t, dict) else str(t) for t in data["I/O Tensors"]]
    else:
        schema, io = "10.x", [str(b) for b in data.get("Bindings", [])]
    known = set(onnx_nodes)
    layers = []
    for raw in data["Layers"]:
        if not isinstance(raw, dict):
            raise InputError("engine inspector lists layer names only; build with "
                             "profiling_verbosity=DETAILED to read layer precisions")
        layers.append(EngineLayer(
            name=str(raw.get("Name", "")), layer_type=str(raw.get("LayerType", raw.get("ParameterType", ""))),
            inputs=[_tensor(t) for t in raw.get("Inputs", [])], outputs=[_tensor(t) for t in raw.get("Outputs", [])],
            onnx_nodes=_onnx_names(raw, known), tactic=str(raw.get("TacticName", raw.get("TacticValue", "")))))
    return {"schema": schema, "io": io, "layers": layers}


# ------------------------------------------------------------------------------------- verification
def expected_precisions(proto: onnx.ModelProto) -> dict[str, str]:
    """Precision each convolution (``graphs.ops.CONVS``) of an ONNX graph asks for.

    ``int8`` when its data input comes from a DequantizeLinear of an int8 tensor, ``fp16`` when that input is
    float16 (the fp16 cast graph), else ``fp32``.
    """
    ix = GraphIndex.of(proto, shapes=False)  # the types the proto declares (value_info), no inference of its own
    out = {}
    for node in ix.nodes:
        data = node.inputs[0] if node.inputs else None
        if node.op_type not in CONVS or data is None:
            continue
        src = ix.producer(data)
        if src is not None and src.op_type == "DequantizeLinear":
            out[node.name] = "int8"
        elif data.dtype == ir.DataType.FLOAT16:
            out[node.name] = "fp16"
        else:
            out[node.name] = "fp32"
    return out


def verify_precisions(layers: list[EngineLayer], expected: dict[str, str], requested: str) -> dict[str, Any]:
    """Compare each engine layer that computes an ONNX convolution (``graphs.ops.CONVS``) with the precision the
    graph asks for.

    A layer passes when it runs in the expected precision or a lower one (an int8 kernel for an fp16 request
    is fine; an fp32 kernel for an int8/fp16 request is not). Returns a summary with ``passed`` and
    ``violations`` (layer, onnx node, expected, actual).
    """
    rank = {"int8": 0, "fp8": 0, "fp16": 1, "bf16": 1, "fp32": 2}
    violations, checked, counts, unresolved = [], 0, {}, 0
    for layer in layers:
        nodes = [n for n in layer.onnx_nodes if n in expected]
        if not nodes:
            continue
        want = min((expected[n] for n in nodes), key=lambda p: rank.get(p, 2))
        got = layer.precision
        if got == NOT_AVAILABLE:  # TensorRT did not resolve it (dynamic shapes, no context): skip, like Polygraphy
            unresolved += 1
            continue
        checked += 1
        counts[got] = counts.get(got, 0) + 1
        if got not in rank or rank[got] > rank.get(want, 2):
            violations.append({"layer": layer.name, "onnx_node": nodes[0], "expected": want, "actual": got})
    wanted = sum(1 for p in expected.values() if p == requested)
    passed = checked > 0 and not violations and (requested == "fp32" or counts.get(requested, 0) > 0 or wanted == 0)
    return {"requested": requested, "passed": passed, "compute_layers_checked": checked, "precision_counts": counts,
            "violations": violations, "unresolved_layers": unresolved}
