"""OpenVINO fp32 parity of every zoo backbone × attention exported from flags (random weights, seeded).

Each case is what a user runs: ``python -m seadeploy.export --model M --attn A --seed S --input-size N`` (fp32), then
``python -m seadeploy.validate RUN --backends openvino --precision fp32`` (the default digits samples and seeded
noise, the documented fp32 rule of ``docs/parity.md`` with its float32 noise floor), in worker processes. One row per
case: the verdict, the largest absolute error per input kind and OpenVINO's inference precision (asked f32: the CPU
plugin's default is bf16 on AVX-512 BF16 / AMX CPUs). CIFAR backbones at 32 px, ImageNet ones at 64 px::

    python benchmarks/openvino_fp32_parity.py                      # every backbone × attention, seed = index mod 3
    python benchmarks/openvino_fp32_parity.py --models resnet20_cifar,vgg16_cifar --attns none,se,tse --jobs 1
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from seadeploy.errors import SeadeployError
from seadeploy.export.runner import export_model
from seadeploy.export.steps import ExportOptions
from seadeploy.models import list_attention, list_models, model_defaults
from seadeploy.models.source import ModelSource
from seadeploy.validate import validate_run


def run_case(model: str, attn: str, seed: int) -> dict:
    size = 32 if model_defaults(model).input_size <= 32 else 64
    row = {"model": model, "attn": attn, "seed": seed, "px": size, "passed": False, "error": ""}
    start = time.process_time()
    with tempfile.TemporaryDirectory(prefix="seadeploy-ovzoo-") as tmp:
        try:
            export_model(ModelSource(model, attn=attn, num_classes=10, input_size=size), Path(tmp) / "run",
                         ExportOptions(seed=seed))
            report = validate_run(Path(tmp) / "run", backends=["openvino"], precisions=["fp32"], threads=1,
                                  write=False)
            row["passed"] = bool(report)
            for c in report.comparisons:
                row[f"{c.inputs}_max_abs"] = c.metrics["max_abs"]
                row[f"{c.inputs}_float_noise"] = c.metrics.get("float_noise")
                row["inference_precision"] = c.info.get("inference_precision")
                row["error"] = row["error"] or "; ".join(c.failures)[:160]
        except SeadeployError as exc:  # a failed export or verdict is a row, not a crash of the sweep
            row["error"] = str(exc).splitlines()[0][:160]
    row["cpu_s"] = round(time.process_time() - start, 1)
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(list_models()))
    p.add_argument("--attns", default=",".join(list_attention()))
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", default=None, help="CSV of the rows")
    a = p.parse_args()
    models, attns = a.models.split(","), a.attns.split(",")
    cases = [(m, at, i % 3) for m in models for i, at in enumerate(attns)]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    ctx = multiprocessing.get_context("spawn")  # a forked child of a process that ran torch thread pools can hang
    with ProcessPoolExecutor(max_workers=max(1, a.jobs), mp_context=ctx) as pool:
        rows = []
        for f in [pool.submit(run_case, *c) for c in cases]:
            rows.append(f.result())
            r = rows[-1]
            print(f"| {r['model']} | {r['attn']} | {r['seed']} | {r['px']} | {'pass' if r['passed'] else 'FAIL'} | "
                  f"{r.get('random_max_abs', float('nan')):.3g} | {r.get('data_max_abs', float('nan')):.3g} | "
                  f"{r.get('inference_precision')} | {r['error']} |", flush=True)
    frame = pd.DataFrame(rows)
    if a.out:
        frame.to_csv(a.out, index=False)
    failed = frame[~frame.passed]
    print(f"\n{len(frame) - len(failed)}/{len(frame)} OpenVINO fp32 comparisons pass ({len(models)} backbones × "
          f"{len(attns)} attentions, load average {os.getloadavg()[0]:.1f})")
    return 0 if failed.empty else 1


if __name__ == "__main__":
    sys.exit(main())
