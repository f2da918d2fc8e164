"""TensorRT backend: a serialized engine run with ``execute_async_v3`` (TensorRT 10 and 11).

Device buffers are torch CUDA tensors (the default: any CUDA build of PyTorch suffices), or pycuda
allocations when PyTorch has no CUDA (``buffers="auto"`` picks in that order; pycuda is optional). The
engine is deserialized and run with CUDA device ``device`` current. A dynamic batch is set per call with
``context.set_input_shape``; output buffers are sized from ``context.get_tensor_shape`` afterwards. I/O types
come from ``trt.DataType`` names (:data:`seadeploy.backends.trt_support.DTYPES`): BF16/FP8 tensors are
exchanged as float32 and converted on the GPU (torch buffers only). The three phases are public so
profiling can time H2D / compute / D2H separately with CUDA events on ``stream``::

    with TrtBackend("runs/x/model.fp16.engine") as be:
        be.stage_inputs({"x": x})     # set shapes, copy host → device (async on be.stream)
        be.execute()                  # context.execute_async_v3(stream)
        out = be.fetch_outputs()      # copy device → host, synchronise

``infer_torch({"x": cuda_tensor})`` keeps everything on the GPU (device-to-device copies, no host hop).
``tensorrt`` and ``pycuda`` are imported only when a TrtBackend is created.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seadeploy import runfolder
from seadeploy.backends.base import BACKENDS, Backend, TensorSpec, check_feed, run_file
from seadeploy.backends.trt_stages import stage_call
from seadeploy.backends.trt_support import TRT_HINT, DtypeMap, dtype_map, import_tensorrt, logger
from seadeploy.errors import BackendUnavailable, ConfigError, InputError
from seadeploy.runfolder import PRECISIONS

__all__ = ["TRT_HINT", "TrtBackend", "import_tensorrt"]


@BACKENDS.register("trt")
class TrtBackend(Backend):
    """Run a serialized TensorRT engine.

    Args:
        source: an ``.engine`` file or the serialized engine bytes.
        device: CUDA device index.
        buffers: ``auto`` (torch if it has CUDA, else pycuda), ``torch`` or ``pycuda``.
    """

    name = "trt"
    install_hint = TRT_HINT
    precisions = PRECISIONS
    artifact_kind = "TensorRT engines (python -m seadeploy.export --engine)"
    file_suffixes = (".engine", ".plan")
    layer_profiler = "seadeploy.profiling.layers_trt:profile_trt"
    layerwise = "seadeploy.validate.layerwise_trt:layerwise_trt"

    def __init__(self, source: str | os.PathLike | bytes, device: int = 0, buffers: str = "auto") -> None:
        super().__init__()
        trt = import_tensorrt()
        self.path, blob = _read_engine(source)
        self._mem = _make_allocator(buffers, int(device))  # makes `device` current (set_device / context push)
        self.logger = logger(trt)
        with self._mem.active():
            self.runtime = trt.Runtime(self.logger)
            self.engine = self.runtime.deserialize_cuda_engine(blob)
            if self.engine is None:
                self._mem.close()
                raise InputError(f"TensorRT {trt.__version__} cannot deserialize '{self.path or 'engine'}': it was "
                                 "built with another TensorRT version or GPU, or is not an engine; rebuild it with "
                                 "export --engine")
            self.context = self.engine.create_execution_context()
        if self.context is None:
            self._mem.close()
            raise BackendUnavailable("TensorRT could not create an execution context (out of GPU memory?)")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_in = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self._inputs = [n for n in names if is_in[n]]
        self._outputs = [n for n in names if not is_in[n]]
        self._types: dict[str, DtypeMap] = {n: dtype_map(self.engine.get_tensor_dtype(n), n) for n in names}
        converted = [n for n, t in self._types.items() if t.converted]
        if converted and self._mem.kind == "pycuda":
            self._mem.close()
            raise ConfigError(f"trt: I/O tensor '{converted[0]}' is {self._types[converted[0]].torch}, which only torch "
                              "buffers convert; use buffers='torch' with a CUDA build of PyTorch")
        self._dtypes = {n: t.host for n, t in self._types.items()}
        self._device: dict[str, tuple[tuple[int, ...], Any]] = {}
        self._host: dict[str, np.ndarray] = {}
        self.info = {"tensorrt": trt.__version__, "device": int(device), "buffers": self._mem.kind,
                     "gpu": self._mem.device_name(), "engine": str(self.path) if self.path else None,
                     "io_types": {n: t.torch for n, t in self._types.items()}}

    # ------------------------------------------------------------------ contract
    @property
    def input_specs(self) -> dict[str, TensorSpec]:
        out = {}
        for n in self._inputs:
            dims = tuple(int(d) for d in self.engine.get_tensor_shape(n))
            shape = tuple(d if d >= 0 else ("batch" if i == 0 else None) for i, d in enumerate(dims))
            out[n] = TensorSpec(shape, self._dtypes[n])
        return out

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)

    @property
    def stream(self) -> Any:
        """The CUDA stream every phase runs on (a ``torch.cuda.Stream`` or a ``pycuda.driver.Stream``)."""
        return self._mem.stream

    def profile_range(self, name: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``(min shape, max shape)`` of input ``name`` in optimisation profile 0."""
        shapes = self.engine.get_tensor_profile_shape(name, 0)
        return tuple(int(d) for d in shapes[0]), tuple(int(d) for d in shapes[-1])

    @classmethod
    def check_available(cls, device: int = 0, buffers: str = "auto", **_: Any) -> None:
        import_tensorrt()
        _make_allocator(buffers, int(device)).close()

    @classmethod
    def int8_target(cls, spec: str) -> str | None:
        return "tensorrt"  # explicit symmetric Q/DQ

    @classmethod
    def artifact(cls, run_dir: str | os.PathLike, precision: str) -> Path | None:
        """``model.<precision>.engine`` (or the path the manifest records under ``engines``)."""
        return run_file(run_dir, "engines", precision, runfolder.engine_name(precision))

    def timed(self, feed: dict[str, Any]) -> Any:
        """One staged iteration per call (H2D, execute, D2H); returns its stage times from CUDA events (ms)."""
        # profiling imports backends, so the CUDA-event timer is imported here, when it is used (a real cycle)

        return stage_call(self, check_feed(feed, self.input_specs, self.name))

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._stage(feed)
        self.execute()
        return self.fetch_outputs()

    # ------------------------------------------------------------------ phases
    def stage_inputs(self, feed: dict[str, Any], validate: bool = True) -> None:
        """Validate ``feed`` (unless ``validate=False``: already checked, as in timing loops), set the input
        shapes, copy the inputs to the GPU and bind every address."""
        self._stage(check_feed(feed, self.input_specs, self.name) if validate else feed)

    def _set_shape(self, name: str, shape: tuple[int, ...]) -> None:
        lo, hi = self.profile_range(name)
        if len(shape) != len(lo) or any(s < a or s > b for s, a, b in zip(shape, lo, hi)):
            raise InputError(f"trt: input '{name}' has shape {shape}, outside the engine's optimisation "
                             f"profile {lo}..{hi}; rebuild the engine with a larger batch range")
        if not self.context.set_input_shape(name, tuple(shape)):
            raise InputError(f"trt: the engine rejected shape {shape} for input '{name}'")

    def _stage(self, feed: dict[str, np.ndarray]) -> None:
        for name in self._inputs:
            arr = feed[name]
            self._set_shape(name, tuple(arr.shape))
            self._mem.to_device(self._buffer(name, arr.shape), arr)
        self._bind_outputs()

    def _bind_outputs(self) -> None:
        for name in self._outputs:
            shape = tuple(int(d) for d in self.context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise InputError(f"trt: output '{name}' has an unresolved shape {shape}; set every input shape")
            self._buffer(name, shape)
            if name not in self._host or self._host[name].shape != shape:
                self._host[name] = self._mem.host_empty(shape, self._dtypes[name])

    def execute(self) -> None:
        """Enqueue the engine on ``stream`` (``execute_async_v3``) with the backend's device current; does not wait."""
        with self._mem.active():
            ok = self.context.execute_async_v3(self._mem.stream_handle)
        if not ok:
            raise InputError("trt: execute_async_v3 failed; see the TensorRT log above")

    def infer_torch(self, feed: dict[str, Any]) -> dict[str, Any]:
        """Run torch CUDA tensors without a host round trip: ``{name: tensor}`` in, ``{name: tensor}`` out.

        Inputs are copied device-to-device into the bound buffers (converted to the engine's I/O type); the
        returned tensors are fresh copies on the backend's device, float32 for BF16/FP8 outputs.
        """
        if self._mem.kind != "torch":
            raise ConfigError("trt: infer_torch needs torch buffers (buffers='torch' with CUDA PyTorch)")
        missing = [n for n in self._inputs if n not in feed]
        if missing:
            raise InputError(f"trt: missing input '{missing[0]}'; the engine takes {', '.join(self._inputs)}")
        for name in self._inputs:
            shape = tuple(int(d) for d in feed[name].shape)
            self._set_shape(name, shape)
            self._mem.copy_device(self._buffer(name, shape), feed[name])
        self._bind_outputs()
        self.execute()
        out = {n: self._mem.clone_out(self._device[n][1], self._types[n]) for n in self._outputs}
        self._mem.synchronize()
        return out

    def fetch_outputs(self) -> dict[str, np.ndarray]:
        """Copy every output to the host, wait for the stream, return ``{name: array}``."""
        for name in self._outputs:
            self._mem.to_host(self._host[name], self._device[name][1])
        self._mem.synchronize()
        return {name: self._host[name].copy() for name in self._outputs}

    def _buffer(self, name: str, shape: tuple[int, ...]) -> Any:
        have = self._device.get(name)
        if have is None or have[0] != tuple(shape):
            buf = self._mem.device_empty(tuple(shape), self._types[name])
            self._device[name] = (tuple(shape), buf)
            self.context.set_tensor_address(name, self._mem.pointer(buf))
        return self._device[name][1]

    def _release(self) -> None:
        self._device.clear()
        self._host.clear()
        self.context = None
        self.engine = None
        self._mem.close()


def _read_engine(source: str | os.PathLike | bytes) -> tuple[Path | None, bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        return None, bytes(source)
    if not isinstance(source, str | os.PathLike):
        raise ConfigError(f"trt backend runs an .engine file or its bytes, got {type(source).__name__}")
    path = Path(source)
    if not path.is_file():
        raise InputError(f"TensorRT engine '{path}' does not exist; build it with python -m seadeploy.export --engine")
    return path, path.read_bytes()


# ------------------------------------------------------------------------------------- device memory
class _TorchMemory:
    """Device buffers as torch CUDA tensors on a dedicated stream of device ``device`` (made current)."""

    kind = "torch"

    def __init__(self, device: int) -> None:
        self.torch = torch
        self.device = torch.device("cuda", device)
        torch.cuda.set_device(self.device)  # TensorRT deserializes and runs on the current device
        self.stream = torch.cuda.Stream(device=self.device)
        self.stream_handle = int(self.stream.cuda_stream)

    def active(self) -> Any:
        return self.torch.cuda.device(self.device)

    def device_name(self) -> str:
        return self.torch.cuda.get_device_name(self.device)

    def device_empty(self, shape: tuple[int, ...], types: DtypeMap) -> Any:
        return self.torch.empty(shape, dtype=getattr(self.torch, types.torch), device=self.device)

    def host_empty(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return np.empty(shape, dtype=dtype)

    def pointer(self, buf: Any) -> int:
        return int(buf.data_ptr())

    def to_device(self, buf: Any, host: np.ndarray) -> None:
        with self.torch.cuda.stream(self.stream):
            buf.copy_(self.torch.from_numpy(host), non_blocking=True)  # converts to bf16/fp8 on the GPU

    def copy_device(self, buf: Any, tensor: Any) -> None:
        with self.torch.cuda.stream(self.stream):
            buf.copy_(tensor.to(self.device, non_blocking=True), non_blocking=True)

    def clone_out(self, buf: Any, types: DtypeMap) -> Any:
        with self.torch.cuda.stream(self.stream):
            return buf.float() if types.converted else buf.clone()

    def to_host(self, host: np.ndarray, buf: Any) -> None:
        with self.torch.cuda.stream(self.stream):
            dst = self.torch.from_numpy(host)
            dst.copy_(buf if buf.dtype == dst.dtype else buf.to(dst.dtype), non_blocking=False)

    def synchronize(self) -> None:
        self.stream.synchronize()

    def close(self) -> None:
        self.stream.synchronize()


class _PycudaMemory:
    """Device buffers from ``pycuda.driver.mem_alloc`` with page-locked host buffers."""

    kind = "pycuda"

    def __init__(self, device: int) -> None:
        import pycuda.driver as cuda  # noqa: PLC0415  optional GPU library, imported only when this runs

        cuda.init()
        self.cuda = cuda
        self.dev = cuda.Device(device)
        self.ctx = self.dev.retain_primary_context()
        self.ctx.push()
        self.stream = cuda.Stream()
        self.stream_handle = int(self.stream.handle)

    def active(self) -> Any:
        return contextlib.nullcontext()  # the pushed primary context already selects the device

    def device_name(self) -> str:
        return str(self.dev.name())

    def device_empty(self, shape: tuple[int, ...], types: DtypeMap) -> Any:
        return self.cuda.mem_alloc(max(1, int(np.prod(shape)) * types.host.itemsize))

    def host_empty(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return self.cuda.pagelocked_empty(shape, dtype)

    def pointer(self, buf: Any) -> int:
        return int(buf)

    def to_device(self, buf: Any, host: np.ndarray) -> None:
        self.cuda.memcpy_htod_async(buf, np.ascontiguousarray(host), self.stream)
        self.stream.synchronize()  # the source is pageable numpy memory: do not let it go before the copy ends

    def to_host(self, host: np.ndarray, buf: Any) -> None:
        self.cuda.memcpy_dtoh_async(host, buf, self.stream)

    def synchronize(self) -> None:
        self.stream.synchronize()

    def close(self) -> None:
        self.stream.synchronize()
        self.ctx.pop()


def _make_allocator(kind: str, device: int) -> Any:
    if kind not in ("auto", "torch", "pycuda"):
        raise ConfigError(f"unknown buffers '{kind}'. Valid choices: auto, torch, pycuda")

    if kind in ("auto", "torch") and torch.cuda.is_available():
        if not 0 <= device < torch.cuda.device_count():
            raise BackendUnavailable(f"CUDA device {device} does not exist ({torch.cuda.device_count()} GPUs)")
        return _TorchMemory(device)
    if kind == "torch":
        raise BackendUnavailable("buffers='torch' needs a CUDA build of PyTorch and a GPU (torch.cuda.is_available() "
                                 "is False); use buffers='pycuda' or install CUDA PyTorch")
    try:
        return _PycudaMemory(device)
    except ImportError as exc:
        raise BackendUnavailable("no CUDA buffers: PyTorch has no CUDA (torch.cuda.is_available() is False) and "
                                 f"pycuda is not installed; install a CUDA build of PyTorch — {TRT_HINT}") from exc
    except Exception as exc:  # pycuda.driver.Error / LogicError when there is no GPU or driver
        raise BackendUnavailable(f"no usable CUDA device for TensorRT ({exc}); {TRT_HINT}") from exc
