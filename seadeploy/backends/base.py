"""The backend contract (after Polygraphy's runners) and the ``BACKENDS`` registry.

A backend is a context manager with ``name``, ``input_specs`` (``{name: TensorSpec(shape, dtype)}``) and
``infer(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]``: one currency between PyTorch, ONNX
Runtime and TensorRT. Loading happens in the constructor (so a missing library, device or file fails
early), ``close()`` / ``__exit__`` releases it. Timing lives in profiling, never in ``infer``.

Example:
    >>> with create_backend("ort", "runs/x/model.onnx", threads=1) as be:
    ...     out = be.infer({"x": x})["logits"]

Backend *specs* name a backend and a variant in one string, as the command line takes them:
``torch``, ``torch:cuda``, ``ort`` (CPU), ``ort:cuda``, ``ort:tensorrt``, ``trt``.

The class owns everything the rest of the package needs to know about a backend, so nothing outside
``backends/`` switches on a backend's name:

* ``check_available(**opts)`` / ``available(spec)`` and ``install_hint``: can it run here, and what to install;
* ``artifact(run_dir, precision)`` and ``artifact_kind``: the file it runs for a run folder (checkpoint,
  ``model[.prec].onnx``, ``model.prec.engine``); ``file_suffixes``: the files it runs directly;
* ``precisions``: what it can run; ``int8_target(spec)``: the int8 Q/DQ form it runs well;
  ``run_options(threads=, device=, precision=)``: the generic settings it takes;
* ``timed(feed)``: the feed validated once, then the bare call to time (it may return a dict of extra
  per-call stage times in ms); ``in_caller_thread``: whether all its work runs on the calling thread
  (so thread CPU time measures it);
* ``layer_profiler`` and ``layerwise``: ``"module:function"`` of its per-layer profiler and layer-wise
  parity check (``None``: not supported), resolved by :func:`resolve` only when used (the profiling and
  validate packages import backends, so backends name them instead of importing them).

Adding a backend is one module with a registered ``Backend`` subclass plus its import line in
``seadeploy/backends/__init__.py`` (and its case in tests/backends/test_contract.py).
"""

from __future__ import annotations

import abc
import importlib
import inspect
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from seadeploy import runfolder
from seadeploy.errors import BackendUnavailable, ConfigError, InputError
from seadeploy.registry import Registry

Dim = int | str | None  # a static size, a symbolic name ("batch") or unknown
#: every precision a run folder can hold; each backend says which of them it runs (``Backend.precisions``)


class TensorSpec(NamedTuple):
    """Shape (ints for static sizes, names or ``None`` for dynamic ones) and numpy dtype of one tensor."""

    shape: tuple[Dim, ...]
    dtype: np.dtype

    def describe(self) -> str:
        dims = ", ".join(str(d) if d is not None else "?" for d in self.shape)
        return f"({dims}) {np.dtype(self.dtype).name}"


