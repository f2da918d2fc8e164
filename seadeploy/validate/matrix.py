"""The CI numerics gate: export every attention × backbone and validate fp32/fp16/int8 on ONNX Runtime CPU.

``python -m seadeploy.validate matrix`` runs the same export users run (``seadeploy.export.runner.export_run``,
with its own checks) on random-weight models (seed 0), then :func:`~seadeploy.validate.judge.validate_run` on
each run folder. Export and validate judge with the same rules (:mod:`seadeploy.parity`, ``docs/parity.md``): the
documented random-weight rules, with the family's int8 cosine floor (:func:`matrix_rules`). A case whose export
fails (its own parity checks included) is a failed case with the export's message.
int8 floors per family: see ``INT8_MIN_COSINE``. BatchNorm statistics are recalibrated first (see
:func:`~seadeploy.models.layers.recalibrate_batchnorm`).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seadeploy.data.samples import load_samples
from seadeploy.errors import ConfigError, InputError, SeadeployError
from seadeploy.export.runner import export_run
from seadeploy.export.steps import ExportOptions, source_checkpoint
from seadeploy.fileio import atomic_path, write_json
from seadeploy.models import list_attention, list_models, model_defaults
from seadeploy.models.build import load_model, resolve_spec
from seadeploy.models.layers import recalibrate_batchnorm
from seadeploy.models.source import ModelSource
from seadeploy.parity import Comparison, RuleSet, default_rule
from seadeploy.runfolder import PRECISIONS, ModelSpec, read_manifest
from seadeploy.validate.judge import validate_run

DEFAULT_MODELS = ("vgg16_cifar", "resnet20_cifar", "efficientnet_b0")
INPUT_SIZES = {"efficientnet_b0": 64}  # small input keeps the gate within minutes on 2 cores
MATRIX_DATASET = "digits"
BN_SAMPLES = 128
#: int8 vs PyTorch cosine on digits for random-weight nets, measured (BN recalibrated, 32 MinMax calibration
#: samples, symmetric activations as TensorRT needs): VGG16 and ResNet-20 ≥ 0.999 for every attention;
#: EfficientNet-B0 none 0.974, rgse 0.974, se 0.922, tse 0.899, cbam 0.872, spse 0.847 (measured with
#: ``seadeploy validate matrix --models efficientnet_b0 --out DIR``, DIR/matrix.csv; SiLU outputs in [-0.28, ∞)
#: waste half the symmetric codes). Random-weight EfficientNet int8 is not representative of a trained one: its
#: floor only catches a collapse. The floors sit below the measured values; a regression below them fails CI.
INT8_MIN_COSINE = {"efficientnet": 0.5}
INT8_MIN_COSINE_DEFAULT = 0.98


@dataclasses.dataclass
class MatrixReport:
    """Per-case outcomes and every comparison; truthy when every case exported and passed."""

    cases: list[dict[str, Any]]
    comparisons: list[Comparison]
    out_dir: str

    def __bool__(self) -> bool:
        return bool(self.cases) and all(c["passed"] for c in self.cases)

    def to_frame(self) -> pd.DataFrame:
        """One row per comparison with its case (model, attention)."""
        rows = [{"case": c.info.get("case"), **c.to_row()} for c in self.comparisons]
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": 1, "passed": bool(self), "out_dir": self.out_dir, "cases": self.cases,
                "comparisons": [{"case": c.info.get("case"), **c.to_row()} for c in self.comparisons]}

    def text(self) -> str:
        frame = pd.DataFrame(self.cases)
        lines = [frame.to_string(index=False) if not frame.empty else "(no cases)"]
        lines += [f"FAIL {c['case']}: {c['error']}" for c in self.cases if not c["passed"]]
        total = sum(c["export_s"] + c["validate_s"] for c in self.cases)
        n_ok = sum(1 for c in self.cases if c["passed"])
        lines.append(f"{'PASSED' if self else 'FAILED'}: {n_ok}/{len(self.cases)} cases ({total:.0f} s)")
        return "\n".join(lines)


def matrix_cases(models: Sequence[str] | None, attns: Sequence[str] | None) -> list[tuple[str, str]]:
    """``(model, attention)`` pairs, checked against the registries."""
    models = list(models or DEFAULT_MODELS)
    attns = list(attns or list_attention())
    for name, valid, kind in [*((m, list_models(), "model") for m in models), *((a, list_attention(), "attention")
                                                                                for a in attns)]:
        if name not in valid:
            raise ConfigError(f"unknown {kind} '{name}'. Valid choices: {', '.join(valid)}")
    return [(m, a) for m in models for a in attns]


def int8_min_cosine(model: str) -> float:
    """The gate's int8 cosine floor for ``model`` (see ``INT8_MIN_COSINE``)."""
    return INT8_MIN_COSINE.get(model_defaults(model).family, INT8_MIN_COSINE_DEFAULT)


def matrix_rules(model: str) -> RuleSet:
    """The gate's rules, for export and validate alike: the random-weight defaults with the family's int8 floor."""
    # the family floors were measured on the raw cosine (INT8_MIN_COSINE), so they replace the centred floor too
    int8 = dataclasses.replace(default_rule("int8", "data", trained=False), min_cosine=int8_min_cosine(model),
                               min_cosine_centered=None)
    return RuleSet(trained=False, overrides={"int8": int8})


