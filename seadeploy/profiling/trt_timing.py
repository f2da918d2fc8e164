"""TensorRT stage timing with CUDA events: H2D, GPU compute, D2H (GPU clock) and enqueue (host clock).

The backend's three public phases (``stage_inputs`` / ``execute`` / ``fetch_outputs``) run on its
``stream``; an event is recorded on that stream between them, so each interval is what the GPU
spent on that phase. ``latency`` is the host wall time of the whole iteration (what a caller waits).
Works with a ``torch.cuda.Stream`` or a ``pycuda.driver.Stream`` (whichever the backend uses).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from seadeploy.backends.base import check_feed
from seadeploy.profiling.timing import Measurement


class _Events:
    """``record(i)`` / ``elapsed(i, j)`` over one set of CUDA events, torch or pycuda flavoured."""

    def __init__(self, stream: Any, n: int) -> None:
        self.stream = stream
        if type(stream).__module__.startswith("torch"):
            self.events = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
            self._elapsed = lambda a, b: a.elapsed_time(b)
        else:
            import pycuda.driver as cuda  # noqa: PLC0415  optional GPU library, imported only when this runs

            self.events = [cuda.Event() for _ in range(n)]
            self._elapsed = lambda a, b: b.time_since(a)

    def record(self, i: int) -> None:
        self.events[i].record(self.stream)

    def synchronize(self) -> None:
        self.events[-1].synchronize()

    def elapsed(self, i: int, j: int) -> float:
        return float(self._elapsed(self.events[i], self.events[j]))


def _iteration(be: Any, feed: dict, ev: _Events, stage: Any) -> dict[str, float]:
    t0 = time.perf_counter()
    ev.record(0)
    stage(feed)
    ev.record(1)
    q0 = time.perf_counter()
    be.execute()
    q1 = time.perf_counter()
    ev.record(2)
    be.fetch_outputs()
    ev.record(3)
    ev.synchronize()
    t1 = time.perf_counter()
    return {"latency": (t1 - t0) * 1e3, "enqueue": (q1 - q0) * 1e3, "h2d": ev.elapsed(0, 1),
            "gpu_compute": ev.elapsed(1, 2), "d2h": ev.elapsed(2, 3)}


def stage_call(be: Any, checked: dict) -> Callable[[], dict[str, float]]:
    """A bare timed call for the side-by-side core: one staged iteration, returning its stage times (ms).

    ``checked`` is a feed already validated (``check_feed``), so validation never lands in the H2D interval.
    """
    ev = _Events(be.stream, 4)

    def stage(feed: dict) -> None:
        be.stage_inputs(feed, validate=False)

    _iteration(be, checked, ev, stage)  # first call outside the timing (buffer allocation)

    def call() -> dict[str, float]:
        out = _iteration(be, checked, ev, stage)
        out.pop("latency")  # the caller's clock measures the whole call
        return out

    return call


def measure_trt_stages(be: Any, feed: dict, *, warmup_s: float = 1.0, duration_s: float = 3.0, min_runs: int = 10,
                       label: str = "trt", meta: dict | None = None, progress: bool = False) -> list[Measurement]:
    """One :class:`Measurement` per metric (latency, enqueue, h2d, gpu_compute, d2h) of a ``TrtBackend``."""
    checked = check_feed(feed, be.input_specs, be.name)
    # Validation (NaN scan, dtype) is done once above so it does not land in the H2D interval.
    def stage(feed: dict) -> None:
        be.stage_inputs(feed, validate=False)

    ev = _Events(be.stream, 4)
    end = time.perf_counter() + warmup_s
    _iteration(be, checked, ev, stage)
    while time.perf_counter() < end:
        _iteration(be, checked, ev, stage)
    rows: dict[str, list[float]] = {k: [] for k in ("latency", "enqueue", "h2d", "gpu_compute", "d2h")}
    deadline = time.perf_counter() + duration_s
    while len(rows["latency"]) < min_runs or time.perf_counter() < deadline:
        for k, v in _iteration(be, checked, ev, stage).items():
            rows[k].append(v)
    batch = int(next(iter(checked.values())).shape[0])
    base = dict(meta or {})
    return [Measurement(v, batch=batch, label=f"{label} {k}", meta={**base, "metric": k}) for k, v in rows.items()]
