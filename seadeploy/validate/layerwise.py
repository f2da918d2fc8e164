"""Layer-wise parity: find the first layer where a backend departs from PyTorch.

PyTorch side: forward hooks record every module's output. ONNX side: each node carries the module it
came from (``metadata_props["module"]``, read with :func:`seadeploy.export.onnx_export.node_module_map`);
a module's ONNX tensor is the output of its last node in graph order. Those tensors are exposed as extra
graph outputs of an in-memory copy of the model (the file on disk is untouched) and compared with the
hooked outputs in graph order. The first row whose error exceeds the precision's layer threshold is the
**first divergence**, named by module path and ONNX node.

Folded modules: the exporter folds a BatchNorm into the convolution before it; the fused ONNX Conv then
computes ``bn(conv(x))``. A module with no ONNX node of its own whose input is exactly the previous
module's output (BatchNorm, Identity, eval-mode Dropout) is therefore *absorbed* into that module's row,
which is labelled ``layer1.0.conv1+bn1``.

Layer error = ``max|out − ref| / max|ref|`` (``rel``). Thresholds (``LAYER_THRESHOLDS``) sit well above
what each precision adds on a healthy model (≥ 10×; fp32 leaves room for deep random-weight nets); measured on VGG16-SE trained on digits (48 layers, 16
samples): largest per-layer rel error fp32 4.7e-7, fp16 9.4e-4, int8 2.5e-2. Low precisions depart from
the first layer by design, so their "first divergence" means "beyond the error that precision normally
adds" (a random-weight EfficientNet-B0-SPSE int8 graph first diverges at its descriptor BatchNorm).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from seadeploy.backends.ort import OrtBackend
from seadeploy.export.onnx_export import node_module_map
from seadeploy.graphs.load import load_model
from seadeploy.graphs.ops import INTEGER_OUTPUTS
from seadeploy.parity import layer_error

LAYER_THRESHOLDS = {"fp32": 1e-3, "fp16": 1e-2, "int8": 0.1}


@dataclasses.dataclass
class LayerPoint:
    """One comparable boundary: a module (plus absorbed ones) and the ONNX tensor that holds its output."""

    index: int  # position of the producing node in the graph
    module: str  # the row label, e.g. "layer1.0.conv1+bn1"
    modules: list[str]  # every torch module path whose output this tensor is
    onnx_node: str
    op_type: str
    tensor: str
    reference: np.ndarray
    container: bool = False  # the module has children (a block, an attention module)


@dataclasses.dataclass
class LayerwiseResult:
    """Per-layer errors of one backend × precision and the first divergent layer (``None``: no divergence)."""

    backend: str
    precision: str
    threshold: float
    rows: list[dict[str, Any]]
    unmatched: list[str] = dataclasses.field(default_factory=list)

    @property
    def first(self) -> dict[str, Any] | None:
        return next((r for r in self.rows if r["diverged"]), None)

    def __bool__(self) -> bool:
        return self.first is None

    def to_frame(self) -> pd.DataFrame:
        """One row per compared layer, in graph order."""
        frame = pd.DataFrame(self.rows)
        if not frame.empty:
            frame.insert(0, "precision", self.precision)
            frame.insert(0, "backend", self.backend)
        return frame

    def summary(self) -> str:
        """One line naming the first divergent layer (or saying there is none)."""
        f = self.first
        if f is None:
            return (f"{self.backend}/{self.precision}: no layer diverges ({len(self.rows)} layers compared, "
                    f"rel error ≤ {self.threshold:g})")
        where = f" [engine layer {f['engine_layer']}]" if f.get("engine_layer") else ""
        return (f"{self.backend}/{self.precision}: first divergence at {f['module']} (ONNX node {f['onnx_node']}, "
                f"{f['op_type']}){where}: rel error {f['rel']:.3g}, max abs {f['max_abs']:.3g}, cosine {f['cosine']:.6f}")

    def to_dict(self) -> dict[str, Any]:
        first = self.first
        return {"backend": self.backend, "precision": self.precision, "threshold": self.threshold,
                "first_divergence": first, "summary": self.summary(), "layers": len(self.rows),
                "unmatched": self.unmatched}


# ------------------------------------------------------------------------------------------ PyTorch
@dataclasses.dataclass
class _Call:
    order: int
    output: torch.Tensor  # a clone (in-place ops later cannot change it)
    out_id: int
    in_ids: tuple[int, ...]
    calls: int = 1


def capture_modules(model: nn.Module, x: np.ndarray) -> dict[str, _Call]:
    """Run ``model`` on ``x`` (CPU, no grad) and record each named module's tensor output, inputs and call order."""
    calls: dict[str, _Call] = {}
    alive: list[Any] = []  # keep originals alive so Python ids stay unique during the forward
    counter = iter(range(1 << 30))

    def hook(name: str):
        def fn(_module: nn.Module, args: tuple, output: Any) -> None:
            if not isinstance(output, torch.Tensor):
                return
            alive.append(output)
            if name in calls:
                calls[name].calls += 1
                return
            calls[name] = _Call(next(counter), output.detach().clone(), id(output),
                                tuple(id(a) for a in args if isinstance(a, torch.Tensor)))
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if n]
    try:
        with torch.no_grad():
            model.eval()(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    finally:
        for h in handles:
            h.remove()
    return calls


# --------------------------------------------------------------------------------------------- ONNX
def plan_points(model: nn.Module, proto: Any, x: np.ndarray) -> tuple[list[LayerPoint], list[str]]:
    """Match hooked module outputs to ONNX tensors.

    Returns:
        The comparable points in graph order, and the modules that could not be matched (called more
        than once, or with no ONNX node and not absorbed into a neighbour).
    """
    modules = node_module_map(proto)
    nodes = list(proto.graph.node)
    last: dict[str, int] = {}  # module path (and every ancestor) → index of its last node
    for i, node in enumerate(nodes):
        path = modules.get(node.name, "") if node.op_type not in INTEGER_OUTPUTS else ""
        while path:
            last[path] = i
            path = path.rpartition(".")[0]
    calls = capture_modules(model, x)
    containers = {n for n, m in model.named_modules() if any(True for _ in m.children())}
    by_order = sorted(calls.items(), key=lambda kv: kv[1].order)
    points: dict[str, LayerPoint] = {}
    absorbed: set[str] = set()
    graph_inputs = {i.name for i in proto.graph.input}
    for pos, (name, call) in enumerate(by_order):
        if call.calls > 1 or name not in last:
            continue
        label, ref, taken = _absorb(name, call, by_order[pos + 1:], last)
        absorbed.update(taken)
        node = nodes[last[name]]
        tensor = node.output[0]
        if not tensor or tensor in graph_inputs:
            continue
        pt = points.get(tensor)
        if pt is None or name.count(".") > pt.modules[-1].count("."):  # keep the most specific module
            points[tensor] = LayerPoint(last[name], label, [*(pt.modules if pt else []), name], node.name,
                                        node.op_type, tensor, ref.numpy(), name in containers)
        else:
            pt.modules.insert(0, name)
    matched = {m for p in points.values() for m in p.modules} | absorbed
    unmatched = [n for n in calls if n not in matched and (calls[n].calls > 1 or n not in last)]
    return sorted(points.values(), key=lambda p: p.index), unmatched


def _absorb(name: str, call: _Call, after: list[tuple[str, _Call]],
            last: dict[str, int]) -> tuple[str, torch.Tensor, list[str]]:
    """Follow the node-less modules that run right after ``name`` on its output (a folded BatchNorm, Identity)."""
    label, ref, out_id, taken = name, call.output, call.out_id, []
    prefix = name.rpartition(".")[0]
    for other, c in after:  # completion order: a folded BN completes right after its conv
        if other in last or c.calls > 1 or c.in_ids[:1] != (out_id,):
            break
        label += "+" + (other[len(prefix) + 1:] if prefix and other.startswith(prefix + ".") else other)
        ref, out_id = c.output, c.out_id
        taken.append(other)
    return label, ref, taken


def compare_points(points: Sequence[LayerPoint], values: dict[str, np.ndarray], precision: str,
                   threshold: float | None = None) -> list[dict[str, Any]]:
    """Error rows for ``points`` given the backend's tensors ``values`` (by ONNX tensor name)."""
    thr = LAYER_THRESHOLDS.get(precision, 1e-3) if threshold is None else threshold
    rows = []
    for p in points:
        if p.tensor not in values:
            continue
        out = np.asarray(values[p.tensor], dtype=np.float32)
        if out.size != p.reference.size:
            continue
        err = layer_error(p.reference, out.reshape(p.reference.shape))
        diverged = not (err["rel"] <= thr)  # NaN → diverged
        rows.append({"index": p.index, "module": p.module, "onnx_node": p.onnx_node, "op_type": p.op_type,
                     "tensor": p.tensor, "shape": "x".join(map(str, p.reference.shape)), **err,
                     "diverged": bool(diverged)})
    return rows


def layerwise_ort(model: nn.Module, onnx_path: Any, x: np.ndarray, precision: str = "fp32", *,
                  threads: int | None = 1, threshold: float | None = None, backend: str = "ort",
                  providers: Sequence[str] = ("cpu",)) -> LayerwiseResult:
    """Compare every matched module output of ``model`` with the ONNX Runtime tensors of ``onnx_path`` on ``x``."""
    proto = load_model(onnx_path)
    points, unmatched = plan_points(model, proto, x)
    names = [p.tensor for p in points]
    with OrtBackend(proto, providers=providers, threads=threads, extra_outputs=names) as be:
        values = be.infer({next(iter(be.input_specs)): x})
    thr = LAYER_THRESHOLDS.get(precision, 1e-3) if threshold is None else threshold
    return LayerwiseResult(backend, precision, thr, compare_points(points, values, precision, thr), unmatched)
