"""TensorRT engines from the exported ONNX files, verified after the build (TensorRT 10 and 11).

Precision is decided in the ONNX graph (docs/architecture.md §4). TensorRT 11 builds strongly typed networks
only, so the fp16 cast graph and the int8 Q/DQ graph carry the precision. On TensorRT 10 the default is the
classic weakly typed network with ``BuilderFlag.FP16`` / ``INT8`` plus per-layer fp32 constraints for the
nodes the fp16 graph keeps in fp32 (``strongly_typed=True`` uses the TensorRT 11 path on 10 too).

TF32 is on by default in TensorRT 10 and 11; it is cleared on both unless ``EngineConfig.tf32``, and the sidecar
records the flag as the builder config reports it after the build. The TensorRT plumbing shared with the
layer-wise build (import + plugins, GPU check, network/parser, TF32, inspector with an execution context,
activation memory on 10.0 and later) lives in :mod:`seadeploy.backends.trt_support`.

After the build the engine inspector's JSON (``DETAILED`` verbosity, read with an execution context at the
profile's opt shape so dynamic-shape engines report real types) is parsed by
:mod:`seadeploy.export.engine_inspect` (10.x and 11.x schemas) and the build fails when a compute layer does not
run in the precision the graph asks for. Everything but the build itself is pure Python and tested on CPU; the
build's own code is also run on CPU against a fake ``tensorrt`` with the real enum names
(tests/export/test_trt_engine.py).
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import onnx
import torch

from seadeploy.backends.trt_support import (
    PARSER_HINTS,
    TRT_HINT,
    apply_tf32,
    device_memory_bytes,
    engine_information,
    logger,
    parse_onnx,
    parser_errors,
    trt_major,
)
from seadeploy.backends.trt_support import require_tensorrt as _require_tensorrt
from seadeploy.errors import InputError, ParityFailure
from seadeploy.export.engine_inspect import expected_precisions, parse_inspector_json, verify_precisions
from seadeploy.export.onnx_export import INPUT_NAME
from seadeploy.fileio import atomic_path, write_json
from seadeploy.graphs.load import load_model
from seadeploy.runfolder import engine_name

INSTALL_HINT = f"TensorRT engines need an NVIDIA GPU with the CUDA driver and TensorRT: {TRT_HINT}"
__all__ = ["PARSER_HINTS", "EngineConfig", "build_engine", "parser_errors", "require_tensorrt"]


# ----------------------------------------------------------------------------------------- building
@dataclasses.dataclass
class EngineConfig:
    """Builder settings. ``strongly_typed=None`` picks the TensorRT-major default (11: True, 10: False)."""

    precision: str = "fp32"
    workspace_mb: int = 1024
    optimization_level: int = 3
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 32
    strongly_typed: bool | None = None
    timing_cache: str | None = None
    tf32: bool = False

    def profile_shapes(self, input_shape: list[int | str]) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) shapes for the input; a symbolic dim 0 spans the batch range, static dims stay fixed."""
        rest = [int(d) for d in input_shape[1:]]
        if isinstance(input_shape[0], int) and input_shape[0] > 0:
            b = int(input_shape[0])
            return (b, *rest), (b, *rest), (b, *rest)
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise InputError(f"batch profile must satisfy 1 ≤ min ≤ opt ≤ max, got "
                             f"{self.min_batch}/{self.opt_batch}/{self.max_batch}")
        return (self.min_batch, *rest), (self.opt_batch, *rest), (self.max_batch, *rest)

    def flags(self, trt_major: int) -> dict[str, Any]:
        """Network/builder flags for this TensorRT major version (names of ``trt.BuilderFlag`` members)."""
        strong = self.strongly_typed if self.strongly_typed is not None else trt_major >= 11
        if trt_major >= 11 and not strong:
            raise InputError("TensorRT 11 builds strongly typed networks only; drop strongly_typed=False")
        builder_flags = []
        if not strong:
            # fp16: the layers the graph keeps in fp32 are pinned (see _constrain_fp32_layers) and preferred;
            # int8: explicit Q/DQ decides, FP16 lets the unquantized rest (gates, pools) run in half.
            builder_flags += {"fp16": ["FP16", "PREFER_PRECISION_CONSTRAINTS"], "int8": ["INT8", "FP16"]}.get(
                self.precision, [])
        # TF32 is on by default in TensorRT 10 *and* 11: clear it ('-' prefix) for strict fp32 on every major.
        builder_flags.append("TF32" if self.tf32 else "-TF32")
        return {"strongly_typed": strong, "builder_flags": builder_flags}


def require_tensorrt(device: int = 0) -> Any:
    """Import tensorrt and make CUDA device ``device`` current; ``BackendUnavailable`` (exit 3) with the install hint."""
    return _require_tensorrt(device)


def _builder_config(trt: Any, builder: Any, network: Any, cfg: EngineConfig, major: int,
                    input_shape: list[int | str]) -> Any:
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(cfg.workspace_mb) << 20)
    config.builder_optimization_level = int(cfg.optimization_level)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    for flag in cfg.flags(major)["builder_flags"]:
        if flag.lstrip("-") == "TF32":
            apply_tf32(trt, config, not flag.startswith("-"))
        elif flag.startswith("-"):
            config.clear_flag(getattr(trt.BuilderFlag, flag[1:]))
        else:
            config.set_flag(getattr(trt.BuilderFlag, flag))
    cache_blob = Path(cfg.timing_cache).read_bytes() if cfg.timing_cache and Path(cfg.timing_cache).is_file() else b""
    config.set_timing_cache(config.create_timing_cache(cache_blob), False)
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, *cfg.profile_shapes(input_shape))
    config.add_optimization_profile(profile)
    return config


