"""The result files of a run folder — parity, latency, per-layer profiles, buffers, pipeline, training history:
one writer and one reader each, and every field checked on read.

Every JSON result carries ``format_version``; CSV readers refuse text in a numeric column (one ``InputError``,
exit 2, naming the file, the column and the row).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seadeploy.errors import InputError
from seadeploy.fileio import atomic_path, library_versions, read_json, write_json
from seadeploy.runfolder.fields import LIST, NUMBER, OBJECT, check_columns, check_fields
from seadeploy.runfolder.names import (
    BUFFERS_JSON,
    LATENCY_CSV,
    LATENCY_JSON,
    LAYERS_SUMMARY,
    METRICS_CSV,
    PARITY_CSV,
    PARITY_JSON,
    PARITY_LAYERS_CSV,
    PARITY_NPZ,
    PIPELINE_JSON,
    layers_csv,
)

PARITY_VERSION = 2  # 2: "comparisons" rows with the rule; 1 wrote the same rows (readers accept both)
LATENCY_VERSION = 1
BUFFERS_VERSION = 1
PIPELINE_VERSION = 1

#: The per-layer frame (``layers_<backend>.csv``, docs/architecture.md §2): columns and their pandas dtypes
#: (numbers are float so that "not measured" can be NaN).
LAYER_DTYPES: dict[str, str] = {
    "backend": "object", "precision": "object", "batch": "Int64", "layer": "object", "onnx_node": "object",
    "module": "object", "op_type": "object", "role": "object", "block": "object", "time_ms": "float64",
    "time_pct": "float64", "out_shape": "object", "out_bytes": "float64", "params": "float64",
    "macs": "float64", "buffer_elems": "float64",
}
LAYER_COLUMNS: tuple[str, ...] = tuple(LAYER_DTYPES)

#: What each CSV must hold: required columns, numeric columns, true/false columns. Latency statistics are the
#: ``*_ms`` columns (wall and thread-CPU clocks) plus the ones named here.
_LATENCY_NUMERIC = ("batch", "threads", "runs", "cv", "spread", "cpu_spread", "throughput_ips", "ratio", "ratio_low",
                    "ratio_high")
_PARITY_NUMERIC = ("n", "atol", "rtol", "max_abs", "mean_abs", "max_rel", "cosine", "cosine_min", "cosine_centered",
                   "top1", "accuracy", "ref_accuracy", "violations", "nonfinite", "ref_nonfinite", "float_noise",
                   "float_noise_cosine")
_BUFFER_TOTALS = ("attention_buffer_elements", "total_buffer_elements", "attention_buffer_bytes", "total_buffer_bytes")
_PIPELINE_NUMBERS = ("fps", "initiation_interval_cycles", "fill_latency_cycles", "frame_latency_cycles")
#: ``metrics.csv``: one row per epoch.
METRICS_COLUMNS = ("epoch", "lr", "train_loss", "train_top1", "test_loss", "test_top1", "test_top5", "epoch_time_s")

# ------------------------------------------------------------------------------------------------- parity
def write_parity(out_dir: str | os.PathLike, payload: dict[str, Any], frame: pd.DataFrame,
                 arrays: dict[str, np.ndarray] | None = None, layers: pd.DataFrame | None = None) -> list[Path]:
    """Atomically write ``parity.json`` (``payload`` with ``"comparisons"``), ``parity.csv`` (``frame``, one row per
    comparison), ``parity.npz`` (inputs/labels/reference/outputs, for ``--inputs`` replay) and, with layer-wise
    results, ``parity_layers.csv``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if "comparisons" not in payload:
        raise ValueError("parity payload needs 'comparisons'")  # programming error: the schema's one key
    written = [write_json(out / PARITY_JSON, {"format_version": PARITY_VERSION, **payload})]
    written.append(_write_csv(out / PARITY_CSV, frame))
    if arrays is not None:
        with atomic_path(out / PARITY_NPZ) as tmp, open(tmp, "wb") as f:  # a file object: savez adds no suffix
            np.savez_compressed(f, **arrays)
        written.append(out / PARITY_NPZ)
    if layers is not None and not layers.empty:
        written.append(_write_csv(out / PARITY_LAYERS_CSV, layers))
    return written


