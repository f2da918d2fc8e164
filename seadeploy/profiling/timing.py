"""Latency measurements in the style of ``torch.utils.benchmark.Measurement`` and trtexec's summary.

A :class:`Measurement` keeps every per-iteration time and reports the median with IQR and
percentiles, never a bare mean; ``bool(m)`` is False when the run is too short or unstable
(coefficient of variation above ``unstable_cv``), and ``m.warnings`` says why.

>>> m = Measurement([1.0, 1.1, 0.9, 1.0], batch=8, label="ort fp32")
>>> round(m.median, 3), round(m.throughput, 1)
(1.0, 8000.0)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

#: Spread above which a measurement is flagged. trtexec warns above 1 % on a quiet GPU;
#: torch.utils.benchmark flags IQR/median above 10 %. A shared CPU is noisy, so 10 % is the default.
UNSTABLE_CV = 0.10
MIN_RUNS = 10
STAT_KEYS = ("runs", "min_ms", "mean_ms", "median_ms", "max_ms", "p90_ms", "p95_ms", "p99_ms", "iqr_ms", "std_ms",
             "cv", "throughput_ips")


@dataclasses.dataclass
class Measurement:
    """Per-iteration times (milliseconds) of one configuration, with robust statistics.

    Args:
        times_ms: one latency per iteration, in milliseconds.
        batch: samples per iteration (throughput counts samples per second).
        label: what was measured (``"ort fp32 b8"``).
        meta: anything to carry into tables (backend, precision, threads, warm-up...).
        unstable_cv: the CV above which ``warnings`` flags the run.
    """

    times_ms: Sequence[float]
    batch: int = 1
    label: str = ""
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    unstable_cv: float = UNSTABLE_CV

    def __post_init__(self) -> None:
        self.times_ms = np.asarray(self.times_ms, dtype=np.float64).ravel()
        if self.times_ms.size == 0:
            raise ValueError("a Measurement needs at least one time")

    def _q(self, q: float) -> float:
        return float(np.percentile(self.times_ms, q))

    @property
    def runs(self) -> int:
        return int(self.times_ms.size)

    @property
    def median(self) -> float:
        return self._q(50)

    @property
    def mean(self) -> float:
        return float(self.times_ms.mean())

    @property
    def min(self) -> float:
        return float(self.times_ms.min())

    @property
    def max(self) -> float:
        return float(self.times_ms.max())

    @property
    def std(self) -> float:
        return float(self.times_ms.std(ddof=1)) if self.runs > 1 else 0.0

    @property
    def iqr(self) -> float:
        return self._q(75) - self._q(25)

    @property
    def cv(self) -> float:
        """Coefficient of variation, std / mean."""
        return self.std / self.mean if self.mean > 0 else float("nan")

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0–100) in milliseconds."""
        return self._q(q)

    @property
    def throughput(self) -> float:
        """Samples per second at the median latency."""
        return self.batch * 1000.0 / self.median if self.median > 0 else float("nan")

    @property
    def warnings(self) -> list[str]:
        out = []
        if self.runs < MIN_RUNS:
            out.append(f"only {self.runs} runs (< {MIN_RUNS}); increase --duration-s")
        if self.cv == self.cv and self.cv > self.unstable_cv:
            out.append(f"unstable: coefficient of variation {100 * self.cv:.1f}% > {100 * self.unstable_cv:.0f}% "
                       f"(noisy machine? pin --threads, close other jobs, raise --duration-s)")
        return out

    def __bool__(self) -> bool:
        return not self.warnings

    def stats(self) -> dict[str, float]:
        """The summary numbers (``STAT_KEYS``)."""
        return {"runs": self.runs, "min_ms": self.min, "mean_ms": self.mean, "median_ms": self.median,
                "max_ms": self.max, "p90_ms": self._q(90), "p95_ms": self._q(95), "p99_ms": self._q(99),
                "iqr_ms": self.iqr, "std_ms": self.std, "cv": self.cv, "throughput_ips": self.throughput}

    def to_dict(self) -> dict[str, Any]:
        return {**self.meta, "label": self.label, "batch": self.batch, **self.stats(),
                "stable": bool(self), "warnings": "; ".join(self.warnings)}

    def to_frame(self) -> pd.DataFrame:
        """One row: meta, label, batch, the statistics, ``stable`` and the warnings."""
        return pd.DataFrame([self.to_dict()])

    def __repr__(self) -> str:
        flag = "" if self else f"  WARNING: {'; '.join(self.warnings)}"
        return (f"<Measurement {self.label or ''} median {self.median:.3f} ms, IQR {self.iqr:.3f} ms, "
                f"{self.runs} runs{flag}>")


def measure(fn: Callable[[], Any], *, warmup_s: float = 1.0, duration_s: float = 3.0, min_runs: int = MIN_RUNS,
            max_runs: int = 100_000, batch: int = 1, label: str = "", meta: dict[str, Any] | None = None,
            progress: bool = False) -> Measurement:
    """Time ``fn()`` repeatedly: warm up for ``warmup_s``, then run for ``duration_s`` (at least ``min_runs``).

    Each iteration is timed on its own with ``time.perf_counter`` (host wall clock; ``fn`` must
    synchronise any device work it starts).
    """
    end = time.perf_counter() + max(0.0, warmup_s)
    fn()  # at least one warm-up call: lazy initialisation must not land in the first sample
    while time.perf_counter() < end:
        fn()
    times: list[float] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=None, desc=label or "timing", unit="it", leave=False)
    deadline = time.perf_counter() + max(0.0, duration_s)
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return Measurement(times, batch=batch, label=label, meta=dict(meta or {}))
