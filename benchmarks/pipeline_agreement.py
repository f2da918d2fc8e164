"""Analytic pipeline model vs the discrete-event simulator on zoo backbones × {none, se, tse@tiles}.

    python benchmarks/pipeline_agreement.py                                   # every zoo backbone, tiles 2,4,7
    python benchmarks/pipeline_agreement.py --models resnet20_cifar,efficientnet_b0 --input-size 64

Per variant: differences in II, fill and frame latency (steady state and first frame) in input-row
periods (target ≤ 1), the largest per-FIFO difference in rows (target ≤ 1), throughput with FIFOs at
the analytic depths (target ≥ 99.9 % of unbounded, no deadlock; ``auto_blocked``: the simulator's blocked
cycles there, 0 when the depths are zero-stall), and for every attention skip FIFO
shrunk by one row whether the simulator stalls or deadlocks (``--shrink all|ends|none``). Deterministic:
no timing. Each variant is exported once (TSE "global" is SE).
"""

from __future__ import annotations

import argparse
import math
import tempfile

import pandas as pd

from seadeploy.dataflow.bounded import resolve_depths
from seadeploy.dataflow.hardware import Graph, Hardware
from seadeploy.dataflow.pipeline import analyse_pipeline
from seadeploy.dataflow.simulate_rows import simulate
from seadeploy.models import list_models
from seadeploy.profiling.summaries import model_onnx


def variants(tiles: list[str]) -> list[tuple[str, dict]]:
    out = [("none", {}), ("se", {})]
    out += [("tse", {"tile": int(t)}) for t in tiles if t != "global"]
    return out


def check(g: Graph, hw: Hardware, shrink: str) -> dict:
    r = analyse_pipeline(g, hardware=hw)
    f = r.figures
    period = f["input_row_period_cycles"]
    free = simulate(g, hw)
    row = {"II": abs(f["initiation_interval_cycles"] - free.initiation_interval_cycles) / period,
           "fill": abs(f["fill_latency_cycles"] - free.fill_latency_cycles) / period,
           "frame": abs(f["frame_latency_cycles"] - free.frame_latency_cycles) / period,
           "fill0": abs(f["first_frame_fill_latency_cycles"] - free.first_frame[0]) / period,
           "frame0": abs(f["first_frame_latency_cycles"] - free.first_frame[1]) / period,
           "frames": free.frames, "II_cycles": f["initiation_interval_cycles"]}
    fifo_rows = [abs(int(x.fifo_rows) - free.fifo_rows.get((x.node, int(x.input_index)), 0)) for x in r.fifos.itertuples()]
    row["fifo_rows"] = max(fifo_rows, default=0)
    depths = resolve_depths(r, "auto")
    bounded = simulate(g, hw, depths)
    row["auto_deadlock"] = bounded.deadlock
    row["auto_blocked"] = sum(v["blocked"] for v in bounded.stalls.values())  # cycles; 0 = zero stall at those depths
    row["auto_throughput"] = (free.initiation_interval_cycles / bounded.initiation_interval_cycles
                              if not bounded.deadlock else 0.0)
    skips = r.fifos[(r.fifos["kind"] == "join") & r.fifos["block"].notna() & (r.fifos["fifo_rows"] > 1)]
    skips = skips.sort_values("fifo_rows").drop_duplicates("node", keep="last")  # the feature-map operand
    if shrink == "ends" and len(skips) > 2:
        skips = skips.iloc[[0, -1]]
    caught = 0
    tried = 0
    if shrink != "none":
        for x in skips.itertuples():
            key = (x.node, int(x.input_index))
            s = simulate(g, hw, {**depths, key: depths[key] - 1}, frames=bounded.frames)
            tried += 1
            caught += bool(s.deadlock or sum(v["blocked"] for v in s.stalls.values()) > 0)
    row["shrunk_caught"] = f"{caught}/{tried}"
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=None, help="comma list (default: every zoo backbone)")
    p.add_argument("--tiles", default="2,4,7,global")
    p.add_argument("--input-size", type=int, default=None, help="default: each model's own")
    p.add_argument("--macs-per-cycle", type=float, default=4096)
    p.add_argument("--shrink", choices=("all", "ends", "none"), default="all")
    a = p.parse_args()
    hw = Hardware(macs_per_cycle=a.macs_per_cycle)
    models = a.models.split(",") if a.models else list_models()
    rows = []
    with tempfile.TemporaryDirectory(prefix="pipeline-agreement-") as tmp:
        for model in models:
            for attn, kw in variants(a.tiles.split(",")):
                try:
                    g = Graph.load(model_onnx(model, attn, kw, a.input_size, tmp))
                except Exception as exc:  # a backbone without this attention option: say so, go on
                    print(f"{model} {attn} {kw}: skipped ({str(exc).splitlines()[0]})")
                    continue
                row = {"model": model, "attn": attn if attn != "tse" else f"tse{kw['tile']}", **check(g, hw, a.shrink)}
                rows.append(row)
                print(pd.DataFrame([row]).to_string(index=False, header=len(rows) == 1,
                                                   float_format=lambda v: f"{v:.3g}"), flush=True)
    df = pd.DataFrame(rows)
    print("\nagreement (differences in input-row periods; FIFO in rows):")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    worst = {k: float(df[k].max()) for k in ("II", "fill", "frame", "fill0", "frame0", "fifo_rows")}
    print("largest differences:", {k: round(v, 4) for k, v in worst.items()},
          f"| min throughput at analytic depths {df['auto_throughput'].min():.5f}",
          f"| deadlocks at analytic depths {int(df['auto_deadlock'].sum())}",
          f"| variants blocked at analytic depths {int((df['auto_blocked'] > 0).sum())}")
    ok = all(v <= 1 + 1e-9 for v in worst.values()) and df["auto_throughput"].min() >= 0.999 and not math.isnan(
        df["auto_throughput"].min())
    print("targets met" if ok else "TARGETS MISSED")


if __name__ == "__main__":
    main()
