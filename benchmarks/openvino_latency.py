"""OpenVINO CPU latency: the cost of SE / TSE over no attention, and OpenVINO against ONNX Runtime.

    python benchmarks/openvino_latency.py attention                     # resnet56_cifar + vgg16_cifar, b1 + b32
    python benchmarks/openvino_latency.py attention --models resnet56_cifar --batches 32 --profile --lowering off
    python benchmarks/openvino_latency.py runtimes                      # every CIFAR backbone, se, b1 + b32
    python benchmarks/openvino_latency.py runtimes --models resnet20_cifar --attns none,se --rounds 20

Method: each variant is exported with ``export_onnx`` (random weights, seed 0, the default lowering), and int8 files
with ``quantize_int8`` calibrated on 128 digits samples, in each runtime's own form (``ort-cpu`` for ONNX Runtime,
``openvino`` for OpenVINO). Every file is loaded once per runtime with one inference thread (OpenVINO: one stream,
f32 inference precision; ONNX Runtime: one intra-op thread, sequential) and timed side by side by
``seadeploy.profiling.timing.interleave`` (every round runs every candidate once with the same input, rotating who
starts). OpenVINO runs the graph on its own thread, so every ratio here is on **wall time** (ratios are medians of
per-round paired ratios with a 95 % bootstrap interval; a pair shares the machine's load). ``attention``: targets
SE/none ≤ 1.10 and TSE/SE ≤ 1.05 on OpenVINO fp32; ``--profile`` adds OpenVINO's per-layer counters
(``profiling/layers_openvino.py``) of each variant: the attention share of the executed-node time by role, the floor
the runtime's kernels set. ``runtimes``: OpenVINO / ONNX Runtime per precision; the verdict says "faster" only when
the interval excludes 1. Timing never enters a test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from seadeploy.backends import create_backend
from seadeploy.data.samples import load_samples
from seadeploy.export.onnx_export import export_onnx
from seadeploy.export.precision import quantize_int8
from seadeploy.models import create_model, list_models, model_defaults
from seadeploy.profiling.layers_openvino import profile_openvino
from seadeploy.profiling.schema import attention_share
from seadeploy.profiling.sources import Source
from seadeploy.profiling.timing import Candidate, interleave

TARGETS = {("se", "none"): 1.10, ("tse", "se"): 1.05}
INT8_FORM = {"ort": "ort-cpu", "openvino": "openvino"}


def export(model: str, attn: str, folder: Path, int8: bool, lower: bool = True) -> dict[str, Path]:
    torch.manual_seed(0)
    size = model_defaults(model).input_size
    fp32 = export_onnx(create_model(model, attn=attn).eval(), folder / f"{model}.{attn}.onnx", (3, size, size),
                       lower=lower)
    files = {"fp32": fp32}
    if int8:
        calib, _ = load_samples("digits", 128, split="train", seed=1, input_size=size)
        for runtime, form in INT8_FORM.items():
            files[f"int8-{runtime}"] = folder / f"{model}.{attn}.{form}.onnx"
            quantize_int8(fp32, files[f"int8-{runtime}"], calib, target=form)
    return files


def feed_for(model: str, batch: int) -> dict[str, np.ndarray]:
    size = model_defaults(model).input_size
    return {"x": np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)}


def row(cells) -> str:
    return "| " + " | ".join(f"{c:.3f}" if isinstance(c, float) else str(c) for c in cells) + " |"


def attention_study(a, folder: Path) -> None:
    print(row(["model", "batch", "ratio", "median", "low", "high", "clock", "target", "met"]))
    print("|---|---|---|---|---|---|---|---|---|")
    for model in a.models:
        files = {attn: export(model, attn, folder, False, a.lowering == "on")["fp32"] for attn in ("none", "se", "tse")}
        for batch in a.batches:
            opened = {k: create_backend("openvino", p, threads=1) for k, p in files.items()}
            feed = feed_for(model, batch)
            sbs = interleave([Candidate(k, be.timed(feed), batch=batch) for k, be in opened.items()],
                             rounds=a.rounds if batch == 1 else max(8, a.rounds // 2), warmup_rounds=3)
            for (x, y), target in TARGETS.items():
                r = sbs.ratio(x, y)
                print(row([model, batch, f"{x}/{y}", r.ratio, r.low, r.high, r.clock, f"≤ {target}",
                           "yes" if r.high <= target else ("no" if r.low > target else "undecided")]), flush=True)
            for be in opened.values():
                be.close()
            if a.profile:
                for attn, path in files.items():
                    (frame, timing), = profile_openvino(Source("openvino", "fp32", path), run_dir=folder, batch=batch,
                                                        threads=1, runs=20, warmup_runs=3, duration_s=1.0)
                    total = attention_share(frame).query("block == 'TOTAL'").iloc[0]
                    roles = ", ".join(f"{k.split('.')[1]} {total[k]:.3f}" for k in
                                      ("attention.squeeze", "attention.excite", "attention.gate", "attention.scale"))
                    print(f"  counters {model} {attn} b{batch}: executed nodes {timing.run_sum_ms:.3f} ms, attention "
                          f"{total['attention']:.3f} ms ({total['pct_of_total']:.1f} %: {roles} ms)", flush=True)


def runtime_study(a, folder: Path) -> None:
    print(row(["model", "attn", "batch", "precision", "ort ms", "openvino ms", "openvino/ort", "low", "high",
               "faster"]))
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model in a.models:
        for attn in a.attns:
            files = export(model, attn, folder, True)
            for batch in a.batches:
                feed = feed_for(model, batch)
                opened = {("ort", "fp32"): create_backend("ort", files["fp32"], threads=1),
                          ("ort", "int8"): create_backend("ort", files["int8-ort"], threads=1),
                          ("openvino", "fp32"): create_backend("openvino", files["fp32"], threads=1),
                          ("openvino", "int8"): create_backend("openvino", files["int8-openvino"], threads=1,
                                                               precision="int8")}
                cands = [Candidate(f"{r} {p}", be.timed(feed), batch=batch) for (r, p), be in opened.items()]
                sbs = interleave(cands, rounds=a.rounds if batch == 1 else max(8, a.rounds // 2), warmup_rounds=3)
                med = {x["label"]: x["median_ms"] for x in sbs.rows()}
                for prec in ("fp32", "int8"):
                    r = sbs.ratio(f"openvino {prec}", f"ort {prec}")
                    verdict = "openvino" if r.high < 1 else ("ort" if r.low > 1 else "within noise")
                    print(row([model, attn, batch, prec, med[f"ort {prec}"], med[f"openvino {prec}"], r.ratio, r.low,
                               r.high, verdict]), flush=True)
                for be in opened.values():
                    be.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("study", choices=("attention", "runtimes"))
    p.add_argument("--models", default=None)
    p.add_argument("--attns", default="se")
    p.add_argument("--batches", default="1,32")
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--lowering", choices=("on", "off"), default="on",
                   help="attention: the export's SE lowering (gate broadcast for ONNX Runtime's NCHWc) on or off")
    a = p.parse_args()
    cifar = [m for m in list_models() if model_defaults(m).input_size <= 32]
    a.models = a.models.split(",") if a.models else (["resnet56_cifar", "vgg16_cifar"] if a.study == "attention"
                                                     else cifar)
    a.attns, a.batches = a.attns.split(","), [int(b) for b in a.batches.split(",")]
    with tempfile.TemporaryDirectory(prefix="seadeploy-ovlat-") as tmp:
        (attention_study if a.study == "attention" else runtime_study)(a, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
