"""``python -m seadeploy.export (RUN_DIR | --checkpoint FILE | --model M --attn A) --out RUN_DIR [...]``
and ``python -m seadeploy.export lint FILE``. Parses arguments and calls :mod:`seadeploy.export` functions."""

from __future__ import annotations

import sys
from argparse import BooleanOptionalAction

from seadeploy.artifacts import ModelSpec
from seadeploy.cli import (
    ArgumentParser,
    add_common_args,
    add_model_args,
    parse_kv_args,
    print_json,
    progress_enabled,
    run_main,
)
from seadeploy.errors import ConfigError


def _export_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m seadeploy.export", description="Export to ONNX (fp32/fp16/int8) and TensorRT, "
                       "with checks. `python -m seadeploy.export lint FILE` lints any ONNX file.")
    p.add_argument("source", nargs="?", help="run folder with checkpoint.safetensors (default --out: the same folder)")
    p.add_argument("--checkpoint", help="checkpoint .safetensors file to export")
    add_model_args(p)
    add_common_args(p)
    p.add_argument("--precision", default="fp32", help="comma-separated: fp32,fp16,int8 (fp32 is always written)")
    p.add_argument("--engine", action="store_true", help="also build TensorRT engines (needs a GPU + TensorRT)")
    p.add_argument("--batch", type=int, default=1, help="export batch (static batch with --no-dynamic-batch)")
    p.add_argument("--dynamic-batch", action=BooleanOptionalAction, default=True,
                   help="symbolic batch dimension (default on)")
    p.add_argument("--max-batch", type=int, default=32, help="TensorRT optimisation profile max batch")
    p.add_argument("--opset", type=int, default=18)
    p.add_argument("--simplify", action="store_true", help="simplify with onnxslim (then re-check)")
    p.add_argument("--dataset", default=None, help="calibration/evaluation data (default: the checkpoint's, else digits)")
    p.add_argument("--data-root", default=None, help="dataset folder (cifar10/cifar100/imagefolder)")
    p.add_argument("--calib-samples", type=int, default=256, help="int8 calibration samples (train split)")
    p.add_argument("--eval-samples", type=int, default=512, help="test-split samples for fp16/int8 vs fp32")
    p.add_argument("--fp16-policy", default="attention-fp32", help="attention-fp32 | reductions-fp32 | all-fp16")
    p.add_argument("--workspace-mb", type=int, default=1024, help="TensorRT workspace")
    return p


def _lint(argv: list[str]) -> int:
    from seadeploy.export.lint import lint_onnx

    p = ArgumentParser(prog="python -m seadeploy.export lint", description="Lint an ONNX file for deployment traps.")
    p.add_argument("file")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    report = lint_onnx(args.file)
    if args.json:
        print_json(report.to_dict())
    else:
        print("\n".join(map(str, report.findings)) or f"{args.file}: no findings")
    return 0 if report else 1


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["lint"]:
        return _lint(argv[1:])
    from seadeploy.export.pipeline import ExportOptions, load_source
    from seadeploy.export.runner import export_run

    a = _export_parser().parse_args(argv)
    sources = [s for s in (a.source, a.checkpoint, a.model) if s]
    if len(sources) != 1:
        raise ConfigError("give exactly one of RUN_DIR, --checkpoint FILE or --model NAME (see --help)")
    out = a.out or a.source
    if not out:
        raise ConfigError("--out RUN_DIR is required")
    spec = None
    if a.model:
        from seadeploy.models import model_defaults

        d = model_defaults(a.model)
        spec = ModelSpec(a.model, attn=a.attn or d.default_attn, attn_kwargs=parse_kv_args(a.attn_arg),
                         num_classes=a.num_classes or d.num_classes, input_size=a.input_size or d.input_size)
    opts = ExportOptions(precisions=tuple(p.strip() for p in a.precision.split(",") if p.strip()), opset=a.opset,
                         batch=a.batch, dynamic_batch=a.dynamic_batch, max_batch=a.max_batch, simplify=a.simplify,
                         dataset=a.dataset, data_root=a.data_root, calib_samples=a.calib_samples,
                         eval_samples=a.eval_samples, fp16_policy=a.fp16_policy, engine=a.engine,
                         workspace_mb=a.workspace_mb, progress=progress_enabled(a.json))
    ckpt, src = load_source(a.source or a.checkpoint, spec=spec, dataset=a.dataset, data_root=a.data_root)
    manifest = export_run(ckpt, out, opts, source_file=src)
    summary = {p: {"path": f["path"], **{k: f["parity"].get(k) for k in ("max_abs", "top1_agreement", "accuracy")}}
               for p, f in manifest["files"].items()}
    if a.json:
        print_json({"out": str(out), "files": summary, "engines": list(manifest["engines"])})
    else:
        for p, s in summary.items():
            print(f"{p:5s} {out}/{s['path']}: max_abs {s['max_abs']:.3g}, top-1 agreement {s['top1_agreement']:.4f}"
                  + (f", accuracy {s['accuracy']:.4f}" if s["accuracy"] is not None else ""))
        passed = sum(bool(c["passed"]) for c in manifest["checks"])
        print(f"manifest: {out}/manifest.json ({passed}/{len(manifest['checks'])} checks passed; lint is advisory)")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
