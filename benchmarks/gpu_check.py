"""The prepared GPU check: everything GPU-related seadeploy does, on one GPU, in under 5 minutes, into one folder.

    python benchmarks/gpu_check.py --out runs/gpu_check                 # on a GPU machine (README "GPUs and TensorRT")
    python benchmarks/gpu_check.py --cpu --attn se --batches 8 --out runs/cpu_check   # eager vs compile on CPU

Steps (each recorded in ``OUT/summary.json`` with its status and seconds; a failing step does not stop the others):

1. ``doctor`` → ``OUT/doctor.json`` / ``doctor.txt``. Without a usable CUDA GPU the check stops here with
   "no GPU" and exit code 3 (unless ``--cpu``).
2. The ``gpu``/``trt``-marked tests (``pytest -m "gpu or trt"``) → ``OUT/tests.txt`` + ``tests.xml``.
3. Run folders for ``--model`` × none/se/tse (random weights, seed 0, ONNX fp32) → ``OUT/runs/<attn>``; when
   TensorRT is usable, the ``se`` one (one small model) also gets fp16 ONNX and fp32/fp16 engines (``--engine``:
   the build verifies every engine layer's precision; the sidecars record TF32 and activation memory).
4. TensorRT, when usable: parity of each engine against PyTorch (max abs/rel, cosine, top-1) → ``OUT/trt_parity.csv``,
   and the trtexec-style latency (latency, enqueue, H2D, GPU compute, D2H) → ``OUT/latency_trt.csv``.
5. PyTorch on CUDA, none/se/tse interleaved at each batch (1 and 32) for every variant (``torch:cuda`` eager,
   ``torch:cuda+compile`` Inductor/Triton, ``torch:cuda+cudagraph``) with CUDA-event H2D / compute / D2H →
   ``OUT/latency_torch.csv`` (rows carry the ratio to ``none``) and ``OUT/ratios_torch.csv``.
6. Per-layer CUDA kernel time (torch.profiler, eager) mapped to modules and attention roles in the per-layer schema
   → ``OUT/layers_<attn>_b<batch>.csv`` and the attention share per role → ``OUT/attention_share.csv``.

Exit codes: 0 every step passed, 1 a step failed (see ``summary.json``), 3 no GPU (nothing measured).
Timing never enters a test: this script prints ratios measured side by side in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from seadeploy.backends import create_backend
from seadeploy.doctor import collect, render, summary
from seadeploy.export.runner import export_model
from seadeploy.export.steps import ExportOptions
from seadeploy.fileio import write_json, write_text
from seadeploy.models.source import ModelSource
from seadeploy.profiling.latency import benchmark_latency
from seadeploy.profiling.per_layer import profile_layers
from seadeploy.profiling.schema import attention_share

NO_GPU = 3
ROOT = Path(__file__).resolve().parents[1]
GPU_VARIANTS = ("torch:cuda", "torch:cuda+compile", "torch:cuda+cudagraph")
CPU_VARIANTS = ("torch", "torch:compile")


class Steps:
    """Runs named steps, recording status, seconds and the first error line of each."""

    def __init__(self, out: Path) -> None:
        self.out, self.rows = out, []

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        try:
            result = fn()
            status, error = "ok", None
        except Exception as exc:  # a check keeps going and reports every failing step
            result, status = None, "failed"
            error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            write_text(self.out / f"error_{name}.txt", traceback.format_exc())
            print(f"   FAILED: {error}", flush=True)
        seconds = round(time.perf_counter() - start, 1)
        self.rows.append({"step": name, "status": status, "seconds": seconds, "error": error})
        print(f"   {status} in {seconds} s", flush=True)
        return result

    @property
    def failed(self) -> bool:
        return any(r["status"] != "ok" for r in self.rows)


def run_tests(out: Path, timeout_s: int) -> None:
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu or trt", "-p", "no:cacheprovider",
           f"--junitxml={out / 'tests.xml'}", "tests"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s,
                          env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "4")})
    write_text(out / "tests.txt", proc.stdout + proc.stderr)
    print("   " + (proc.stdout.strip().splitlines() or ["(no output)"])[-1], flush=True)
    if proc.returncode not in (0, 5):  # 5: nothing selected
        raise RuntimeError(f"pytest -m 'gpu or trt' exited {proc.returncode}; see tests.txt")


def make_runs(out: Path, model: str, attns: list[str], trt_attn: str | None) -> dict[str, Path]:
    """One run folder per attention; only ``trt_attn``'s also gets fp16 ONNX and fp32/fp16 TensorRT engines."""
    runs = {}
    for attn in attns:
        folder = out / "runs" / attn
        trt = attn == trt_attn
        opts = ExportOptions(precisions=("fp32", "fp16") if trt else ("fp32",), dataset="synthetic", eval_samples=8,
                             engine=trt, max_batch=32, seed=0)
        torch.manual_seed(0)
        export_model(ModelSource(model, attn=attn), folder, opts)
        runs[attn] = folder
    return runs


