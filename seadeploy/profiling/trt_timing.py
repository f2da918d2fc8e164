"""TensorRT stage timing with CUDA events: H2D, GPU compute, D2H (GPU clock) and enqueue (host clock).

The backend's three public phases (``stage_inputs`` / ``execute`` / ``fetch_outputs``) run on its
``stream``; an event is recorded on that stream between them, so each interval is what the GPU
spent on that phase. ``latency`` is the host wall time of the whole iteration (what a caller waits).
Works with a ``torch.cuda.Stream`` or a ``pycuda.driver.Stream`` (whichever the backend uses); the events and one
staged iteration live with the backend (:mod:`seadeploy.backends.trt_stages`), the repeated measurement here.
"""

from __future__ import annotations

import time
from typing import Any

from seadeploy.backends.base import check_feed
from seadeploy.backends.trt_stages import StageEvents, staged_iteration
from seadeploy.profiling.timing import Measurement


def measure_trt_stages(be: Any, feed: dict, *, warmup_s: float = 1.0, duration_s: float = 3.0, min_runs: int = 10,
                       label: str = "trt", meta: dict | None = None, progress: bool = False) -> list[Measurement]:
    """One :class:`Measurement` per metric (latency, enqueue, h2d, gpu_compute, d2h) of a ``TrtBackend``."""
    checked = check_feed(feed, be.input_specs, be.name)
    # Validation (NaN scan, dtype) is done once above so it does not land in the H2D interval.
    def stage(feed: dict) -> None:
        be.stage_inputs(feed, validate=False)

    ev = StageEvents(be.stream, 4)
    end = time.perf_counter() + warmup_s
    staged_iteration(be, checked, ev, stage)
    while time.perf_counter() < end:
        staged_iteration(be, checked, ev, stage)
    rows: dict[str, list[float]] = {k: [] for k in ("latency", "enqueue", "h2d", "gpu_compute", "d2h")}
    deadline = time.perf_counter() + duration_s
    while len(rows["latency"]) < min_runs or time.perf_counter() < deadline:
        for k, v in staged_iteration(be, checked, ev, stage).items():
            rows[k].append(v)
    batch = int(next(iter(checked.values())).shape[0])
    base = dict(meta or {})
    return [Measurement(v, batch=batch, label=f"{label} {k}", meta={**base, "metric": k}) for k, v in rows.items()]
