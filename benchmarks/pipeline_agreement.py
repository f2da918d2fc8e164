"""Analytic pipeline model vs the discrete-event simulator on zoo backbones × {none, se, tse@tiles}.

    python benchmarks/pipeline_agreement.py                                   # every zoo backbone, tiles 2,4,7
    python benchmarks/pipeline_agreement.py --models resnet20_cifar,efficientnet_b0 --input-size 64
    python benchmarks/pipeline_agreement.py --granularity pixel --input-size 64   # positions, FINN-style folding

Per variant: differences in II, fill and frame latency (steady state and first frame) in input-row
periods (target ≤ 1), the largest per-FIFO difference in rows (target ≤ 1), throughput with FIFOs at
the analytic depths (target ≥ 99.9 % of unbounded, no deadlock; ``auto_blocked``: the simulator's blocked
cycles there, 0 when the depths are zero-stall), and for every attention skip FIFO
shrunk by one row whether the simulator stalls or deadlocks (``--shrink all|ends|none``). Deterministic:
no timing. Each variant is exported once (TSE "global" is SE).

``--granularity pixel``: the position model (seadeploy.dataflow.pixel) against its independent simulator
(seadeploy.dataflow.simulate_pixel): II difference in cycles (target 0), fill and frame latency in input-position
periods (target ≤ 1), the largest FIFO difference in positions and words (target ≤ one position), blocked cycles
and deadlocks at the analytic depths (target 0), and for bypass FIFOs set one position below their lead whether
the simulator deadlocks or stalls (every bypass on the first ``--shrink-all`` models, first and last on the rest).
"""

from __future__ import annotations

import argparse
import math
import tempfile

import pandas as pd

from seadeploy.dataflow.bounded import resolve_depths
from seadeploy.dataflow.hardware import Graph, Hardware
from seadeploy.dataflow.pipeline import analyse_pipeline
from seadeploy.dataflow.pixel_check import compare_pixel, simulate_report
from seadeploy.dataflow.pixel_pipeline import analyse_pixel, bound
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


def check_pixel(g: Graph, hw: Hardware, every: bool) -> dict:
    r = analyse_pixel(g, hardware=hw)
    out, _sim = compare_pixel(r)
    row = {"II_cycles": out["initiation_interval_diff_cycles"], "fill": out["fill_latency_diff_positions"],
           "frame": out["frame_latency_diff_positions"], "frame0": out["first_frame_latency_diff_positions"],
           "fifo_pos": out["fifo_max_diff_positions"], "fifo_words": out["fifo_max_diff_words"],
           "wpp": out["fifo_max_diff_words_per_position"], "frames": r.figures["frames_computed"],
           "II": r.figures["initiation_interval_cycles"]}
    auto = bound(r, "auto")
    at_auto = simulate_report(r, auto)
    row["auto_deadlock"] = at_auto.deadlock
    row["auto_blocked"] = sum(at_auto.blocked.values())
    bypass = r.fifos[(r.fifos["kind"] == "join") & (r.fifos["lead_positions"] > 1)]
    if not every and len(bypass) > 2:
        bypass = bypass.iloc[[0, -1]]
    caught = 0
    for x in bypass.itertuples():
        key = (x.node, int(x.input_index))
        s = simulate_report(r, {**auto, key: int(x.lead_positions) - 1})
        caught += bool(s.deadlock or sum(s.blocked.values()) > 0)
    row["shrunk_caught"] = f"{caught}/{len(bypass)}"
    return row


def main_pixel(a, models: list[str]) -> None:
    hw = Hardware(macs_per_cycle=a.macs_per_cycle)
    rows = []
    with tempfile.TemporaryDirectory(prefix="pipeline-agreement-") as tmp:
        for i, model in enumerate(models):
            for attn, kw in variants(a.tiles.split(",")):
                try:
                    g = Graph.load(model_onnx(model, attn, kw, a.input_size, tmp))
                except Exception as exc:  # a backbone without this attention option: say so, go on
                    print(f"{model} {attn} {kw}: skipped ({str(exc).splitlines()[0]})")
                    continue
                row = {"model": model, "attn": attn if attn != "tse" else f"tse{kw['tile']}",
                       **check_pixel(g, hw, i < a.shrink_all)}
                rows.append(row)
                print(pd.DataFrame([row]).to_string(index=False, header=len(rows) == 1,
                                                   float_format=lambda v: f"{v:.3g}"), flush=True)
    df = pd.DataFrame(rows)
    print("\nagreement at pixel granularity (II in cycles, latencies in input-position periods, FIFOs in positions "
          "and words):")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    worst = {k: float(df[k].max()) for k in ("II_cycles", "fill", "frame", "frame0", "fifo_pos")}
    caught = [tuple(int(v) for v in s.split("/")) for s in df["shrunk_caught"]]
    print("largest differences:", {k: round(v, 6) for k, v in worst.items()},
          f"| largest FIFO difference in words {int(df['fifo_words'].max())} (its words per position "
          f"{int(df.loc[df['fifo_words'].idxmax(), 'wpp'])})",
          f"| deadlocks at analytic depths {int(df['auto_deadlock'].sum())}",
          f"| variants blocked at analytic depths {int((df['auto_blocked'] > 0).sum())}",
          f"| bypasses one position below the lead caught {sum(c for c, _ in caught)}/{sum(n for _, n in caught)}")
    ok = (worst["II_cycles"] == 0 and all(worst[k] <= 1 + 1e-9 for k in ("fill", "frame", "frame0", "fifo_pos"))
          and not df["auto_deadlock"].any() and not (df["auto_blocked"] > 0).any()
          and all(c == n for c, n in caught))
    print("targets met" if ok else "TARGETS MISSED")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=None, help="comma list (default: every zoo backbone)")
    p.add_argument("--tiles", default="2,4,7,global")
    p.add_argument("--input-size", type=int, default=None, help="default: each model's own")
    p.add_argument("--macs-per-cycle", type=float, default=4096)
    p.add_argument("--shrink", choices=("all", "ends", "none"), default="all")
    p.add_argument("--granularity", choices=("row", "pixel"), default="row")
    p.add_argument("--shrink-all", type=int, default=2, help="pixel: models whose every bypass is shrunk")
    a = p.parse_args()
    hw = Hardware(macs_per_cycle=a.macs_per_cycle)
    models = a.models.split(",") if a.models else list_models()
    if a.granularity == "pixel":
        main_pixel(a, models)
        return
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
