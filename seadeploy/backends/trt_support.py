"""The one home of seadeploy's TensorRT plumbing (10.x and 11.x): import, GPU check, network, config, inspector.

Used by the engine build (:mod:`seadeploy.export.trt_engine`), the layer-wise build
(:mod:`seadeploy.validate.layerwise_trt`), the backend (:mod:`seadeploy.backends.trt`) and the per-layer
profiler, so that the version-dependent choices are made once:

* ``import_tensorrt`` imports the bindings and registers the standard plugins once
  (``trt.init_libnvinfer_plugins(logger, "")``, as Polygraphy's loaders do) — engines with plugin layers
  deserialize only after it.
* ``require_tensorrt(device)`` also checks for a usable CUDA device (``BackendUnavailable``, exit 3) and
  makes it current: ``trt.Builder`` on a machine without one raises a bare ``TypeError`` instead.
* ``apply_tf32`` clears ``BuilderFlag.TF32`` on every major (TensorRT 10 *and* 11 enable it by default)
  and returns what the config really says, for the sidecar.
* ``engine_information`` attaches an execution context with every input shape set before reading the
  inspector JSON (``inspector.execution_context = context``, as Polygraphy does); without it a
  dynamic-shape engine reports ``"N/A due to dynamic shapes"`` per tensor.
* ``device_memory_bytes`` reads ``device_memory_size_v2`` (TensorRT ≥ 10.1) or falls back to
  ``device_memory_size`` (10.0; gone in 11).
* ``DTYPES`` maps ``trt.DataType`` members *by name* to numpy/torch dtypes: ``trt.nptype`` raises
  ``TypeError`` for BF16 and FP8, which numpy has no dtype for; those tensors are exchanged as float32 on
  the host and converted on the GPU by torch.

Only this module, :mod:`seadeploy.backends.trt` and the TensorRT stages import ``tensorrt``, and only
when called.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from seadeploy.errors import BackendUnavailable, InputError

#: Where the TensorRT libraries come from: the ``tensorrt-cu12`` wheels on NVIDIA's index (pypi.nvidia.com),
#: which pip reaches through the small ``tensorrt`` package on PyPI. Major 10 = what onnxruntime-gpu's
#: TensorRT execution provider links (libnvinfer.so.10).
TRT_HINT = ("pip install -e '.[gpu,tensorrt]' on a machine with an NVIDIA GPU and driver "
            "(TensorRT 10.x wheels download from NVIDIA's index, pypi.nvidia.com)")
CUDA_HINT = ("install a CUDA build of PyTorch (on Linux x86-64 the PyPI wheel is one: pip install torch) on a "
             "machine with an NVIDIA GPU and driver")

# Per-module state keyed by id(trt), holding the module itself: a strong reference keeps the id from being reused
# by another module object (tests install a fresh fake ``tensorrt`` per case; a bare id set let a new fake inherit
# a collected one's "plugins registered" flag and logger).
_PLUGINS_READY: dict[int, Any] = {}  # id(trt) -> trt, whose standard plugins are registered


def import_tensorrt() -> Any:
    """``import tensorrt`` (registering its standard plugins once) or raise ``BackendUnavailable`` with the hint."""
    try:
        import tensorrt as trt  # noqa: PLC0415  optional heavy GPU library, imported only when used
    except ImportError as exc:
        raise BackendUnavailable(f"TensorRT is not installed: {TRT_HINT}") from exc
    if id(trt) not in _PLUGINS_READY:
        init = getattr(trt, "init_libnvinfer_plugins", None)
        if init is not None:
            init(logger(trt), "")
        _PLUGINS_READY[id(trt)] = trt
    return trt


_LOGGERS: dict[int, tuple[Any, Any]] = {}  # id(trt) -> (trt, its Logger)


def logger(trt: Any) -> Any:
    """One ``trt.Logger(WARNING)`` per process (TensorRT wants the same logger for builder and runtime)."""
    if id(trt) not in _LOGGERS:
        _LOGGERS[id(trt)] = (trt, trt.Logger(trt.Logger.WARNING))
    return _LOGGERS[id(trt)][1]


def trt_major(trt: Any) -> int:
    """``"10.16.0.72"`` → 10."""
    return int(str(trt.__version__).split(".")[0])


def require_cuda_device(device: int = 0) -> int:
    """Check that PyTorch sees CUDA device ``device`` and make it current; ``BackendUnavailable`` otherwise.

    TensorRT builds, deserializes and runs on the *current* device, so every entry point calls this first.
    """
    if not torch.cuda.is_available():
        raise BackendUnavailable(f"no CUDA GPU is visible (torch.cuda.is_available() is False): {CUDA_HINT}")
    count = torch.cuda.device_count()
    if not 0 <= int(device) < count:
        raise BackendUnavailable(f"CUDA device {device} does not exist ({count} GPU{'s' if count != 1 else ''} visible)")
    torch.cuda.set_device(int(device))
    return int(device)


def require_tensorrt(device: int = 0) -> Any:
    """``import_tensorrt`` + ``require_cuda_device``: what every engine build needs (exit 3 otherwise)."""
    trt = import_tensorrt()
    require_cuda_device(device)
    return trt


# ------------------------------------------------------------------------------------------ network
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


def parse_onnx(trt: Any, builder: Any, onnx_path: str | os.PathLike, strongly_typed: bool) -> tuple[Any, Any]:
    """``create_network`` (+ ``STRONGLY_TYPED`` when asked) and parse ``onnx_path``; ``InputError`` listing parser errors.

    ``parse_from_file`` (not ``parse(bytes)``) so that ``model.onnx.data`` external weights next to the file load.
    """
    path = Path(onnx_path)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger(trt))
    if not parser.parse_from_file(str(path)):
        errors = parser_errors(parser)
        raise InputError(f"TensorRT could not parse {path.name}: {errors[0] if errors else 'unknown error'}"
                         + (f" (+{len(errors) - 1} more: {'; '.join(errors[1:4])})" if len(errors) > 1 else ""))
    return network, parser


def apply_tf32(trt: Any, config: Any, enabled: bool) -> bool:
    """Set or clear ``BuilderFlag.TF32`` on every TensorRT major; return the flag as the config now reports it.

    TensorRT 10 and 11 both turn TF32 on by default, so strict fp32 must clear it explicitly (Polygraphy's
    ``CreateConfig`` does the same). The returned value is what a sidecar may claim.
    """
    flag = getattr(trt.BuilderFlag, "TF32", None)
    if flag is None:  # a build without TF32 support cannot use it
        return False
    if enabled:
        config.set_flag(flag)
    else:
        config.clear_flag(flag)
    return bool(config.get_flag(flag))


# ------------------------------------------------------------------------------------------- engine
def device_memory_bytes(engine: Any) -> tuple[int | None, str | None]:
    """``(bytes, attribute)`` of the engine's activation memory: ``device_memory_size_v2`` (≥ 10.1), else
    ``device_memory_size`` (10.0); ``(None, None)`` when neither exists."""
    for attr in ("device_memory_size_v2", "device_memory_size"):
        try:
            value = getattr(engine, attr)
        except AttributeError:
            continue
        return int(value), attr
    return None, None


def input_names(trt: Any, engine: Any) -> list[str]:
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    return [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]


def engine_information(trt: Any, engine: Any, context: Any = None, shapes: dict[str, tuple[int, ...]] | None = None) -> str:
    """The inspector's JSON with an execution context attached, so dynamic dims and formats are resolved.

    Args:
        context: an execution context whose input shapes are set (a backend's); default: a new one with
            every input at ``shapes[name]`` or, when absent, the ``opt`` shape of optimisation profile 0.
    """
    if context is None:
        context = engine.create_execution_context()
        if context is None:
            raise BackendUnavailable("TensorRT could not create an execution context to inspect the engine "
                                     "(out of GPU memory?)")
        for name in input_names(trt, engine):
            shape = (shapes or {}).get(name)
            if shape is None:
                dims = tuple(int(d) for d in engine.get_tensor_shape(name))
                shape = tuple(engine.get_tensor_profile_shape(name, 0)[1]) if any(d < 0 for d in dims) else dims
            context.set_input_shape(name, tuple(int(d) for d in shape))
    inspector = engine.create_engine_inspector()
    inspector.execution_context = context
    return inspector.get_engine_information(trt.LayerInformationFormat.JSON)


# ------------------------------------------------------------------------------------------- dtypes
class DtypeMap(NamedTuple):
    """How one ``trt.DataType`` is exchanged: the host numpy dtype and the device torch dtype name."""

    host: np.dtype  # what infer() takes and returns
    torch: str  # attribute of the ``torch`` module for the device buffer
    converted: bool  # True when host and device types differ (the GPU converts)


#: ``trt.DataType`` member name → exchange types. BF16/FP8 travel as float32 on the host (numpy has no such
#: dtype and ``trt.nptype`` raises ``TypeError`` for them); INT4/FP4/E8M0 are packed sub-byte types no
#: framework tensor holds, so engines exposing them as I/O are rejected with a message.
DTYPES: dict[str, DtypeMap] = {
    "FLOAT": DtypeMap(np.dtype(np.float32), "float32", False),
    "HALF": DtypeMap(np.dtype(np.float16), "float16", False),
    "BF16": DtypeMap(np.dtype(np.float32), "bfloat16", True),
    "FP8": DtypeMap(np.dtype(np.float32), "float8_e4m3fn", True),
    "INT8": DtypeMap(np.dtype(np.int8), "int8", False),
    "INT32": DtypeMap(np.dtype(np.int32), "int32", False),
    "INT64": DtypeMap(np.dtype(np.int64), "int64", False),
    "BOOL": DtypeMap(np.dtype(np.bool_), "bool", False),
    "UINT8": DtypeMap(np.dtype(np.uint8), "uint8", False),
}


def dtype_map(trt_dtype: Any, tensor: str = "") -> DtypeMap:
    """Exchange types of a ``trt.DataType`` (by member name, so BF16/FP8 work where ``trt.nptype`` raises)."""
    name = getattr(trt_dtype, "name", None) or str(trt_dtype).split(".")[-1]
    if name not in DTYPES:
        raise InputError(f"trt: I/O tensor '{tensor}' has TensorRT type {name}, which seadeploy cannot exchange "
                         f"(supported: {', '.join(DTYPES)}); re-export with float32/float16 I/O")
    return DTYPES[name]


@contextlib.contextmanager
def cuda_device(index: int):
    """Make CUDA device ``index`` current inside the block (TensorRT calls run on the current device)."""
    if torch.cuda.is_available():
        with torch.cuda.device(int(index)):
            yield
    else:  # pycuda-only machines: the pushed primary context already selects the device
        yield
