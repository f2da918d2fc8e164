"""The checks every exported ONNX file goes through (DEPLOYMENT.md "Check every export").

1. ``onnx.checker.check_model(full_check=True)``;
2. strict shape inference with data propagation;
3. declared vs runtime shapes: every tensor the graph declares a shape for is made a graph output and
   compared with what ONNX Runtime computes (catches ``ceil_mode`` + padding, where the graph declares
   a larger shape than the runtime produces);
4. parity: ONNX Runtime (CPU) vs a reference on seeded inputs at batch sizes other than the export example.

Each check returns a :class:`Check` (a dataclass with ``__bool__``) that goes into ``manifest["checks"]``.
Tolerance semantics: ``|out − ref| ≤ atol + rtol·|ref|`` elementwise, like ``numpy.allclose``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from seadeploy.errors import InputError
from seadeploy.export.onnx_export import INPUT_NAME


@dataclasses.dataclass
class Check:
    """One check that ran on one file."""

    name: str
    file: str
    passed: bool
    detail: str = ""
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_onnx(path: str | os.PathLike, load_external_data: bool = True) -> onnx.ModelProto:
    """``onnx.load`` with an ``InputError`` for a missing, truncated or non-ONNX file."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"ONNX file '{p}' does not exist")
    try:
        proto = onnx.load(str(p), load_external_data=load_external_data)
    except Exception as exc:  # protobuf DecodeError, OSError for a missing sidecar, ...
        raise InputError(f"'{p}' is not a readable ONNX model ({type(exc).__name__}: {exc}); "
                         "it is truncated or not ONNX, re-export it") from exc
    if not proto.graph.node or not proto.opset_import:
        raise InputError(f"'{p}' is not a readable ONNX model (no graph nodes or opset); it is truncated or not ONNX")
    return proto


def check_model_full(path: str | os.PathLike) -> Check:
    """``onnx.checker.check_model(path, full_check=True)`` (the path form also handles files > 2 GB)."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        return Check("onnx.checker.full_check", Path(path).name, False, str(exc).strip().splitlines()[0])
    return Check("onnx.checker.full_check", Path(path).name, True)


def infer_shapes_strict(proto: onnx.ModelProto, file: str = "") -> tuple[onnx.ModelProto | None, Check]:
    """Strict shape inference with ``data_prop``; returns the inferred model (None on failure) and the check."""
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True, data_prop=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as exc:
        return None, Check("shape_inference.strict", file, False, str(exc).strip().splitlines()[0])
    n = sum(1 for v in inferred.graph.value_info if v.type.HasField("tensor_type"))
    return inferred, Check("shape_inference.strict", file, True, f"{n} intermediate shapes inferred")


def _declared(value: onnx.ValueInfoProto) -> list[int | str] | None:
    t = value.type.tensor_type
    if not value.type.HasField("tensor_type") or not t.HasField("shape"):
        return None
    dims: list[int | str] = []
    for d in t.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            return None
    return dims


def check_declared_shapes(inferred: onnx.ModelProto, feed: dict[str, np.ndarray], file: str = "",
                          batch_param: str = "batch") -> Check:
    """Run ONNX Runtime with every shape-declared tensor exposed as an output; compare declared vs actual.

    Symbolic dims equal to ``batch_param`` resolve to the feed's batch; other symbols are not compared.
    """
    import onnxruntime as ort

    model = onnx.ModelProto()
    model.CopyFrom(inferred)
    outputs = {o.name for o in model.graph.output}
    produced = {name for node in model.graph.node for name in node.output}
    declared = {v.name: _declared(v) for v in [*model.graph.value_info, *model.graph.output]}
    # Only tensors a node produces (stale value_info of replaced initializers is not a graph tensor).
    declared = {k: v for k, v in declared.items() if v is not None and k in produced}
    model.graph.output.extend(v for v in model.graph.value_info if v.name in declared and v.name not in outputs)
    batch = next(iter(feed.values())).shape[0]
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    try:
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        values = sess.run(names, feed)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/RuntimeException types
        return Check("declared_vs_runtime_shapes", file, False, f"ONNX Runtime cannot run the graph: {exc}")
    bad = []
    for name, value in zip(names, values):
        want = [batch if d == batch_param else d for d in declared.get(name, [])]
        got = list(np.shape(value))
        if len(want) != len(got) or any(isinstance(w, int) and w != g for w, g in zip(want, got)):
            bad.append(f"{name}: declared {want}, runtime {got}")
    detail = f"{len(names)} tensors compared at batch {batch}" if not bad else f"{len(bad)} mismatches, first {bad[0]}"
    return Check("declared_vs_runtime_shapes", file, not bad, detail, {"mismatches": bad[:20]})


def compare_logits(ref: np.ndarray, out: np.ndarray) -> dict[str, float]:
    """max/mean abs error, max relative error, cosine similarity and top-1 agreement of two logit arrays."""
    ref64, out64 = np.asarray(ref, np.float64), np.asarray(out, np.float64)
    diff = np.abs(out64 - ref64)
    denom = np.linalg.norm(ref64) * np.linalg.norm(out64)
    return {
        "max_abs": float(diff.max(initial=0.0)),
        "mean_abs": float(diff.mean()) if diff.size else 0.0,
        "max_rel": float((diff / np.maximum(np.abs(ref64), 1e-12)).max(initial=0.0)),
        "cosine": float((ref64 * out64).sum() / denom) if denom > 0 else 1.0,
        "top1_agreement": float((ref64.argmax(-1) == out64.argmax(-1)).mean()) if ref64.ndim == 2 else 1.0,
        "finite": bool(np.isfinite(out64).all()),
        "n": int(ref64.shape[0]) if ref64.ndim else 1,
    }


def ort_session(path_or_proto: Any, threads: int = 1, graph_opt: str = "all") -> Any:
    """A CPU ONNX Runtime session with pinned intra-op threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }[graph_opt]
    src = path_or_proto.SerializeToString() if isinstance(path_or_proto, onnx.ModelProto) else str(path_or_proto)
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def run_ort(session: Any, x: np.ndarray, batch: int = 32) -> np.ndarray:
    """Run a session on ``x`` in chunks of ``batch`` and stack the first output."""
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i:i + batch]})[0] for i in range(0, len(x), batch)])


