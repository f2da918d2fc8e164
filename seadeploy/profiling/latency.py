"""Latency of several candidates side by side: sources × backends × precisions, per batch, in one process.

``benchmark_latency([run_a, run_b], backends=("ort",), batches=(1, 32), precisions=("fp32", "int8"))``
opens every candidate (a run folder's file per backend × precision, or a bare ``.onnx`` / ``.engine``),
then per batch times all of them interleaved (:func:`seadeploy.profiling.timing.interleave`: rounds
A B C, B C A, ... on the same seeded input and thread settings) and returns a :class:`LatencyReport`:
per candidate median, IQR, percentiles (wall, and thread CPU time where the backend runs on the calling
thread), TensorRT's H2D / compute / D2H stages where the backend reports them, and every pairwise ratio
with a bootstrap confidence interval and a "within noise" flag. With several sources, each row also
carries its ratio to the same backend × precision × batch of the reference source (the first).
``write()`` puts ``latency.csv`` and ``latency.json`` into each run folder measured.
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

from seadeploy import runfolder
from seadeploy.errors import ConfigError, InputError
from seadeploy.profiling import sources
from seadeploy.profiling.timing import STAT_KEYS, Candidate, Ratio, SideBySide, interleave

METRICS = ("latency", "enqueue", "h2d", "gpu_compute", "d2h")
#: columns a row carries for its ratio to the reference source (compare: the baseline variant)
RATIO_COLUMNS = ("ratio_to", "ratio", "ratio_low", "ratio_high", "ratio_clock", "within_noise")


@dataclasses.dataclass
class LatencyReport:
    """All rows of one ``latency`` run and the pairwise ratios; ``bool()`` is False when any row is unstable."""

    rows: list[dict[str, Any]]
    ratios: list[dict[str, Any]]
    method: dict[str, Any]

    @property
    def measurements(self) -> list[dict[str, Any]]:  # the former list of Measurements, one per row
        return self.rows

    def __bool__(self) -> bool:
        return all(r.get("stable", True) for r in self.rows)

    def to_frame(self) -> pd.DataFrame:
        """One row per source × backend × precision × batch × metric with the statistics of ``timing.STAT_KEYS``."""
        if not self.rows:
            return pd.DataFrame(columns=["source", "backend", "precision", "batch", "metric", *STAT_KEYS])
        df = pd.DataFrame(self.rows)
        first = ["source", "backend", "precision", "batch", "metric", "threads", "clock"]
        return df[[c for c in first if c in df] + [c for c in df.columns if c not in first]]

    def ratio_frame(self) -> pd.DataFrame:
        """One row per pair measured side by side: ``a / b`` with its interval, clock and ``within_noise``."""
        return pd.DataFrame(self.ratios)

    def warnings(self) -> list[str]:
        return [f"{r['label']}: {w}" for r in self.rows for w in str(r.get("warnings") or "").split("; ") if w]

    def runs(self) -> list[Path]:
        """The run folders measured (bare model files are not run folders and get no files)."""
        return list(dict.fromkeys(Path(r["run"]) for r in self.rows if r.get("run")))

    def write(self, run_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
        """Atomically write ``latency.csv`` and ``latency.json`` into ``run_dir`` (default: the only run measured).

        The files hold that run's rows and every ratio involving one of its candidates.
        """
        runs = self.runs()
        if run_dir is None:
            if len(runs) != 1:
                raise ConfigError(f"this report measured {len(runs)} run folders; write(run_dir) for each")
            run_dir = runs[0]
        run = Path(run_dir)
        df = self.to_frame()
        if "run" in df:
            df = df[df["run"].map(lambda p: Path(p) == run if isinstance(p, str) else False)]
        labels = set(df["label"]) if "label" in df else set()
        ratios = [r for r in self.ratios if r["a"] in labels or r["b"] in labels]
        warnings = [w for w in self.warnings() if w.split(":")[0] in labels]
        return runfolder.write_latency(run, df, method=self.method, ratios=ratios, warnings=warnings)

    def write_all(self) -> list[Path]:
        """``write`` into every run folder measured."""
        return [p for run in self.runs() for p in self.write(run)]

    def format_table(self) -> str:
        """Per-candidate rows (median, IQR, percentiles on both clocks), then every ratio ± interval."""
        df = self.to_frame()
        if df.empty:
            return "(no measurements)"
        cols = ["source", "backend", "precision", "batch", "threads", "median_ms", "iqr_ms", "p10_ms", "p90_ms",
                "spread", "cpu_median_ms", "cpu_iqr_ms", "cpu_p10_ms", "cpu_p90_ms", "cpu_spread", "throughput_ips"]
        main = df[df["metric"] == "latency"][[c for c in cols if c in df]].copy()
        if main["source"].nunique() == 1:
            main = main.drop(columns="source")
        for c in ("spread", "cpu_spread"):
            if c in main:
                main[c] = (100 * main[c]).map(lambda v: f"{v:.1f}%" if v == v else "-")
        lines = ["wall = time.perf_counter; cpu = thread CPU time (one intra-op thread, CPU backends); "
                 "spread = IQR/median", main.to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-")]
        stages = df[df["metric"] != "latency"]
        if not stages.empty:
            keep = ["backend", "precision", "batch", "metric", "median_ms", "iqr_ms", "p10_ms", "p90_ms", "p99_ms"]
            lines += ["", "TensorRT stages (CUDA events / host clock for enqueue):",
                      stages[[c for c in keep if c in stages]].to_string(index=False, float_format=lambda v: f"{v:.3f}")]
        if self.ratios:
            conf = round(100 * self.ratios[0]["confidence"])
            lines += ["", f"Ratios measured side by side (median of per-round ratios, {conf}% bootstrap interval):"]
            lines += [f"  {format_ratio(r)}" for r in self.ratios]
        warn = self.warnings()
        if warn:
            lines += ["", *[f"WARNING {w}" for w in warn]]
        return "\n".join(lines)


def format_ratio(r: dict[str, Any]) -> str:
    """``a / b = 1.234 [1.201, 1.270] (thread_cpu, 200 rounds)`` plus ``within noise`` when the interval has 1."""
    noise = "  within noise" if r["within_noise"] else ""
    return (f"{r['a']} / {r['b']} = {r['ratio']:.3f} [{r['ratio_low']:.3f}, {r['ratio_high']:.3f}] "
            f"({r['clock']}, {r['rounds']} rounds){noise}")


def make_feed(specs: dict, batch: int, input_shape: Sequence[int] | None, seed: int = 0) -> dict[str, np.ndarray]:
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


def _source_names(paths: Sequence[Path]) -> list[str]:
    """Short unique names: the folder (or file) name, made unique with its parent where names repeat."""
    names = [p.name for p in paths]
    if len(set(names)) == len(names):
        return names
    names = [f"{p.parent.name}/{p.name}" for p in paths]
    return names if len(set(names)) == len(names) else [f"{i}:{n}" for i, n in enumerate(names)]


def _plan(paths: Sequence[Path], backends: Sequence[str], precisions: Sequence[str] | None,
          device: str) -> list[tuple[str, Path, sources.Source]]:
    out = []
    for name, path in zip(_source_names(paths), paths):
        plan = sources.plan_file(path, backends, device) if path.is_file() else sources.plan(path, backends,
                                                                                               precisions, device)
        out += [(name, path, s) for s in plan]
    return out


def _stats_row(side: SideBySide, label: str) -> dict[str, Any]:
    row = next(r for r in side.rows() if r["label"] == label)
    return {**row, "metric": "latency"}


def benchmark_latency(run_dir: str | os.PathLike | Sequence[str | os.PathLike], backends: Sequence[str] = ("ort",),
                      batches: Sequence[int] = (1,), precisions: Sequence[str] | None = None,
                      threads: int | None = None, warmup_s: float = 1.0, duration_s: float = 3.0, device: str = "cpu",
                      progress: bool = False, rounds: int | None = None) -> LatencyReport:
    """Measure every source × backend × precision side by side, batch by batch.

    Args:
        run_dir: one source or several: run folders written by export, or bare ``.onnx`` / ``.engine`` files.
            The first is the reference of the per-row ``ratio`` columns.
        backends: backend specs (``torch``, ``ort``, ``ort:cuda``, ``trt`` ...).
        batches: batch sizes; candidates are interleaved within a batch, ratios pair candidates of one batch.
        precisions: restrict to these (default: every precision a run has for that backend).
        threads: pinned intra-op threads where a backend takes them (1 → thread CPU time is recorded too).
        warmup_s: unmeasured interleaved rounds first, about ``warmup_s`` per candidate.
        duration_s: measuring time per candidate (the rounds run ``duration_s`` × candidates), unless ``rounds``.
        rounds: exactly this many measured rounds per batch.
        device: torch device for the ``torch`` backend.

    Raises:
        BackendUnavailable: a requested backend cannot run here (checked before anything is measured).
        InputError/ConfigError: missing files, bad batch sizes, precisions or rounds.
    """
    paths = [Path(p) for p in ([run_dir] if isinstance(run_dir, str | os.PathLike) else run_dir)]
    if not paths:
        raise ConfigError("no source given; pass one or more run folders or model files")
    if not batches or any(int(b) < 1 for b in batches):
        raise ConfigError(f"batch sizes must be ≥ 1, got {list(batches)}")
    if threads is not None and int(threads) < 1:
        raise ConfigError(f"--threads must be ≥ 1, got {threads}")
    if rounds is not None and int(rounds) < 2:
        raise ConfigError(f"--rounds must be ≥ 2 (an interval needs several paired rounds), got {rounds}")
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise InputError(f"'{missing[0]}' does not exist; give a run folder (train and export first) or a model file")
    planned = _plan(paths, backends, precisions, device)
    shapes = {name: sources.input_shape(path) for name, path, _ in planned}
    rows: list[dict[str, Any]] = []
    ratios: list[dict[str, Any]] = []
    reference = planned[0][0]
    with _opened(planned, threads) as opened:
        for b in (int(x) for x in batches):
            side = _measure_batch(opened, shapes, b, rounds, warmup_s, duration_s, progress)
            batch_rows = {}
            for cand in side.candidates:
                row = _stats_row(side, cand.label)
                batch_rows[cand.label] = row
                rows.append(row)
                rows.extend({**m.to_dict(), "metric": m.meta["metric"]} for m in side.stage_measurements(cand.label))
            pairs = side.ratios()
            ratios += [{**r.to_dict(), "batch": b} for r in pairs]
            if len(paths) > 1:
                _attach_reference_ratios(side, batch_rows, reference)
    method = {"warmup_s": float(warmup_s), "duration_s": float(duration_s), "rounds": rounds, "threads": threads,
              "clock": "wall: time.perf_counter_ns per call; thread CPU: time.thread_time_ns per call (backends "
              "running on the calling thread); TensorRT stages with CUDA events", "input": "seeded normal noise, "
              "the same array for every candidate of a batch", "sources": [str(p) for p in paths],
              "reference": reference, "machine": platform.platform(), "cpu_count": os.cpu_count(),
              "processor": platform.processor() or platform.machine(), **(side.method if planned else {})}
    return LatencyReport(rows, ratios, method)


class _opened:
    """Open every planned backend once (for all batches) and close them all, whatever happens."""

    def __init__(self, planned, threads):
        self.planned, self.threads, self.items = planned, threads, []

    def __enter__(self) -> list[tuple[str, Path, sources.Source, Any]]:
        try:
            for name, path, src in self.planned:
                self.items.append((name, path, src, sources.open_backend(src, threads=self.threads)))
        except BaseException:
            self.__exit__()
            raise
        return self.items

    def __exit__(self, *exc: object) -> None:
        for *_, be in self.items:
            be.close()


def _measure_batch(opened, shapes, batch: int, rounds, warmup_s: float, duration_s: float,
                   progress: bool) -> SideBySide:
    cands = []
    for name, path, src, be in opened:
        feed = make_feed({k: tuple(v) for k, v in be.input_specs.items()}, batch, shapes[name])
        label = f"{name} {src.backend} {src.precision} b{batch}"
        meta = {"source": name, "run": str(path) if path.is_dir() else None, "file": src.path.name,
                "backend": src.backend, "precision": src.precision, "batch": batch,
                "threads": be.info.get("threads"),
                "device": be.info.get("device") or ",".join(be.info.get("providers", [])) or src.backend}
        cands.append(Candidate(label, be.timed(feed), batch=batch, cpu_clock=be.in_caller_thread, meta=meta))
    n = len(cands)
    return interleave(cands, rounds=rounds, warmup_s=warmup_s * n, duration_s=duration_s * n, progress=progress)


def _attach_reference_ratios(side: SideBySide, rows: dict[str, dict[str, Any]], reference: str) -> None:
    """Each row's ratio to the reference source's candidate of the same backend × precision × batch."""
    key = {lab: (r["backend"], r["precision"], r["batch"]) for lab, r in rows.items()}
    ref = {key[lab]: lab for lab, r in rows.items() if r["source"] == reference}
    for lab, row in rows.items():
        other = ref.get(key[lab])
        if other is None:
            continue
        r: Ratio = side.ratio(lab, other)
        row.update(dict(zip(RATIO_COLUMNS, (reference, r.ratio, r.low, r.high, r.clock, r.within_noise))))
