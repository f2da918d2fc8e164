"""The export stage end to end: source → model.onnx (+ fp16/int8, engines) → checks → manifest.json.

::

    ckpt, src = load_source(spec=ModelSpec("resnet56_cifar", attn="tse"), dataset="digits")
    manifest = export_run(ckpt, "runs/x", ExportOptions(precisions=("fp32", "fp16", "int8")), source_file=src)

Everything is written into a staging folder inside ``out`` and moved into place only after every check
passed, ``manifest.json`` last: a failing export (exit 1/2/3) leaves nothing half-written.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seadeploy.artifacts import CHECKPOINT, MANIFEST, Checkpoint, ModelSpec, sha256
from seadeploy.errors import ConfigError, InputError
from seadeploy.export import checks

PRECISIONS = ("fp32", "fp16", "int8")
DEFAULT_DATASET = "digits"
#: Pass criteria. fp32 vs PyTorch: |ort − ref| ≤ atol + rtol·|ref| elementwise. fp16/int8 vs the fp32 ONNX file
#: on real samples: top-1 agreement and cosine similarity of the logits at least these values.
TOLERANCES: dict[str, dict[str, float]] = {
    "fp32": {"atol": 1e-4, "rtol": 1e-3},
    "fp16": {"min_top1": 0.98, "min_cosine": 0.999},
    "int8": {"min_top1": 0.90, "min_cosine": 0.98},
}


@dataclasses.dataclass
class ExportOptions:
    """What ``python -m seadeploy.export`` does; defaults follow CONTRACTS.md."""

    precisions: tuple[str, ...] = ("fp32",)
    opset: int = 18
    batch: int = 1
    dynamic_batch: bool = True
    max_batch: int = 32
    simplify: bool = False
    dataset: str | None = None
    data_root: str | None = None
    calib_samples: int = 256
    eval_samples: int = 512
    fp16_policy: str = "attention-fp32"
    int8_activations: str = "s8"
    engine: bool = False
    workspace_mb: int = 1024
    progress: bool = False
    tolerances: dict[str, dict[str, float]] = dataclasses.field(default_factory=lambda: dict(TOLERANCES))

    def validate(self) -> None:
        """Raise ``ConfigError`` for unknown precisions or impossible sizes."""
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad or not self.precisions:
            raise ConfigError(f"unknown precision '{bad[0] if bad else ''}'. Valid choices: {', '.join(PRECISIONS)} "
                              "(comma-separated, e.g. --precision fp32,fp16,int8)")
        for name in ("batch", "max_batch", "calib_samples", "eval_samples", "workspace_mb"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be ≥ 1, got {getattr(self, name)}")
        from seadeploy.export.precision import INT8_ACTIVATIONS, Fp16Policy

        Fp16Policy.named(self.fp16_policy)  # raises ConfigError listing the valid names
        if self.int8_activations not in INT8_ACTIVATIONS:
            raise ConfigError(f"unknown --int8-activations '{self.int8_activations}'. Valid choices: "
                              f"{', '.join(INT8_ACTIVATIONS)}")
        if self.engine and "int8" in self.precisions and self.int8_activations != "s8":
            raise ConfigError("TensorRT needs symmetric int8 activations: drop --int8-activations u8 with --engine")
        if self.dynamic_batch and self.batch > self.max_batch:
            raise ConfigError(f"--batch {self.batch} exceeds --max-batch {self.max_batch}")


# --------------------------------------------------------------------------------------------- source
def load_source(source: str | os.PathLike | None = None, *, spec: ModelSpec | None = None,
                dataset: str | None = None, data_root: str | None = None) -> tuple[Checkpoint, Path | None]:
    """The checkpoint to export: a run folder / checkpoint file (``source``) or a fresh model from ``spec``.

    Returns the checkpoint (weights checked to fit the model) and the checkpoint file it came from (None when
    built from flags: its freshly initialised weights are saved with the export).
    """
    if (source is None) == (spec is None):
        raise ConfigError("give exactly one of RUN_DIR, --checkpoint FILE or --model NAME")
    if source is not None:
        ckpt = Checkpoint.load(source)
        ckpt.build_model()  # raises InputError naming the first tensor that does not fit
        path = Path(source)
        return ckpt, path / CHECKPOINT if path.is_dir() else path
    dataset = dataset or DEFAULT_DATASET
    info = _dataset_info(dataset, spec.input_size, data_root)
    model = spec.build().eval()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return Checkpoint(spec=spec, state_dict=state, mean=tuple(info.mean), std=tuple(info.std), dataset=dataset,
                      extra={"weights": "random initialisation (exported from flags)"}), None


def _dataset_info(dataset: str, input_size: int, root: str | None) -> Any:
    from seadeploy.data import get_dataset

    # The dataset's own resolution: normalisation statistics do not depend on the export resolution, and
    # resizing the whole split (e.g. to 224) only to read them costs seconds.
    return get_dataset(dataset, split="test", root=root).info


# -------------------------------------------------------------------------------------------- staging
@contextmanager
def staging(out: str | os.PathLike) -> Iterator[Path]:
    """A temp folder inside ``out``; removed on exit. ``out`` is removed too if it was created and stays empty."""
    out = Path(out)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".export-", dir=out))
    except OSError as exc:
        raise InputError(f"cannot write to output folder '{out}': {exc.strerror or exc}; choose a writable --out") from exc
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()


def commit(stage: Path, out: Path, names: list[str]) -> None:
    """Move staged files into ``out`` (``manifest.json`` last, so readers never see a manifest without its files)."""
    umask = os.umask(0)
    os.umask(umask)
    for name in sorted(names, key=lambda n: n == MANIFEST):
        os.chmod(stage / name, 0o666 & ~umask)  # temp files are created 0600; give run files the usual mode
        os.replace(stage / name, out / name)


# ---------------------------------------------------------------------------------------------- checks
def _batches(opts: ExportOptions) -> tuple[int, ...]:
    """Parity batch sizes: other than the export example (2) when dynamic, the static batch otherwise."""
    return (1, 3) if opts.dynamic_batch else (opts.batch,)


def check_file(path: Path, feed_batch: int, record: list[dict[str, Any]]) -> None:
    """Checker, strict shape inference and declared-vs-runtime shapes; raises on the first failure."""
    from seadeploy.errors import ParityFailure

    proto = checks.load_onnx(path)
    first = checks.check_model_full(path)
    inferred, second = checks.infer_shapes_strict(proto, path.name)
    results = [first, second]
    if inferred is not None:
        x = checks.seeded_inputs(_input_shape(proto), (feed_batch,), seed=7)[0]
        results.append(checks.check_declared_shapes(inferred, {"x": x}, path.name))
    record.extend(r.to_dict() for r in results)
    failed = next((r for r in results if not r), None)
    if failed is not None:
        raise ParityFailure(f"{path.name}: check {failed.name} failed: {failed.detail}")


def _input_shape(proto: Any) -> tuple[int, ...]:
    return tuple(int(d.dim_value) for d in proto.graph.input[0].type.tensor_type.shape.dim[1:])


def chunk(x: np.ndarray, batch: int | None) -> list[np.ndarray]:
    """Split into batches of exactly ``batch`` (static-batch files), or one batch when ``batch`` is None."""
    if batch is None:
        return [x]
    return [x[i:i + batch] for i in range(0, len(x) - batch + 1, batch)] or [x[:batch]]


def torch_reference(model: torch.nn.Module):
    """``np.ndarray → np.ndarray`` logits of the eval-mode PyTorch model (CPU, no grad)."""

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(np.ascontiguousarray(x))).float().numpy()

    return run


def accuracy(logits: np.ndarray, labels: np.ndarray | None) -> float | None:
    """Top-1 accuracy against labels (None without labels)."""
    if labels is None or len(labels) == 0:
        return None
    return float((np.asarray(logits).argmax(-1) == labels[: len(logits)]).mean())


def eval_samples(ckpt: Checkpoint, dataset: str, opts: ExportOptions, split: str = "test",
                 n: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """Seeded real samples of the run's dataset, normalised like the checkpoint (the whole split if smaller)."""
    from seadeploy.data import get_dataset
    from seadeploy.data.samples import load_samples

    n = int(n or opts.eval_samples)
    if dataset != "synthetic":
        n = min(n, len(get_dataset(dataset, split=split, root=opts.data_root)))
    return load_samples(dataset, n, split=split, input_size=ckpt.spec.input_size, mean=ckpt.mean, std=ckpt.std,
                        seed=seed, root=opts.data_root)


