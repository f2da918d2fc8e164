"""``--layerwise`` for a whole run folder: one :class:`LayerwiseResult` per ORT / TensorRT comparison."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from seadeploy.validate.layerwise import LayerwiseResult, layerwise_ort

LAYERWISE_BATCH = 8  # hooks keep every module output: a few samples localise a divergence as well as many


def layer_inputs(sets: dict[str, tuple[np.ndarray, Any]], n: int = LAYERWISE_BATCH) -> np.ndarray:
    """The first ``n`` real samples when there are any (realistic activations), else random ones."""
    x = sets["data"][0] if "data" in sets else next(iter(sets.values()))[0]
    return np.ascontiguousarray(x[:n])


def run_layerwise(folder: Any, backends: Sequence[str], precisions: Sequence[str],
                  sets: dict[str, tuple[np.ndarray, Any]], *, threads: int | None = None,
                  log: Callable[[str], None] | None = None) -> list[LayerwiseResult]:
    """Layer-wise comparison of every requested ORT and TensorRT backend × precision (torch is the reference)."""
    from seadeploy.backends import parse_backend_spec

    x = layer_inputs(sets)
    model = folder.checkpoint.build_model()
    results = []
    for spec in backends:
        name, opts = parse_backend_spec(spec)
        for precision in precisions:
            if log:
                log(f"layer-wise {spec} {precision}")
            if name == "ort":
                results.append(layerwise_ort(model, folder.onnx_path(precision), x, precision, threads=threads,
                                             backend=spec, providers=opts.get("providers", ("cpu",))))
            elif name == "trt":
                from seadeploy.validate.layerwise_trt import layerwise_trt

                results.append(layerwise_trt(model, folder.onnx_path(precision), x, precision, backend=spec))
    return results
