"""The CI numerics gate: export every attention × backbone and validate fp32/fp16/int8 on ONNX Runtime CPU.

``python -m seadeploy.validate matrix`` runs the same export users run (``seadeploy.export.runner.export_run``,
with its own checks) on random-weight models, then :func:`~seadeploy.validate.parity.validate_run` on each
run folder. Random weights: fp32 is judged element-wise (atol = rtol = 1e-4) and fp16/int8 on cosine
(≥ 0.999 / ≥ 0.98), since top-1 of near-uniform logits flips on harmless errors (see compare.py). A case
whose export fails (its own parity checks included) is a failed case with the export's message.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from seadeploy.artifacts import atomic_path, write_json
from seadeploy.errors import ConfigError, SeadeployError
from seadeploy.validate.compare import Comparison

DEFAULT_MODELS = ("vgg16_cifar", "resnet20_cifar", "efficientnet_b0")
INPUT_SIZES = {"efficientnet_b0": 64}  # small input keeps the gate within minutes on 2 cores
MATRIX_DATASET = "digits"


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
    from seadeploy.models import list_attention, list_models

    models = list(models or DEFAULT_MODELS)
    attns = list(attns or list_attention())
    for name, valid, kind in [*((m, list_models(), "model") for m in models), *((a, list_attention(), "attention")
                                                                                for a in attns)]:
        if name not in valid:
            raise ConfigError(f"unknown {kind} '{name}'. Valid choices: {', '.join(valid)}")
    return [(m, a) for m in models for a in attns]


def _export(model: str, attn: str, out: Path, precisions: Sequence[str], calib: int, samples: int) -> None:
    import torch

    from seadeploy.artifacts import ModelSpec
    from seadeploy.export.pipeline import ExportOptions, load_source
    from seadeploy.export.runner import export_run
    from seadeploy.models import model_defaults

    torch.manual_seed(0)  # the same random weights on every run
    d = model_defaults(model)
    spec = ModelSpec(model, attn=attn, num_classes=10, input_size=INPUT_SIZES.get(model, d.input_size))
    ckpt, src = load_source(spec=spec, dataset=MATRIX_DATASET)
    opts = ExportOptions(precisions=tuple(precisions), calib_samples=calib, eval_samples=samples,
                         dataset=MATRIX_DATASET)
    export_run(ckpt, out, opts, source_file=src)


def run_matrix(models: Sequence[str] | None = None, attns: Sequence[str] | None = None,
               precisions: Sequence[str] | None = None, out_dir: str | None = None, samples: int = 64,
               random: int = 16, threads: int | None = None, calib_samples: int = 32,
               log: Callable[[str], None] | None = None) -> MatrixReport:
    """Export and validate every case; writes ``matrix.json`` and ``matrix.csv`` into ``out_dir``.

    Args:
        models / attns: the cases (default: vgg16_cifar, resnet20_cifar, efficientnet_b0 at 64 px × every attention).
        precisions: default fp32, fp16, int8. samples / random: digits samples and random inputs per case.
        out_dir: run folders and the summary (default: a temporary folder, removed afterwards).
        threads: ORT threads. calib_samples: int8 calibration samples.
    """
    from seadeploy.validate.parity import validate_run

    precisions = list(precisions or ("fp32", "fp16", "int8"))
    cases = matrix_cases(models, attns)
    tmp = None if out_dir else tempfile.TemporaryDirectory(prefix="seadeploy-matrix-")
    root = Path(out_dir or tmp.name)
    rows, comparisons = [], []
    try:
        for model, attn in cases:
            name, run = f"{model}-{attn}", root / f"{model}-{attn}"
            row = {"case": name, "model": model, "attn": attn, "passed": False, "export_s": 0.0, "validate_s": 0.0,
                   "error": ""}
            start = time.perf_counter()
            try:
                if log:
                    log(f"[{len(rows) + 1}/{len(cases)}] {name}: export")
                _export(model, attn, run, precisions, calib_samples, samples)
                row["export_s"] = round(time.perf_counter() - start, 2)
                start = time.perf_counter()
                report = validate_run(run, backends=("ort",), precisions=precisions, samples=samples, random=random,
                                      threads=threads, trained=False)
                for c in report.comparisons:
                    c.info["case"] = name
                comparisons += report.comparisons
                row.update(passed=bool(report), error="; ".join(report.failures))
            except SeadeployError as exc:
                row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            row["validate_s"] = round(time.perf_counter() - start, 2) if row["export_s"] else 0.0
            rows.append(row)
        report = MatrixReport(rows, comparisons, str(root) if out_dir else "")
        if out_dir:
            write_json(root / "matrix.json", report.to_dict())
            with atomic_path(root / "matrix.csv") as t:
                report.to_frame().to_csv(t, index=False)
        return report
    finally:
        if tmp is not None:
            tmp.cleanup()
