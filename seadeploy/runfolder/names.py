"""The names of the files in a run folder (one home: every stage and reader takes them from here)::

    RUN/checkpoint.safetensors   weights + JSON metadata (ModelSpec, normalisation, metrics, versions)
    RUN/last.safetensors         last epoch (train); RUN/train_state.pt resumable optimiser/RNG state
    RUN/metrics.csv, curves.png  training history
    RUN/model.onnx, model.fp16.onnx, model.int8.onnx, model.<precision>.engine(.json)
    RUN/manifest.json            what export wrote and the checks that ran
    RUN/parity.json|csv|npz      validate;  RUN/latency.*, layers_<backend>.csv, buffers.json  profiling
    RUN/report.html|md           reports
"""

from __future__ import annotations

CHECKPOINT = "checkpoint.safetensors"
LAST_CHECKPOINT = "last.safetensors"
TRAIN_STATE = "train_state.pt"
METRICS_CSV = "metrics.csv"
CURVES_PNG = "curves.png"
MANIFEST = "manifest.json"
PARITY_JSON, PARITY_CSV, PARITY_NPZ = "parity.json", "parity.csv", "parity.npz"
LATENCY_CSV, LATENCY_JSON = "latency.csv", "latency.json"
BUFFERS_JSON = "buffers.json"
PIPELINE_JSON = "pipeline.json"
LAYERS_SUMMARY = "layers_summary.json"  # compare: per-layer sum vs interleaved end-to-end timing
PARITY_LAYERS_CSV = "parity_layers.csv"  # validate --layerwise
REPORT_HTML, REPORT_MD = "report.html", "report.md"
FORMAT_VERSION = 1
PRECISIONS = ("fp32", "fp16", "int8")  # the one list of export precisions (file names below, backends, parity)


def onnx_name(precision: str = "fp32") -> str:
    """``model.onnx`` for fp32, ``model.<precision>.onnx`` otherwise."""
    return "model.onnx" if precision == "fp32" else f"model.{precision}.onnx"


def engine_name(precision: str = "fp32") -> str:
    """``model.<precision>.engine``."""
    return f"model.{precision}.engine"


def layers_csv(backend: str) -> str:
    """``layers_<backend>.csv``."""
    return f"layers_{backend}.csv"
