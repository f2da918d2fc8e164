"""``export_run``: the steps of ``python -m seadeploy.export`` in order, each recorded in the manifest.

1. checkpoint into the run folder (saved when built from flags, copied from a checkpoint file);
2. fp32 ONNX (dynamo exporter) [+ onnxslim] → checker, strict shape inference, declared-vs-runtime shapes;
3. fp16 / int8-QDQ ONNX → the same graph checks;
4. parity of every file against the PyTorch fp32 model, through the ``torch`` and ``ort`` backends, on seeded
   random inputs (at batch sizes other than the export example) and on real samples, in batches of
   ``eval_batch`` — judged by :mod:`seadeploy.parity` with the same rules ``validate`` uses (``docs/parity.md``);
5. TensorRT engines (``--engine``) with precision verification;
6. manifest.json, then everything is moved from the staging folder into the run folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxslim

from seadeploy.backends import create_backend
from seadeploy.backends.torch_backend import TorchBackend
from seadeploy.data.samples import load_samples
from seadeploy.errors import ParityFailure, PartialFailure
from seadeploy.export import checks, steps
from seadeploy.export import precision as prec
from seadeploy.export.onnx_export import export_onnx, restore_modules
from seadeploy.export.steps import ExportOptions, lint_check, new_manifest
from seadeploy.export.trt_engine import EngineConfig, build_engine, require_tensorrt
from seadeploy.fileio import atomic_path, sha256
from seadeploy.graphs.load import load_model as load_onnx_model
from seadeploy.graphs.model_file import OnnxFile
from seadeploy.models.build import load_model
from seadeploy.models.source import ModelSource
from seadeploy.parity import RuleSet, compare_backend, infer_batches, is_trained, noise_notes, reference_noise
from seadeploy.parity.int8 import int8_noise
from seadeploy.runfolder import (
    CHECKPOINT,
    MANIFEST,
    Check,
    Checkpoint,
    EngineEntry,
    FileEntry,
    Manifest,
    onnx_name,
    write_manifest,
)

REFERENCE = "PyTorch fp32 eval-mode model (CPU)"
ONNX_REFERENCE = "model.onnx (fp32) on ONNX Runtime CPU"


def export_run(ckpt: Checkpoint, out: str | Path, opts: ExportOptions, source_file: Path | None = None) -> Manifest:
    """Export ``ckpt`` into run folder ``out`` and return the manifest written there.

    Raises:
        ConfigError/InputError (exit 2), ParityFailure (exit 1, fp32: nothing written), PartialFailure (exit 1,
        fp16/int8: what passed is written and the failed file recorded under ``manifest.failed``; the exception
        carries the manifest), BackendUnavailable (exit 3, ``--engine``).
    """
    opts.validate()
    out = Path(out)
    if opts.engine:
        require_tensorrt()  # fail fast (exit 3) before minutes of ONNX work
    dataset = opts.dataset or ckpt.dataset or steps.DEFAULT_DATASET
    seed = ckpt.extra.get("seed") if source_file is None else None
    manifest = new_manifest(ckpt.spec, mean=ckpt.mean, std=ckpt.std, dataset=dataset, opset=opts.opset,
                            dynamic_batch=opts.dynamic_batch, batch=opts.batch, seed=seed,
                            weights=ckpt.extra.get("weights"))
    rules = (opts.rules or RuleSet()).for_model(is_trained(ckpt.metrics))
    model = load_model(ckpt)
    with steps.staging(out) as stage:
        names = _checkpoint(ckpt, stage, out, source_file, manifest)
        files = {"fp32": _fp32(model, ckpt, stage, opts, manifest)}
        for precision in [p for p in opts.precisions if p != "fp32"]:
            files[precision] = _lower_precision(precision, ckpt, dataset, stage, opts, manifest)
        failures = _parity(model, ckpt, dataset, files, opts, rules, manifest)
        names += [p.name for p in files.values()]
        if opts.engine:
            names += _engines(stage, out, [p for p in opts.precisions if p not in failures], opts, manifest)
        write_manifest(stage, manifest)
        steps.commit(stage, out, [*names, MANIFEST])
    if failures:
        raise PartialFailure(_failure_line(failures, manifest, out), manifest)
    return manifest


#: What to try when a lower precision fails parity, by precision (one line with the failure).
_REMEDIES = {"int8": "drop int8 (--precision fp32,fp16), calibrate on the model's own data (--dataset NAME "
                     "--calib-samples N), or relax the rule (--min-top1 / --min-cosine / --atol)",
             "fp16": "drop fp16 (--precision fp32), keep more in fp32 (--fp16-policy reductions-fp32), or relax the "
                     "rule (--min-top1 / --min-cosine / --atol)"}


def _failure_line(failures: dict[str, str], manifest: Manifest, out: Path) -> str:
    first = next(iter(failures))
    return (f"{', '.join(failures)} failed parity ({failures[first]}); written to {out}: "
            f"{', '.join(manifest.files)} (the failed file is kept, marked failed in {MANIFEST}); to fix: "
            f"{_REMEDIES.get(first, 'relax the rule (--min-top1 / --min-cosine / --atol)')}")


def _checkpoint(ckpt: Checkpoint, stage: Path, out: Path, source: Path | None, manifest: Manifest) -> list[str]:
    target = out / CHECKPOINT
    if source is None:
        ckpt.save(stage / CHECKPOINT)
    elif not (target.exists() and source.resolve() == target.resolve()):
        shutil.copyfile(source, stage / CHECKPOINT)
    else:
        manifest.checkpoint_sha256 = sha256(target)
        return []
    manifest.checkpoint_sha256 = sha256(stage / CHECKPOINT)
    return [CHECKPOINT]


def _simplify(path: Path) -> dict[str, Any]:
    original = load_onnx_model(path)
    slim = restore_modules(onnxslim.slim(original), original)
    with atomic_path(path) as tmp:
        onnx.save_model(slim, str(tmp), save_as_external_data=False)
    return {"tool": "onnxslim", "nodes_before": len(original.graph.node), "nodes_after": len(slim.graph.node)}


def _fp32(model: Any, ckpt: Checkpoint, stage: Path, opts: ExportOptions, manifest: Manifest) -> Path:
    """Export and graph-check the fp32 file."""
    path = stage / onnx_name("fp32")
    export_onnx(model, path, ckpt.spec.input_shape, opset=opts.opset, dynamic_batch=opts.dynamic_batch,
                example_batch=2 if opts.dynamic_batch else opts.batch)
    steps.release_memory()  # the exporter's garbage (ExportedProgram, graph copies), before the checks load
    extra = {"simplified": _simplify(path)} if opts.simplify else {}
    steps.check_file(path, steps.random_batches(opts)[0], manifest.checks)
    manifest.checks.append(lint_check(path))
    manifest.files["fp32"] = FileEntry(path.name, simplified=extra.get("simplified"))
    return path


def _lower_precision(precision: str, ckpt: Checkpoint, dataset: str, stage: Path, opts: ExportOptions,
                     manifest: Manifest) -> Path:
    """Write and graph-check the fp16 / int8-QDQ file of a PyTorch source (int8 calibrated on the train split)."""
    calib = steps.eval_samples(ckpt, dataset, opts, split="train", n=opts.calib_samples, seed=1)[0] \
        if precision == "int8" else None
    path = _lower(precision, stage / onnx_name("fp32"), calib, dataset, stage, opts, manifest)
    steps.check_file(path, steps.random_batches(opts)[0], manifest.checks)
    manifest.checks.append(lint_check(path))
    return path


def _lower(precision: str, src: Path, calib: np.ndarray | None, dataset: str, stage: Path, opts: ExportOptions,
           manifest: Manifest, batch: int | None = None) -> Path:
    """The fp16 / int8-QDQ file made from fp32 ``src`` (both routes), recorded with its recipe in the manifest."""
    path = stage / onnx_name(precision)
    if precision == "fp16":
        policy = prec.convert_fp16(src, path, prec.Fp16Policy.named(opts.fp16_policy))
        manifest.files[precision] = FileEntry(path.name, policy={"name": opts.fp16_policy, **policy})
    else:
        q = prec.quantize_int8(src, path, calib, target=opts.resolved_int8_target(), progress=opts.progress,
                               **({"batch": batch} if batch else {}))
        manifest.files[precision] = FileEntry(path.name, quantization={**q, "calibration_data": f"{dataset} train "
                                                                                              "split, seed 1"})
    return path


def _record(verdicts: list[Any], path: Path, precision: str, reference: str, rules: RuleSet, manifest: Manifest,
            batches: tuple[int, ...] = ()) -> str | None:
    """Record one file's verdicts (checks, its manifest entry) for both routes.

    An fp32 failure raises ``ParityFailure`` (the lower precisions are made from that file); a failed fp16/int8 file
    moves from ``manifest.files`` to ``manifest.failed`` (kept for ``validate --layerwise``) and its first failure
    is returned; ``None`` when every verdict passed.
    """
    for v in verdicts:
        v.info = {"reference": reference}
        manifest.checks.append(checks.parity_check(v, path.name))
    rows = [v.to_row() for v in verdicts]
    if rows and batches:
        rows[0]["batches"] = list(batches)
    notes = noise_notes(verdicts)
    entry = manifest.files[precision]
    entry.precision, entry.sha256, entry.bytes = precision, sha256(path), path.stat().st_size
    entry.parity = {"passed": all(verdicts), "reference": reference, "rules": rules.to_dict(), "comparisons": rows,
                    **({"notes": notes} if notes else {})}
    failed = [v for v in verdicts if not v]
    if not failed:
        return None
    why = f"{path.name}: does not match {reference} ({failed[0].name}): {'; '.join(failed[0].failures)}"
    if precision == "fp32":
        raise ParityFailure(why)
    manifest.failed[precision] = manifest.files.pop(precision)
    return why


def _parity(model: Any, ckpt: Checkpoint, dataset: str, files: dict[str, Path], opts: ExportOptions,
            rules: RuleSet, manifest: Manifest) -> dict[str, str]:
    """Every file vs the PyTorch fp32 model on seeded random inputs and real samples.

    An fp32 failure raises (fp16/int8 are made from that file). A failed fp16/int8 file moves from
    ``manifest.files`` to ``manifest.failed`` (kept for ``validate --layerwise``); returns ``{precision: first
    failure}`` of those.

    Inference runs in batches of ``opts.eval_batch`` (random inputs at the batch sizes of
    :func:`~seadeploy.export.steps.random_batches`), so memory does not grow with the number of samples.
    """
    sizes = steps.random_batches(opts)
    noise = np.concatenate(checks.seeded_inputs(ckpt.spec.input_shape, sizes))
    x, y = steps.eval_samples(ckpt, dataset, opts)
    sets = {"random": (noise, None), "data": (x, y)}
    rand_batch = max(sizes) if opts.dynamic_batch else opts.batch  # dynamic: batches of 3 then 1, never 2
    batch = opts.eval_batch if opts.dynamic_batch else opts.batch
    with TorchBackend(model, input_shape=ckpt.spec.input_shape) as ref_be:
        refs = {"random": infer_batches(ref_be, noise, rand_batch),
                "data": infer_batches(ref_be, x, batch, opts.progress, desc="PyTorch reference")}
    # what fp32/fp16 arithmetic itself does to the model, for the rules' noise floors (seadeploy/parity.py)
    floors = reference_noise(model, refs, sets, list(files))
    floors["int8"] = int8_noise(model, refs, sets, files.get("int8"))  # the int8 rounding, with the file's scales
    failures: dict[str, str] = {}
    for precision, path in files.items():
        with create_backend("ort", path) as be:
            verdicts = compare_backend(be, {"random": refs["random"]}, {"random": sets["random"]},
                                       lambda kind, p=precision: rules.rule(p, kind), name="ort", precision=precision,
                                       batch=rand_batch, noise=floors.get(precision))
            verdicts += compare_backend(be, {"data": refs["data"]}, {"data": sets["data"]},
                                        lambda kind, p=precision: rules.rule(p, kind), name="ort",
                                        precision=precision, batch=batch, progress=opts.progress,
                                        noise=floors.get(precision))
        why = _record(verdicts, path, precision, REFERENCE, rules, manifest, sizes)
        if why:
            failures[precision] = why
    return failures


def _engines(stage: Path, out: Path, precisions: list[str], opts: ExportOptions, manifest: Manifest) -> list[str]:
    names = []
    for precision in precisions:
        cfg = EngineConfig(precision=precision, workspace_mb=opts.workspace_mb, opt_batch=opts.batch,
                           max_batch=max(opts.max_batch, opts.batch), timing_cache=str(out / "trt_timing.cache"))
        sidecar = build_engine(stage / onnx_name(precision), stage, cfg)
        manifest.engines[precision] = EngineEntry(sidecar["path"], sha256(stage / sidecar["path"]), sidecar)
        manifest.checks.append(Check("trt.layer_precisions", sidecar["path"], sidecar["precision_check"]["passed"]))
        names += [sidecar["path"], sidecar["path"] + ".json"]
    return names


def export_model(source: ModelSource, out: str | Path, opts: ExportOptions) -> Manifest:
    """Export a model source (``--model`` / ``--onnx``) into run folder ``out`` and return the manifest.

    A PyTorch source is built (weights from ``--weights``, else drawn from ``opts.seed``) and exported by
    :func:`export_run`; an ONNX file is its own fp32 model and reference (:func:`export_onnx_run`).
    """
    if not source.has_torch_model:
        return export_onnx_run(source, out, opts)
    return export_run(steps.source_checkpoint(source, opts), out, opts)


def export_onnx_run(source: ModelSource, out: str | Path, opts: ExportOptions) -> Manifest:
    """A user's ONNX file into run folder ``out``: ``model.onnx`` (external data embedded), fp16/int8 lowered from it
    with the same precision pipeline, each judged against the fp32 graph on ONNX Runtime (no PyTorch model behind
    it), lint records, one manifest; committed like :func:`export_run`. A static batch is kept (fed in chunks)."""
    opts.validate()
    of = source.onnx_file()
    out, dataset = Path(out), opts.dataset or "synthetic"
    mean, std = list(source.mean or ()), list(source.std or ())
    opset = max((o.version for o in of.proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    manifest = new_manifest(of.spec(), mean=mean, std=std, dataset=dataset, opset=opset, checkpoint=None,
                            dynamic_batch=of.batch is None, batch=of.batch or 1, input_name=of.input_name,
                            output_name=of.proto.graph.output[0].name,
                            exporter=f"user file {of.path.name} (sha256 {sha256(of.path)})")
    with steps.staging(out) as stage:
        files = {"fp32": of.write(stage / onnx_name("fp32"))}
        manifest.files["fp32"] = FileEntry(onnx_name("fp32"))
        calib = None
        if "int8" in opts.precisions:
            calib = np.concatenate(of.chunks(load_samples(dataset, opts.calib_samples, split="train",
                                                          input_size=of.shape[1], mean=mean or None, std=std or None,
                                                          seed=1, root=opts.data_root)[0]))
        for precision in [p for p in opts.precisions if p != "fp32"]:
            files[precision] = _lower(precision, files["fp32"], calib, dataset, stage, opts, manifest,
                                      batch=of.batch or 32)
        rules, verdicts = judge_onnx_files(files, of, dataset, mean, std, opts)
        failures = {}
        for precision, path in files.items():
            why = _record(verdicts[precision], path, precision, ONNX_REFERENCE, rules, manifest)
            if why:
                failures[precision] = why
            manifest.checks.append(lint_check(path))
        write_manifest(stage, manifest)
        steps.commit(stage, out, [*(p.name for p in files.values()), MANIFEST])
    if failures:
        raise PartialFailure(_failure_line(failures, manifest, out), manifest)
    return manifest


def judge_onnx_files(files: dict[str, Path], of: OnnxFile, dataset: str, mean: list[float], std: list[float],
                     opts: ExportOptions) -> tuple[RuleSet, dict[str, list[Any]]]:
    """Each file of an ONNX-only run against its fp32 ``files["fp32"]`` on ONNX Runtime, on ``opts.eval_samples``
    seeded samples of ``dataset`` (labelled: accuracy too; ``synthetic``: random inputs), by the parity rules
    (trained or random-weight by the fp32 file's own accuracy). Returns the rules and the verdicts per precision."""
    x, y = load_samples(dataset, opts.eval_samples, input_size=of.shape[1], mean=mean or None, std=std or None,
                        seed=0, root=opts.data_root)
    kind = "data" if y is not None else "random"
    with create_backend("ort", files["fp32"]) as ref_be:
        ref = infer_batches(ref_be, x, of.batch or opts.eval_batch)
    trained = y is not None and float((ref.argmax(-1) == y).mean()) > 2.0 / of.num_classes
    rules = (opts.rules or RuleSet()).for_model(trained)
    verdicts = {}
    for precision, path in files.items():
        with create_backend("ort", path) as be:
            verdicts[precision] = compare_backend(be, {kind: ref}, {kind: (x, y)}, lambda k, p=precision: rules.rule(p, k),
                                                  name="ort", precision=precision, batch=of.batch or opts.eval_batch)
    return rules, verdicts
