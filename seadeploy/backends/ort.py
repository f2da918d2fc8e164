"""ONNX Runtime backend: CPU, CUDA or TensorRT execution provider chosen by name.

Threads are pinned (``intra_op_num_threads``; one inter-op thread, sequential execution) and recorded in
``info`` with the providers actually used and the graph optimisation level, so every number can be
reproduced. ``profile=True`` turns on ORT's per-node profiler; ``end_profiling()`` returns the trace path.
``extra_outputs`` exposes intermediate tensors as additional graph outputs of an in-memory copy of the
model (used by layer-wise parity); the file on disk is never modified.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper

from seadeploy import runfolder
from seadeploy.backends.base import BACKENDS, Backend, TensorSpec, check_feed, default_threads, run_file
from seadeploy.errors import BackendUnavailable, ConfigError, InputError
from seadeploy.runfolder import PRECISIONS

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
GRAPH_OPT = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
             "all": "ORT_ENABLE_ALL"}
GPU_HINT = "pip uninstall onnxruntime && pip install onnxruntime-gpu (never both) on a machine with an NVIDIA GPU"
_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
              "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
              "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}


@BACKENDS.register("ort")
class OrtBackend(Backend):
    """An ``onnxruntime.InferenceSession`` behind the backend contract.

    Args:
        source: an ``.onnx`` file, a run folder (its ``model.onnx``) or an ``onnx.ModelProto``.
        providers: provider names in priority order: ``cpu``, ``cuda``, ``tensorrt`` (or ORT's full names).
            ``tensorrt`` adds ``cuda`` as fallback for nodes TensorRT cannot take. ``cpu`` is always last.
        threads: intra-op threads (default: the CPUs this process may use); recorded in ``info``.
        graph_opt: ``all`` (default), ``extended``, ``basic`` or ``disable`` (one ORT node per ONNX node).
        profile: enable ORT's per-node profiler; call ``end_profiling()`` to get the JSON trace.
        profile_dir: folder of the profiling trace (default: a new temporary folder).
        extra_outputs: names of intermediate tensors to return as well (their graph copy lives in memory).
        allow_tf32: let the CUDA provider use TF32 (off by default for fp32 parity); recorded in ``info``.
        provider_options: ``{provider name: {option: value}}`` passed to ORT as is.
    """

    name = "ort"
    install_hint = "pip install onnxruntime (CPU) or onnxruntime-gpu (CUDA / TensorRT providers; never both)"
    precisions = PRECISIONS
    artifact_kind = "ONNX files"
    file_suffixes = (".onnx",)
    layer_profiler = "seadeploy.profiling.layers_ort:profile_ort"
    layerwise = "seadeploy.validate.layerwise:layerwise_ort"

    def __init__(self, source: Any, providers: Sequence[str] = ("cpu",), threads: int | None = None,
                 graph_opt: str = "all", profile: bool = False, profile_dir: str | os.PathLike | None = None,
                 extra_outputs: Sequence[str] = (), allow_tf32: bool = False,
                 provider_options: dict[str, dict[str, Any]] | None = None) -> None:
        super().__init__()
        ort = _import_ort()
        if graph_opt not in GRAPH_OPT:
            raise ConfigError(f"unknown graph optimisation level '{graph_opt}'. Valid choices: {', '.join(GRAPH_OPT)}")
        self.threads = int(threads) if threads is not None else default_threads()
        if self.threads < 1:
            raise ConfigError(f"threads must be ≥ 1, got {threads}")
        wanted = _provider_list(providers, ort.get_available_providers(), allow_tf32, provider_options or {})
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = self.threads, 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, GRAPH_OPT[graph_opt])
        # fatal only: ORT's warnings (every unused initializer) and its own error line would precede ours; every
        # ORT error is re-raised as one InputError line with ORT's message (_create_session, _infer)
        so.log_severity_level = 4
        if profile:
            folder = Path(profile_dir) if profile_dir else Path(tempfile.mkdtemp(prefix="seadeploy-ort-"))
            folder.mkdir(parents=True, exist_ok=True)
            so.enable_profiling, so.profile_file_prefix = True, str(folder / "ort_profile")
        self.path, model = _load_source(source, extra_outputs)
        self.session = _create_session(ort, model, so, wanted, self.path)
        used = self.session.get_providers()
        if wanted[0][0] not in used:
            raise BackendUnavailable(f"onnxruntime could not start {wanted[0][0]} (it fell back to {used[0]}); "
                                     f"check the CUDA/cuDNN/TensorRT libraries it needs: {GPU_HINT}")
        self.profile = bool(profile)
        self.extra_outputs = list(extra_outputs)
        self.info = {"providers": used, "threads": self.threads, "graph_opt": graph_opt, "onnxruntime": ort.__version__,
                     # the TensorRT EP exposes no TF32 switch and TensorRT enables TF32 for fp32 by default
                     "tf32": (bool(allow_tf32) and used[0] == PROVIDERS["cuda"]) or used[0] == PROVIDERS["tensorrt"],
                     "model": str(self.path) if self.path else None}

    @property
    def input_specs(self) -> dict[str, TensorSpec]:
        return {i.name: TensorSpec(tuple(d if isinstance(d, int) else (d or None) for d in i.shape),
                                   np.dtype(_ORT_TYPES.get(i.type, np.float32))) for i in self.session.get_inputs()}

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.session.get_outputs()]

    @classmethod
    def variant_options(cls, variant: str) -> dict[str, Any]:
        names = tuple(v for v in variant.split("+") if v)
        bad = [n for n in names if n not in PROVIDERS and n not in PROVIDERS.values()]
        if bad or not names:
            raise ConfigError(f"unknown onnxruntime provider '{variant}'. Valid choices: {', '.join(PROVIDERS)}")
        return {"providers": names}

    @classmethod
    def variants(cls) -> list[str]:
        return ["ort", "ort:cuda", "ort:tensorrt"]

    @classmethod
    def check_available(cls, providers: Sequence[str] = ("cpu",), **_: Any) -> None:
        _provider_list(providers, _import_ort().get_available_providers(), False, {})

    @classmethod
    def int8_target(cls, spec: str) -> str | None:
        """Asymmetric u8 (fused QLinearConv) on the CPU provider; TensorRT's symmetric s8 on the GPU providers."""
        variant = str(spec).partition(":")[2]
        first = cls.variant_options(variant)["providers"][0] if variant else "cpu"
        return "ort-cpu" if PROVIDERS.get(first, first) == PROVIDERS["cpu"] else "tensorrt"

    @classmethod
    def artifact(cls, run_dir: str | os.PathLike, precision: str) -> Path | None:
        """``model.onnx`` / ``model.<precision>.onnx`` (or the path the manifest records)."""
        return run_file(run_dir, "files", precision, runfolder.onnx_name(precision))

    @property
    def in_caller_thread(self) -> bool:
        # one intra-op thread and sequential execution: ORT runs every kernel on the thread that calls run()
        return self.threads == 1 and self.info["providers"][0] == PROVIDERS["cpu"]

    def timed(self, feed: Mapping[str, Any]) -> Callable[[], Any]:
        """``session.run`` on the validated feed, nothing else."""
        checked = check_feed(feed, self.input_specs, self.name)
        self._infer(checked)  # errors surface here as InputError, not inside the timing loop
        session = self.session

        def call() -> None:
            session.run(None, checked)

        return call

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = self.output_names
        try:
            values = self.session.run(names, feed)
        except Exception as exc:  # ORT raises its own pybind types (Fail, InvalidArgument, RuntimeException)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"onnxruntime failed to run {self.path or 'the model'}: {first}") from exc
        return {n: np.asarray(v) for n, v in zip(names, values)}

    def end_profiling(self) -> Path:
        """Stop profiling and return the path of ORT's Chrome-trace JSON (one event per node run)."""
        if not self.profile:
            raise ConfigError("profiling is off for this ort backend; create it with profile=True")
        return Path(self.session.end_profiling())

    def _release(self) -> None:
        self.session = None  # type: ignore[assignment]


def _import_ort():
    try:
        import onnxruntime as ort  # noqa: PLC0415  optional: onnxruntime comes with the cpu/gpu extra (train runs without it)
    except ImportError as exc:
        raise BackendUnavailable("onnxruntime is not installed: pip install onnxruntime (CPU) or onnxruntime-gpu") from exc
    return ort


def _provider_list(names: Sequence[str], available: Sequence[str], allow_tf32: bool,
                   options: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    if isinstance(names, str):
        names = (names,)
    full = []
    for n in names or ("cpu",):
        if n not in PROVIDERS and n not in PROVIDERS.values():
            raise ConfigError(f"unknown onnxruntime provider '{n}'. Valid choices: {', '.join(PROVIDERS)}")
        full.append(PROVIDERS.get(n, n))
    if full[0] == PROVIDERS["tensorrt"] and PROVIDERS["cuda"] not in full:
        full.insert(1, PROVIDERS["cuda"])
    if PROVIDERS["cpu"] not in full:
        full.append(PROVIDERS["cpu"])
    missing = [p for p in full if p not in available]
    if missing:
        raise BackendUnavailable(f"onnxruntime provider {missing[0]} is not available here (this onnxruntime has "
                                 f"{', '.join(available)}): {GPU_HINT}")
    defaults = {PROVIDERS["cuda"]: {"use_tf32": "1" if allow_tf32 else "0"}}
    return [(p, {**defaults.get(p, {}), **options.get(p, {})}) for p in full]


def _load_source(source: Any, extra_outputs: Sequence[str]) -> tuple[Path | None, Any]:
    """``(path or None, path-string or serialized bytes)`` for ``InferenceSession``."""
    path: Path | None = None
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if path.is_dir():
            path = path / "model.onnx"
        if not path.is_file():
            raise InputError(f"ONNX file '{path}' does not exist; run python -m seadeploy.export first")
        if not extra_outputs:
            return path, str(path)
        try:
            proto = onnx.load(str(path))
        except Exception as exc:  # protobuf DecodeError and friends
            raise InputError(f"'{path}' is not a readable ONNX file ({exc}); re-run export") from exc
    elif isinstance(source, onnx.ModelProto):
        proto = source
    else:
        raise ConfigError(f"ort backend runs an .onnx path or onnx.ModelProto, got {type(source).__name__}")
    if extra_outputs:
        proto = with_extra_outputs(proto, extra_outputs)
    return path, proto.SerializeToString()


def _create_session(ort, model: Any, so, providers: list[tuple[str, dict[str, Any]]], path: Path | None):
    try:
        return ort.InferenceSession(model, sess_options=so, providers=[p for p, _ in providers],
                                    provider_options=[o for _, o in providers])
    except Exception as exc:  # InvalidProtobuf, InvalidGraph, Fail, NotImplemented ... from pybind
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"onnxruntime cannot load {path or 'the model'}: {first}; re-run export") from exc


def plain_session(source: str | os.PathLike | bytes | onnx.ModelProto, *, threads: int = 1, graph_opt: str = "all",
                  providers: Sequence[str] = ("cpu",), optimized_model_path: str | os.PathLike | None = None,
                  profile_prefix: str | os.PathLike | None = None) -> Any:
    """A bare ``onnxruntime.InferenceSession`` (CPU unless ``providers`` says otherwise) with ``threads`` intra-op
    threads and one inter-op thread, for code that times ``session.run`` itself, needs ORT's optimised graph
    (``optimized_model_path``) or its node profile (``profile_prefix``: ``end_profiling()`` returns the trace);
    parity and checks run through :class:`OrtBackend`. Besides that class, the one place sessions are built.

    Raises:
        ConfigError: an unknown ``graph_opt`` or provider. InputError: ORT cannot load the model.
        BackendUnavailable: onnxruntime or a provider is missing.
    """
    ort = _import_ort()
    if graph_opt not in GRAPH_OPT:
        raise ConfigError(f"unknown graph optimisation level '{graph_opt}'. Valid choices: {', '.join(GRAPH_OPT)}")
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = int(threads), 1
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, GRAPH_OPT[graph_opt])
    so.log_severity_level = 3  # errors only: the NCHWc "hardware specific" warning of a saved optimised graph
    if optimized_model_path is not None:
        so.optimized_model_filepath = str(optimized_model_path)
    if profile_prefix is not None:
        so.enable_profiling, so.profile_file_prefix = True, str(profile_prefix)
    wanted = _provider_list(providers, ort.get_available_providers(), False, {})
    if isinstance(source, onnx.ModelProto):
        model, path = source.SerializeToString(), None
    elif isinstance(source, bytes):
        model, path = source, None
    else:
        model, path = str(source), Path(source)
    return _create_session(ort, model, so, wanted, path)


