"""int8 / fp32 latency on OpenVINO (CPU) per int8 Q/DQ form, with top-1 agreement on real data.

    python -m seadeploy.train --model resnet20_cifar --attn se --dataset digits --epochs 3 --out runs/r20-se
    python benchmarks/openvino_int8.py runs/r20-none runs/r20-se runs/r20-tse runs/r56-none runs/r56-se runs/r56-tse
    python benchmarks/openvino_int8.py runs/r20-se --forms ort-cpu,tensorrt,openvino,s8-float-attention --batches 1 --rounds 20

This chose ``--int8-target openvino``. For each trained run folder the fp32 ONNX file is exported as the export stage
does, then quantised once per ``--forms`` with ``quantize_int8`` (calibrated on ``--calib-samples`` samples of the
train split). Forms: the registered targets (``ort-cpu``: u8 asymmetric activations + int32 bias; ``tensorrt``:
symmetric s8 activations, float bias; ``openvino``: ort-cpu's form with the attention blocks left in float), plus
``s8-float-attention`` (the tensorrt form with float attention, NNCF's symmetric s8 style), defined here only for
the comparison. Top-1 agreement
int8 vs fp32 (both on OpenVINO) on ``--eval-samples`` test samples. Latency: OpenVINO fp32 and every int8 file side
by side (``seadeploy.profiling.timing.interleave``: one inference thread, one stream, interleaved rounds, the same
input, wall clock since OpenVINO runs the graph on its own thread); the ratio is the median of per-round int8/fp32
ratios with a 95 % bootstrap interval. Target: int8/fp32 ≤ 0.70 (the interval's upper end) with
agreement ≥ 99 %. Timing never enters a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np

from seadeploy.backends import create_backend
from seadeploy.data.samples import load_samples
from seadeploy.export.onnx_export import export_onnx
from seadeploy.export.precision import INT8_TARGETS, quantize_int8
from seadeploy.models.build import load_model
from seadeploy.profiling.timing import Candidate, interleave
from seadeploy.runfolder import Checkpoint

TARGET_RATIO, TARGET_AGREEMENT = 0.70, 0.99
EXTRA_FORMS = {"s8-float-attention": dataclasses.replace(INT8_TARGETS["tensorrt"], name="s8-float-attention",
                                                         float_attention=True)}


def top1(path: Path, x: np.ndarray, batch: int = 64) -> np.ndarray:
    with create_backend("openvino", path, threads=1) as be:
        return np.concatenate([be.infer({"x": x[i:i + batch]})["logits"].argmax(1) for i in range(0, len(x), batch)])


def bench_run(run: Path, forms: list[str], batches: list[int], rounds: int, calib_n: int, eval_n: int,
              folder: Path) -> list[dict]:
    ckpt = Checkpoint.load(run)
    spec = ckpt.spec
    name = f"{spec.model} {spec.attn}"
    fp32 = export_onnx(load_model(ckpt), folder / f"{run.name}.onnx", spec.input_shape)
    load = {"input_size": spec.input_size, "mean": ckpt.mean, "std": ckpt.std}
    calib, _ = load_samples(ckpt.dataset, calib_n, split="train", seed=1, **load)
    test, _ = load_samples(ckpt.dataset, eval_n, split="test", seed=0, **load)
    files, agree = {"fp32": fp32}, {}
    ref = top1(fp32, test)
    for form in forms:
        files[form] = folder / f"{run.name}.{form}.onnx"
        quantize_int8(fp32, files[form], calib, target=form)
        agree[form] = float(np.mean(top1(files[form], test) == ref))
    rows = []
    for batch in batches:
        x = test[:batch] if len(test) >= batch else np.resize(test, (batch, *test.shape[1:]))
        feed = {"x": np.ascontiguousarray(x, dtype=np.float32)}
        opened = {k: create_backend("openvino", p, threads=1) for k, p in files.items()}
        cands = [Candidate(k, be.timed(feed), batch=batch, cpu_clock=be.in_caller_thread) for k, be in opened.items()]
        sbs = interleave(cands, rounds=rounds if batch == 1 else max(8, rounds // 2), warmup_rounds=3)
        med = {r["label"]: r for r in sbs.rows()}
        for form in forms:
            r = sbs.ratio(form, "fp32")
            ok = r.high <= TARGET_RATIO and agree[form] >= TARGET_AGREEMENT
            rows.append({"model": name, "batch": batch, "form": form, "fp32_ms": med["fp32"]["median_ms"],
                         "int8_ms": med[form]["median_ms"], "ratio": r.ratio, "low": r.low, "high": r.high,
                         "clock": r.clock, "agreement": agree[form], "target": "PASS" if ok else "MISS"})
            print("| " + " | ".join(_cell(v) for v in rows[-1].values()) + " |", flush=True)
        for be in opened.values():
            be.close()
    return rows


def _cell(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="trained run folders (checkpoint.safetensors)")
    p.add_argument("--forms", default="ort-cpu,tensorrt,openvino", help="int8 forms to compare (comma-separated)")
    p.add_argument("--batches", default="1,32")
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--calib-samples", type=int, default=256)
    p.add_argument("--eval-samples", type=int, default=512)
    a = p.parse_args(argv)
    INT8_TARGETS.update(EXTRA_FORMS)  # comparison-only forms, registered for this process
    forms = a.forms.split(",")
    print("| model | batch | form | fp32 ms | int8 ms | int8/fp32 | low | high | clock | top-1 agreement | target |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    with tempfile.TemporaryDirectory(prefix="seadeploy-ovint8-") as tmp:
        for run in a.runs:
            rows += bench_run(run, forms, [int(b) for b in a.batches.split(",")], a.rounds, a.calib_samples,
                              a.eval_samples, Path(tmp))
    met = [r for r in rows if r["form"] == "openvino"]
    print(f"openvino form: target met in {sum(r['target'] == 'PASS' for r in met)}/{len(met)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
