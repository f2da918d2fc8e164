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
"""

from __future__ import annotations

import abc
import inspect
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from seadeploy.errors import ConfigError, InputError
from seadeploy.registry import Registry

Dim = int | str | None  # a static size, a symbolic name ("batch") or unknown


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

    def __repr__(self) -> str:
        specs = ", ".join(f"{k}: {v.describe()}" for k, v in self.input_specs.items()) if not self._closed else "closed"
        return f"{type(self).__name__}({specs})"


BACKENDS: Registry[type[Backend]] = Registry("backend")


def _ensure_registered() -> None:
    # Importing these modules never imports tensorrt, pycuda or a GPU build of onnxruntime.
    from seadeploy.backends import ort, torch_backend, trt  # noqa: F401


def parse_backend_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"ort:cuda"`` → ``("ort", {"providers": ("cuda",)})``; ``"torch"`` → ``("torch", {})``."""
    _ensure_registered()
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
    _ensure_registered()
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