def read_parity(run_dir: str | os.PathLike) -> pd.DataFrame:
    """One row per comparison: ``parity.csv``, else the ``comparisons`` of ``parity.json``.

    Raises:
        InputError: neither file is there, a file is unreadable, or it holds no comparisons.
    """
    run = Path(run_dir)
    if (run / PARITY_CSV).is_file():
        return _check_parity(run / PARITY_CSV, _read_csv(run / PARITY_CSV))
    if not (run / PARITY_JSON).is_file():
        raise InputError(f"no {PARITY_CSV} or {PARITY_JSON} (python -m seadeploy.validate {run})")
    data = read_json(run / PARITY_JSON)
    rows = data.get("comparisons") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not rows:
        raise InputError(f"{PARITY_JSON} holds no comparisons")
    if not all(isinstance(r, dict) for r in rows):
        raise InputError(f"{PARITY_JSON} has a comparison that is not an object; re-run validate")
    frame = pd.json_normalize(rows)
    frame = frame.drop(columns=[c for c in frame.columns if c.startswith(("tolerance.", "info."))])
    return _check_parity(run / PARITY_JSON, frame)


def _check_parity(path: Path, frame: pd.DataFrame) -> pd.DataFrame:
    return check_columns(path, frame, _PARITY_NUMERIC, ("passed",), required=("backend", "precision", "passed"))


