"""TensorRT engines from the exported ONNX files, verified after the build (TensorRT 10 and 11).

Precision is decided in the ONNX graph (ARCHITECTURE.md §4). TensorRT 11 builds strongly typed networks
only, so the fp16 cast graph and the int8 Q/DQ graph carry the precision. On TensorRT 10 the default is the
classic weakly typed network with ``BuilderFlag.FP16`` / ``INT8`` plus per-layer fp32 constraints for the
nodes the fp16 graph keeps in fp32 (``strongly_typed=True`` uses the TensorRT 11 path on 10 too).

After the build the engine inspector's JSON (``DETAILED`` verbosity) is read back with
:mod:`seadeploy.export.engine_inspect` (10.x and 11.x schemas) and the build fails when a compute layer does not
run in the precision the graph asks for. Everything but the build itself (inspector parsing, verification,
config assembly, parser-error formatting) is pure Python and tested on CPU.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import onnx

from seadeploy.artifacts import atomic_path, engine_name, write_json
from seadeploy.errors import BackendUnavailable, InputError, ParityFailure
from seadeploy.export.engine_inspect import expected_precisions, parse_inspector_json, verify_precisions
from seadeploy.export.onnx_export import INPUT_NAME

INSTALL_HINT = ("TensorRT engines need an NVIDIA GPU with the CUDA driver and TensorRT: "
                "pip install 'seadeploy[gpu]' (tensorrt>=10, onnxruntime-gpu, pycuda) on a CUDA machine")


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
        if not self.tf32 and trt_major < 11:
            builder_flags.append("-TF32")  # '-' = clear the flag (TF32 is on by default)
        return {"strongly_typed": strong, "builder_flags": builder_flags}


def require_tensorrt() -> Any:
    """Import tensorrt and check that a CUDA GPU is visible; ``BackendUnavailable`` (exit 3) with the install hint."""
    try:
        import tensorrt as trt  # noqa: PLC0415 - optional heavy dependency, imported lazily
    except ImportError as exc:
        raise BackendUnavailable(f"TensorRT is not installed. {INSTALL_HINT}") from exc
    try:
        import torch

        if not torch.cuda.is_available():
            raise BackendUnavailable(f"no CUDA GPU is visible (torch.cuda.is_available() is False). {INSTALL_HINT}")
    except ImportError as exc:
        raise BackendUnavailable(INSTALL_HINT) from exc
    return trt


PARSER_HINTS = {
    "UNSUPPORTED_NODE": "the op or attribute is not supported: run `python -m seadeploy.export lint FILE` for a fix",
    "INVALID_GRAPH": "re-export with --opset 18 and check the file with onnx.checker",
    "INVALID_NODE": "an input must be an initializer/constant here; re-export with constant folding (optimize=True)",
}


def parser_errors(parser: Any) -> list[str]:
    """``node (op): desc [code] — hint`` lines for every error of a TensorRT ONNX parser."""
    lines = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        code = str(err.code()).split(".")[-1]
        node = err.node_name() if hasattr(err, "node_name") else str(err.node())
        op = err.node_operator() if hasattr(err, "node_operator") else ""
        hint = next((h for k, h in PARSER_HINTS.items() if k in code), "see the TensorRT ONNX operator support matrix")
        lines.append(f"{node or '?'}{f' ({op})' if op else ''}: {err.desc()} [{code}] — {hint}")
    return lines


def _network(trt: Any, builder: Any, logger: Any, onnx_path: Path, strongly_typed: bool) -> tuple[Any, Any]:
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = parser_errors(parser)
        raise InputError(f"TensorRT could not parse {onnx_path.name}: {errors[0] if errors else 'unknown error'}"
                         + (f" (+{len(errors) - 1} more: {'; '.join(errors[1:4])})" if len(errors) > 1 else ""))
    return network, parser


def _builder_config(trt: Any, builder: Any, network: Any, cfg: EngineConfig, major: int,
                    input_shape: list[int | str]) -> Any:
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(cfg.workspace_mb) << 20)
    config.builder_optimization_level = int(cfg.optimization_level)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    for flag in cfg.flags(major)["builder_flags"]:
        if flag.startswith("-"):
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
    """Read the inspector JSON back and raise ``ParityFailure`` when layer precisions miss the request."""
    info = engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON)
    parsed = parse_inspector_json(info, (n.name for n in proto.graph.node))
    verdict = verify_precisions(parsed["layers"], expected_precisions(proto), precision)
    if not verdict["passed"]:
        first = verdict["violations"][0] if verdict["violations"] else {"layer": "-", "expected": precision,
                                                                         "actual": "no matching compute layer"}
        raise ParityFailure(f"engine built from {name} does not honour {precision}: layer '{first['layer']}' runs "
                            f"{first['actual']}, expected {first['expected']} ({len(verdict['violations'])} violations)")
    return parsed, verdict


def build_engine(onnx_path: str | os.PathLike, out_dir: str | os.PathLike, cfg: EngineConfig) -> dict[str, Any]:
    """Parse, build, serialise ``model.<precision>.engine`` + ``.json`` sidecar, and verify layer precisions.

    Raises:
        BackendUnavailable: no TensorRT or no GPU (exit 3). InputError: the parser rejects the graph.
        ParityFailure: the engine's layers do not honour the requested precision.
    """
    trt = require_tensorrt()
    import torch

    major = int(trt.__version__.split(".")[0])
    onnx_path, out_dir = Path(onnx_path), Path(out_dir)
    proto = onnx.shape_inference.infer_shapes(onnx.load(str(onnx_path)))
    input_shape = [d.dim_value or d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim]
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    strong = cfg.flags(major)["strongly_typed"]
    network, _parser = _network(trt, builder, logger, onnx_path, strong)
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
    engine = trt.Runtime(logger).deserialize_cuda_engine(plan)
    parsed, verdict = _verify(trt, engine, proto, cfg.precision, onnx_path.name)
    engine_file = out_dir / engine_name(cfg.precision)
    with atomic_path(engine_file) as tmp:
        tmp.write_bytes(bytes(plan))
    sidecar = {
        "path": engine_file.name, "onnx": onnx_path.name, "precision": cfg.precision,
        "gpu": torch.cuda.get_device_name(), "compute_capability": ".".join(map(str, torch.cuda.get_device_capability())),
        "tensorrt": trt.__version__, "build_s": round(build_s, 3), "strongly_typed": strong, "fp32_pinned_layers": pinned,
        "device_memory_size_v2": int(getattr(engine, "device_memory_size_v2", 0)),
        "workspace_mb": cfg.workspace_mb, "optimization_level": cfg.optimization_level, "tf32": cfg.tf32,
        "profile": [list(s) for s in cfg.profile_shapes(input_shape)], "inspector_schema": parsed["schema"],
        "layers": len(parsed["layers"]), "precision_check": verdict,
    }
    write_json(engine_file.with_suffix(".engine.json"), sidecar)
    return sidecar
