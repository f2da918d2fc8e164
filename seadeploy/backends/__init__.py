"""Backends behind one contract: ``torch`` (eager), ``ort`` (ONNX Runtime CPU/CUDA/TensorRT EP), ``trt`` (engine).

``create_backend(name, source, **opts)`` builds one; every backend is a context manager with ``name``,
``input_specs`` and ``infer(feed) -> dict``; ``backend_class(spec)`` gives the class that owns the rest of
the concept (availability, artifact per run folder and precision, precisions, ``timed``, profilers). Optional libraries (tensorrt, pycuda, onnxruntime-gpu
providers) are imported only when the backend that needs them is created.
"""

from seadeploy.backends.base import (
    BACKENDS,
    PRECISIONS,
    Backend,
    TensorSpec,
    available,
    backend_class,
    check_backend,
    check_feed,
    create_backend,
    default_threads,
    list_backends,
    parse_backend_spec,
    resolve,
)

__all__ = ["BACKENDS", "PRECISIONS", "Backend", "TensorSpec", "available", "backend_class", "check_backend", "check_feed",
           "create_backend", "default_threads", "list_backends", "parse_backend_spec", "resolve"]
