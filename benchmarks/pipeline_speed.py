"""Speed of the analytic pipeline model and of the simulator on one model (default efficientnet_b2 @ 768 SE).

    OMP_NUM_THREADS=1 python benchmarks/pipeline_speed.py                       # exports once, then times
    OMP_NUM_THREADS=1 python benchmarks/pipeline_speed.py --onnx model.onnx --rounds 3

Process CPU time (``time.process_time``; single-threaded Python + numpy with OMP_NUM_THREADS=1) and
wall time per round; analytic and simulation rounds are interleaved; medians with min–max. Also
prints the infinite-speed limit of the attention buffering (service times × 0), which must equal the
buffer model's figure. The export is not timed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from seadeploy.dataflow.buffers import analyse_buffers
from seadeploy.dataflow.hardware import Graph, Hardware
from seadeploy.dataflow.pipeline import analyse_pipeline
from seadeploy.dataflow.simulate_rows import simulate
from seadeploy.profiling.summaries import model_onnx


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.process_time() - c, time.perf_counter() - w


def spread(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} s (min {min(xs):.2f}, max {max(xs):.2f}, n={len(xs)})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="efficientnet_b2")
    p.add_argument("--attn", default="se")
    p.add_argument("--tile", type=int, default=None)
    p.add_argument("--input-size", type=int, default=768)
    p.add_argument("--onnx", default=None, help="time this file instead of exporting the model")
    p.add_argument("--rounds", type=int, default=1, help="simulation rounds (analytic: 3 per simulation round)")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="pipeline-speed-") as tmp:
        path = a.onnx or model_onnx(a.model, a.attn, {"tile": a.tile} if a.tile else {}, a.input_size, tmp)
        hw = Hardware()
        ana_cpu, ana_wall, sim_cpu, sim_wall = [], [], [], []
        for _ in range(a.rounds):
            for _ in range(3):
                rep, c, w = timed(lambda: analyse_pipeline(path, hardware=hw))
                ana_cpu.append(c)
                ana_wall.append(w)
            g = Graph.load(path)
            sim, c, w = timed(lambda g=g: simulate(g, hw))
            sim_cpu.append(c)
            sim_wall.append(w)
        limit = analyse_pipeline(path, hardware=hw, service_scale=0.0).figures["attention_buffer_elements"]
        buffers = analyse_buffers(path).attention_buffer_elements
    f = rep.figures
    print(f"{a.onnx or f'{a.model} attn={a.attn} tile={a.tile} @ {a.input_size}'}")
    print(f"analytic (load + model): cpu {spread(ana_cpu)}, wall {spread(ana_wall)}")
    print(f"simulator ({sim.frames} frames, {sim.events:,} events; graph loaded outside): cpu {spread(sim_cpu)}, "
          f"wall {spread(sim_wall)}")
    print(f"II {f['initiation_interval_cycles']:,.0f} vs simulated {sim.initiation_interval_cycles:,.0f} cycles; "
          f"frame latency {f['frame_latency_cycles']:,.0f} vs {sim.frame_latency_cycles:,.0f}")
    print(f"t→0 attention buffering {limit:,} elements; buffer model {buffers:,} "
          f"({'equal' if limit == buffers else 'DIFFERENT'})")


if __name__ == "__main__":
    main()
