"""Where the memory and time of ``python -m seadeploy.export --model M --attn A`` go, step by step (Linux only).

Runs the export in this process with its steps wrapped (model build, dynamo export, lowering, save, checker,
strict shape inference, declared-vs-runtime shapes, lint, fp16 / int8, sample loading, PyTorch reference,
float noise, ONNX Runtime sessions and parity runs). For every call it records the resident set before and
after and the peak during it: ``VmHWM`` is reset through ``/proc/self/clear_refs`` at every step boundary, and a
nested step's peak also counts for the steps around it. ``+peak`` is what the step adds on top of what was
resident when it started; ``CPU s`` is the process's CPU time (all threads). Prints one table, indented by
nesting::

    OMP_NUM_THREADS=2 python benchmarks/export_memory_steps.py                          # resnet50 + se, 224 px
    OMP_NUM_THREADS=2 python benchmarks/export_memory_steps.py --model resnet152 --precision fp32,fp16,int8

``benchmarks/export_resources.py`` measures the whole CLI in a child process (its peak RSS is the target's
figure); this script tells where that peak comes from. It never enters a test.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_STACK: list[dict[str, Any]] = []
_ROWS: list[dict[str, Any]] = []


def _status() -> tuple[float, float]:
    """(VmRSS, VmHWM) in MiB."""
    text = Path("/proc/self/status").read_text()
    return (int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024,
            int(re.search(r"VmHWM:\s+(\d+)", text).group(1)) / 1024)


def _boundary() -> None:
    """Credit the peak since the last boundary to every open step, then reset the peak."""
    peak = _status()[1]
    for frame in _STACK:
        frame["peak"] = max(frame["peak"], peak)
    Path("/proc/self/clear_refs").write_text("5")


def _cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def _wrap(module: Any, name: str) -> None:
    fn = getattr(module, name)
    label = f"{module.__name__.rsplit('.', 1)[-1]}.{name}"

    @functools.wraps(fn)
    def step(*args: Any, **kwargs: Any) -> Any:
        _boundary()
        rss = _status()[0]
        frame = {"label": label, "depth": len(_STACK), "before": rss, "peak": rss, "t": time.perf_counter(),
                 "cpu": _cpu()}
        _STACK.append(frame)
        _ROWS.append(frame)
        try:
            return fn(*args, **kwargs)
        finally:
            _boundary()
            _STACK.pop()
            frame.update(after=_status()[0], wall=time.perf_counter() - frame["t"], cpu=_cpu() - frame["cpu"])

    setattr(module, name, step)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet50")
    p.add_argument("--attn", default="se")
    p.add_argument("--precision", default="fp32", help="comma-separated, as the export's --precision")
    p.add_argument("--input-size", type=int, default=None, help="default: the model's")
    a = p.parse_args()
    if not Path("/proc/self/clear_refs").exists():
        p.error("needs Linux /proc (VmHWM and clear_refs)")
    t0, c0 = time.perf_counter(), _cpu()
    import onnx  # noqa: PLC0415  imports are timed as a step of their own

    from seadeploy.export import checks, onnx_export, runner, steps  # noqa: PLC0415
    from seadeploy.export import precision as prec  # noqa: PLC0415
    from seadeploy.models.source import ModelSource  # noqa: PLC0415

    print(f"imports: {time.perf_counter() - t0:.1f} s, {_cpu() - c0:.1f} s CPU, RSS {_status()[0]:.0f} MiB")
    step_fns = {steps: ["source_checkpoint", "check_file", "eval_samples", "release_memory"],
             runner: ["load_model", "_checkpoint", "export_onnx", "lint_check", "_lower_precision", "_parity",
                      "infer_batches", "reference_noise", "create_backend", "compare_backend", "write_manifest"],
             onnx_export: ["_run_exporter", "annotate_modules", "lower_for_ort"],
             onnx: ["save_model"],
             checks: ["check_model_full", "infer_shapes_strict", "check_declared_shapes",
                      "create_backend"],
             prec: ["convert_fp16", "quantize_int8", "quant_pre_process", "quantize_static"]}
    for module, names in step_fns.items():
        for name in names:
            if hasattr(module, name):
                _wrap(module, name)
    source = ModelSource(a.model, attn=a.attn, input_size=a.input_size)
    opts = steps.ExportOptions(precisions=tuple(p.strip() for p in a.precision.split(",") if p.strip()))
    verdict = "passed"
    with tempfile.TemporaryDirectory(prefix="seadeploy-steps-") as tmp:
        try:
            runner.export_model(source, Path(tmp) / "run", opts)
        except Exception as exc:  # a failed verdict still has a memory profile worth printing
            verdict = f"failed: {str(exc).splitlines()[0][:160]}"
    _boundary()
    print(f"\n{a.model}+{a.attn} {source.spec().input_size} px, --precision {a.precision}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}: export {verdict}")
    print(f"{'step':42s} {'RSS before':>10s} {'peak':>7s} {'+peak':>7s} {'RSS after':>9s} {'wall s':>7s} {'CPU s':>7s}")
    for r in _ROWS:
        print(f"{'  ' * r['depth'] + r['label']:42s} {r['before']:10.0f} {r['peak']:7.0f} {r['peak'] - r['before']:7.0f} "
              f"{r['after']:9.0f} {r['wall']:7.1f} {r['cpu']:7.1f}")
    print(f"total: {time.perf_counter() - t0:.1f} s wall, {_cpu() - c0:.1f} s CPU, peak RSS "
          f"{max((r['peak'] for r in _ROWS), default=0):.0f} MiB (MiB throughout); load average "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return 0 if verdict == "passed" else 1


if __name__ == "__main__":
    sys.exit(main())
