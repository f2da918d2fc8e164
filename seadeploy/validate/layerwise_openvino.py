"""Layer-wise parity for OpenVINO: the module outputs of PyTorch against the same tensors computed by OpenVINO.

The boundaries are those of :func:`seadeploy.validate.layerwise.plan_points` (each module's ONNX tensor); they are
added to an in-memory copy of the OpenVINO model as outputs (``Model.add_outputs``, the file is untouched) and the
plugin compiles it with the precision hint of the comparison. An output keeps its tensor materialised, so a fusion
that would have computed it in registers is split at that boundary, as with ONNX Runtime's extra outputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from torch import nn

from seadeploy.backends.openvino import OpenVinoBackend
from seadeploy.validate.layerwise import LAYER_THRESHOLDS, LayerwiseResult, compare_points, plan_points


def layerwise_openvino(model: nn.Module, onnx_path: Any, x: np.ndarray, precision: str = "fp32", *,
                       threads: int | None = 1, threshold: float | None = None,
                       backend: str = "openvino") -> LayerwiseResult:
    """Compare every matched module output of ``model`` with the OpenVINO tensors of ``onnx_path`` on ``x``."""
    points, unmatched = plan_points(model, onnx.load(str(onnx_path)), x)
    with OpenVinoBackend(onnx_path, threads=threads, precision=precision,
                         extra_outputs=[p.tensor for p in points]) as be:
        values = be.infer({next(iter(be.input_specs)): x})
    thr = LAYER_THRESHOLDS.get(precision, 1e-3) if threshold is None else threshold
    return LayerwiseResult(backend, precision, thr, compare_points(points, values, precision, thr), unmatched)
