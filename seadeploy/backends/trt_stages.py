"""TensorRT stage timing with CUDA events, the backend's half: one staged iteration and the bare timed call.

The backend's three public phases (``stage_inputs`` / ``execute`` / ``fetch_outputs``) run on its ``stream``; an
event is recorded on that stream between them, so each interval is what the GPU spent on that phase. The
profiling side (:mod:`seadeploy.profiling.trt_timing`) repeats these iterations into measurements.
Works with a ``torch.cuda.Stream`` or a ``pycuda.driver.Stream`` (whichever the backend uses).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch


class StageEvents:
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


def staged_iteration(be: Any, feed: dict, ev: StageEvents, stage: Any) -> dict[str, float]:
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
    ev = StageEvents(be.stream, 4)

    def stage(feed: dict) -> None:
        be.stage_inputs(feed, validate=False)

    staged_iteration(be, checked, ev, stage)  # first call outside the timing (buffer allocation)

    def call() -> dict[str, float]:
        out = staged_iteration(be, checked, ev, stage)
        out.pop("latency")  # the caller's clock measures the whole call
        return out

    return call
