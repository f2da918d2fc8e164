"""Latency measurements in the style of ``torch.utils.benchmark.Measurement`` and trtexec's summary.

A :class:`Measurement` keeps every per-iteration time and reports the median with IQR and
percentiles, never a bare mean; ``bool(m)`` is False when the run is too short or unstable
(IQR / median above ``UNSTABLE_SPREAD``, torch.utils.benchmark's rule), and ``m.warnings`` says why.

The side-by-side core, :func:`interleave`, times several candidates in one process in rounds
(A B C, B C A, C A B, ...: each round runs every candidate once, the starting candidate rotates so no
candidate always follows the same one) with the same inputs and thread settings. It records wall time
and, where the candidate's work all runs on the calling thread (CPU, one intra-op thread), thread CPU
time (``time.thread_time_ns``), which other processes cannot inflate. :meth:`SideBySide.ratio` gives the
median of the paired per-round ratios with a bootstrap confidence interval, and says which clock it used.

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
from tqdm import tqdm

#: Spread (IQR / median) above which a measurement is flagged: torch.utils.benchmark's rule
#: (``Measurement.has_warnings``: IQR/median > 10 %). std/mean is not used: one preempted run inflates it.
UNSTABLE_SPREAD = 0.10
UNSTABLE_CV = UNSTABLE_SPREAD  # the former name of the threshold
MIN_RUNS = 10
#: two-sided confidence of ratio intervals, and bootstrap resamples
CONFIDENCE = 0.95
BOOTSTRAP = 2000
STAT_KEYS = ("runs", "min_ms", "mean_ms", "median_ms", "max_ms", "p10_ms", "p25_ms", "p75_ms", "p90_ms", "p95_ms",
             "p99_ms", "iqr_ms", "std_ms", "cv", "spread", "throughput_ips")


@dataclasses.dataclass
class Measurement:
    """Per-iteration times (milliseconds) of one configuration, with robust statistics.

    Args:
        times_ms: one latency per iteration, in milliseconds.
        batch: samples per iteration (throughput counts samples per second).
        label: what was measured (``"ort fp32 b8"``).
        meta: anything to carry into tables (backend, precision, threads, warm-up...).
        unstable_spread: the IQR / median above which ``warnings`` flags the run.
    """

    times_ms: Sequence[float]
    batch: int = 1
    label: str = ""
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    unstable_spread: float = UNSTABLE_SPREAD

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
        """Coefficient of variation, std / mean (reported; stability is judged by ``spread``)."""
        return self.std / self.mean if self.mean > 0 else float("nan")

    @property
    def spread(self) -> float:
        """IQR / median: the stability figure (robust to the odd preempted run)."""
        return self.iqr / self.median if self.median > 0 else float("nan")

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
        if self.spread == self.spread and self.spread > self.unstable_spread:
            out.append(f"unstable: IQR/median {100 * self.spread:.1f}% > {100 * self.unstable_spread:.0f}% "
                       f"(noisy machine? pin --threads 1, close other jobs, raise --rounds)")
        return out

    def __bool__(self) -> bool:
        return not self.warnings

    def stats(self) -> dict[str, float]:
        """The summary numbers (``STAT_KEYS``)."""
        return {"runs": self.runs, "min_ms": self.min, "mean_ms": self.mean, "median_ms": self.median,
                "max_ms": self.max, "p10_ms": self._q(10), "p25_ms": self._q(25), "p75_ms": self._q(75),
                "p90_ms": self._q(90), "p95_ms": self._q(95), "p99_ms": self._q(99), "iqr_ms": self.iqr,
                "std_ms": self.std, "cv": self.cv, "spread": self.spread, "throughput_ips": self.throughput}

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


# ------------------------------------------------------------------------------------ side by side
@dataclasses.dataclass
class Candidate:
    """One thing to time side by side.

    Args:
        label: unique name in tables (``"se ort int8 b1"``).
        call: the bare call (``Backend.timed(feed)``); it may return ``{stage: ms}`` extra figures.
        batch: samples per call. cpu_clock: all the call's work runs on the calling thread, so thread
            CPU time measures it (``Backend.in_caller_thread``). meta: carried into rows.
    """

    label: str
    call: Callable[[], Any]
    batch: int = 1
    cpu_clock: bool = False
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Ratio:
    """``a / b`` from paired rounds: the median of per-round ratios with a bootstrap confidence interval."""

    a: str
    b: str
    clock: str  # "thread_cpu" or "wall"
    ratio: float
    low: float
    high: float
    rounds: int
    confidence: float = CONFIDENCE

    @property
    def within_noise(self) -> bool:
        """True when the interval includes 1: the data do not show a difference."""
        return bool(self.low <= 1.0 <= self.high)

    def describe(self) -> str:
        noise = "  within noise" if self.within_noise else ""
        return (f"{self.a} / {self.b} = {self.ratio:.3f} [{self.low:.3f}, {self.high:.3f}] "
                f"({self.clock}, {self.rounds} rounds){noise}")

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "clock": self.clock, "ratio": self.ratio, "ratio_low": self.low,
                "ratio_high": self.high, "confidence": self.confidence, "rounds": self.rounds,
                "within_noise": self.within_noise}


def ratio_interval(a: np.ndarray, b: np.ndarray, *, confidence: float = CONFIDENCE, resamples: int = BOOTSTRAP,
                   seed: int = 0) -> tuple[float, float, float]:
    """``(median ratio, low, high)`` of paired samples ``a[i] / b[i]``: percentile bootstrap over rounds.

    Pairing cancels what both candidates of a round shared (a busy machine slows both); the median keeps
    one preempted round from moving the estimate. Hand-written because numpy has no bootstrap and
    scipy.stats.bootstrap would be a dependency for ten lines.
    """
    r = np.asarray(a, dtype=np.float64) / np.asarray(b, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    meds = np.median(r[rng.integers(0, r.size, size=(int(resamples), r.size))], axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(meds, [tail, 100 - tail])
    return float(np.median(r)), float(low), float(high)


@dataclasses.dataclass
class SideBySide:
    """Per-round times of candidates timed interleaved: ``wall_ms[round, candidate]``, ``cpu_ms`` likewise
    (NaN for candidates whose work leaves the calling thread), ``stages[candidate][stage]`` per round."""

    candidates: list[Candidate]
    wall_ms: np.ndarray
    cpu_ms: np.ndarray
    stages: list[dict[str, list[float]]]
    method: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def rounds(self) -> int:
        return int(self.wall_ms.shape[0])

    def index(self, label: str) -> int:
        for i, c in enumerate(self.candidates):
            if c.label == label:
                return i
        raise KeyError(label)

    def clock(self, *labels: str) -> str:
        """``thread_cpu`` when every candidate named has a thread CPU time, else ``wall``."""
        return "thread_cpu" if all(self.candidates[self.index(x)].cpu_clock for x in labels) else "wall"

    def measurement(self, label: str, clock: str = "wall") -> Measurement:
        i = self.index(label)
        c = self.candidates[i]
        times = self.cpu_ms[:, i] if clock == "thread_cpu" else self.wall_ms[:, i]
        return Measurement(times, batch=c.batch, label=c.label, meta={**c.meta, "clock": clock})

    def stage_measurements(self, label: str) -> list[Measurement]:
        """Extra per-call figures the candidate returned (TensorRT's H2D / compute / D2H ...)."""
        c = self.candidates[self.index(label)]
        return [Measurement(v, batch=c.batch, label=f"{c.label} {k}", meta={**c.meta, "metric": k})
                for k, v in self.stages[self.index(label)].items() if v]

    def ratio(self, a: str, b: str, *, confidence: float = CONFIDENCE, seed: int = 0) -> Ratio:
        """``a / b`` on thread CPU time when both have it, else on wall time (``Ratio.clock`` says which)."""
        clock = self.clock(a, b)
        times = self.cpu_ms if clock == "thread_cpu" else self.wall_ms
        med, low, high = ratio_interval(times[:, self.index(a)], times[:, self.index(b)], confidence=confidence,
                                        seed=seed)
        return Ratio(a, b, clock, med, low, high, self.rounds, confidence)

    def ratios(self, pairs: Sequence[tuple[str, str]] | None = None) -> list[Ratio]:
        """Every pair (later / earlier candidate), or the ``pairs`` given."""
        labels = [c.label for c in self.candidates]
        pairs = pairs if pairs is not None else [(labels[j], labels[i]) for i in range(len(labels))
                                                 for j in range(i + 1, len(labels))]
        return [self.ratio(a, b) for a, b in pairs]

    def rows(self) -> list[dict[str, Any]]:
        """One row per candidate: its meta, wall statistics, and ``cpu_*`` statistics where measured.

        ``clock`` is the figure its ratios use (thread CPU time when it has one); ``stable`` and ``warnings``
        judge that figure, since a busy machine inflates wall time but not the thread's CPU time.
        """
        out = []
        for c in self.candidates:
            wall = self.measurement(c.label)
            row = {**wall.to_dict(), "clock": "wall"}
            if c.cpu_clock:
                cpu = self.measurement(c.label, "thread_cpu")
                row.update({f"cpu_{k}": v for k, v in cpu.stats().items() if k.endswith("_ms") or k == "spread"})
                row.update({"clock": "thread_cpu", "stable": bool(cpu),
                            "warnings": "; ".join(f"thread CPU time {w}" for w in cpu.warnings),
                            "wall_stable": bool(wall)})
            out.append(row)
        return out


def interleave(candidates: Sequence[Candidate], *, rounds: int | None = None, warmup_rounds: int = 1,
               warmup_s: float = 0.0, duration_s: float = 3.0, min_rounds: int = MIN_RUNS,
               max_rounds: int = 100_000, progress: bool = False) -> SideBySide:
    """Time ``candidates`` side by side in one process: every round runs each once, rotating who starts.

    Args:
        rounds: exactly this many measured rounds; default: rounds until ``duration_s`` (at least ``min_rounds``).
        warmup_rounds / warmup_s: unmeasured rounds first (at least ``warmup_rounds``, and until ``warmup_s``).

    Each call is timed alone with ``time.perf_counter_ns`` (wall) and ``time.thread_time_ns`` (CPU time of
    this thread; used only for candidates with ``cpu_clock``). The calls must synchronise device work.
    """
    cands = list(candidates)
    labels = [c.label for c in cands]
    if not cands:
        raise ValueError("interleave needs at least one candidate")
    if len(set(labels)) != len(labels):
        raise ValueError(f"candidate labels must be unique, got {labels}")
    n = len(cands)
    end = time.perf_counter() + max(0.0, warmup_s)
    done = 0
    while done < max(1, warmup_rounds) or time.perf_counter() < end:
        for k in range(n):
            cands[(done + k) % n].call()
        done += 1
    wall: list[list[float]] = []
    cpu: list[list[float]] = []
    stages: list[dict[str, list[float]]] = [{} for _ in cands]
    bar = None
    if progress:
        bar = tqdm(total=rounds, desc="rounds", unit="round", leave=False)
    deadline = time.perf_counter() + max(0.0, duration_s)
    r = 0
    while (r < rounds) if rounds is not None else (r < max_rounds and (r < min_rounds or time.perf_counter() < deadline)):
        w, c = [0.0] * n, [0.0] * n
        for k in range(n):
            i = (r + k) % n
            t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
            extra = cands[i].call()
            c1, t1 = time.thread_time_ns(), time.perf_counter_ns()
            w[i], c[i] = (t1 - t0) / 1e6, (c1 - c0) / 1e6
            if isinstance(extra, dict):
                for key, v in extra.items():
                    stages[i].setdefault(key, []).append(float(v))
        wall.append(w)
        cpu.append(c)
        r += 1
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    wall_ms = np.asarray(wall, dtype=np.float64).reshape(-1, n)
    cpu_ms = np.asarray(cpu, dtype=np.float64).reshape(-1, n)
    cpu_ms[:, [i for i, cd in enumerate(cands) if not cd.cpu_clock]] = np.nan
    method = {"order": "interleaved rounds, rotating start", "rounds": int(wall_ms.shape[0]),
              "warmup_rounds": done, "clocks": "time.perf_counter_ns (wall); time.thread_time_ns (thread CPU, "
              "candidates whose work runs on the calling thread)", "ratio": "median of paired per-round ratios, "
              f"{int(100 * CONFIDENCE)}% percentile bootstrap interval ({BOOTSTRAP} resamples); thread CPU time "
              "when both candidates have it, else wall time", "stability": f"IQR/median <= {UNSTABLE_SPREAD:.0%}"}
    return SideBySide(cands, wall_ms, cpu_ms, stages, method)
