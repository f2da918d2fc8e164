"""``python -m seadeploy.export (RUN_DIR | --checkpoint FILE | --model M --attn A) --out RUN_DIR [...]``
and ``python -m seadeploy.export lint FILE``. Parses arguments and calls :mod:`seadeploy.export` functions."""

from __future__ import annotations

import sys
from argparse import BooleanOptionalAction

from seadeploy.cli import (
    ArgumentParser,
    add_common_args,
    add_model_args,
    add_rule_args,
    positive_int,
    print_json,
    progress_enabled,
    run_main,
)
from seadeploy.errors import PartialFailure
from seadeploy.export.lint import lint_onnx
from seadeploy.export.runner import export_model, export_run
from seadeploy.export.steps import EVAL_BATCH, EVAL_SAMPLES, load_source, options_from_args, summary_lines
from seadeploy.fileio import check_out_folder
from seadeploy.models.source import onnx_argument

OPTIONS = [  # flag, type, default, help
    ("--precision", str, "fp32", "comma-separated: fp32,fp16,int8 (fp32 is always written)"),
    ("--batch", positive_int, 1, "export batch (the static batch with --no-dynamic-batch)"),
    ("--max-batch", positive_int, 32, "TensorRT optimisation profile max batch"),
    ("--opset", positive_int, 18, "ONNX opset"),
    ("--dataset", str, None, "calibration/evaluation data (default: the checkpoint's, else digits)"),
    ("--data-root", str, None, "dataset folder (cifar10/cifar100/imagefolder)"),
    ("--calib-samples", positive_int, 256, "int8 calibration samples (train split)"),
    ("--eval-samples", positive_int, EVAL_SAMPLES, "test-split samples every file is judged on against PyTorch"),
    ("--eval-batch", positive_int, EVAL_BATCH, "inference batch of the parity runs (bounds memory)"),
    ("--seed", int, 0, "seed of the weights of a model built from flags (recorded in the manifest)"),
    ("--fp16-policy", str, "attention-fp32", "attention-fp32 | reductions-fp32 | all-fp16"),
    ("--int8-target", str, None, "where the int8 file will run: ort-cpu (asymmetric u8 activations, fused "
     "QLinearConv on x86) | tensorrt (symmetric s8) | openvino (u8s8, attention in float); default: tensorrt with "
     "--engine, else ort-cpu"),
    ("--workspace-mb", positive_int, 1024, "TensorRT builder workspace"),
]


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m seadeploy.export", description="Export to ONNX (fp32/fp16/int8) and TensorRT "
                       "with checks; `python -m seadeploy.export lint FILE` lints any ONNX file.")
    p.add_argument("source", nargs="?", help="run folder with checkpoint.safetensors (default --out: the same folder)")
    p.add_argument("--checkpoint", help="checkpoint .safetensors file to export")
    add_model_args(p, onnx=True)
    add_common_args(p)
    for flag, kind, default, text in OPTIONS:
        p.add_argument(flag, type=kind, default=default, help=text)
    p.add_argument("--int8-activations", dest="int8_target", help="old spelling: s8 = tensorrt, u8 = ort-cpu")
    p.add_argument("--dynamic-batch", action=BooleanOptionalAction, default=True, help="symbolic batch dim (default)")
    p.add_argument("--simplify", action="store_true", help="simplify with onnxslim, then re-check")
    p.add_argument("--engine", action="store_true", help="also build TensorRT engines (GPU + TensorRT)")
    add_rule_args(p.add_argument_group("parity rules (default: docs/parity.md)"))
    return p


def _lint(argv: list[str]) -> int:
    p = ArgumentParser(prog="python -m seadeploy.export lint", description="Lint an ONNX file for deployment traps.")
    p.add_argument("file")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    report = lint_onnx(args.file)
    print_json(report.to_dict()) if args.json else print("\n".join(map(str, report.findings)) or "no findings")
    return 0 if report else 1


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["lint"]:
        return _lint(argv[1:])
    a = _parser().parse_args(argv)
    a.source, a.onnx = onnx_argument(a.source, a.onnx)
    run, source, opts = options_from_args(a, progress=progress_enabled(a.json))
    out = a.out or a.source
    check_out_folder(out)  # a file, or a folder under a file, is refused before any work
    try:
        if source is not None:
            manifest = export_model(source, out, opts)
        else:
            ckpt, src = load_source(run)
            manifest = export_run(ckpt, out, opts, source_file=src)
    except PartialFailure as exc:  # what passed was written: say so on stdout, then the one-line error (exit 1)
        _print_result(a, out, exc.result)
        raise
    _print_result(a, out, manifest)
    return 0


def _print_result(a, out, manifest) -> None:
    if a.json:
        print_json({"out": str(out), "seed": manifest.seed,
                    "files": {p: f.parity for p, f in manifest.files.items()}, "engines": list(manifest.engines),
                    "failed": {p: f.parity for p, f in manifest.failed.items()}})
    else:
        print("\n".join(summary_lines(manifest, out)))


def main(argv: list[str] | None = None) -> int:
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
