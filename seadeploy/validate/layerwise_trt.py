"""Layer-wise parity for TensorRT: compare at the boundaries its fusion keeps, name the fused engine layer.

Marking every tensor as a network output (Polygraphy's ``--trt-outputs mark all``) disables most fusions,
so the engine compared is not the engine deployed. Here only tensors that survive fusion anyway are
marked: outputs of blocks and attention modules (module containers) and tensors read by more than one
node (a branch point must be materialised). The engine is built from the same ONNX file with those extra
outputs, run on the same samples, and each compared tensor is attributed to the engine layer that
produces it (engine inspector, DETAILED verbosity), e.g. ``node_Conv_39 + node_relu_1``.

GPU only; ``tensorrt`` is imported when called.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from seadeploy.backends.trt import TrtBackend
from seadeploy.backends.trt_support import (
    apply_tf32,
    engine_information,
    import_tensorrt,
    logger,
    parse_onnx,
    require_tensorrt,
    trt_major,
)
from seadeploy.errors import InputError
from seadeploy.export.engine_inspect import parse_inspector_json
from seadeploy.graphs.index import GraphIndex
from seadeploy.graphs.load import load_model
from seadeploy.validate.layerwise import LAYER_THRESHOLDS, LayerPoint, LayerwiseResult, compare_points, plan_points


def fusion_boundaries(points: Sequence[LayerPoint], proto: Any) -> list[LayerPoint]:
    """The points TensorRT materialises anyway: container outputs and multi-consumer tensors."""
    ix = GraphIndex.of(proto, shapes=False)
    return [p for p in points if p.container or ix.uses_of(p.tensor) > 1]


def build_marked_engine(onnx_path: str | os.PathLike, tensors: Sequence[str], batch: int, precision: str,
                        device: int = 0) -> bytes:
    """Build an engine of ``onnx_path`` (static batch ``batch``) whose outputs also include ``tensors``.

    Network, parser and TF32 handling are the export's (:mod:`seadeploy.backends.trt_support`): precision lives
    in the graph (cast / Q/DQ), so non-fp32 graphs build strongly typed; TF32 is cleared on every major.

    Raises:
        BackendUnavailable: no TensorRT or no usable GPU (exit 3).
        InputError: the parser or the builder fails, or a tensor is unknown.
    """
    trt = require_tensorrt(device)
    builder = trt.Builder(logger(trt))
    strong = precision != "fp32" or trt_major(trt) >= 11
    network, _parser = parse_onnx(trt, builder, onnx_path, strong)
    by_name = {network.get_layer(i).get_output(j).name: network.get_layer(i).get_output(j)
               for i in range(network.num_layers) for j in range(network.get_layer(i).num_outputs)}
    outputs = {network.get_output(i).name for i in range(network.num_outputs)}
    for name in tensors:
        if name not in by_name:
            raise InputError(f"tensor '{name}' is not in the TensorRT network of {onnx_path}")
        if name not in outputs:
            network.mark_output(by_name[name])
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    apply_tf32(trt, config, False)  # strict fp32 arithmetic, like the torch reference
    inp = network.get_input(0)
    shape = (int(batch), *[int(d) for d in tuple(inp.shape)[1:]])
    profile = builder.create_optimization_profile()
    profile.set_shape(inp.name, shape, shape, shape)
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise InputError(f"TensorRT failed to build {onnx_path} with {len(tensors)} marked outputs; see its log")
    return bytes(plan)


def engine_layer_of(backend: Any, node_names: Sequence[str]) -> dict[str, str]:
    """``{tensor name: name of the engine layer producing it}`` from the engine inspector (backend's context)."""
    trt = import_tensorrt()
    text = engine_information(trt, backend.engine, backend.context)
    layers = parse_inspector_json(text, node_names)["layers"]
    return {t[0]: layer.name for layer in layers for t in layer.outputs}


def layerwise_trt(model: nn.Module, onnx_path: str | os.PathLike, x: np.ndarray, precision: str = "fp32", *,
                  threshold: float | None = None, backend: str = "trt", device: int = 0) -> LayerwiseResult:
    """Compare ``model``'s module outputs with a TensorRT engine of ``onnx_path`` at its fusion boundaries."""
    proto = load_model(onnx_path)
    points, unmatched = plan_points(model, proto, x)
    marks = fusion_boundaries(points, proto)
    plan = build_marked_engine(onnx_path, [p.tensor for p in marks], len(x), precision, device)
    with TrtBackend(plan, device=device) as be:
        values = be.infer({next(iter(be.input_specs)): x})
        layer_of = engine_layer_of(be, [n.name for n in proto.graph.node])
    thr = LAYER_THRESHOLDS.get(precision, 1e-3) if threshold is None else threshold
    rows = compare_points(marks, values, precision, thr)
    for row in rows:
        row["engine_layer"] = layer_of.get(row["tensor"], "")
    return LayerwiseResult(backend, precision, thr, rows, unmatched)
