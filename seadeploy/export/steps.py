"""The export stage's steps around the exported files: options, the source checkpoint, staging and commit, checks, samples,
the manifest it starts from and the summary it prints.

::

    opts = ExportOptions(precisions=("fp32", "fp16", "int8"), dataset="digits")
    manifest = export_model(ModelSource("resnet56_cifar", attn="tse"), "runs/x", opts)

(:func:`~seadeploy.export.runner.export_model` is the stage for every model source, ``export_run`` for a run
folder's checkpoint.) Everything is written into a staging folder inside
``out`` and moved into place only after every check passed, ``manifest.json`` last: a failing export (exit 1/2/3)
leaves nothing half-written. Parity is judged by :mod:`seadeploy.parity` (rules: ``docs/parity.md``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import gc
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from seadeploy.cli import any_rule_args, rules_from_args
from seadeploy.data import get_dataset
from seadeploy.data.samples import load_samples
from seadeploy.errors import ConfigError, InputError, ParityFailure
from seadeploy.export import checks
from seadeploy.export.lint import lint_onnx
from seadeploy.export.onnx_export import BATCH_DIM, EXPORTER, INPUT_NAME, OUTPUT_NAME
from seadeploy.export.precision import Fp16Policy, int8_target
from seadeploy.fileio import sweep_stale
from seadeploy.graphs.load import load_model as load_onnx_model
from seadeploy.models.build import load_model
from seadeploy.models.source import ModelSource
from seadeploy.parity import RuleSet
from seadeploy.runfolder import CHECKPOINT, MANIFEST, PRECISIONS, Check, Checkpoint, Manifest, ModelSpec, stage_files

DEFAULT_DATASET = "digits"
#: glibc's ``malloc_trim`` (None elsewhere, e.g. musl or macOS); see :func:`release_memory`.
_MALLOC_TRIM = getattr(ctypes.CDLL(ctypes.util.find_library("c")), "malloc_trim", None) if os.name == "posix" else None
#: Real samples export judges every file on. Export's parity is a gate on the files it writes (a wrong op, weight
#: or layout moves cosine and top-1 on the first few samples); ``validate`` (512 by default) is the measurement.
#: 128 keeps top-1 agreement meaningful at the 99 % floors (one flip in 128 is 99.2 %) and bounds the cost of a
#: 224-px ResNet-152 export on 2 cores.
EVAL_SAMPLES = 128
#: Inference batch of the parity runs: memory is bounded by this, not by the number of samples.
EVAL_BATCH = 8


@dataclasses.dataclass
class ExportOptions:
    """What ``python -m seadeploy.export`` does; defaults follow docs/architecture.md §2."""

    precisions: tuple[str, ...] = ("fp32",)
    opset: int = 18
    batch: int = 1
    dynamic_batch: bool = True
    max_batch: int = 32
    simplify: bool = False
    dataset: str | None = None
    data_root: str | None = None
    calib_samples: int = 256
    eval_samples: int = EVAL_SAMPLES
    eval_batch: int = EVAL_BATCH
    fp16_policy: str = "attention-fp32"
    #: int8 Q/DQ form (precision.INT8_TARGETS): ort-cpu | tensorrt; None: tensorrt with --engine, else ort-cpu.
    int8_target: str | None = None
    engine: bool = False
    workspace_mb: int = 1024
    progress: bool = False
    seed: int = 0
    #: How parity is judged (None: the documented defaults for a trained / random-weight checkpoint).
    rules: RuleSet | None = None

    def validate(self) -> None:
        """Raise ``ConfigError`` for unknown precisions or impossible sizes."""
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad or not self.precisions:
            raise ConfigError(f"unknown precision '{bad[0] if bad else ''}'. Valid choices: {', '.join(PRECISIONS)} "
                              "(comma-separated, e.g. --precision fp32,fp16,int8)")
        for name in ("batch", "max_batch", "calib_samples", "eval_samples", "eval_batch", "workspace_mb"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be ≥ 1, got {getattr(self, name)}")
        Fp16Policy.named(self.fp16_policy)  # raises ConfigError listing the valid names
        self.resolved_int8_target()  # an unknown --int8-target is refused even when int8 is not exported
        if self.engine and "int8" in self.precisions and self.resolved_int8_target() != "tensorrt":
            raise ConfigError("TensorRT needs symmetric int8 activations: use --int8-target tensorrt with --engine")
        if self.dynamic_batch and self.batch > self.max_batch:
            raise ConfigError(f"--batch {self.batch} exceeds --max-batch {self.max_batch}")

    def resolved_int8_target(self) -> str:
        """The int8 target name (ConfigError for an unknown one): the given one, else by ``engine``."""
        if self.int8_target is None:
            return "tensorrt" if self.engine else "ort-cpu"
        return int8_target(self.int8_target).name


# --------------------------------------------------------------------------------------------- source
def load_source(source: str | os.PathLike) -> tuple[Checkpoint, Path]:
    """The checkpoint of a run folder or checkpoint file, its weights checked to fit the model, and that file."""
    ckpt = Checkpoint.load(source)
    load_model(ckpt)  # raises InputError naming the first tensor that does not fit
    path = Path(source)
    return ckpt, path / CHECKPOINT if path.is_dir() else path


def source_checkpoint(source: ModelSource, opts: ExportOptions) -> Checkpoint:
    """A fresh checkpoint of a PyTorch model source (``--model``), normalised like its dataset; a model without
    ``--weights`` draws its weights from ``torch.manual_seed(opts.seed)`` (recorded in ``extra["seed"]`` and the
    manifest), so the same command exports the same weights and gets the same verdict."""
    info = _dataset_info(opts.dataset or DEFAULT_DATASET, opts.data_root)
    return source.checkpoint(tuple(info.mean), tuple(info.std), opts.dataset or DEFAULT_DATASET, seed=opts.seed)


def _dataset_info(dataset: str, root: str | None) -> Any:
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
        sweep_stale(out, (".export-*", ".*.tmp"))  # staging folders and temp files of a killed run (process gone)
        stage = Path(tempfile.mkdtemp(prefix=f".export-{os.getpid()}-", dir=out))
    except OSError as exc:
        raise InputError(f"cannot write to output folder '{out}': {exc.strerror or exc}; choose a writable --out") from exc
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()


def commit(stage: Path, out: Path, names: list[str]) -> None:
    """Move staged files into ``out`` (``manifest.json`` last, so readers never see a manifest without its files),
    then remove the export files of an earlier export that this one did not write (a re-export with fewer
    precisions must not leave files no manifest vouches for)."""
    umask = os.umask(0)
    os.umask(umask)
    for name in sorted(names, key=lambda n: n == MANIFEST):
        os.chmod(stage / name, 0o666 & ~umask)  # temp files are created 0600; give run files the usual mode
        os.replace(stage / name, out / name)
    for name in stage_files("export"):
        if name not in names:
            (out / name).unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------- checks
def random_batches(opts: ExportOptions) -> tuple[int, ...]:
    """Batch sizes of the random-input check: other than the export example (2) when dynamic, else the static batch."""
    return (1, 3) if opts.dynamic_batch else (opts.batch,)


def check_file(path: Path, feed_batch: int, record: list[Check]) -> None:
    """Checker, strict shape inference and declared-vs-runtime shapes; raises on the first failure.

    The checker and the shape inference read the file in C++; Python holds one graph, the inferred one.
    """
    first = checks.check_model_full(path)
    if not first:
        load_onnx_model(path)  # an unreadable file is an InputError (exit 2), not a failed check
    inferred, second = checks.infer_shapes_strict(path, path.name)
    results = [first, second]
    if inferred is not None:
        x = checks.seeded_inputs(_input_shape(inferred), (feed_batch,), seed=7)[0]
        results.append(checks.check_declared_shapes(inferred, {"x": x}, path.name))
    del inferred
    release_memory()
    record.extend(results)
    failed = next((r for r in results if not r), None)
    if failed is not None:
        raise ParityFailure(f"{path.name}: check {failed.name} failed: {failed.detail}")


def release_memory() -> None:
    """Collect garbage and give the heap pages it freed back to the OS; called between export steps.

    Hand-written (neither torch nor onnx offers it): glibc keeps the pages of the freed protobuf and tensor
    buffers of the export and the file checks in the main thread's heap, and the parity runs' memory can stack
    on top of them (likely: their worker threads allocate from other malloc arenas). Measured on
    ``export --model resnet152 --attn se`` (224 px): peak RSS 3686 MiB without, 3077 MiB with, same CPU time;
    resnet50+se is unchanged (1803 / 1831 MiB). No-op where there is no glibc.
    """
    gc.collect()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _input_shape(proto: Any) -> tuple[int, ...]:
    return tuple(int(d.dim_value) for d in proto.graph.input[0].type.tensor_type.shape.dim[1:])


def eval_samples(ckpt: Checkpoint, dataset: str, opts: ExportOptions, split: str = "test",
                 n: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """Seeded real samples of the run's dataset, normalised like the checkpoint (the whole split if smaller)."""
    n = int(n or opts.eval_samples)
    if dataset != "synthetic":
        n = min(n, len(get_dataset(dataset, split=split, root=opts.data_root)))
    return load_samples(dataset, n, split=split, input_size=ckpt.spec.input_size, mean=ckpt.mean, std=ckpt.std,
                        seed=seed, root=opts.data_root)


