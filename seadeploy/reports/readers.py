"""Read what the stages wrote into a run folder into the report's frames.

The files are read with the run-folder readers of :mod:`seadeploy.runfolder` (the one definition of each file);
this module turns them into report frames. Each reader returns ``(frame_or_value, why)``: ``why`` is ``None``
when the data was found, else a short reason ("no latency.csv (python -m seadeploy.profiling latency RUN)"),
which the report shows as "not measured: <reason>". Readers never raise for a missing or corrupt file: the
reason goes into ``why`` (the report must still render).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from safetensors import SafetensorError, safe_open

from seadeploy import runfolder
from seadeploy.errors import InputError
from seadeploy.graphs.classify import classify
from seadeploy.profiling.schema import make_frame

_HINT = "python -m seadeploy.{stage} ... --out {run}"


def _read(reader: Any, *args: Any) -> tuple[Any, str | None]:
    """``(reader(*args), None)``, or ``(None, why)`` when the run-folder reader refuses the file."""
    try:
        return reader(*args), None
    except InputError as exc:
        return None, str(exc)


def read_int8_target(run: Path) -> dict[str, Any]:
    """``{"int8_target": "ort-cpu (QUInt8 asymmetric)"}`` from the manifest's int8 file, else ``{}``."""
    manifest, _ = _read(runfolder.read_manifest, run) if runfolder.has_manifest(run) else (None, None)
    entry = manifest.files.get("int8") if manifest is not None else None
    q = entry.quantization if entry is not None else None
    return {"int8_target": f"{q['target']} ({q['activations']})"} if q and "target" in q else {}


def read_run_info(run: Path) -> tuple[dict[str, Any], str | None]:
    """Model, attention, dataset, best test accuracy (%), epochs and parameter count from the checkpoint."""
    path = run / runfolder.CHECKPOINT
    if not path.is_file():
        manifest, _ = _read(runfolder.read_manifest, run) if runfolder.has_manifest(run) else (None, None)
        if manifest is None:
            return {}, f"no {runfolder.CHECKPOINT} or {runfolder.MANIFEST} (train and export it: {_HINT.format(stage='train', run=run)})"
        return _spec_info(manifest.spec) | {"dataset": manifest.dataset}, f"no {runfolder.CHECKPOINT}: accuracy not measured"

    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = json.loads((f.metadata() or {}).get("seadeploy", "{}"))
            params = sum(_numel(f.get_slice(k).get_shape()) for k in f.keys() if _is_param(k))  # noqa: SIM118 - safe_open has no __iter__
    except (OSError, ValueError, SafetensorError) as exc:  # JSONDecodeError is a ValueError
        return {}, f"{runfolder.CHECKPOINT} is unreadable ({exc})"
    metrics = meta.get("metrics", {})
    info = _spec_info(runfolder.ModelSpec.from_dict(meta["spec"])) if "spec" in meta else {}
    acc = metrics.get("best_top1", metrics.get("top1"))
    # checkpoint metrics are percent (train/evaluate.py's contract): no fraction heuristic, which would read a
    # 0.8 % random-head accuracy as 80 %
    info.update(dataset=meta.get("dataset"), accuracy=float(acc) if acc is not None else float("nan"),
                epochs=metrics.get("epoch"), params=params)
    if info.get("attn") == "none" and ":" in str(info.get("model", "")):
        info["attn"] = own_attention(run)
    return info, None if acc is not None else "the checkpoint records no test accuracy"


def own_attention(run: Path) -> str:
    """A user model's own attention (no ``--attn``: a timm/torchvision/file model), named by kind with the graph
    analysis's count: ``own 15 channel`` (buffers.json's blocks, else the fp32 graph classified), ``none`` without."""
    blocks, _, _ = read_buffers(run)
    if blocks is not None and "kind" in blocks.columns:
        kinds = list(blocks["kind"])
    else:
        manifest, _ = _read(runfolder.read_manifest, run) if runfolder.has_manifest(run) else (None, None)
        try:
            kinds = [c.kind for c in classify(manifest.file(run, "fp32"))] if manifest is not None else []
        except InputError:
            kinds = []
    counts = {k: kinds.count(k) for k in dict.fromkeys(kinds)}
    return "own " + ", ".join(f"{n} {k}" for k, n in counts.items()) if counts else "none"


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _is_param(key: str) -> bool:
    return not key.endswith(("running_mean", "running_var", "num_batches_tracked"))


def _spec_info(spec: runfolder.ModelSpec) -> dict[str, Any]:
    kw = ", ".join(f"{k}={v}" for k, v in spec.attn_kwargs.items())
    return {"model": spec.model, "attn": spec.attn or "none", "attn_kwargs": kw, "input_size": spec.input_size}