def with_extra_outputs(proto: Any, names: Sequence[str]) -> Any:
    """A copy of ``proto`` whose graph also outputs the intermediate tensors ``names`` (types from shape inference;
    a tensor it cannot type is declared without a type, and ONNX Runtime takes the type it computes).

    The one place that exposes intermediate tensors (layer-wise parity, the export's shape check, and the
    profiling shape fallback use it).

    Raises:
        ConfigError: a name is not a tensor of the graph.
    """
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    known = {o for n in model.graph.node for o in n.output}
    bad = [n for n in names if n not in known]
    if bad:
        raise ConfigError(f"'{bad[0]}' is not a tensor produced by a node of the graph")
    types = {vi.name: vi for vi in (*model.graph.value_info, *model.graph.output)}
    if any(n not in types for n in names):  # a graph already inferred (the export's shape check) is not copied again
        inferred = onnx.shape_inference.infer_shapes(model)
        types = {vi.name: vi for vi in (*inferred.graph.value_info, *inferred.graph.output)}
    have = {o.name for o in model.graph.output}
    for name in names:
        if name in have:
            continue
        vi = types.get(name)
        elem = vi.type.tensor_type.elem_type if vi is not None else onnx.TensorProto.UNDEFINED
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, elem, None) if elem
                                  else onnx.helper.make_empty_tensor_value_info(name))
        have.add(name)
    return model


def shapes_by_running(model: onnx.ModelProto, names: list[str]) -> dict[str, tuple[tuple[int, ...], int]]:
    """Run ONNX Runtime once on zeros with ``names`` exposed as outputs and read their shapes."""
    produced = {o for n in model.graph.node for o in n.output}
    m = with_extra_outputs(model, [n for n in names if n in produced])
    try:
        sess = plain_session(m, threads=1, graph_opt="disable")
    except InputError as exc:
        raise InputError(f"cannot infer tensor shapes of this ONNX model ({exc})") from exc
    feed = {}
    for i in sess.get_inputs():
        dtype = {"tensor(int64)": np.int64, "tensor(float16)": np.float16, "tensor(int32)": np.int32}.get(i.type,
                                                                                                        np.float32)
        feed[i.name] = np.zeros([d if isinstance(d, int) else 1 for d in i.shape], dtype=dtype)
    outs = sess.run(None, feed)
    out: dict[str, tuple[tuple[int, ...], int]] = {}
    for meta, value in zip(sess.get_outputs(), outs):
        if meta.name in names:
            out[meta.name] = (tuple(np.asarray(value).shape), helper.np_dtype_to_tensor_dtype(np.asarray(value).dtype))
    return out
