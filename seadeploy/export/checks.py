"""The checks every exported ONNX file goes through (docs/deployment.md "Check every export").

1. ``onnx.checker.check_model(full_check=True)``;
2. strict shape inference with data propagation;
3. declared vs runtime shapes: every tensor the graph declares a shape for is made a graph output and
   compared with what ONNX Runtime computes (catches ``ceil_mode`` + padding, where the graph declares
   a larger shape than the runtime produces);
4. parity: the ``ort`` backend vs the PyTorch reference, judged by :mod:`seadeploy.parity` (its rules and their
   reasons: ``docs/parity.md``), run by the export stage (:mod:`seadeploy.export.runner`).

Each check returns a :class:`Check` (a dataclass with ``__bool__``) that goes into ``manifest["checks"]``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx

from seadeploy.backends import create_backend
from seadeploy.errors import SeadeployError
from seadeploy.graphs.load import load_model
from seadeploy.parity import Comparison, Rule, compare, default_rule, infer_batches
from seadeploy.runfolder import Check


def check_model_full(path: str | os.PathLike) -> Check:
    """``onnx.checker.check_model(path, full_check=True)`` (the path form also handles files > 2 GB)."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        return Check("onnx.checker.full_check", Path(path).name, False, str(exc).strip().splitlines()[0])
    return Check("onnx.checker.full_check", Path(path).name, True)


def infer_shapes_strict(model: onnx.ModelProto | str | os.PathLike,
                        file: str = "") -> tuple[onnx.ModelProto | None, Check]:
    """Strict shape inference with ``data_prop``; returns the inferred model (None on failure) and the check.

    ``model`` is a ModelProto or a file. A file is inferred in C++ (``infer_shapes_path`` into a temp folder) and
    only the inferred model is loaded: Python never holds the input graph, and the weights are not serialised
    and parsed once more on the way into C++ and back.
    """
    try:
        if isinstance(model, onnx.ModelProto):
            inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
        else:
            src = Path(model)
            file = file or src.name
            with tempfile.TemporaryDirectory(prefix="seadeploy-shapes-") as tmp:
                out = Path(tmp) / src.name
                onnx.shape_inference.infer_shapes_path(str(src), str(out), check_type=True, strict_mode=True,
                                                       data_prop=True)
                inferred = load_model(out)
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
    """Run the graph with every shape-declared tensor exposed as an output (the ``ort`` backend's
    ``extra_outputs``, no graph optimisation); compare declared vs actual shapes.

    Symbolic dims equal to ``batch_param`` resolve to the feed's batch; other symbols are not compared.
    """
    outputs = {o.name for o in inferred.graph.output}
    produced = {name for node in inferred.graph.node for name in node.output}
    declared = {v.name: _declared(v) for v in [*inferred.graph.value_info, *inferred.graph.output]}
    # Only tensors a node produces (stale value_info of replaced initializers is not a graph tensor).
    declared = {k: v for k, v in declared.items() if v is not None and k in produced}
    extra = [v.name for v in inferred.graph.value_info if v.name in declared and v.name not in outputs]
    batch = next(iter(feed.values())).shape[0]
    try:
        with create_backend("ort", inferred, threads=1, graph_opt="disable", extra_outputs=extra) as be:
            values = be.infer(feed)
    except SeadeployError as exc:  # the backend's one-line InputError/ConfigError for a graph ORT cannot run
        return Check("declared_vs_runtime_shapes", file, False, f"ONNX Runtime cannot run the graph: {exc}")
    bad = []
    for name, value in values.items():
        want = [batch if d == batch_param else d for d in declared.get(name, [])]
        got = list(np.shape(value))
        if len(want) != len(got) or any(isinstance(w, int) and w != g for w, g in zip(want, got)):
            bad.append(f"{name}: declared {want}, runtime {got}")
    detail = f"{len(values)} tensors compared at batch {batch}" if not bad else f"{len(bad)} mismatches, first {bad[0]}"
    return Check("declared_vs_runtime_shapes", file, not bad, detail, {"mismatches": bad[:20]})


def parity_check(comparison: Comparison, file: str, name: str | None = None) -> Check:
    """A parity verdict as a manifest check record (``parity.<precision>.<inputs>``)."""
    metrics = {k: v for k, v in comparison.to_row().items() if k not in ("failures",)}
    return Check(name or f"parity.{comparison.precision}.{comparison.inputs}", file, bool(comparison),
                 comparison.detail(), metrics)


def check_parity(reference: Callable[[np.ndarray], np.ndarray], path: str | os.PathLike,
                 inputs: Sequence[np.ndarray], *, name: str = "parity.ort_vs_torch", rule: Rule | None = None,
                 atol: float | None = None, rtol: float | None = None, precision: str = "fp32") -> Check:
    """The ``ort`` backend (CPU) on ``path`` vs ``reference`` on each input batch, judged by :mod:`seadeploy.parity`.

    ``rule`` defaults to the documented rule of ``precision`` on random inputs; ``atol``/``rtol`` override it
    (making the element-wise check binding).
    """
    rule = (rule or default_rule(precision, "random", trained=False)).override(atol, rtol)
    refs, outs = [], []
    with create_backend("ort", path, threads=1) as be:
        for x in inputs:
            refs.append(np.asarray(reference(x)))
            outs.append(infer_batches(be, x, len(x)))
    result = compare(np.concatenate(refs), np.concatenate(outs), rule, backend="ort", precision=precision,
                     inputs="random")
    check = parity_check(result, Path(path).name, name)
    check.metrics["batches"] = [len(x) for x in inputs]
    return check


def seeded_inputs(input_shape: Sequence[int], batches: Sequence[int] = (1, 3), seed: int = 0) -> list[np.ndarray]:
    """Standard-normal float32 batches of the given sizes (the export example uses batch 2)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((int(b), *map(int, input_shape))).astype(np.float32) for b in batches]