class Backend(abc.ABC):
    """Base class of every backend: load in ``__init__``, ``infer`` many times, ``close`` once."""

    name: str = "backend"
    #: what to install when ``check_available`` fails (also part of its message)
    install_hint: ClassVar[str] = ""
    #: precisions this backend can run from a run folder
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    #: what ``artifact`` returns, for messages ("ONNX files", "a checkpoint.safetensors" ...)
    artifact_kind: ClassVar[str] = "files"
    #: suffixes of files this backend runs when given a file instead of a run folder
    file_suffixes: ClassVar[tuple[str, ...]] = ()
    #: ``"module:function"`` of the per-layer profiler (``profiling.per_layer.profile_layers`` calls it), or None
    layer_profiler: ClassVar[str | None] = None
    #: ``"module:function"`` of the layer-wise parity check (``validate --layerwise``), or None
    layerwise: ClassVar[str | None] = None

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}  # what decides numerics/speed: device, threads, providers, tf32 ...
        self._closed = False

    # ---------------------------------------------------------------- life cycle
    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release sessions, contexts and device memory (idempotent)."""
        if not self._closed:
            self._release()
            self._closed = True

    def _release(self) -> None:  # noqa: B027 - optional hook; most backends hold nothing that needs freeing
        """Free what the backend holds; override when there is something to free."""

    # ---------------------------------------------------------------- contract
    @property
    @abc.abstractmethod
    def input_specs(self) -> dict[str, TensorSpec]:
        """``{input name: TensorSpec}``."""

    @property
    @abc.abstractmethod
    def output_names(self) -> list[str]:
        """Names of the outputs ``infer`` returns, in order."""

    def infer(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Run one batch: validate ``feed`` against ``input_specs`` and return ``{output name: array}``.

        Raises:
            InputError: a missing/unexpected input, wrong rank or size, non-float data, NaN/Inf values.
        """
        if self._closed:
            raise ConfigError(f"{self.name} backend is closed; create a new one")
        return self._infer(check_feed(feed, self.input_specs, self.name))

    @abc.abstractmethod
    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run a validated feed."""

    @classmethod
    def variant_options(cls, variant: str) -> dict[str, Any]:
        """Constructor options meant by the ``variant`` in a spec such as ``ort:cuda``."""
        raise ConfigError(f"backend '{cls.name}' has no variants (got '{variant}')")

    @classmethod
    def variants(cls) -> list[str]:
        """Every spec this backend understands, available here or not (``ort``, ``ort:cuda`` ...)."""
        return [cls.name]

    @classmethod  # noqa: B027 - a no-op by default: most backends need nothing beyond their import
    def check_available(cls, **opts: Any) -> None:
        """Raise ``BackendUnavailable`` (cheaply, without loading a model) when ``opts`` cannot run here."""

    @classmethod
    def artifact(cls, run_dir: str | os.PathLike, precision: str) -> Path | None:
        """The file (or folder) this backend runs for ``precision`` of a run folder; ``None`` when it has none."""
        return None

    @classmethod
    def int8_target(cls, spec: str) -> str | None:
        """The int8 Q/DQ form this spec runs well (a key of ``export.precision.INT8_TARGETS``); None: no int8."""
        return None

    @classmethod
    def run_options(cls, *, threads: int | None = None, device: str | None = None,
                    precision: str | None = None) -> dict[str, Any]:
        """Constructor options for the generic settings: ``threads`` when the backend pins threads, ``precision``
        (the run-folder precision of the file it loads) when the backend takes one.

        ``device`` is a torch-style device string meant for the backends that take one (default: ignored).
        ``precision`` is for a runtime whose precision is a compile setting besides the file (OpenVINO's
        inference-precision hint); a backend whose files alone decide their numerics does not take it.
        """
        takes = inspect.signature(cls.__init__).parameters
        opts: dict[str, Any] = {"threads": int(threads)} if threads is not None and "threads" in takes else {}
        if precision is not None and "precision" in takes:
            opts["precision"] = str(precision)
        return opts

    @property
    def in_caller_thread(self) -> bool:
        """True when every bit of work of ``infer`` runs on the calling thread (CPU, one intra-op thread),
        so ``time.thread_time`` of the caller measures it and other processes cannot inflate it."""
        return False

    def timed(self, feed: Mapping[str, Any]) -> Callable[[], Any]:
        """The call to time: ``feed`` is validated once here, the returned callable runs it bare.

        The callable may return ``None`` or ``{stage: milliseconds}`` (extra per-call figures such as
        TensorRT's H2D / compute / D2H); anything else it returns is ignored.
        """
        if self._closed:
            raise ConfigError(f"{self.name} backend is closed; create a new one")
        checked = check_feed(feed, self.input_specs, self.name)
        self._infer(checked)  # the first call runs outside the timing (lazy initialisation)
        run = self._infer

        def call() -> None:
            run(checked)

        return call

    def __repr__(self) -> str:
        specs = ", ".join(f"{k}: {v.describe()}" for k, v in self.input_specs.items()) if not self._closed else "closed"
        return f"{type(self).__name__}({specs})"


BACKENDS: Registry[type[Backend]] = Registry("backend")


def backend_class(spec: str) -> type[Backend]:
    """The registered class of a spec (``"ort:cuda"`` → ``OrtBackend``); ``ConfigError`` for unknown names."""
    return BACKENDS.get(str(spec).strip().partition(":")[0])


def available(spec: str) -> bool:
    """Whether ``spec`` can run here (``check_backend`` without the exception)."""
    try:
        check_backend(spec)
    except BackendUnavailable:
        return False
    return True


def resolve(target: str | None) -> Callable[..., Any] | None:
    """``"package.module:function"`` → the function (imported now); ``None`` stays ``None``."""
    if not target:
        return None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def run_file(run_dir: str | os.PathLike, section: str, precision: str, default: str) -> Path | None:
    """The file the run folder's manifest records under ``section`` (``files`` / ``engines``) for ``precision``;
    in a folder without a manifest, ``default`` there. ``None`` when there is no such file: with a manifest, a file
    it does not list (left by an earlier export) is not this run's.

    Raises:
        InputError: the manifest is corrupt or records a path outside the folder (:mod:`seadeploy.runfolder`).
    """
    run = Path(run_dir)
    path = run / default
    if runfolder.has_manifest(run):
        entry = runfolder.read_manifest(run).entry(precision, section)
        if not entry:
            return None
        path = runfolder.inside(run, entry.path, section[:-1])
    return path if path.is_file() else None


def parse_backend_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"ort:cuda"`` → ``("ort", {"providers": ("cuda",)})``; ``"torch"`` → ``("torch", {})``."""
    name, _, variant = str(spec).strip().partition(":")
    cls = BACKENDS.get(name)
    return name, (cls.variant_options(variant) if variant else {})


def check_backend(spec: str) -> None:
    """Fail fast: raise ``ConfigError``/``BackendUnavailable`` for a spec that cannot run here, before any work."""
    name, opts = parse_backend_spec(spec)
    BACKENDS.get(name).check_available(**opts)


def create_backend(name: str, source: Any, **opts: Any) -> Backend:
    """Build backend ``name`` (a registry name or a spec such as ``ort:cuda``) on ``source``.

    Args:
        name: ``torch``, ``ort``, ``trt`` or a spec with a variant (``ort:tensorrt``, ``torch:cuda``).
        source: what the backend runs: an ``nn.Module`` or run folder (torch), an ``.onnx`` path or
            ``onnx.ModelProto`` (ort), a serialized ``.engine`` (trt).
        **opts: backend options; they override the variant's.

    Raises:
        ConfigError: unknown backend, variant or option. BackendUnavailable: a library or device is missing.
        InputError: ``source`` is missing or unreadable.
    """
    key, variant_opts = parse_backend_spec(name)
    cls = BACKENDS.get(key)
    params = inspect.signature(cls.__init__).parameters
    allowed = [p for p in params if p not in ("self", "source")]
    bad = [k for k in opts if k not in allowed]
    if bad:
        raise ConfigError(f"backend '{key}' has no option '{bad[0]}'. Valid options: {', '.join(allowed)}")
    return cls(source, **{**variant_opts, **opts})


def list_backends() -> list[str]:
    """Every backend spec (``torch``, ``torch:cuda``, ``ort``, ``ort:cuda``, ``ort:tensorrt``, ``trt``)."""
    return [spec for name in BACKENDS.names() for spec in BACKENDS.get(name).variants()]


# --------------------------------------------------------------------------------------------- feeds
def check_feed(feed: Mapping[str, Any], specs: Mapping[str, TensorSpec], backend: str = "backend") -> dict[str, np.ndarray]:
    """Validate and normalise a feed: names, rank, static sizes, dtype (floats are cast), finiteness.

    Returns:
        ``{name: C-contiguous array of the spec's dtype}``.

    Raises:
        InputError: with one line saying which input is wrong and what the model expects.
    """
    if not isinstance(feed, Mapping):
        raise InputError(f"{backend}: feed must be a dict of arrays, got {type(feed).__name__}")
    expected = ", ".join(f"{k} {v.describe()}" for k, v in specs.items())
    missing = [k for k in specs if k not in feed]
    extra = [k for k in feed if k not in specs]
    if missing or extra:
        what = f"missing input '{missing[0]}'" if missing else f"unexpected input '{extra[0]}'"
        raise InputError(f"{backend}: {what}; the model takes {expected}")
    return {name: _check_array(name, feed[name], spec, backend) for name, spec in specs.items()}


def _check_array(name: str, value: Any, spec: TensorSpec, backend: str) -> np.ndarray:
    arr = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)
    want = np.dtype(spec.dtype)
    if arr.dtype != want:
        if not (np.issubdtype(arr.dtype, np.floating) and np.issubdtype(want, np.floating)):
            raise InputError(f"{backend}: input '{name}' has dtype {arr.dtype}, expected {want.name}")
        arr = arr.astype(want)
    shape_ok = arr.ndim == len(spec.shape) and all(
        not isinstance(d, int) or d < 0 or d == s for d, s in zip(spec.shape, arr.shape)
    )
    if not shape_ok or 0 in arr.shape:
        raise InputError(f"{backend}: input '{name}' has shape {tuple(arr.shape)}, expected {spec.describe()}")
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise InputError(f"{backend}: input '{name}' contains {int(bad.sum())} NaN/Inf values (first at index "
                             f"{first}); clean the data or check the normalisation")
    return np.ascontiguousarray(arr)


def default_threads() -> int:
    """CPU threads this process may use (its affinity mask), the default for pinned thread counts."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
