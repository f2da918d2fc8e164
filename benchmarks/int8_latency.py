"""int8 / fp32 latency on ONNX Runtime CPU per int8 target, with top-1 agreement on real data.

    python -m seadeploy.train --model resnet20_cifar --attn se --dataset digits --epochs 3 --out runs/r20-se
    python benchmarks/int8_latency.py runs/r20-se runs/r20-tse runs/r56-se runs/r56-tse   # trained run folders
    python benchmarks/int8_latency.py runs/r20-se --targets ort-cpu --batches 1 --rounds 20

For each run folder (``checkpoint.safetensors``): the fp32 ONNX file is exported as the export stage does
(``export_onnx``, lowering on), then quantised once per ``--targets`` with ``quantize_int8`` (calibrated on
``--calib-samples`` samples of the run's train split, as ``python -m seadeploy.export`` does). Top-1
agreement int8 vs fp32 is measured on ``--eval-samples`` of the test split. Latency: fp32 and every int8 file
are timed side by side by ``seadeploy.profiling.timing.interleave`` (one intra-op thread, thread CPU time,
interleaved rounds, the same input); the ratio is the median of per-round int8/fp32 ratios with a 95 %
bootstrap interval. Target: int8/fp32 ≤ 0.70 for ``ort-cpu`` with agreement ≥ 99 %. The
``tensorrt`` form is shown for contrast: ORT CPU has no fused kernel for symmetric int8 activations.
Timing never enters a test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from seadeploy.backends.ort import plain_session
from seadeploy.data.samples import load_samples
from seadeploy.export.onnx_export import export_onnx
from seadeploy.export.precision import INT8_TARGETS, quantize_int8
from seadeploy.models.build import load_model
from seadeploy.profiling.timing import Candidate, interleave
from seadeploy.runfolder import Checkpoint

TARGET_RATIO, TARGET_AGREEMENT = 0.70, 0.99


def agreement(fp32: Path, int8: Path, x: np.ndarray, batch: int = 64) -> float:
    """Fraction of samples whose top-1 class is the same in both files."""
    a, b = plain_session(fp32), plain_session(int8)
    same = 0
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        same += int((a.run(None, {"x": xb})[0].argmax(1) == b.run(None, {"x": xb})[0].argmax(1)).sum())
    return same / len(x)


def bench_run(run: Path, targets: list[str], batches: list[int], rounds: int, calib_n: int, eval_n: int,
              folder: Path) -> list[str]:
    ckpt = Checkpoint.load(run)
    spec = ckpt.spec
    name = f"{spec.model} {spec.attn}"
    fp32 = export_onnx(load_model(ckpt), folder / f"{run.name}.onnx", spec.input_shape)
    load = {"input_size": spec.input_size, "mean": ckpt.mean, "std": ckpt.std}
    calib, _ = load_samples(ckpt.dataset, calib_n, split="train", seed=1, **load)
    test, _ = load_samples(ckpt.dataset, eval_n, split="test", seed=0, **load)
    files = {"fp32": fp32}
    agree = {}
    for target in targets:
        files[target] = folder / f"{run.name}.{target}.onnx"
        quantize_int8(fp32, files[target], calib, target=target)
        agree[target] = agreement(fp32, files[target], test)
    lines = []
    for batch in batches:
        x = test[:batch] if len(test) >= batch else np.resize(test, (batch, *test.shape[1:]))
        feed = {"x": np.ascontiguousarray(x, dtype=np.float32)}
        sessions = {k: plain_session(p, threads=1) for k, p in files.items()}
        cands = [Candidate(k, (lambda s=s, f=feed: s.run(None, f)), batch=batch, cpu_clock=True)
                 for k, s in sessions.items()]
        sbs = interleave(cands, rounds=rounds if batch == 1 else max(8, rounds // 2), warmup_rounds=3)
        med = {r["label"]: r for r in sbs.rows()}
        for target in targets:
            r = sbs.ratio(target, "fp32")
            ok = r.high <= TARGET_RATIO and agree[target] >= TARGET_AGREEMENT
            lines.append(f"{name:<22}{batch:>4}  {target:<9}{med['fp32']['cpu_median_ms']:>9.3f}"
                         f"{med[target]['cpu_median_ms']:>9.3f}   {r.ratio:.3f} [{r.low:.3f}, {r.high:.3f}]"
                         f"{100 * agree[target]:>9.2f}%  {'PASS' if ok else 'MISS'}{'' if target == 'ort-cpu' else ' (contrast)'}")
            print(lines[-1], flush=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="trained run folders (checkpoint.safetensors)")
    p.add_argument("--targets", default=",".join(INT8_TARGETS), help="int8 targets to quantise for")
    p.add_argument("--batches", default="1,32")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--calib-samples", type=int, default=512)
    p.add_argument("--eval-samples", type=int, default=512)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    print(f"ORT CPU, 1 intra-op thread, thread CPU ms (medians), int8/fp32 = median of paired per-round ratios "
          f"[95% bootstrap]; agreement = int8 vs fp32 top-1 on {a.eval_samples} test samples; "
          f"target ort-cpu ≤ {TARGET_RATIO} with ≥ {100 * TARGET_AGREEMENT:.0f}%")
    print(f"{'model':<22}{'b':>4}  {'target':<9}{'fp32':>9}{'int8':>9}   int8/fp32 [95% CI]{'agree':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for run in a.runs:
            bench_run(Path(run), a.targets.split(","), [int(b) for b in a.batches.split(",")], a.rounds,
                      a.calib_samples, a.eval_samples, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
