"""``python -m seadeploy.validate RUN_DIR`` (parity of every backend × precision) and ``... validate matrix`` (CI gate).

Exit codes: 0 every comparison passed, 1 a comparison failed, 2 bad input (mismatched run folder, missing
files, wrong shapes, NaN inputs), 3 a requested backend or device is unavailable.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from seadeploy import runfolder
from seadeploy.backends import backend_class
from seadeploy.cli import (
    ArgumentParser,
    add_rule_args,
    device,
    non_negative_int,
    positive_int,
    print_json,
    progress_enabled,
    rules_from_args,
    run_main,
)
from seadeploy.errors import ConfigError
from seadeploy.export.runner import ONNX_REFERENCE, export_model, judge_onnx_files
from seadeploy.export.steps import ExportOptions, summary_lines
from seadeploy.fileio import check_out_folder
from seadeploy.graphs.model_file import OnnxFile
from seadeploy.models.source import ModelSource, onnx_argument
from seadeploy.runfolder import CHECKPOINT, PRECISIONS, onnx_name
from seadeploy.validate.judge import validate_run
from seadeploy.validate.junit import write_junit
from seadeploy.validate.matrix import run_matrix


def _csv(text: str) -> list[str]:  # "ort, trt" → ["ort", "trt"]
    return [t.strip() for t in text.split(",") if t.strip()]


def _precisions(text: str) -> list[str]:  # a typo is refused while parsing, not skipped into "0/0 comparisons"
    names = _csv(text)
    bad = [n for n in names if n not in PRECISIONS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown precision '{bad[0] if bad else text}'; valid: {', '.join(PRECISIONS)}")
    return names


def _parser(matrix: bool) -> ArgumentParser:
    p = ArgumentParser(prog="python -m seadeploy.validate" + (" matrix" if matrix else ""), description=__doc__)
    if matrix:
        p.add_argument("--models", type=_csv, default=None, help="backbones (default: vgg16_cifar,resnet20_cifar,"
                       "efficientnet_b0)")
        p.add_argument("--attn", type=_csv, default=None, help="attention variants (default: every registered one)")
        p.add_argument("--out", default=None, help="folder for the exported runs and matrix.json (default: temporary)")
        p.add_argument("--calib-samples", type=positive_int, default=32, help="int8 calibration samples per model")
        p.add_argument("--jobs", type=positive_int, default=1, help="cases exported/validated in parallel processes")
    else:
        p.add_argument("run_dir", metavar="RUN_DIR", nargs="?", help="run folder written by export")
        p.add_argument("--onnx", default=None, metavar="FILE", help="a user's ONNX file: fp16/int8 are made from it "
                       "and judged against it (its fp32 graph is the reference; --out keeps them)")
        p.add_argument("--mean", default=None, help="--onnx: input normalisation mean (default: the dataset's)")
        p.add_argument("--std", default=None, help="--onnx: input normalisation std (default: the dataset's)")
        p.add_argument("--calib-samples", type=positive_int, default=64, help="--onnx: int8 calibration samples")
        p.add_argument("--backends", type=_csv, default=["ort"], help="torch, torch:cuda, ort, ort:cuda, ort:tensorrt, trt")
        p.add_argument("--dataset", default=None, help="labelled samples (default: the run's dataset; 'none' to skip)")
        p.add_argument("--data-root", default=None, help="dataset folder (cifar10, imagefolder)")
        p.add_argument("--inputs", default=None, metavar="NPZ", help="replay inputs saved in a parity.npz")
        add_rule_args(p.add_argument_group("parity rules (default: docs/parity.md)"))
        p.add_argument("--layerwise", action="store_true", help="localise the first divergent layer")
        p.add_argument("--out", default=None, help="folder for parity.* (default: RUN_DIR)")
        p.add_argument("--batch", type=positive_int, default=64, help="inference batch size")
        p.add_argument("--seed", type=non_negative_int, default=0, help="input selection seed")
        p.add_argument("--device", type=device, default="cpu", help="torch device of the reference (cpu, cuda)")
    p.add_argument("--precision", type=_precisions, default=None, help="fp32,fp16,int8 (default: every one present)")
    p.add_argument("--samples", type=non_negative_int, default=32 if matrix else 512,
                   help="labelled samples (capped at the split)")
    p.add_argument("--random", type=non_negative_int, default=8 if matrix else 32, help="seeded random inputs")
    p.add_argument("--threads", type=positive_int, default=None, help="ONNX Runtime intra-op threads (pinned, recorded)")
    p.add_argument("--junit", default=None, metavar="FILE", help="also write JUnit XML here")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def _validate_onnx(args) -> int:
    """``--onnx FILE``: export it (fp32 copy, fp16/int8 lowered and judged against the fp32 graph) into ``--out``
    (default: a temporary folder) and print the verdicts."""
    precisions = tuple(dict.fromkeys(["fp32", *(args.precision or ["fp16", "int8"])]))
    source = ModelSource.from_args(args)
    opts = ExportOptions(precisions=precisions, dataset=None if args.dataset == "none" else args.dataset,
                         data_root=args.data_root, eval_samples=args.samples or args.random or 32,
                         calib_samples=args.calib_samples, rules=rules_from_args(args))
    with tempfile.TemporaryDirectory(prefix="seadeploy-validate-") as tmp:
        out = args.out or tmp
        manifest = export_model(source, out, opts)
        if args.json:
            print_json({"out": args.out, "files": {p: f.parity for p, f in manifest.files.items()}})
        else:
            print("\n".join(summary_lines(manifest, args.out or "")))
    return 0


def _validate_onnx_run(args, run: Path) -> int:
    """An ONNX-only run folder (``export --onnx``, or convert's ONNX route): judge the lower-precision files its
    manifest lists against its fp32 ``model.onnx`` on the dataset the manifest records, and say what was skipped."""
    manifest = runfolder.read_manifest(run) if runfolder.has_manifest(run) else None
    listed = [p for p in PRECISIONS if p != "fp32" and manifest is not None and p in manifest.files]
    wanted = [p for p in (args.precision or listed) if p != "fp32"]
    skipped = [p for p in wanted if p not in listed]
    judged = [p for p in wanted if p in listed]
    notes = [f"{p}: no {onnx_name(p)} in the manifest of this ONNX-only run (export --onnx ... --precision {p})"
             for p in skipped]
    notes += [f"{b}: not run (an ONNX-only run has no PyTorch model; its fp32 model.onnx is the reference, judged "
              "on ONNX Runtime)" for b in args.backends if ".onnx" not in backend_class(b).file_suffixes]
    files = {p: manifest.file(run, p) for p in ("fp32", *judged)} if manifest else {"fp32": run / onnx_name("fp32")}
    of = OnnxFile.load(files["fp32"])
    dataset = args.dataset or (manifest.dataset if manifest else None) or "synthetic"
    mean, std = (list(manifest.mean), list(manifest.std)) if manifest else ([], [])
    opts = ExportOptions(precisions=("fp32", *judged), data_root=args.data_root, eval_samples=args.samples or 32,
                         rules=rules_from_args(args))
    _, verdicts = judge_onnx_files(files, of,
                                   "synthetic" if dataset == "none" else dataset, mean, std, opts)
    rows = [v for p in judged for v in verdicts[p]]
    if args.json:
        print_json({"run": str(run), "reference": ONNX_REFERENCE, "comparisons": [v.to_row() for v in rows],
                    "skipped": notes})
    else:
        print("\n".join([*(f"{'PASS' if v else 'FAIL'} {v.precision} vs fp32 ({v.inputs}, n={v.metrics.get('n')}): "
                            f"{v.detail()}" for v in rows), *(f"skipped: {n}" for n in notes)])
              or f"nothing to judge in '{run}': its fp32 model.onnx is the reference")
    return 0 if all(rows) else 1


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    matrix = bool(argv) and argv[0] == "matrix"
    args = _parser(matrix).parse_args(argv[1:] if matrix else argv)
    log = print if progress_enabled(args.json) else None
    # every output location is checked before any file is written (parity.* must not land when --junit is bad)
    check_out_folder(args.out)
    check_out_folder(args.junit, "--junit", file=True)
    if not matrix:
        args.run_dir, args.onnx = onnx_argument(args.run_dir, args.onnx)
        run = Path(args.run_dir or "")
        if args.run_dir and _onnx_only_run(run):
            return _validate_onnx_run(args, run)
        if args.onnx:
            return _validate_onnx(args)
        if not args.run_dir:
            raise ConfigError("give RUN_DIR (a folder written by export) or --onnx FILE")
    if matrix:
        report = run_matrix(models=args.models, attns=args.attn, precisions=args.precision, out_dir=args.out,
                            samples=args.samples, random=args.random, threads=args.threads,
                            calib_samples=args.calib_samples, jobs=args.jobs, log=log)
    else:
        report = validate_run(args.run_dir, backends=args.backends, precisions=args.precision, dataset=args.dataset,
                              samples=args.samples, random=args.random, batch=args.batch,
                              rules=rules_from_args(args), progress=log is not None, layerwise=args.layerwise,
                              device=args.device, threads=args.threads,
                              seed=args.seed, root=args.data_root, inputs=args.inputs, out_dir=args.out, log=log)
    if args.junit:
        write_junit(args.junit, report)
    print_json(report.to_dict()) if args.json else print(report.text())
    return 0 if report else 1


def _onnx_only_run(run: Path) -> bool:
    """A run folder written by ``export --onnx``: ONNX files, no checkpoint, and a manifest (if any) that records
    none. A folder whose manifest names a checkpoint that is gone is a broken run, reported as such."""
    if (run / CHECKPOINT).is_file() or not (run / onnx_name("fp32")).is_file():
        return False
    return not runfolder.has_manifest(run) or runfolder.read_manifest(run).checkpoint_sha256 is None


def main(argv: list[str] | None = None) -> int:
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
