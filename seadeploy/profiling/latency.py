"""Latency reports per backend × precision × batch, in the shape of trtexec's summary.

``benchmark_latency(run_dir, backends=("torch", "ort"), batches=(1, 8))`` measures every combination
(the run folder's files decide which precisions exist), and returns a :class:`LatencyReport`;
``write()`` puts ``latency.csv`` and ``latency.json`` in the run folder. For TensorRT the report also
has the enqueue, H2D, GPU compute and D2H times (CUDA events), so ``--backends trt`` is the
TensorRT latency report. Method (threads, warm-up, duration, clock) is recorded with the numbers.
"""

from __future__ import annotations

import dataclasses
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seadeploy import artifacts
from seadeploy.errors import ConfigError, InputError
from seadeploy.profiling import sources
from seadeploy.profiling.timing import STAT_KEYS, Measurement, measure

METRICS = ("latency", "enqueue", "h2d", "gpu_compute", "d2h")


@dataclasses.dataclass
class LatencyReport:
    """All measurements of one ``latency`` run; ``bool()`` is False when any of them is unstable."""

    measurements: list[Measurement]
    method: dict[str, Any]

    def __bool__(self) -> bool:
        return all(bool(m) for m in self.measurements)

    def to_frame(self) -> pd.DataFrame:
        """One row per backend × precision × batch × metric with the statistics of ``timing.STAT_KEYS``."""
        if not self.measurements:
            return pd.DataFrame(columns=["backend", "precision", "batch", "metric", *STAT_KEYS])
        df = pd.concat([m.to_frame() for m in self.measurements], ignore_index=True)
        first = ["backend", "precision", "batch", "metric", "threads"]
        return df[[c for c in first if c in df] + [c for c in df.columns if c not in first]]

    def warnings(self) -> list[str]:
        return [f"{m.label}: {w}" for m in self.measurements for w in m.warnings]

    def write(self, run_dir: str | os.PathLike) -> tuple[Path, Path]:
        """Atomically write ``latency.csv`` and ``latency.json`` into ``run_dir``."""
        df = self.to_frame()
        csv = Path(run_dir) / artifacts.LATENCY_CSV
        with artifacts.atomic_path(csv) as tmp:
            df.to_csv(tmp, index=False)
        js = artifacts.write_json(Path(run_dir) / artifacts.LATENCY_JSON,
                                  {"format_version": 1, "method": self.method, "rows": df.to_dict("records"),
                                   "warnings": self.warnings(), "versions": artifacts.library_versions()})
        return csv, js

    def format_table(self) -> str:
        """The human table: one line per configuration, TensorRT stage times underneath."""
        df = self.to_frame()
        if df.empty:
            return "(no measurements)"
        cols = ["backend", "precision", "batch", "threads", "median_ms", "iqr_ms", "min_ms", "mean_ms", "p90_ms",
                "p95_ms", "p99_ms", "cv", "throughput_ips"]
        main = df[df["metric"] == "latency"][[c for c in cols if c in df]].copy()
        main["cv"] = (100 * main["cv"]).map("{:.1f}%".format)
        lines = [main.to_string(index=False, float_format=lambda v: f"{v:.3f}")]
        stages = df[df["metric"] != "latency"]
        if not stages.empty:
            keep = ["backend", "precision", "batch", "metric", "median_ms", "min_ms", "mean_ms", "max_ms", "p90_ms",
                    "p95_ms", "p99_ms"]
            lines += ["", "TensorRT stages (CUDA events / host clock for enqueue):",
                      stages[keep].to_string(index=False, float_format=lambda v: f"{v:.3f}")]
        warn = self.warnings()
        if warn:
            lines += ["", *[f"WARNING {w}" for w in warn]]
        return "\n".join(lines)


