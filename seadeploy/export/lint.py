"""Export lint: the known deployment traps of docs/deployment.md, found in any ONNX file, each with a fix hint.

::

    report = lint_onnx("runs/x/model.onnx")
    for f in report.findings: print(f.severity, f.rule, f.node, f.hint)
    bool(report)   # False when any finding is an error

Rules: ``pool-ceil-pad`` (ceil_mode with padding: the graph declares a larger shape than runtimes compute),
``avgpool-count-include-pad`` (edge tiles averaged over padding), ``ceil-edge-tile`` (partial edge tiles),
``nearest-exact`` (Resize with half-pixel nearest), ``gathernd`` (from nearest-exact or non-divisible adaptive
pooling), ``external-data`` (sidecar files), ``trt-unsupported-op`` (ops the TensorRT ONNX parser rejects),
``opset-range``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import onnx
import pandas as pd

from seadeploy.errors import InputError
from seadeploy.export.onnx_export import node_module_map
from seadeploy.graphs.load import load_model
from seadeploy.graphs.ops import TRT_UNSUPPORTED

TRT_OPSETS = range(9, 26)  # TensorRT 10.0 parses 9–20, TensorRT 11 up to 25
SEVERITIES = ("error", "warning", "info")


@dataclasses.dataclass
class Finding:
    """One lint finding on one node (``node`` empty for whole-model findings)."""

    rule: str
    severity: str
    message: str
    hint: str
    node: str = ""
    op_type: str = ""
    module: str = ""

    def __str__(self) -> str:
        where = f" [{self.node}{' ← ' + self.module if self.module else ''}]" if self.node else ""
        return f"{self.severity}: {self.rule}{where}: {self.message}\n  fix: {self.hint}"


@dataclasses.dataclass
class LintReport:
    """All findings for one file; truthy when there is no error-severity finding."""

    file: str
    findings: list[Finding]

    def __bool__(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "passed": bool(self), "findings": [dataclasses.asdict(f) for f in self.findings]}

    def to_frame(self):
        cols = [f.name for f in dataclasses.fields(Finding)]
        return pd.DataFrame([dataclasses.asdict(f) for f in self.findings], columns=cols)


def _attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    for a in node.attribute:
        if a.name == name:
            value = onnx.helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _shapes(proto: onnx.ModelProto) -> dict[str, list[int | None]]:
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, data_prop=True)
    except Exception:  # lint must report on graphs that do not infer; shapes are then unknown
        return {}
    out = {}
    for v in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        if v.type.HasField("tensor_type") and v.type.tensor_type.HasField("shape"):
            out[v.name] = [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
    return out


def _pool_findings(node: onnx.NodeProto, shapes: dict[str, list[int | None]]) -> list[Finding]:
    ceil, pads = int(_attr(node, "ceil_mode", 0)), list(_attr(node, "pads", []) or [])
    out = []
    if ceil and any(pads):
        out.append(Finding("pool-ceil-pad", "error", f"{node.op_type} with ceil_mode=1 and pads={pads}: the graph "
                           "declares a larger output than ONNX Runtime/TensorRT compute",
                           "use padding=0 with ceil_mode=True (or F.pad explicitly, then pool with ceil_mode=False)"))
    if node.op_type == "AveragePool" and int(_attr(node, "count_include_pad", 0)) and (ceil or any(pads)):
        out.append(Finding("avgpool-count-include-pad", "warning", "AveragePool counts padded/out-of-range pixels "
                           "(count_include_pad=1), so edge tiles are divided by the full tile size",
                           "set count_include_pad=False in nn.AvgPool2d so every backend averages valid pixels only"))
    kernel, strides = list(_attr(node, "kernel_shape", []) or []), list(_attr(node, "strides", []) or [])
    shape = shapes.get(node.input[0], [])
    if ceil and kernel and len(shape) == 2 + len(kernel):
        spatial = shape[2:]
        strides = strides or [1] * len(kernel)
        partial = [s for s, k, st in zip(spatial, kernel, strides) if s is not None and (s - k) % st]
        if partial:
            out.append(Finding("ceil-edge-tile", "info", f"{node.op_type} ceil_mode tiles overhang the {spatial} map: "
                               "edge tiles cover fewer pixels (runtimes must divide by the valid count)",
                               "verify edge-tile parity on every target backend, or choose a tile that divides the map"))
    return out


def _node_findings(node: onnx.NodeProto, shapes: dict[str, list[int | None]]) -> list[Finding]:
    out: list[Finding] = []
    if node.op_type in ("AveragePool", "MaxPool"):
        out += _pool_findings(node, shapes)
    if node.op_type == "Resize" and _attr(node, "mode", "nearest") == "nearest":
        ctm = _attr(node, "coordinate_transformation_mode", "half_pixel")
        if ctm in ("half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn"):
            out.append(Finding("nearest-exact", "warning", f"Resize nearest with coordinate_transformation_mode={ctm} "
                               f"(nearest_mode={_attr(node, 'nearest_mode', 'round_prefer_floor')}): nearest-exact "
                               "semantics that backends round differently",
                               'use F.interpolate(mode="nearest") (asymmetric/floor) for integer scale factors'))
    if node.op_type == "GatherND":
        out.append(Finding("gathernd", "warning", "GatherND (exported from interpolate(mode='nearest-exact') or from "
                           "adaptive pooling whose output does not divide the input): slow and fragile on TensorRT",
                           "use mode='nearest' for broadcasting and tile/pool sizes that divide the feature map"))
    if node.domain not in ("", "ai.onnx"):
        out.append(Finding("trt-unsupported-op", "error", f"{node.domain}::{node.op_type} is a custom-domain op the "
                           "TensorRT ONNX parser cannot import without a plugin",
                           "export a plain ONNX graph (no ORT-optimised/contrib ops); save ORT-optimised models apart"))
    elif node.op_type in TRT_UNSUPPORTED:
        out.append(Finding("trt-unsupported-op", "error", f"{node.op_type} is not supported by the TensorRT ONNX parser",
                           "replace the PyTorch op that produced it with a supported equivalent, or add a TensorRT plugin"))
    return out


def _external_findings(path: Path, proto: onnx.ModelProto) -> list[Finding]:
    external = [t.name for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    sidecars = sorted({e.value for t in proto.graph.initializer for e in t.external_data if e.key == "location"})
    if not external:
        return []
    return [Finding("external-data", "error", f"{len(external)} initializers live in sidecar file(s) "
                    f"{', '.join(sidecars) or '?'} next to {path.name}: copying only the .onnx breaks every consumer",
                    "re-export with torch.onnx.export(..., external_data=False) (models < 2 GB), or "
                    "onnx.save_model(onnx.load(path), path, save_as_external_data=False)")]


def lint_onnx(path: str | os.PathLike) -> LintReport:
    """Lint an ONNX file. Raises ``InputError`` (exit 2) for a missing, truncated or non-ONNX file."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"'{p}' is a folder, not an ONNX file; pass the file (e.g. {p / 'model.onnx'})")
    if p.exists() and not p.is_file():  # checked before opening: reading a FIFO would block forever
        raise InputError(f"'{p}' is not a regular file (a FIFO, socket or device); pass an .onnx file")
    proto = load_model(p, external_data=False)
    shapes, modules = _shapes(proto), node_module_map(proto)
    findings = _external_findings(p, proto)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and opset not in TRT_OPSETS:
        findings.append(Finding("opset-range", "warning", f"opset {opset} is outside what TensorRT parses "
                                f"({TRT_OPSETS.start}–{TRT_OPSETS.stop - 1}; TensorRT 10.0: 9–20)",
                                "re-export with --opset 18"))
    for node in proto.graph.node:
        for f in _node_findings(node, shapes):
            f.node, f.op_type, f.module = node.name, node.op_type, modules.get(node.name, "")
            findings.append(f)
    return LintReport(p.name, findings)
