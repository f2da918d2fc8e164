"""ONNX Runtime CPU latency of every attention on the same backbone, with ratios to ``none`` and ``se``.

    python benchmarks/attention_latency.py                       # vgg16_cifar + resnet56_cifar, all attentions
    python benchmarks/attention_latency.py --models resnet56_cifar --variants none,se,tse,tse:tile=2
    python benchmarks/attention_latency.py --profile tse --batch 8   # + per-node ORT profile of tse vs se
    python benchmarks/attention_latency.py --variants se,tse --int8  # + int8/fp32 ratio (digits calibration)
    python benchmarks/attention_latency.py --files runs/se/model.onnx runs/se/model.int8.onnx   # any files

Method: each variant is exported with ``export_onnx`` (random weights, seed 0, opset 18, dynamic batch),
run by one ``InferenceSession`` per variant (ORT_ENABLE_ALL, ``intra_op_num_threads`` pinned, sequential),
warmed up, then timed in interleaved rounds (round r runs every variant ``--repeats`` times, the variant
order rotating) so machine noise hits every variant alike; the figure is the median of all timed runs, with
the IQR, and the median thread CPU time (with one intra-op thread ORT computes on the calling thread, so
CPU time excludes the waits a shared machine adds to the wall clock). Target (issue 4): TSE ≤ 1.10× SE and SE ≤ 1.15× none at batch 1. Timing never enters a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from seadeploy.cli import parse_kv_args
from seadeploy.export.checks import ort_session
from seadeploy.export.onnx_export import export_onnx, node_module_map
from seadeploy.models import create_model, list_attention, model_defaults

TARGETS = {"tse/se": 1.10, "se/none": 1.15}


def parse_variant(text: str) -> tuple[str, str, dict]:
    """``tse:tile=2,reduction=8`` → (label, attention, kwargs)."""
    attn, _, rest = text.partition(":")
    return text, attn, parse_kv_args([kv for kv in rest.split(",") if kv]) if rest else {}


def export_variants(model: str, variants: list[str], folder: Path, int8: bool) -> dict[str, dict[str, Path]]:
    """Export every variant of ``model`` (and its int8 QDQ file when asked); returns label → {precision: path}."""
    out = {}
    for text in variants:
        label, attn, kwargs = parse_variant(text)
        torch.manual_seed(0)
        net = create_model(model, attn=attn, attn_kwargs=kwargs).eval()
        size = model_defaults(model).input_size
        path = export_onnx(net, folder / f"{model}.{label.replace(':', '_').replace('=', '')}.onnx", (3, size, size))
        out[label] = {"fp32": path}
        if int8:
            from seadeploy.data.samples import load_samples
            from seadeploy.export.precision import quantize_int8

            calib, _ = load_samples("digits", 64, split="train", input_size=size)
            quantize_int8(path, path.with_suffix(".int8.onnx"), calib)
            out[label]["int8"] = path.with_suffix(".int8.onnx")
    return out


def time_sessions(sessions: dict, batch: int, warmup: int, rounds: int, repeats: int) -> dict:
    """Interleaved timing; per session key, (wall ms, thread CPU ms) of every timed run.

    With ``intra_op_num_threads=1`` ONNX Runtime computes on the calling thread, so the thread's CPU time is
    the run's compute time without the waits a shared machine adds to the wall clock.
    """
    keys = list(sessions)
    shape = [int(d) for d in sessions[keys[0]].get_inputs()[0].shape[1:]]
    x = np.random.default_rng(0).standard_normal((batch, *shape)).astype(np.float32)
    for key in keys:
        for _ in range(warmup):
            sessions[key].run(None, {"x": x})
    times: dict = defaultdict(list)
    for r in range(rounds):
        for key in keys[r % len(keys):] + keys[: r % len(keys)]:
            sess = sessions[key]
            for _ in range(repeats):
                t0, c0 = time.perf_counter(), time.thread_time()
                sess.run(None, {"x": x})
                times[key].append(((time.perf_counter() - t0) * 1e3, (time.thread_time() - c0) * 1e3))
    return times


def summarise(times: dict) -> dict:
    out = {}
    for key, runs in times.items():
        wall, cpu = [w for w, _ in runs], [c for _, c in runs]
        q = statistics.quantiles(wall, n=4)
        out[key] = {"median_ms": statistics.median(wall), "iqr_ms": q[2] - q[0], "cpu_ms": statistics.median(cpu),
                    "n": len(runs)}
    return out


def print_table(model: str, batch: int, threads: int, stats: dict, precision: str) -> list[str]:
    """Print one table; returns the target lines (PASS/MISS on the wall-clock median and on CPU time)."""
    rows = {k[0]: v for k, v in stats.items() if k[1] == precision}
    print(f"\n{model}  batch {batch}  {precision}  ORT CPU, intra_op_num_threads={threads}, "
          f"{next(iter(rows.values()))['n']} timed runs per variant")
    print(f"{'variant':<16}{'median ms':>10}{'IQR ms':>9}{'× none':>8}{'× se':>7}{'cpu ms':>9}{'× none':>8}{'× se':>7}")
    for label, v in rows.items():
        cells = [f"{label:<16}{v['median_ms']:>10.3f}{v['iqr_ms']:>9.3f}"]
        for field, width in (("median_ms", (8, 7)), ("cpu_ms", (8, 7))):
            if field == "cpu_ms":
                cells.append(f"{v['cpu_ms']:>9.3f}")
            for ref, w in zip(("none", "se"), width):
                cells.append(f"{v[field] / rows[ref][field]:>{w}.3f}" if ref in rows else f"{'-':>{w}}")
        print("".join(cells))
    lines = []
    pairs = [("se", "none", "se/none")] + [(k, "se", "tse/se") for k in rows if k.split(":")[0] == "tse"]
    for num, den, target in pairs:
        if num in rows and den in rows:
            rw = rows[num]["median_ms"] / rows[den]["median_ms"]
            rc = rows[num]["cpu_ms"] / rows[den]["cpu_ms"]
            lim = TARGETS[target]
            lines.append(f"{model} b{batch} {precision}: {num}/{den} = {rw:.3f} wall ({'PASS' if rw <= lim else 'MISS'}), "
                         f"{rc:.3f} cpu ({'PASS' if rc <= lim else 'MISS'}); target ≤ {lim}")
    return lines


def profile_nodes(path: Path, batch: int, threads: int, runs: int = 30, top: int = 8) -> None:
    """ORT per-node profile: time per op type inside/outside attention blocks, and the slowest attention nodes."""
    import onnx
    import onnxruntime as ort

    modules = node_module_map(onnx.load(str(path)))
    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.enable_profiling = threads, True
        opts.profile_file_prefix = str(Path(tmp) / "prof")
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        shape = [int(d) for d in sess.get_inputs()[0].shape[1:]]
        x = np.random.default_rng(0).standard_normal((batch, *shape)).astype(np.float32)
        for _ in range(runs):
            sess.run(None, {"x": x})
        events = json.loads(Path(sess.end_profiling()).read_text())
    by_op: dict[tuple[str, bool], float] = defaultdict(float)
    by_node: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        node = e["name"][: -len("_kernel_time")]
        attn = ".attn" in modules.get(node, "") or ".attn" in str(e.get("args", {}))
        by_op[(e["args"].get("op_name", "?"), attn)] += e["dur"] / 1e3 / runs
        if attn:
            by_node[f"{node} ({e['args'].get('op_name')})"] += e["dur"] / 1e3 / runs
    total = sum(by_op.values())
    print(f"\nper-node profile of {path.name}, batch {batch}: {total:.3f} ms/run in kernels "
          "(attn = node maps to an .attn module; other = the rest, incl. nodes ORT fused or re-laid out (NCHWc))")
    for (op, attn), ms in sorted(by_op.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {'attn ' if attn else 'other'} {op:<22}{ms:8.3f} ms  {100 * ms / total:5.1f}%")
    for node, ms in sorted(by_node.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  attention node {node:<48}{ms:8.3f} ms")


def time_files(a: argparse.Namespace) -> int:
    """Time arbitrary ONNX files (e.g. a run's model.onnx and model.int8.onnx) with the same method."""
    sessions = {(f, "file"): ort_session(f, threads=a.threads) for f in a.files}
    for batch in map(int, a.batches.split(",")):
        stats = summarise(time_sessions(sessions, batch, a.warmup, a.rounds, a.repeats))
        first = stats[(a.files[0], "file")]
        print(f"\nbatch {batch}, ORT CPU, intra_op_num_threads={a.threads}, {first['n']} timed runs per file")
        for (f, _), v in stats.items():
            print(f"  {f:<44} median {v['median_ms']:8.3f} ms (IQR {v['iqr_ms']:.3f})  cpu {v['cpu_ms']:8.3f} ms  "
                  f"× first: {v['median_ms'] / first['median_ms']:.3f} wall, {v['cpu_ms'] / first['cpu_ms']:.3f} cpu")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="vgg16_cifar,resnet56_cifar")
    p.add_argument("--variants", default=None, help="comma list; attention[:k=v,...]; default: every attention "
                   "with its defaults plus tse:tile=2 (separate variants with ';' when they have kwargs)")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--int8", action="store_true", help="also time the int8 QDQ files (int8/fp32 ratio)")
    p.add_argument("--profile", default=None, help="variant to profile per node (with se), e.g. tse")
    p.add_argument("--files", nargs="+", default=None, help="time these ONNX files instead (ratios to the first)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    if a.files:
        return time_files(a)
    sep = ";" if a.variants and ";" in a.variants else ","
    variants = a.variants.split(sep) if a.variants else [*list_attention(), "tse:tile=2"]
    verdicts = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in a.models.split(","):
            files = export_variants(model, variants, Path(tmp), a.int8)
            sessions = {(v, prec): ort_session(path, threads=a.threads) for v, d in files.items() for prec, path in d.items()}
            for batch in map(int, a.batches.split(",")):
                stats = summarise(time_sessions(sessions, batch, a.warmup, a.rounds, a.repeats))
                for prec in ("fp32", "int8") if a.int8 else ("fp32",):
                    verdicts += print_table(model, batch, a.threads, stats, prec)
                if a.int8:
                    for v in files:
                        r = stats[(v, "int8")]["median_ms"] / stats[(v, "fp32")]["median_ms"]
                        rc = stats[(v, "int8")]["cpu_ms"] / stats[(v, "fp32")]["cpu_ms"]
                        print(f"  int8/fp32 latency {model} {v} batch {batch}: {r:.3f} wall, {rc:.3f} cpu")
                if a.profile:
                    for v in ("se", a.profile):
                        profile_nodes(files[v]["fp32"], batch, a.threads)
    print("\n" + "\n".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