def _constrain_fp32_layers(trt: Any, network: Any, fp32_nodes: set[str]) -> int:
    """Weakly typed (TensorRT 10) fp16/int8 builds: pin the layers the graph keeps in fp32 to fp32."""
    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.name in fp32_nodes:
            layer.precision = trt.float32
            for j in range(layer.num_outputs):
                layer.set_output_type(j, trt.float32)
            pinned += 1
    return pinned


def _fp32_nodes(proto: onnx.ModelProto) -> set[str]:
    """Nodes of an fp16 graph whose inputs stay float32 (the policy's fp32 islands), Casts excluded."""
    f32 = {v.name for v in [*proto.graph.value_info, *proto.graph.input]
           if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    return {n.name for n in proto.graph.node if n.op_type != "Cast" and n.input and n.input[0] in f32}


def _verify(trt: Any, engine: Any, proto: onnx.ModelProto, precision: str, name: str) -> tuple[dict, dict]:
    """Read the inspector JSON back (execution context attached, inputs at the profile's opt shape) and raise
    ``ParityFailure`` when layer precisions miss the request."""
    info = engine_information(trt, engine)
    parsed = parse_inspector_json(info, (n.name for n in proto.graph.node))
    verdict = verify_precisions(parsed["layers"], expected_precisions(proto), precision)
    if not verdict["passed"]:
        none = ("no compute layer with a resolved type" if verdict.get("unresolved_layers")
                else "no matching compute layer")
        first = verdict["violations"][0] if verdict["violations"] else {"layer": "-", "expected": precision,
                                                                         "actual": none}
        raise ParityFailure(f"engine built from {name} does not honour {precision}: layer '{first['layer']}' runs "
                            f"{first['actual']}, expected {first['expected']} ({len(verdict['violations'])} violations)")
    return parsed, verdict


def build_engine(onnx_path: str | os.PathLike, out_dir: str | os.PathLike, cfg: EngineConfig,
                 device: int = 0) -> dict[str, Any]:
    """Parse, build, serialise ``model.<precision>.engine`` + ``.json`` sidecar, and verify layer precisions.

    Raises:
        BackendUnavailable: no TensorRT or no GPU (exit 3). InputError: the parser rejects the graph.
        ParityFailure: the engine's layers do not honour the requested precision.
    """
    trt = require_tensorrt(device)

    major = trt_major(trt)
    onnx_path, out_dir = Path(onnx_path), Path(out_dir)
    proto = onnx.shape_inference.infer_shapes(load_model(onnx_path))
    input_shape = [d.dim_value or d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim]
    builder = trt.Builder(logger(trt))
    strong = cfg.flags(major)["strongly_typed"]
    network, _parser = parse_onnx(trt, builder, onnx_path, strong)
    # Only the fp16 graph has fp32 islands to pin; in a Q/DQ graph every DequantizeLinear output is float32, and
    # pinning those layers would stop TensorRT from fusing them into int8 kernels.
    pinned = _constrain_fp32_layers(trt, network, _fp32_nodes(proto)) if not strong and cfg.precision == "fp16" else 0
    config = _builder_config(trt, builder, network, cfg, major, input_shape)
    start = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    build_s = time.perf_counter() - start
    if plan is None:
        raise InputError(f"TensorRT failed to build an engine from {onnx_path.name}; rerun with SEADEPLOY_DEBUG=1 "
                         "and read the TensorRT log above")
    if cfg.timing_cache:
        with atomic_path(cfg.timing_cache) as tmp:
            tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    tf32_on = bool(config.get_flag(trt.BuilderFlag.TF32))  # what the build really used, for the sidecar
    engine = trt.Runtime(logger(trt)).deserialize_cuda_engine(plan)
    parsed, verdict = _verify(trt, engine, proto, cfg.precision, onnx_path.name)
    engine_file = out_dir / engine_name(cfg.precision)
    with atomic_path(engine_file) as tmp:
        tmp.write_bytes(bytes(plan))
    mem_bytes, mem_api = device_memory_bytes(engine)
    sidecar = {
        "path": engine_file.name, "onnx": onnx_path.name, "precision": cfg.precision,
        "gpu": torch.cuda.get_device_name(device), "device": int(device),
        "compute_capability": ".".join(map(str, torch.cuda.get_device_capability(device))),
        "tensorrt": trt.__version__, "build_s": round(build_s, 3), "strongly_typed": strong, "fp32_pinned_layers": pinned,
        "device_memory_bytes": mem_bytes, "device_memory_api": mem_api,
        "workspace_mb": cfg.workspace_mb, "optimization_level": cfg.optimization_level, "tf32": tf32_on,
        "profile": [list(s) for s in cfg.profile_shapes(input_shape)], "inspector_schema": parsed["schema"],
        "layers": len(parsed["layers"]), "precision_check": verdict,
    }
    write_json(engine_file.with_suffix(".engine.json"), sidecar)
    return sidecar
