"""fp32 parity of every zoo backbone × attention exported from flags, under several seeds.

Runs what a user runs, ``python -m seadeploy.export --model M --attn A --seed S --input-size N`` (fp32, the default
digits samples and seeded noise, the documented rules of ``docs/parity.md``), in worker processes, and prints one
row per case: the verdict, the largest absolute error on each input kind, and the model's own
float32 noise level (PyTorch float32 against float64) on it. The claim it checks: the fp32 rule fails an export
only for a real difference, whatever random weights a seed draws, on every backbone. CIFAR backbones run at 32 px,
ImageNet ones at 64 px (the 224-px resnet50/resnet152 exports are timed by ``export_resources.py``)::

    python benchmarks/zoo_fp32_parity.py                          # 16 backbones × 7 attentions, seed = index mod 3
    python benchmarks/zoo_fp32_parity.py --models resnet18 --attns se,tse --seeds 0,1,2 --jobs 2
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


def run_case(model: str, attn: str, seed: int) -> dict:
    size = 32 if model_defaults(model).input_size <= 32 else 64
    row = {"model": model, "attn": attn, "seed": seed, "px": size, "passed": False, "error": ""}
    start = time.process_time()
    with tempfile.TemporaryDirectory(prefix="seadeploy-zoo-") as tmp:
        try:
            manifest = export_model(ModelSource(model, attn=attn, num_classes=10, input_size=size),
                                    Path(tmp) / "run", ExportOptions(seed=seed))
            row["passed"] = True
            for c in manifest.files["fp32"].parity["comparisons"]:
                row[f"{c['inputs']}_max_abs"] = c["max_abs"]
                row[f"{c['inputs']}_float_noise"] = c.get("float_noise")
        except SeadeployError as exc:  # a failed verdict is a row, not a crash of the sweep
            row["error"] = str(exc).splitlines()[0][:160]
    row["cpu_s"] = round(time.process_time() - start, 1)
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(list_models()))
    p.add_argument("--attns", default=",".join(list_attention()))
    p.add_argument("--seeds", default=None, help="comma list: every case under each seed (default: attention "
                                                  "index mod 3, one seed per case)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", default=None, help="CSV of the rows")
    a = p.parse_args()
    models, attns = a.models.split(","), a.attns.split(",")
    cases = [(m, at, int(s)) for m in models for i, at in enumerate(attns)
             for s in (a.seeds.split(",") if a.seeds else [i % 3])]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    ctx = multiprocessing.get_context("spawn")  # a forked child of a process that ran torch thread pools can hang
    with ProcessPoolExecutor(max_workers=max(1, a.jobs), mp_context=ctx) as pool:
        rows = []
        for f in [pool.submit(run_case, *c) for c in cases]:
            rows.append(f.result())
            r = rows[-1]
            print(f"{r['model']:>17s} {r['attn']:>5s} seed {r['seed']} {r['px']:3d}px "
                  f"{'pass' if r['passed'] else 'FAIL'} {r['cpu_s']:6.1f} s CPU {r['error']}", flush=True)
    frame = pd.DataFrame(rows)
    if a.out:
        frame.to_csv(a.out, index=False)
    failed = frame[~frame.passed]
    print(f"\n{len(frame) - len(failed)}/{len(frame)} exports pass fp32 parity "
          f"({len(models)} backbones × {len(attns)} attentions, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, "
          f"load average {os.getloadavg()[0]:.1f})")
    for kind in ("random", "data"):
        col = f"{kind}_float_noise"
        if col in frame:
            widened = frame[frame[col] * 8 > 1e-4]
            print(f"{kind}: model float32 noise level median {frame[col].median():.2g}, max {frame[col].max():.2g}; "
                  f"{len(widened)} case(s) where the noise floor widened the 1e-4 bound")
    return 0 if failed.empty else 1


if __name__ == "__main__":
    sys.exit(main())