def trt_parity(runs: dict[str, Path], out: Path, batch: int) -> pd.DataFrame:
    """Each engine against the run's PyTorch model on the same seeded input (fp32 math on the torch side)."""
    rows = []
    for attn, run in runs.items():
        with create_backend("torch:cuda", run) as ref_be:
            (name, spec), = ref_be.input_specs.items()
            x = np.random.default_rng(0).standard_normal((batch, *spec.shape[1:])).astype(np.float32)
            ref = ref_be.infer({name: x})[ref_be.output_names[0]]
        for engine in sorted(run.glob("model.*.engine")):
            with create_backend("trt", engine) as be:
                got = be.infer({next(iter(be.input_specs)): x})[be.output_names[0]]
            diff = np.abs(got - ref)
            rows.append({"attn": attn, "engine": engine.name, "max_abs": float(diff.max()),
                         "max_rel": float((diff / (np.abs(ref) + 1e-12)).max()),
                         "cosine": float((got * ref).sum() / (np.linalg.norm(got) * np.linalg.norm(ref))),
                         "top1_agree": float((got.argmax(1) == ref.argmax(1)).mean())})
    frame = pd.DataFrame(rows)
    frame.to_csv(out / "trt_parity.csv", index=False)
    print(frame.to_string(index=False), flush=True)
    return frame


def latency(runs: dict[str, Path], backends: list[str], batches: list[int], out: Path, name: str,
            duration_s: float, threads: int | None) -> pd.DataFrame:
    report = benchmark_latency(list(runs.values()), backends, batches, precisions=("fp32",) if "trt" not in backends
                               else None, threads=threads, warmup_s=0.5, duration_s=duration_s)
    frame = report.to_frame()
    frame.to_csv(out / f"latency_{name}.csv", index=False)
    ratios = report.ratio_frame()
    ratios.to_csv(out / f"ratios_{name}.csv", index=False)
    write_json(out / f"latency_{name}.json", {"rows": report.rows, "ratios": report.ratios, "method": report.method})
    lat = frame[frame["metric"] == "latency"] if "metric" in frame else frame
    cols = [c for c in ("source", "backend", "precision", "batch", "median_ms", "cpu_median_ms", "h2d", "ratio",
                        "ratio_low", "ratio_high", "within_noise") if c in lat]
    print(lat[cols].to_string(index=False), flush=True)
    return frame


