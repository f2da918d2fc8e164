"""The pixel model against its independent simulator: II, latencies and FIFO depths side by side."""

from __future__ import annotations

import math
from typing import Any

from seadeploy.dataflow.pixel_pipeline import PixelReport
from seadeploy.dataflow.simulate_pixel import PixelSim, simulate_pixel


def simulate_report(report: PixelReport, depths: dict[tuple[str, int], int] | None = None,
                    frames: int | None = None) -> PixelSim:
    """Simulate the report's design (its folding and latencies) for as many frames as the analytic model computed."""
    d = report.design
    folding = {s.name: (s.fold.pe, s.fold.simd) for s in d.stages}
    latency = {s.name: s.latency for s in d.stages}
    return simulate_pixel(d.graph.model, folding, latency, depths, frames or report.figures["frames_computed"])


def compare_pixel(report: PixelReport, depths: dict[tuple[str, int], int] | None = None) -> tuple[dict, PixelSim]:
    """Differences analytic − simulated: ``*_diff_positions`` in input-position periods (target ≤ 1), the largest
    FIFO difference in positions and in words (target ≤ one position's words)."""
    sim = simulate_report(report, depths)
    f = report.figures
    period = f["input_position_period_cycles"]
    out: dict[str, Any] = {"simulated": sim.summary(), "deadlock": sim.deadlock}
    for key in ("initiation_interval_cycles", "fill_latency_cycles", "frame_latency_cycles",
                "first_frame_latency_cycles"):
        got = sim.first_frame[1] if key.startswith("first") else getattr(sim, key)
        diff = abs(f[key] - got) if not sim.deadlock else math.nan
        out[key.replace("_cycles", "_diff_cycles")] = diff
        out[key.replace("_cycles", "_diff_positions")] = diff / period
    worst, worst_words, worst_wpp = 0, 0, 1
    for r in report.fifos.itertuples():
        d = abs(int(r.fifo_positions) - sim.fifo_positions.get((r.node, int(r.input_index)), 0))
        if d * int(r.words_per_position) > worst_words:
            worst, worst_words, worst_wpp = d, d * int(r.words_per_position), int(r.words_per_position)
    out.update({"fifo_max_diff_positions": worst, "fifo_max_diff_words": worst_words,
                "fifo_max_diff_words_per_position": worst_wpp,
                "blocked": {n: b for n, b in sim.blocked.items() if b > 0}})
    return out, sim
