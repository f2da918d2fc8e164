"""Speed of the analytic pipeline model and of the simulator on one model (default efficientnet_b2 @ 768 SE).

    OMP_NUM_THREADS=1 python benchmarks/pipeline_speed.py                       # exports once, then times
    OMP_NUM_THREADS=1 python benchmarks/pipeline_speed.py --onnx model.onnx --rounds 3
    OMP_NUM_THREADS=1 python benchmarks/pipeline_speed.py --granularity pixel --model resnet50 --attn none \
        --input-size 224 --folding benchmarks/folding_resnet50_224.json --frames 3     # targets: < 10 s, < 2 min

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
from seadeploy.dataflow.folding import read_folding
from seadeploy.dataflow.hardware import Graph, Hardware
from seadeploy.dataflow.pipeline import analyse_pipeline
from seadeploy.dataflow.pixel_check import simulate_report
from seadeploy.dataflow.pixel_pipeline import analyse_pixel
from seadeploy.dataflow.simulate_rows import simulate
from seadeploy.profiling.summaries import model_onnx


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.process_time() - c, time.perf_counter() - w


def spread(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} s (min {min(xs):.2f}, max {max(xs):.2f}, n={len(xs)})"


def main_pixel(a, path: str) -> None:
    """Pixel granularity: the analytic model (graph load included) and a simulation of ``--frames`` frames."""
    hw = Hardware(macs_per_cycle=a.macs_per_cycle)
    folding = read_folding(a.folding) if a.folding else None
    ana_cpu, ana_wall, sim_cpu, sim_wall = [], [], [], []
    for _ in range(a.rounds):
        rep, c, w = timed(lambda: analyse_pixel(path, hardware=hw, folding=folding))
        ana_cpu.append(c)
        ana_wall.append(w)
        sim, c, w = timed(lambda rep=rep: simulate_report(rep, frames=a.frames))
        sim_cpu.append(c)
        sim_wall.append(w)
    f = rep.figures
    print(f"{a.onnx or f'{a.model} attn={a.attn} tile={a.tile} @ {a.input_size}'}, pixel granularity, "
          f"{'folding ' + a.folding if a.folding else f'folded to {a.macs_per_cycle:g} MACs/cycle'}")
    print(f"analytic (load + model, {f['frames_computed']} frames): cpu {spread(ana_cpu)}, wall {spread(ana_wall)}")
    print(f"simulator ({sim.frames} frames, {sim.events:,} events): cpu {spread(sim_cpu)}, wall {spread(sim_wall)}")
    print(f"II {f['initiation_interval_cycles']:,.0f} vs simulated {sim.initiation_interval_cycles:,.0f} cycles; "
          f"frame latency {f['frame_latency_cycles']:,.0f} (steady) / first frame {f['first_frame_latency_cycles']:,.0f}"
          f" vs simulated first frame {sim.first_frame[1]:,.0f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="efficientnet_b2")
    p.add_argument("--attn", default="se")
    p.add_argument("--tile", type=int, default=None)
    p.add_argument("--input-size", type=int, default=768)
    p.add_argument("--onnx", default=None, help="time this file instead of exporting the model")
    p.add_argument("--rounds", type=int, default=1, help="simulation rounds (analytic: 3 per simulation round)")
    p.add_argument("--granularity", choices=("row", "pixel"), default="row")
    p.add_argument("--folding", default=None, help="pixel: a folding file (default: folded to --macs-per-cycle)")
    p.add_argument("--macs-per-cycle", type=float, default=4096)
    p.add_argument("--frames", type=int, default=3, help="pixel: simulated frames")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="pipeline-speed-") as tmp:
        attn = None if a.attn == "none" else a.attn
        path = a.onnx or model_onnx(a.model, attn, {"tile": a.tile} if a.tile else {}, a.input_size, tmp)
        if a.granularity == "pixel":
            main_pixel(a, str(path))
            return
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
