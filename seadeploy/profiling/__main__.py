"""``python -m seadeploy.profiling {latency,layers,buffers,memory} ...`` — parse and call the library."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from seadeploy import runfolder
from seadeploy.cli import (
    ArgumentParser,
    add_model_args,
    device,
    non_negative_float,
    non_negative_int,
    parse_kv_args,
    positive_float,
    positive_int,
    print_json,
    progress_enabled,
    run_main,
)
from seadeploy.errors import ConfigError
from seadeploy.export.onnx_export import export_onnx
from seadeploy.graphs.model_file import rebatch_to_one, static_batch
from seadeploy.models.source import ModelSource, is_external, onnx_argument
from seadeploy.profiling import latency, per_layer, summaries
from seadeploy.profiling.pipeline_command import main_pipeline
from seadeploy.profiling.sources import as_run_folder


def _csv(kind):
    return lambda text: [kind(v) for v in str(text).split(",") if v.strip()]


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m seadeploy.profiling", description="Latency, per-layer time, memory, buffers.")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("latency", "layers"):
        s = sub.add_parser(name, help=f"{name} report of a run folder")
        if name == "latency":  # several sources are timed side by side, interleaved, with ratios ± interval
            s.add_argument("run_dir", metavar="SOURCE", nargs="+", help="run folders or .onnx/.engine files")
        else:
            s.add_argument("run_dir", metavar="RUN_DIR", nargs="?", help="run folder (or an .onnx file)")
            s.add_argument("--onnx", default=None, metavar="FILE", help="an ONNX file instead of a run folder")
        s.add_argument("--backends", type=_csv(str), default=["ort"], help="torch,ort,trt (ort:cuda, torch:cuda ...)")
        s.add_argument("--batch", type=_csv(positive_int), default=None,
                       help=f"e.g. 1,8,32 (default {1 if name == 'latency' else 8}; a fixed-batch ONNX file: its batch)")
        s.add_argument("--precision", type=_csv(str), default=None, help="fp32,fp16,int8 (default: all the run has)")
        s.add_argument("--threads", type=positive_int, default=None, help="pinned intra-op threads (recorded)")
        s.add_argument("--duration-s", type=positive_float, default=3.0 if name == "latency" else 2.0)
        s.add_argument("--device", type=device, default="cpu", help="torch device for the torch backend")
        s.add_argument("--json", action="store_true")
        extra = ([("--warmup-s", non_negative_float, 1.0), ("--rounds", positive_int, None)] if name == "latency"
                 else [("--runs", positive_int, 20), ("--warmup-runs", non_negative_int, 5)])
        for flag, kind, default in extra:
            s.add_argument(flag, type=kind, default=default)
    b = sub.add_parser("buffers", help="dataflow buffer model (docs/architecture.md §5)")
    b.add_argument("run_dir", metavar="RUN_DIR", nargs="?")
    b.add_argument("--onnx", default=None, help="any static-shape ONNX file (a fixed batch is analysed per image)")
    add_model_args(b)
    b.add_argument("--dtype-bytes", type=int, choices=(1, 2, 4), default=None,
                   help="1, 2 or 4 (default: each tensor's ONNX type)")
    b.add_argument("--out", default=None, help="also write buffers.json here (a RUN_DIR gets it by default)")
    b.add_argument("--json", action="store_true")
    q = sub.add_parser("pipeline", help="streaming-accelerator timing: II, FPS, fill latency, FIFO depths, stalls")
    q.add_argument("run_dir", metavar="RUN_DIR", nargs="?")
    q.add_argument("--onnx", default=None, help="any static-shape ONNX file")
    add_model_args(q)
    q.add_argument("--macs-per-cycle", type=float, default=None, help="global MAC budget (default 4096)")
    q.add_argument("--folding", default=None, help="JSON {node: PE×SIMD | {PE, SIMD} | {macs_per_cycle}}; pixel: {node: {PE, SIMD}, Defaults}")
    q.add_argument("--clock-mhz", type=float, default=200.0)
    q.add_argument("--dtype-bytes", type=int, choices=(1, 2, 4), default=None)
    q.add_argument("--granularity", choices=("row", "pixel"), default="row",
                   help="stream whole rows (default) or positions, FINN-style (docs/dataflow.md)")
    q.add_argument("--dtype-bits", type=positive_int, default=None, help="bits per element at pixel granularity (default 8)")
    q.add_argument("--fifo-depths", default=None,
                   help="auto, N (a cap: rows; pixel: words) or FILE (rows: {node/operand: rows}; pixel: the "
                        "--write-fifo-depths format)")
    q.add_argument("--write-fifo-depths", default=None, metavar="FILE",
                   help="pixel granularity: write the zero-stall depths {node: {inFIFODepths: [words]}} here")
    q.add_argument("--simulate", action="store_true", help="check against the discrete-event simulator")
    q.add_argument("--sweep-tile", type=_csv(str), default=None, help="e.g. 2,4,7,14,global (zoo --model; --onnx/RUN_DIR via the SE→TSE rewrite)")
    q.add_argument("--plot", default=None, help="write the tile-sweep plot (PNG) here")
    q.add_argument("--json", action="store_true")
    m = sub.add_parser("memory", help="activation memory (liveness), ORT and TensorRT memory")
    for flag, kw in (("run_dir", {"nargs": "?"}), ("--onnx", {}), ("--batch", {"type": positive_int, "default": None, "help": "default 1; a fixed-batch file: its batch"}),
                     ("--input-size", {"type": positive_int}), ("--json", {"action": "store_true"})):
        m.add_argument(flag, **kw)
    return p


def _main(argv: list[str] | None) -> int:
    a = _parser().parse_args(argv)
    if a.cmd == "pipeline" and a.model and is_external(a.model):
        return _buffers_of_source(a)  # a user's model: exported once, analysed as an ONNX file
    if a.cmd in ("layers", "memory", "buffers"):  # a file where a folder is expected, or the reverse (models/source.onnx_argument)
        a.run_dir, a.onnx = onnx_argument(a.run_dir, a.onnx)
        if a.cmd == "buffers" and a.model and is_external(a.model):
            return _buffers_of_source(a)
        if a.onnx and a.cmd == "layers":
            return _layers_of_file(a)
        if a.cmd == "layers" and not a.run_dir:
            raise ConfigError("give RUN_DIR (a folder written by export) or --onnx FILE")
        if a.onnx and a.cmd == "buffers" and static_batch(a.onnx) not in (None, 1):
            with tempfile.TemporaryDirectory(prefix="seadeploy-buffers-") as tmp:
                a.onnx = str(rebatch_to_one(a.onnx, Path(tmp) / "model.onnx"))
                return _main_parsed(a)
    if a.cmd in ("latency", "layers", "memory") and a.batch is None:
        files = [f for f in ([a.onnx] if getattr(a, "onnx", None) else []) + list(
            a.run_dir if isinstance(a.run_dir, list) else [a.run_dir] if a.run_dir else [])
            if str(f).endswith(".onnx") or Path(f, "model.onnx").is_file()]
        fixed = {static_batch(f if str(f).endswith(".onnx") else Path(f, "model.onnx")) for f in files} - {None}
        b = fixed.pop() if len(fixed) == 1 else (1 if a.cmd != "layers" else 8)
        a.batch = b if a.cmd == "memory" else [b]
    return _main_parsed(a)


def _layers_of_file(a) -> int:
    with as_run_folder(a.onnx) as (run, of):
        a.batch = a.batch or [of.batch or 8]
        prof = per_layer.profile_layers(run, a.backends, batch=a.batch[0], precisions=a.precision or ("fp32",),
                                     threads=a.threads, runs=a.runs, warmup_runs=a.warmup_runs,
                                     duration_s=a.duration_s, device=a.device)
        print_json(prof.summary()) if a.json else print(summaries.format_layers(prof))
    return 0


def _buffers_of_source(a) -> int:
    src = ModelSource.from_args(a)
    net, spec = src.build(), src.spec()
    with tempfile.TemporaryDirectory(prefix="seadeploy-buffers-") as tmp:
        path = export_onnx(net, Path(tmp) / "model.onnx", spec.input_shape, dynamic_batch=False, example_batch=1)
        a.onnx, a.model = str(path), None
        return _main_parsed(a)


def _main_parsed(a) -> int:
    if a.cmd == "latency":
        report = latency.benchmark_latency(a.run_dir, a.backends, a.batch, a.precision, a.threads, a.warmup_s,
                                           a.duration_s, a.device, progress=progress_enabled(a.json), rounds=a.rounds)
        report.write_all()
        if a.json:
            print_json({"rows": report.to_frame().to_dict("records"), "ratios": report.ratios})
        else:
            print(report.format_table())
        return 0
    if a.cmd == "layers":
        prof = per_layer.profile_layers(a.run_dir, a.backends, batch=a.batch[0], precisions=a.precision or ("fp32",),
                                     threads=a.threads, runs=a.runs, warmup_runs=a.warmup_runs,
                                     duration_s=a.duration_s, device=a.device)
        prof.write(a.run_dir)
        print_json(prof.summary()) if a.json else print(summaries.format_layers(prof))
        return 0
    if a.cmd == "buffers":
        report = summaries.buffers_for(a.run_dir, a.onnx, a.model, a.attn, parse_kv_args(a.attn_arg), a.input_size,
                                       a.dtype_bytes)
        out = a.out or a.run_dir
        if out:
            runfolder.write_buffers(out, report.summary())
        print_json(report.summary()) if a.json else print(summaries.format_buffers(report))
        return 0
    if a.cmd == "pipeline":
        return main_pipeline(a)
    report = summaries.memory_for(a.run_dir, a.onnx, a.batch, a.input_size)
    print_json({**report.totals, "layers": report.frame.to_dict("records")}) if a.json else print(
        summaries.format_memory(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