def lint_check(path: Path) -> Check:
    """The export lint as a manifest check record (recorded, never fatal: the shape/parity checks are)."""
    report = lint_onnx(path)
    release_memory()  # the graph lint loaded
    errors = len(report.errors)
    warnings = sum(1 for f in report.findings if f.severity == "warning")
    first = f"; first: {report.findings[0].rule} at {report.findings[0].node}" if report.findings else ""
    return Check("lint", path.name, bool(report), f"{errors} errors, {warnings} warnings{first}",
                 {"findings": [{"rule": f.rule, "severity": f.severity, "node": f.node} for f in report.findings]})


def options_from_args(a: Any, progress: bool = False) -> tuple[str | None, ModelSource | None, ExportOptions]:
    """Parsed ``python -m seadeploy.export`` arguments → ``(run folder or checkpoint file, model source, options)``:
    exactly one of the first two is given (``--model`` and ``--onnx`` are both a :class:`ModelSource`)."""
    sources = [s for s in (a.source, a.checkpoint, a.model, getattr(a, "onnx", None)) if s]
    if len(sources) != 1:
        raise ConfigError("give exactly one of RUN_DIR, --checkpoint FILE, --model NAME or --onnx FILE (see --help)")
    if not (a.out or a.source):
        raise ConfigError("--out RUN_DIR is required")
    source = ModelSource.from_args(a) if (a.model or getattr(a, "onnx", None)) else None
    opts = ExportOptions(precisions=tuple(p.strip() for p in a.precision.split(",") if p.strip()), opset=a.opset,
                         batch=a.batch, dynamic_batch=a.dynamic_batch, max_batch=a.max_batch, simplify=a.simplify,
                         dataset=a.dataset, data_root=a.data_root, calib_samples=a.calib_samples,
                         eval_samples=a.eval_samples, fp16_policy=a.fp16_policy, int8_target=a.int8_target,
                         engine=a.engine, workspace_mb=a.workspace_mb, progress=progress,
                         seed=a.seed, rules=rules_from_args(a) if any_rule_args(a) else None)
    opts.validate()
    return a.source or a.checkpoint, source, opts


