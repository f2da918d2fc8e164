"""Write a FINN-style folding file for a zoo model at pixel granularity (the example shipped for resnet50).

    python benchmarks/make_folding.py --model resnet50 --input-size 224 --macs-per-cycle 8192 \
        --out benchmarks/folding_resnet50_224.json

The rule (seadeploy.dataflow.folding.set_folding, FINN's SetFolding): every node is folded to a target II of
``ceil(total MACs / --macs-per-cycle) + 1`` cycles per frame — an MVAU raises SIMD through the divisors of MW, then
PE through those of MH; a depthwise VVAU raises PE, then SIMD; every other layer raises PE — each until its cycles
per frame (FINN's get_exp_cycles) fall below the target. No timing.
"""

from __future__ import annotations

import argparse
import tempfile

from seadeploy import fileio
from seadeploy.dataflow.folding import folding_dict
from seadeploy.dataflow.hardware import Graph, Hardware
from seadeploy.dataflow.pixel import design
from seadeploy.profiling.summaries import model_onnx


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet50")
    p.add_argument("--attn", default=None)
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--macs-per-cycle", type=float, default=8192)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="make-folding-") as tmp:
        g = Graph.load(model_onnx(a.model, a.attn, {}, a.input_size, tmp))
    d = design(g, Hardware(macs_per_cycle=a.macs_per_cycle))
    fileio.write_json(a.out, folding_dict(d.folds))
    print(f"{a.out}: {len(d.folds)} nodes, II {d.ii:,.0f} cycles (bottleneck "
          f"{max(d.folds.values(), key=lambda f: f.cycles_per_frame()).node})")


if __name__ == "__main__":
    main()