def compare_precision(path: Path, ref: np.ndarray, x: np.ndarray, y: np.ndarray | None, precision: str,
                      opts: ExportOptions) -> checks.Check:
    """fp16/int8 file vs the fp32 file's logits on the same real samples (ONNX Runtime CPU)."""
    tol = opts.tolerances[precision]
    sess = checks.ort_session(path)
    out = np.concatenate([sess.run(None, {"x": b})[0] for b in chunk(x, None if opts.dynamic_batch else opts.batch)])
    metrics = checks.compare_logits(ref[: len(out)], out)
    metrics.update(tol, accuracy=accuracy(out, y), reference="model.onnx (fp32) on ONNX Runtime CPU")
    ok = metrics["finite"] and metrics["top1_agreement"] >= tol["min_top1"] and metrics["cosine"] >= tol["min_cosine"]
    detail = (f"vs fp32 on {metrics['n']} samples: top-1 agreement {metrics['top1_agreement']:.4f} "
              f"(≥ {tol['min_top1']}), cosine {metrics['cosine']:.6f} (≥ {tol['min_cosine']}), "
              f"max_abs {metrics['max_abs']:.3g}, mean_abs {metrics['mean_abs']:.3g}")
    return checks.Check(f"parity.{precision}_vs_fp32", path.name, bool(ok), detail, metrics)