def _export(model: str, attn: str, out: Path, precisions: Sequence[str], calib: int, samples: int) -> None:
    d = model_defaults(model)
    spec = resolve_spec(ModelSpec(model, attn=attn, num_classes=10, input_size=INPUT_SIZES.get(model, d.input_size)))
    # the same random weights on every run (seed 0)
    ckpt = source_checkpoint(ModelSource.from_spec(spec), ExportOptions(dataset=MATRIX_DATASET, seed=0))
    real, _ = load_samples(MATRIX_DATASET, BN_SAMPLES // 2, split="train", input_size=spec.input_size,
                           mean=ckpt.mean, std=ckpt.std, seed=2)
    noise, _ = load_samples("synthetic", BN_SAMPLES // 2, input_size=spec.input_size, seed=3)
    net = recalibrate_batchnorm(load_model(ckpt), np.concatenate([real, noise]))
    ckpt.state_dict = {k: v.detach().clone() for k, v in net.state_dict().items()}
    ckpt.extra = {"weights": f"random initialisation (seed 0), BatchNorm statistics recalibrated on "
                             f"{BN_SAMPLES // 2} {MATRIX_DATASET} train samples + {BN_SAMPLES // 2} seeded noise inputs",
                  "seed": 0}
    opts = ExportOptions(precisions=tuple(precisions), calib_samples=calib, eval_samples=samples,
                         dataset=MATRIX_DATASET, rules=matrix_rules(model))
    export_run(ckpt, out, opts, source_file=None)


def run_case(model: str, attn: str, root: Path, precisions: Sequence[str], samples: int, random: int,
             threads: int | None, calib: int) -> tuple[dict[str, Any], list[Comparison]]:
    """Export and validate one case; a seadeploy error becomes a failed row (the matrix goes on)."""
    name = f"{model}-{attn}"
    row: dict[str, Any] = {"case": name, "model": model, "attn": attn, "passed": False, "export_s": 0.0,
                           "validate_s": 0.0, "error": ""}
    comparisons: list[Comparison] = []
    start = time.perf_counter()
    stage = "export_s"
    try:
        _export(model, attn, root / name, precisions, calib, samples)
        traps = [c for c in read_manifest(root / name).checks if c.name == "lint" and not c.passed]
        if traps:  # a zoo export carries no error-level deployment trap (GatherND, ceil-mode pools ...)
            raise InputError(f"lint of {traps[0].file}: {traps[0].detail}")
        row["export_s"], start, stage = round(time.perf_counter() - start, 2), time.perf_counter(), "validate_s"
        report = validate_run(root / name, backends=("ort",), precisions=precisions, samples=samples, random=random,
                              threads=threads, rules=matrix_rules(model))
        for c in report.comparisons:
            c.info["case"] = name
        comparisons = report.comparisons
        row.update(passed=bool(report), error="; ".join(report.failures))
    except Exception as exc:  # noqa: BLE001 - a crash in one case (export bug, library error) fails that case only
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        kind = "" if isinstance(exc, SeadeployError) else " (unexpected; set SEADEPLOY_DEBUG=1 for the traceback)"
        if os.environ.get("SEADEPLOY_DEBUG"):
            raise
        row["error"] = f"{type(exc).__name__} in {stage[:-2]}: {first}{kind}"
    row[stage] = round(time.perf_counter() - start, 2)
    return row, comparisons


def run_matrix(models: Sequence[str] | None = None, attns: Sequence[str] | None = None,
               precisions: Sequence[str] | None = None, out_dir: str | None = None, samples: int | None = None,
               random: int | None = None, threads: int | None = None, calib_samples: int = 32, jobs: int = 1,
               log: Callable[[str], None] | None = None) -> MatrixReport:
    """Export and validate every case; writes ``matrix.json`` and ``matrix.csv`` into ``out_dir``.

    Args:
        models / attns: the cases (default: vgg16_cifar, resnet20_cifar, efficientnet_b0 at 64 px × every attention).
        precisions: default fp32, fp16, int8. samples / random: digits samples (32) and random inputs (8) per case.
        out_dir: run folders and the summary (default: a temporary folder, removed afterwards).
        threads: ORT threads per case. calib_samples: int8 calibration samples.
        jobs: cases run in parallel worker processes (the dynamo export is single-threaded Python).
    """
    precisions = list(precisions or PRECISIONS)
    samples, random = 32 if samples is None else int(samples), 8 if random is None else int(random)
    if jobs < 1:
        raise ConfigError(f"--jobs must be ≥ 1, got {jobs}")
    cases = matrix_cases(models, attns)
    tmp = None if out_dir else tempfile.TemporaryDirectory(prefix="seadeploy-matrix-")
    root = Path(out_dir or tmp.name)
    args = [(m, a, root, precisions, samples, random, threads, calib_samples) for m, a in cases]
    try:
        results = _map(args, jobs, log)
        report = MatrixReport([r for r, _ in results], [c for _, cs in results for c in cs], str(root) if out_dir else "")
        if out_dir:
            write_json(root / "matrix.json", report.to_dict())
            with atomic_path(root / "matrix.csv") as t:
                report.to_frame().to_csv(t, index=False)
        return report
    finally:
        if tmp is not None:
            tmp.cleanup()


def _map(args: list[tuple], jobs: int, log: Callable[[str], None] | None) -> list[tuple[dict[str, Any], list]]:
    if jobs == 1 or len(args) == 1:
        out = []
        for i, a in enumerate(args):
            if log:
                log(f"[{i + 1}/{len(args)}] {a[0]}-{a[1]}")
            out.append(run_case(*a))
        return out
    # spawn: a forked child of a process that already ran torch/ORT thread pools can deadlock
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(run_case, *a) for a in args]
        out = []
        for i, f in enumerate(futures):
            out.append(f.result())
            if log:
                log(f"[{i + 1}/{len(args)}] {out[-1][0]['case']}: {'pass' if out[-1][0]['passed'] else 'FAIL'}")
        return out