def summary_lines(manifest: Manifest, out: str | os.PathLike) -> list[str]:
    """The human summary printed after an export: one line per file and input kind, engines, the checks."""
    lines = []
    reference = "PyTorch" if manifest.checkpoint is not None else "the fp32 ONNX file"
    for precision, f in manifest.files.items():
        for row in f.parity.get("comparisons", []):
            acc = f", accuracy {row['accuracy']:.4f}" if row.get("accuracy") == row.get("accuracy") and \
                row.get("accuracy") is not None else ""
            lines.append(f"{precision:5s} {Path(out) / f.path} vs {reference} on {row['n']} {row['inputs']} samples: "
                         f"max_abs {row['max_abs']:.3g}, cosine {row['cosine']:.6f}, top-1 {row['top1']:.4f}{acc}")
        lines += [f"{precision:5s} note: {n}" for n in f.parity.get("notes", [])]
        q = f.quantization
        if q:
            lines.append(f"{precision:5s} int8 target {q.get('target')}: activations {q.get('activations')}, weights "
                         f"{q.get('weights')}, bias {q.get('bias')}, {q.get('calibration')} on {q.get('calib_samples')} "
                         f"samples (runs on {q.get('runs_on')})")
            if q.get("quantizer_log"):
                lines.append(f"{precision:5s} note: ONNX Runtime's quantizer logged {len(q['quantizer_log'])} message(s), "
                             f"recorded in the manifest (first: {q['quantizer_log'][0]})")
    for precision, e in manifest.engines.items():
        mem = e.sidecar.get("device_memory_bytes")
        mem_text = f"{mem / 2**20:.1f} MiB device memory" if isinstance(mem, int | float) else "device memory unknown"
        lines.append(f"{precision:5s} {Path(out) / e.path}: TensorRT {e.sidecar.get('tensorrt')} on "
                     f"{e.sidecar.get('gpu')}, {mem_text}")
    for precision, f in manifest.failed.items():
        lines.append(f"{precision:5s} FAILED parity: {Path(out) / f.path} is kept for `validate {out} --layerwise "
                     f"--precision {precision}` and marked failed in {MANIFEST} (no stage uses it)")
    passed = sum(bool(c) for c in manifest.checks)
    seed = f"; weights from seed {manifest.seed}" if manifest.seed is not None else ""
    lines.append(f"manifest: {Path(out) / MANIFEST} ({passed}/{len(manifest.checks)} checks passed; lint is "
                 f"advisory{seed})")
    return lines


def new_manifest(spec: ModelSpec, *, mean: Any, std: Any, dataset: str | None, opset: int,
                 dynamic_batch: bool = True, batch: int = 1, checkpoint: str | None = CHECKPOINT,
                 seed: int | None = None, weights: str | None = None, input_name: str = INPUT_NAME,
                 output_name: str = OUTPUT_NAME, exporter: str = EXPORTER) -> Manifest:
    """A manifest with files/checks/engines empty; ``seed``: the seed the weights were drawn with (from flags);
    ``input_name``/``output_name``/``exporter``: a user's ONNX file keeps its own."""
    dim0: Any = BATCH_DIM if dynamic_batch else int(batch)
    return Manifest(
        spec=spec,
        checkpoint=checkpoint,
        mean=[float(v) for v in mean],
        std=[float(v) for v in std],
        dataset=dataset,
        seed=seed,
        weights=weights,
        input={"name": input_name, "shape": [dim0, *spec.input_shape], "dtype": "float32"},
        output={"name": output_name, "shape": [dim0, int(spec.num_classes)]},
        opset=int(opset),
        exporter=exporter,
        dynamic_axes={input_name: {"0": BATCH_DIM}, output_name: {"0": BATCH_DIM}} if dynamic_batch else {},
    )