def lint_check(path: Path) -> dict[str, Any]:
    """The export lint as a manifest check record (recorded, never fatal: the shape/parity checks are)."""
    from seadeploy.export.lint import lint_onnx

    report = lint_onnx(path)
    errors = len(report.errors)
    warnings = sum(1 for f in report.findings if f.severity == "warning")
    first = f"; first: {report.findings[0].rule} at {report.findings[0].node}" if report.findings else ""
    return checks.Check("lint", path.name, bool(report), f"{errors} errors, {warnings} warnings{first}",
                        {"findings": [dict(rule=f.rule, severity=f.severity, node=f.node) for f in report.findings]}
                        ).to_dict()


def file_entry(path: Path, precision: str, parity: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """``manifest["files"][precision]``."""
    return {"path": path.name, "precision": precision, "sha256": sha256(path), "bytes": path.stat().st_size,
            "parity": parity, **extra}


def options_from_args(a: Any, progress: bool = False) -> tuple[str | None, ModelSpec | None, ExportOptions]:
    """Turn parsed ``python -m seadeploy.export`` arguments into (source, spec, options); one source required."""
    from seadeploy.cli import parse_kv_args

    sources = [s for s in (a.source, a.checkpoint, a.model) if s]
    if len(sources) != 1:
        raise ConfigError("give exactly one of RUN_DIR, --checkpoint FILE or --model NAME (see --help)")
    if not (a.out or a.source):
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
                         eval_samples=a.eval_samples, fp16_policy=a.fp16_policy, int8_activations=a.int8_activations,
                         engine=a.engine, workspace_mb=a.workspace_mb, progress=progress)
    opts.validate()
    return a.source or a.checkpoint, spec, opts


def summary_lines(manifest: dict[str, Any], out: str | os.PathLike) -> list[str]:
    """The human summary printed after an export."""
    lines = []
    for precision, f in manifest["files"].items():
        p = f["parity"]
        acc = f", accuracy {p['accuracy']:.4f}" if p.get("accuracy") is not None else ""
        lines.append(f"{precision:5s} {Path(out) / f['path']}: max_abs {p['max_abs']:.3g}, "
                     f"top-1 agreement {p['top1_agreement']:.4f} on {p['n']} samples{acc}")
    for precision, e in manifest["engines"].items():
        lines.append(f"{precision:5s} {Path(out) / e['path']}: TensorRT {e['tensorrt']} on {e['gpu']}, "
                     f"{e['device_memory_size_v2'] / 2**20:.1f} MiB device memory")
    passed = sum(bool(c["passed"]) for c in manifest["checks"])
    lines.append(f"manifest: {Path(out) / MANIFEST} ({passed}/{len(manifest['checks'])} checks passed; lint is advisory)")
    return lines