def read_parity_inputs(path: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """The input sets of a ``parity.npz`` (``x_random``, ``x_data``, ``y_data``) or any ``.npz`` with ``x`` [and ``y``]."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"inputs file '{p}' does not exist")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise InputError(f"'{p}' is not a readable .npz file ({exc})") from exc
    if "x" in arrays:
        return {"data" if "y" in arrays else "random": (arrays["x"], arrays.get("y"))}
    out = {k: (arrays[f"x_{k}"], arrays.get(f"y_{k}")) for k in ("random", "data") if f"x_{k}" in arrays}
    if not out:
        raise InputError(f"'{p}' has no 'x' (or x_random / x_data) array to replay")
    return out


# -------------------------------------------------------------------------------------------- training
def read_training(run_dir: str | os.PathLike) -> pd.DataFrame:
    """``metrics.csv`` (one row per epoch, written by :func:`seadeploy.train.history.write_metrics_csv`)."""
    path = Path(run_dir) / METRICS_CSV
    return check_columns(path, _read_csv(path), METRICS_COLUMNS, required=("epoch",))


# --------------------------------------------------------------------------------------- latency, layers
def write_latency(run_dir: str | os.PathLike, frame: pd.DataFrame, **meta: Any) -> tuple[Path, Path]:
    """``latency.csv`` (one row per backend × precision × batch × metric) and ``latency.json`` (rows + ``meta``)."""
    run = Path(run_dir)
    csv = _write_csv(run / LATENCY_CSV, frame)
    js = write_json(run / LATENCY_JSON, {"format_version": LATENCY_VERSION, **meta, "rows": frame.to_dict("records"),
                                         "versions": library_versions()})
    return csv, js


def read_latency(run_dir: str | os.PathLike) -> pd.DataFrame:
    """``latency.csv`` as written (InputError when missing, unreadable, empty, or a statistic is not a number)."""
    path = Path(run_dir) / LATENCY_CSV
    frame = _read_csv(path, f"python -m seadeploy.profiling latency {run_dir}")
    numeric = [*_LATENCY_NUMERIC, *(c for c in frame.columns if str(c).endswith("_ms"))]
    return check_columns(path, frame, numeric, ("stable", "within_noise"),
                         required=("backend", "precision", "batch", "median_ms"))


def read_latency_ratios(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The paired ratios ``latency.json`` records (``a``, ``b``, ``ratio``, ``ratio_low``, ``ratio_high``, ``clock``,
    ``batch``); InputError when the file is missing or unreadable, or a ratio's bounds are not numbers."""
    data = _read_json_obj(Path(run_dir) / LATENCY_JSON, f"python -m seadeploy.profiling latency {run_dir}")
    rows = [r for r in data.get("ratios", []) if isinstance(r, dict)]
    for r in rows:
        check_fields(LATENCY_JSON, r, {"ratio": NUMBER, "ratio_low": NUMBER, "ratio_high": NUMBER})
    return rows


def write_layers(run_dir: str | os.PathLike, backend: str, frame: pd.DataFrame) -> Path:
    """``layers_<backend>.csv`` (the per-layer schema of :mod:`seadeploy.profiling.schema`)."""
    return _write_csv(Path(run_dir) / layers_csv(backend), frame)


def read_layers(run_dir: str | os.PathLike) -> list[pd.DataFrame]:
    """Every ``layers_<backend>.csv`` of the run that holds rows (InputError when there is none)."""
    run = Path(run_dir)
    frames = []
    numeric = [c for c, dtype in LAYER_DTYPES.items() if dtype != "object"]
    for path in sorted(run.glob(layers_csv("*"))):
        try:
            frame = _read_csv(path)
        except InputError:
            continue  # an empty profile (a backend that measured nothing) is no profile
        frames.append(check_columns(path, frame, numeric, required=("backend", "layer", "time_ms")))
    if not frames:
        raise InputError(f"no {layers_csv('<backend>')} (python -m seadeploy.profiling layers {run})")
    return frames


def write_layers_summary(run_dir: str | os.PathLike, summary: dict[str, Any]) -> Path:
    """``layers_summary.json``: per-layer sum vs end-to-end (``gaps``) of a layer profile."""
    return write_json(Path(run_dir) / LAYERS_SUMMARY, {"format_version": 1, **summary})


def read_layers_summary(run_dir: str | os.PathLike) -> dict[str, Any]:
    data = _read_json_obj(Path(run_dir) / LAYERS_SUMMARY)
    check_fields(LAYERS_SUMMARY, data, {"gaps": LIST})
    return data


# ------------------------------------------------------------------------------------------------ buffers
def write_buffers(run_dir: str | os.PathLike, summary: dict[str, Any]) -> Path:
    """``buffers.json``: ``attention_buffer_elements``, ``total_buffer_elements``, ``blocks`` [, ...]."""
    return write_json(Path(run_dir) / BUFFERS_JSON, {**summary, "format_version": BUFFERS_VERSION})


def read_buffers(run_dir: str | os.PathLike) -> dict[str, Any]:
    """``buffers.json`` (InputError when missing, not JSON, or without ``attention_buffer_elements``)."""
    data = _read_json_obj(Path(run_dir) / BUFFERS_JSON, f"python -m seadeploy.profiling buffers {run_dir}")
    summary = data.get("summary", data)
    if not isinstance(summary, dict) or "attention_buffer_elements" not in summary:
        raise InputError(f"{BUFFERS_JSON} has no attention_buffer_elements")
    check_fields(BUFFERS_JSON, summary, dict.fromkeys(_BUFFER_TOTALS, NUMBER))
    check_fields(BUFFERS_JSON, data, {"blocks": LIST})
    return data


def write_pipeline(run_dir: str | os.PathLike, summary: dict[str, Any]) -> Path:
    """``pipeline.json``: the streaming-accelerator timing summary (``seadeploy/dataflow``): ``fps``,
    ``initiation_interval_cycles``, ``fill_latency_cycles``, ``fifo_elements``, ``hardware`` [, ...]."""
    return write_json(Path(run_dir) / PIPELINE_JSON, {**summary, "format_version": PIPELINE_VERSION})


def read_pipeline(run_dir: str | os.PathLike) -> dict[str, Any]:
    """``pipeline.json`` (InputError when missing, not JSON, or without ``fps``)."""
    data = _read_json_obj(Path(run_dir) / PIPELINE_JSON, f"python -m seadeploy.profiling pipeline {run_dir}")
    if "fps" not in data:
        raise InputError(f"{PIPELINE_JSON} has no fps")
    check_fields(PIPELINE_JSON, data, {**dict.fromkeys(_PIPELINE_NUMBERS, NUMBER), "hardware": OBJECT})
    return data


# ------------------------------------------------------------------------------------------------ helpers
def _write_csv(path: Path, frame: pd.DataFrame) -> Path:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path


def _read_csv(path: Path, hint: str = "") -> pd.DataFrame:
    if not path.is_file():
        raise InputError(f"no {path.name}" + (f" ({hint})" if hint else ""))
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path.name} is unreadable ({exc})") from exc
    if df.empty:
        raise InputError(f"{path.name} is empty")
    return df


def _read_json_obj(path: Path, hint: str = "") -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"no {path.name}" + (f" ({hint})" if hint else ""))
    try:
        data = read_json(path)
    except InputError as exc:
        raise InputError(f"{path.name} is not valid JSON; re-run the stage that writes it") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path.name} is not a JSON object")
    return data
