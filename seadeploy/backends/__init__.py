"""Backends behind one contract: ``torch`` (eager), ``ort`` (ONNX Runtime CPU/CUDA/TensorRT EP), ``trt`` (engine).

``create_backend(name, source, **opts)`` builds one; every backend is a context manager with ``name``,
``input_specs`` and ``infer(feed) -> dict``; ``backend_class(spec)`` gives the class that owns the rest of
the concept (availability, artifact per run folder and precision, precisions, ``timed``, profilers). Optional libraries (tensorrt, pycuda, onnxruntime-gpu
providers) are imported only when the backend that needs them is created.
"""

# The registered backends (importing a module registers its class; none of them imports tensorrt, pycuda or a GPU
# build of onnxruntime at import time), then the contract.
from seadeploy.backends import openvino, ort, torch_backend, trt
from seadeploy.backends.base import (
    BACKENDS,
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
from seadeploy.runfolder import PRECISIONS

__all__ = ["openvino", "ort", "torch_backend", "trt", "BACKENDS", "PRECISIONS", "Backend", "TensorSpec", "available", "backend_class", "check_backend", "check_feed",
           "create_backend", "default_threads", "list_backends", "parse_backend_spec", "resolve"]