def _feed(specs: dict, batch: int, input_shape: Sequence[int] | None, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded normal noise for every input at ``batch`` (latency does not depend on the values)."""
    rng = np.random.default_rng(seed)
    feed = {}
    for name, (shape, dtype) in specs.items():
        dims = [batch if i == 0 else d for i, d in enumerate(shape)]
        if any(not isinstance(d, int) or d < 1 for d in dims):
            if input_shape is None:
                raise InputError(f"input '{name}' has unknown dims {list(shape)}; the run's manifest gives no shape")
            dims = [batch, *input_shape]
        feed[name] = rng.standard_normal(dims).astype(dtype)
    return feed


def _timed_call(backend: Any, feed: dict[str, np.ndarray]):
    """The call to time: the runtime itself, without input validation or copies where the backend allows it."""
    backend.infer(feed)  # validates once
    if backend.name == "ort":
        session = backend.session
        return lambda: session.run(None, feed)
    if backend.name == "torch":
        import torch

        model, device = backend.model, backend.device
        x = torch.from_numpy(next(iter(feed.values()))).to(device)
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

        def run() -> None:
            with torch.inference_mode():
                model(x)
            sync()

        return run
    return lambda: backend.infer(feed)


def _measure_one(spec: sources.Source, batch: int, threads: int | None, timing: dict, progress: bool,
                 input_shape: Sequence[int] | None) -> list[Measurement]:
    meta = {"backend": spec.backend, "precision": spec.precision, "batch": batch, "metric": "latency"}
    with sources.open_backend(spec, threads=threads) as be:
        feed = _feed({k: tuple(v) for k, v in be.input_specs.items()}, batch, input_shape)
        meta["threads"] = be.info.get("threads", threads)
        meta["device"] = be.info.get("device") or ",".join(be.info.get("providers", [])) or spec.backend
        label = f"{spec.backend} {spec.precision} b{batch}"
        if spec.backend.split(":")[0] == "trt":
            from seadeploy.profiling.trt_timing import measure_trt_stages

            return measure_trt_stages(be, feed, label=label, meta=meta, progress=progress, **timing)
        return [measure(_timed_call(be, feed), batch=batch, label=label, meta=meta, progress=progress, **timing)]


def benchmark_latency(run_dir: str | os.PathLike, backends: Sequence[str] = ("ort",), batches: Sequence[int] = (1,),
                      precisions: Sequence[str] | None = None, threads: int | None = None, warmup_s: float = 1.0,
                      duration_s: float = 3.0, device: str = "cpu", progress: bool = False) -> LatencyReport:
    """Measure every backend × precision × batch of a run folder.

    Args:
        run_dir: the run folder written by export (``manifest.json``, ``model*.onnx``, engines, checkpoint).
        backends: backend specs (``torch``, ``ort``, ``ort:cuda``, ``trt`` ...).
        batches: batch sizes.
        precisions: restrict to these (default: every precision the run has for that backend).
        threads: pinned intra-op threads for torch/ort (default: the backend's default, recorded).
        warmup_s, duration_s: warm-up and measuring time per configuration.
        device: torch device for the ``torch`` backend.

    Raises:
        BackendUnavailable: a requested backend cannot run here (checked before anything is measured).
        InputError/ConfigError: missing files, bad batch sizes or precisions.
    """
    if not batches or any(int(b) < 1 for b in batches):
        raise ConfigError(f"batch sizes must be ≥ 1, got {list(batches)}")
    if threads is not None and int(threads) < 1:
        raise ConfigError(f"--threads must be ≥ 1, got {threads}")
    plan = sources.plan(run_dir, backends, precisions, device=device)
    timing = {"warmup_s": float(warmup_s), "duration_s": float(duration_s)}
    shape = sources.input_shape(run_dir)
    out: list[Measurement] = []
    for spec in plan:
        for b in batches:
            out.extend(_measure_one(spec, int(b), threads, timing, progress, shape))
    method = {**timing, "threads": threads, "clock": "time.perf_counter per iteration (host wall clock); TensorRT "
              "stages with CUDA events", "input": "seeded normal noise", "machine": platform.platform(),
              "cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine()}
    return LatencyReport(out, method)
