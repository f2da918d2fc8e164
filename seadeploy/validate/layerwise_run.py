"""``--layerwise`` for a whole run folder: one :class:`LayerwiseResult` per ORT / TensorRT comparison."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from seadeploy.backends import backend_class, parse_backend_spec, resolve
from seadeploy.models.build import load_model
from seadeploy.validate.layerwise import LayerwiseResult

LAYERWISE_BATCH = 8  # hooks keep every module output: a few samples localise a divergence as well as many


def layer_inputs(sets: dict[str, tuple[np.ndarray, Any]], n: int = LAYERWISE_BATCH) -> np.ndarray:
    """The first ``n`` real samples when there are any (realistic activations), else random ones."""
    x = sets["data"][0] if "data" in sets else next(iter(sets.values()))[0]
    return np.ascontiguousarray(x[:n])


def run_layerwise(folder: Any, backends: Sequence[str], precisions: Sequence[str],
                  sets: dict[str, tuple[np.ndarray, Any]], *, threads: int | None = None,
                  log: Callable[[str], None] | None = None) -> list[LayerwiseResult]:
    """Layer-wise comparison of every requested backend × precision that has one (``Backend.layerwise``; torch is
    the reference). A backend without a layer-wise check is said so in the log, not skipped silently."""
    x = layer_inputs(sets)
    model = load_model(folder.checkpoint)
    results = []
    for spec in backends:
        _, opts = parse_backend_spec(spec)
        check = resolve(backend_class(spec).layerwise)  # the backend names its check ("module:function")
        if check is None:
            if log:
                log(f"layer-wise {spec}: no layer-wise check for this backend (the reference, or not supported)")
            continue
        takes = inspect.signature(check).parameters  # a GPU check takes no threads, a CPU one no device
        kw = {k: v for k, v in {"threads": threads, **opts}.items() if k in takes}
        for precision in precisions:
            if log:
                log(f"layer-wise {spec} {precision}")
            results.append(check(model, folder.onnx_path(precision), x, precision, backend=spec, **kw))
    return results
