"""Wall time and peak memory of ``python -m seadeploy.export --model M --attn A`` from flags, one child process each.

Each export runs as its own child process (the CLI users run), so its peak resident set is measured alone:
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` after ``wait`` is the largest RSS of any waited-for child, and
each measurement runs in a fresh wrapper process so earlier children do not mask a smaller peak. Time is the
child's wall clock (what a user waits) and its CPU time (user + system, which a busy shared machine inflates
less; on an idle machine with 2 threads, wall ≈ CPU / 2 or more). Targets (issue: "Parity you can trust"): resnet50+se under 60 s and
3 GB on 2 cores; resnet152+se comfortably inside a 24 GB machine. Where the peak comes from, step by step:
``benchmarks/export_memory_steps.py``. Prints one line per run and a summary table::

    python benchmarks/export_resources.py                       # resnet50 + se, resnet152 + se, fp32
    python benchmarks/export_resources.py --case resnet50:se --repeat 3 --threads 2 -- --precision fp32,fp16
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# Runs in a fresh interpreter: starts the export as its child, waits, reports the child's wall time and peak RSS.
_WRAPPER = """
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
proc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
code, wall = proc.returncode, time.perf_counter() - t0
error = [line for line in proc.stderr.splitlines() if line.startswith("error:")][-1:]
use = resource.getrusage(resource.RUSAGE_CHILDREN)  # ru_maxrss in KiB on Linux
print(json.dumps({"exit": code, "wall_s": wall, "cpu_s": use.ru_utime + use.ru_stime, "peak_rss_mib": use.ru_maxrss / 1024,
                  "error": error[0] if error else ""}))
"""


def measure(model: str, attn: str, threads: int, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="seadeploy-bench-") as tmp:
        cmd = [sys.executable, "-m", "seadeploy.export", "--model", model, "--attn", attn, "--out",
               str(Path(tmp) / "run"), *extra]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        load = os.getloadavg()[0]
        out = subprocess.run([sys.executable, "-c", _WRAPPER, *cmd], env=env, capture_output=True, text=True,
                             check=True).stdout
        return {**json.loads(out.strip().splitlines()[-1]), "load": (load, os.getloadavg()[0])}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--case", action="append", default=None, metavar="MODEL:ATTN",
                   help="repeatable (default: resnet50:se and resnet152:se)")
    p.add_argument("--repeat", type=int, default=1, help="runs per case (median and spread reported)")
    p.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of the export (the 2-core target)")
    p.add_argument("extra", nargs="*", help="after --: more export flags (e.g. --precision fp32,fp16)")
    a = p.parse_args()
    cases = [c.split(":", 1) for c in (a.case or ["resnet50:se", "resnet152:se"])]
    rows = []
    for model, attn in cases:
        runs = []
        for i in range(a.repeat):
            r = measure(model, attn, a.threads, a.extra)
            runs.append(r)
            print(f"{model}+{attn} run {i + 1}: exit {r['exit']}, {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU, "
                  f"peak RSS {r['peak_rss_mib']:.0f} MiB, load average {r['load'][0]:.1f} → {r['load'][1]:.1f} "
                  f"{r['error']}", flush=True)
        walls, peaks = [r["wall_s"] for r in runs], [r["peak_rss_mib"] for r in runs]
        rows.append((f"{model}+{attn}", all(r["exit"] == 0 for r in runs), statistics.median(walls),
                     max(walls) - min(walls), statistics.median(r["cpu_s"] for r in runs), max(peaks)))
    print(f"\n{'case':18s} {'ok':4s} {'median s':>9s} {'spread s':>9s} {'CPU s':>8s} {'peak RSS MiB':>13s}   "
          f"(OMP_NUM_THREADS={a.threads}, {a.repeat} run(s), flags: {' '.join(a.extra) or 'defaults'}, "
          f"load average {os.getloadavg()[0]:.1f})")
    for name, ok, wall, spread, cpu, peak in rows:
        print(f"{name:18s} {'yes' if ok else 'NO':4s} {wall:9.1f} {spread:9.1f} {cpu:8.1f} {peak:13.0f}")
    return 0 if all(r[1] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
