"""OpenVINO backend: the run folder's ONNX files compiled by OpenVINO Runtime for its CPU plugin.

OpenVINO reads ONNX directly. Everything that decides numerics and speed is pinned and recorded in ``info``:
one inference thread (``INFERENCE_NUM_THREADS``), one stream, the latency hint, and the inference precision.
The CPU plugin's default inference precision is bf16 on CPUs with AVX-512 BF16 or AMX, so fp32 is asked
for explicitly (``INFERENCE_PRECISION_HINT=f32``); ``fp16`` compiles the run's fp16 file with the lowest
precision this CPU runs natively (f16 where it has FP16 arithmetic, else bf16, else f32) and ``info
["inference_precision"]`` records what OpenVINO actually chose. int8 runs the QDQ file: OpenVINO's low
precision transformations turn each Q/DQ-wrapped convolution into an int8 kernel (``--int8-target openvino``
writes the form it runs fast, ``export/precision.py``), and the rest runs at f32.

``profile=True`` turns on the performance counters (``PERF_COUNT``); ``request.get_profiling_info()`` then lists
one entry per executed node with its kernel (``brgconv_avx512_f32``), read by ``profiling/layers_openvino.py``.
``extra_outputs`` adds intermediate ONNX tensors as outputs (layer-wise parity); the file is never modified.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seadeploy import runfolder
from seadeploy.backends.base import BACKENDS, Backend, TensorSpec, check_feed, default_threads, run_file
from seadeploy.errors import BackendUnavailable, ConfigError, InputError
from seadeploy.runfolder import PRECISIONS

INSTALL_HINT = "pip install 'seadeploy[openvino]' (OpenVINO Runtime: pip install openvino)"
#: the ``INFERENCE_PRECISION_HINT`` values a caller may force
HINTS = ("f32", "f16", "bf16")
#: CPU capabilities (``OPTIMIZATION_CAPABILITIES``) that make a reduced inference precision native, best first
REDUCED = (("FP16", "f16"), ("BF16", "bf16"))


@BACKENDS.register("openvino")
class OpenVinoBackend(Backend):
    """An OpenVINO ``CompiledModel`` and one ``InferRequest`` behind the backend contract.

    Args:
        source: an ``.onnx`` file or a run folder (its ``model.onnx``).
        threads: inference threads (default: the CPUs this process may use); one stream always.
        precision: the run folder precision the file is (``fp32``, ``fp16``, ``int8``; another label such as a
            bare file's runs at f32): it picks the inference-precision hint.
        inference_precision: force ``f32``, ``f16`` or ``bf16`` instead.
        device: OpenVINO device name (``CPU``; ``GPU``/``NPU`` where present, untested here).
        profile: enable the per-node performance counters.
        extra_outputs: intermediate tensor names to return as well.
    """

    name = "openvino"
    install_hint = INSTALL_HINT
    precisions = PRECISIONS
    artifact_kind = "ONNX files"
    file_suffixes = (".onnx",)
    layer_profiler = "seadeploy.profiling.layers_openvino:profile_openvino"
    layerwise = "seadeploy.validate.layerwise_openvino:layerwise_openvino"

    def __init__(self, source: str | os.PathLike, threads: int | None = None, precision: str = "fp32",
                 inference_precision: str | None = None, device: str = "CPU", profile: bool = False,
                 extra_outputs: Sequence[str] = ()) -> None:
        super().__init__()
        ov = import_openvino()
        self.threads = int(threads) if threads is not None else default_threads()
        if self.threads < 1:
            raise ConfigError(f"threads must be ≥ 1, got {threads}")
        if inference_precision is not None and inference_precision not in HINTS:
            raise ConfigError(f"unknown OpenVINO inference precision '{inference_precision}'. "
                              f"Valid choices: {', '.join(HINTS)}")
        if not isinstance(source, str | os.PathLike):
            raise ConfigError(f"openvino backend runs an .onnx path or a run folder, got {type(source).__name__}")
        path = Path(source)
        self.path = path / runfolder.onnx_name() if path.is_dir() else path
        if not self.path.is_file():
            raise InputError(f"ONNX file '{self.path}' does not exist; run python -m seadeploy.export first")
        core = ov.Core()
        if device not in core.available_devices:
            raise BackendUnavailable(f"OpenVINO device '{device}' is not available here (it has "
                                     f"{', '.join(core.available_devices)})")
        hint = inference_precision or precision_hint(core, device, precision)
        config = {"INFERENCE_NUM_THREADS": self.threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_PRECISION_HINT": hint, "PERF_COUNT": bool(profile)}
        try:
            model = core.read_model(str(self.path))
            if extra_outputs:
                model.add_outputs(list(extra_outputs))
            self.compiled = core.compile_model(model, device, config)
        except RuntimeError as exc:  # OpenVINO raises RuntimeError (GeneralFailure ...) with a multi-line message
            raise InputError(f"OpenVINO cannot load {self.path}: {_first_line(exc)}; re-run export") from exc
        self.request = self.compiled.create_infer_request()
        self.profile = bool(profile)
        self.info = {"openvino": ov.get_version().split("-")[0], "device": device,
                     "device_name": core.get_property(device, "FULL_DEVICE_NAME"), "threads": self.threads,
                     "streams": 1, "precision": precision, "inference_precision_asked": hint,
                     "inference_precision": self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name(),
                     "model": str(self.path)}

    @property
    def input_specs(self) -> dict[str, TensorSpec]:
        return {i.get_any_name(): TensorSpec(tuple(d.get_length() if d.is_static else None for d in i.get_partial_shape()),
                                             np.dtype(i.get_element_type().to_dtype()))
                for i in self.compiled.inputs}

    @property
    def output_names(self) -> list[str]:
        return [o.get_any_name() for o in self.compiled.outputs]

    @classmethod
    def check_available(cls, **_: Any) -> None:
        if importlib.util.find_spec("openvino") is None:
            raise BackendUnavailable(f"OpenVINO is not installed: {INSTALL_HINT}")

    @classmethod
    def artifact(cls, run_dir: str | os.PathLike, precision: str) -> Path | None:
        """``model.onnx`` / ``model.<precision>.onnx`` (or the path the manifest records)."""
        return run_file(run_dir, "files", precision, runfolder.onnx_name(precision))

    @classmethod
    def int8_target(cls, spec: str) -> str | None:
        """Symmetric s8 activations, per-channel s8 weights, float bias (``benchmarks/openvino_int8_form.py``)."""
        return "openvino"

    @property
    def in_caller_thread(self) -> bool:
        # a synchronous infer() hands the graph to the plugin's stream thread even with one thread and one stream
        # (resnet20 batch 8: the caller's thread CPU time was a third of the wall time), so only wall time measures it
        return False

    def timed(self, feed: Mapping[str, Any]) -> Callable[[], Any]:
        """``InferRequest.infer`` on the validated feed with shared input/output memory, nothing else.

        Each timed call gets its own infer request: a request whose memory is shared keeps that shape, so one request
        timed at batch 1 and then at batch 8 failed ("Could set new shape").
        """
        checked = check_feed(feed, self.input_specs, self.name)
        self._infer(checked)  # errors surface here as InputError, not inside the timing loop
        request = self.compiled.create_infer_request()
        request.infer(checked, share_inputs=True, share_outputs=True)

        def call() -> None:
            request.infer(checked, share_inputs=True, share_outputs=True)

        return call

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            result = self.request.infer(feed)
        except RuntimeError as exc:
            raise InputError(f"OpenVINO failed to run {self.path}: {_first_line(exc)}") from exc
        return {port.get_any_name(): np.array(value, copy=True) for port, value in result.items()}

    def profiling_info(self) -> list[Any]:
        """The performance counters of the last ``infer`` (one ``ProfilingInfo`` per executed node)."""
        if not self.profile:
            raise ConfigError("profiling is off for this openvino backend; create it with profile=True")
        return list(self.request.get_profiling_info())

    def runtime_model(self) -> Any:
        """The graph the plugin executes (``ov.Model``: one node per kernel, ``originalLayersNames`` in rt_info)."""
        return self.compiled.get_runtime_model()

    def _release(self) -> None:
        self.request = None  # type: ignore[assignment]
        self.compiled = None  # type: ignore[assignment]


def precision_hint(core: Any, device: str, precision: str) -> str:
    """The ``INFERENCE_PRECISION_HINT`` for a run-folder precision: f32, except fp16's lowest native precision."""
    if precision != "fp16":
        return "f32"
    caps = set(core.get_property(device, "OPTIMIZATION_CAPABILITIES"))
    return next((hint for cap, hint in REDUCED if cap in caps), "f32")


def import_openvino():
    """The ``openvino`` module, else ``BackendUnavailable`` with the install hint."""
    try:
        import openvino as ov  # noqa: PLC0415  optional: the [openvino] extra
    except ImportError as exc:
        raise BackendUnavailable(f"OpenVINO is not installed: {INSTALL_HINT}") from exc
    return ov


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return next((line for line in lines if not line.startswith(("Exception from", "Check "))), lines[0] if lines
                else type(exc).__name__)
