"""Backends behind one contract: ``torch`` (eager), ``ort`` (ONNX Runtime CPU/CUDA/TensorRT EP), ``trt`` (engine).

``create_backend(name, source, **opts)`` builds one; every backend is a context manager with ``name``,
``input_specs`` and ``infer(feed) -> dict``. Optional libraries (tensorrt, pycuda, onnxruntime-gpu
providers) are imported only when the backend that needs them is created.
"""

from seadeploy.backends.base import (
    BACKENDS,
    Backend,
    TensorSpec,
    check_backend,
    check_feed,
    create_backend,
    default_threads,
    list_backends,
    parse_backend_spec,
)

__all__ = ["BACKENDS", "Backend", "TensorSpec", "check_backend", "check_feed", "create_backend", "default_threads", "list_backends",
           "parse_backend_spec"]