def layers(runs: dict[str, Path], spec: str, batches: list[int], out: Path, threads: int | None) -> pd.DataFrame:
    frames = []
    for attn, run in runs.items():
        for batch in batches:
            prof = profile_layers(run, [spec], batch=batch, threads=threads, runs=10, warmup_runs=3, duration_s=0.5)
            frame = prof.frame.assign(attn=attn)
            frame.to_csv(out / f"layers_{attn}_b{batch}.csv", index=False)
            frames.append(frame)
    allf = pd.concat(frames, ignore_index=True)
    share = pd.concat([attention_share(f).assign(attn=f["attn"].iloc[0]) for f in frames], ignore_index=True)
    share.to_csv(out / "attention_share.csv", index=False)
    total = share[share["block"] == "TOTAL"] if "block" in share else share
    print(total.to_string(index=False), flush=True)
    return allf


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/gpu_check", help="output folder (everything goes here)")
    ap.add_argument("--model", default="resnet20_cifar", help="a small zoo model (default: resnet20_cifar)")
    ap.add_argument("--attn", default="none,se,tse", help="attention variants, the first is the ratio reference")
    ap.add_argument("--batches", default="1,32", help="batch sizes")
    ap.add_argument("--variants", default=None, help="torch backend specs (default: eager, compile, cudagraph)")
    ap.add_argument("--duration", type=float, default=0.5, help="measuring seconds per candidate and batch")
    ap.add_argument("--cpu", action="store_true", help="no GPU: time the PyTorch variants on CPU (1 thread), "
                    "skip tests and TensorRT")
    ap.add_argument("--skip-tests", action="store_true", help="do not run the gpu/trt-marked tests")
    ap.add_argument("--tests-timeout", type=int, default=150, help="seconds for the marked tests")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    attns = [a.strip() for a in args.attn.split(",") if a.strip()]
    batches = [int(b) for b in args.batches.split(",")]
    steps = Steps(out)
    started = time.perf_counter()

    checks = collect()
    report = summary(checks)
    write_json(out / "doctor.json", report)
    write_text(out / "doctor.txt", render(checks) + "\n")
    print(render(checks), flush=True)
    if not report["gpu"] and not args.cpu:
        print(f"\nno GPU: torch.cuda.is_available() is False on this machine, so nothing GPU-related can be measured "
              f"(doctor report in {out}/doctor.txt). Run this on a machine with an NVIDIA GPU, or pass --cpu for the "
              f"CPU part. Exit {NO_GPU}.", flush=True)
        write_json(out / "summary.json", {"status": "no GPU", "exit": NO_GPU, "doctor": str(out / "doctor.json")})
        return NO_GPU
    use_trt = report["tensorrt"] and not args.cpu
    variants = [v.strip() for v in args.variants.split(",")] if args.variants else list(
        CPU_VARIANTS if args.cpu else GPU_VARIANTS)
    threads = 1 if args.cpu else None

    if not args.cpu and not args.skip_tests:
        steps.run("tests", lambda: run_tests(out, args.tests_timeout))
    trt_attn = ("se" if "se" in attns else attns[0]) if use_trt else None  # TensorRT for one small model
    runs = steps.run("export", lambda: make_runs(out, args.model, attns, trt_attn))
    if runs:
        if trt_attn:
            one = {trt_attn: runs[trt_attn]}
            steps.run("trt_parity", lambda: trt_parity(one, out, batch=max(batches)))
            steps.run("trt_latency", lambda: latency(one, ["trt"], batches, out, "trt", args.duration, None))
        steps.run("torch_latency", lambda: latency(runs, variants, batches, out, "torch", args.duration, threads))
        eager = "torch" if args.cpu else "torch:cuda"
        steps.run("torch_layers", lambda: layers(runs, eager, batches, out, threads))
    total = round(time.perf_counter() - started, 1)
    status = "failed" if steps.failed else "ok"
    write_json(out / "summary.json", {"status": status, "seconds": total, "steps": steps.rows,
                                      "gpu": report["gpu"], "tensorrt": report["tensorrt"], "model": args.model,
                                      "attn": attns, "batches": batches, "variants": variants})
    print(f"\n{status}: {total} s; {json.dumps(steps.rows)}\nresults in {out}", flush=True)
    return 1 if steps.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
