"""SE vs TSE at pixel granularity: per attention block the bypass FIFO (elements, bits, BRAM18, URAM) and fill latency.

    python benchmarks/pixel_se_vs_tse.py                                   # efficientnet_b0 @ 224, TSE tile 7
    python benchmarks/pixel_se_vs_tse.py --model resnet50 --tile 4 --dtype-bits 8

Both variants folded by the same rule (FINN's SetFolding to ``ceil(MACs / --macs-per-cycle)``); blocks paired in
graph order. No timing: the model is deterministic. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import tempfile

from seadeploy.dataflow.hardware import Graph, Hardware
from seadeploy.dataflow.pixel_pipeline import analyse_pixel
from seadeploy.profiling.summaries import model_onnx


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="efficientnet_b0")
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--tile", type=int, default=7)
    p.add_argument("--macs-per-cycle", type=float, default=4096)
    p.add_argument("--dtype-bits", type=int, default=8)
    a = p.parse_args()
    hw = Hardware(macs_per_cycle=a.macs_per_cycle)
    reports = {}
    with tempfile.TemporaryDirectory(prefix="pixel-se-tse-") as tmp:
        for attn, kw in (("se", {}), ("tse", {"tile": a.tile})):
            g = Graph.load(model_onnx(a.model, attn, kw, a.input_size, tmp))
            reports[attn] = analyse_pixel(g, hardware=hw, dtype_bits=a.dtype_bits)
    se, tse = reports["se"], reports["tse"]
    print(f"{a.model} @ {a.input_size}, pixel granularity, {a.dtype_bits}-bit data, folded to "
          f"{a.macs_per_cycle:g} MACs/cycle; TSE tile {a.tile}\n")
    print("| block | map (H×W×C) | SE bypass elements | TSE bypass elements | SE/TSE | SE BRAM18 / URAM | "
          "TSE BRAM18 / URAM |")
    print("|---|---|---:|---:|---:|---:|---:|")
    fifos = se.fifos.set_index(["node", "operand"])
    for (_, s), (_, t) in zip(se.attention.iterrows(), tse.attention.iterrows(), strict=True):
        row = fifos[fifos.index.get_level_values(0) == s["node"]].sort_values("fifo_elements").iloc[-1]
        ratio = s["bypass_elements"] / t["bypass_elements"] if t["bypass_elements"] else float("inf")
        print(f"| {s['block']} | {int(row['H'])}×{int(row['W'])}×{int(row['C'])} | {s['bypass_elements']:,} | "
              f"{t['bypass_elements']:,} | {ratio:.1f} | {s['bram18']} / {s['uram']} | {t['bram18']} / {t['uram']} |")
    fs, ft = se.figures, tse.figures
    print(f"| **total** | | {fs['attention_bypass_elements']:,} | {ft['attention_bypass_elements']:,} | "
          f"{fs['attention_bypass_elements'] / max(ft['attention_bypass_elements'], 1):.1f} | "
          f"{fs['attention_bypass_bram18']} / {fs['attention_bypass_uram']} | "
          f"{ft['attention_bypass_bram18']} / {ft['attention_bypass_uram']} |\n")
    print("| variant | II (cycles) | fill latency (cycles) | frame latency (cycles) | all FIFOs (bits) | BRAM18 | URAM |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in (("SE", se), (f"TSE tile {a.tile}", tse)):
        f, m = r.figures, r.memory
        print(f"| {name} | {f['initiation_interval_cycles']:,.0f} | {f['fill_latency_cycles']:,.0f} | "
              f"{f['frame_latency_cycles']:,.0f} | {m['fifo_bits']:,} | {m['bram18']} | {m['uram']} |")
    print(f"\nTSE fills {'sooner' if ft['fill_latency_cycles'] < fs['fill_latency_cycles'] else 'NOT sooner'}: "
          f"{fs['fill_latency_cycles'] / ft['fill_latency_cycles']:.2f}× less fill latency")


if __name__ == "__main__":
    main()