def read_pipeline(run: Path) -> tuple[pd.DataFrame | None, str | None]:
    """``pipeline.json`` → one row: the streaming-accelerator timing and its hardware description."""
    data, why = _read(runfolder.read_pipeline, run)
    if data is None:
        return None, why
    hw = data.get("hardware") or {}
    row = {k: v for k, v in data.items() if not isinstance(v, dict | list)}
    row.update({"macs_per_cycle": hw.get("macs_per_cycle"), "clock_mhz": hw.get("clock_mhz"),
                "folding": hw.get("folding")})
    return pd.DataFrame([row]), None


def read_training(run: Path) -> tuple[pd.DataFrame | None, str | None]:
    """``metrics.csv``: one row per epoch (accuracies in %)."""
    df, why = _read(runfolder.read_training, run)
    return df, (f"{why} (train: {_HINT.format(stage='train', run=run)})" if why else None)


def read_latency(run: Path) -> tuple[pd.DataFrame | None, str | None]:
    """``latency.csv`` (``backend, precision, batch, median_ms, iqr_ms, ...``: the columns the latency stage writes,
    checked by the run-folder reader)."""
    df, why = _read(runfolder.read_latency, run)
    if df is None:
        return None, why
    if "metric" in df.columns:  # TensorRT rows also carry enqueue/H2D/compute/D2H stages: keep end-to-end latency
        df = df[df["metric"].fillna("latency") == "latency"].reset_index(drop=True)
    return df, None


def read_layers(run: Path) -> tuple[pd.DataFrame | None, str | None]:
    """All ``layers_<backend>.csv`` files of the run, concatenated (the per-layer frame schema)."""
    frames, why = _read(runfolder.read_layers, run)
    if frames is None:
        return None, why
    return pd.concat([make_frame(df) for df in frames], ignore_index=True), None


def read_buffers(run: Path) -> tuple[pd.DataFrame | None, pd.DataFrame | None, str | None]:
    """``buffers.json`` → per-attention-block frame (``block, elements, bytes, ...``) and the totals (one row)."""
    data, why = _read(runfolder.read_buffers, run)
    if data is None:
        return None, None, why
    summary = data.get("summary", data)
    totals = {k: summary.get(k) for k in ("attention_buffer_elements", "total_buffer_elements",
                                          "attention_buffer_bytes", "total_buffer_bytes") if k in summary}
    # the buffer model's per-block bypass is its attention_elements column (the figure that separates SE from TSE)
    bf = pd.DataFrame(data.get("blocks") or []).rename(columns={"attention_elements": "elements"})
    bf = bf if {"block", "elements"} <= set(bf.columns) else None
    return (bf if bf is not None and not bf.empty else None), pd.DataFrame([totals]), None


def read_parity(run: Path) -> tuple[pd.DataFrame | None, str | None]:
    """One row per backend × precision × input kind: ``parity.csv``, else the comparisons in ``parity.json``."""
    return _read(runfolder.read_parity, run)


def read_backend_accuracy(run: Path) -> tuple[dict[str, float], str | None]:
    """``acc_<backend>_<precision>`` (%) for every validated backend × precision that measured accuracy."""
    df, why = read_parity(run)
    if df is None:
        return {}, why
    if "accuracy" not in df.columns:
        return {}, "parity results carry no per-backend accuracy"
    out = {}
    for row in df.itertuples(index=False):
        value = 100.0 * float(row.accuracy)  # parity records accuracy as a fraction
        if value == value:
            out[f"acc_{row.backend}_{row.precision}"] = value
    return out, None


def read_layer_gaps(run: Path) -> tuple[pd.DataFrame | None, str | None]:
    """Per-layer sum vs end-to-end (``gaps`` of ``layers_summary.json``); None when the file is absent."""
    data, why = _read(runfolder.read_layers_summary, run)
    if data is None:
        return None, why
    gaps = pd.DataFrame(data.get("gaps") or [])
    need = {"backend", "precision", "batch", "end_to_end_ms", "gap_pct"}
    return (gaps, None) if need <= set(gaps.columns) else (None, f"{runfolder.LAYERS_SUMMARY} has no gap table")


def read_runtime_ratios(run: Path) -> tuple[pd.DataFrame | None, str | None]:
    """Ratios between two backends on one file of the run (same precision and batch, timed side by side): which
    runtime is faster for this model. Labels are ``<source> <backend> <precision> b<batch>`` (profiling.latency)."""
    ratios, why = _read(runfolder.read_latency_ratios, run)
    if ratios is None:
        return None, why
    rows = []
    for r in ratios:
        a, b = str(r.get("a", "")).split(), str(r.get("b", "")).split()
        if len(a) == len(b) == 4 and a[0] == b[0] and a[2:] == b[2:] and a[1] != b[1]:
            rows.append({"backend": a[1], "other": b[1], "precision": a[2], "batch": int(a[3][1:]),
                         "ratio": r.get("ratio"), "ratio_low": r.get("ratio_low"), "ratio_high": r.get("ratio_high"),
                         "clock": r.get("clock")})
    return pd.DataFrame(rows), None