def check_parity(reference: Callable[[np.ndarray], np.ndarray], path: str | os.PathLike,
                 inputs: Sequence[np.ndarray], *, name: str = "parity.ort_vs_torch", atol: float = 1e-4,
                 rtol: float = 1e-3, min_top1: float | None = None) -> Check:
    """Compare ONNX Runtime CPU on ``path`` with ``reference`` on each input batch.

    Passes when every element satisfies ``|ort − ref| ≤ atol + rtol·|ref|`` (and, when ``min_top1`` is given,
    when top-1 agreement is at least ``min_top1`` instead of the elementwise test).
    """
    sess = ort_session(path)
    refs, outs = [], []
    for x in inputs:
        refs.append(np.asarray(reference(x)))
        outs.append(sess.run(None, {INPUT_NAME: x})[0])
    ref, out = np.concatenate(refs), np.concatenate(outs)
    metrics = compare_logits(ref, out)
    metrics.update(atol=atol, rtol=rtol, batches=[int(x.shape[0]) for x in inputs])
    if min_top1 is None:
        ok = bool(out.shape == ref.shape and np.allclose(out, ref, atol=atol, rtol=rtol)) and metrics["finite"]
        rule = f"|ort-ref| <= {atol:g} + {rtol:g}*|ref|"
    else:
        ok = out.shape == ref.shape and metrics["top1_agreement"] >= min_top1 and metrics["finite"]
        metrics["min_top1"] = min_top1
        rule = f"top-1 agreement >= {min_top1:g}"
    detail = (f"{rule}: max_abs {metrics['max_abs']:.3g}, mean_abs {metrics['mean_abs']:.3g}, "
              f"top-1 agreement {metrics['top1_agreement']:.4f} on {metrics['n']} samples")
    return Check(name, Path(path).name, ok, detail, metrics)


def seeded_inputs(input_shape: Sequence[int], batches: Sequence[int] = (1, 3), seed: int = 0) -> list[np.ndarray]:
    """Standard-normal float32 batches of the given sizes (the export example uses batch 2)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((int(b), *map(int, input_shape))).astype(np.float32) for b in batches]
