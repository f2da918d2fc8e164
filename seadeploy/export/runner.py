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

from seadeploy.artifacts import CHECKPOINT, MANIFEST, Checkpoint, ModelSpec, atomic_path, onnx_name, sha256
from seadeploy.backends import create_backend
from seadeploy.backends.torch_backend import TorchBackend
from seadeploy.errors import ParityFailure
from seadeploy.export import checks, pipeline
from seadeploy.export import precision as prec
from seadeploy.export.manifest import new_manifest
from seadeploy.export.onnx_export import export_onnx, restore_modules
from seadeploy.export.pipeline import ExportOptions, file_entry, lint_check
from seadeploy.export.trt_engine import EngineConfig, build_engine, require_tensorrt
from seadeploy.int8_noise import int8_noise
from seadeploy.models.build import load_model
from seadeploy.parity import RuleSet, compare_backend, infer_batches, is_trained, noise_notes, reference_noise
from seadeploy.runfolder import Manifest, write_manifest

REFERENCE = "PyTorch fp32 eval-mode model (CPU)"


def export_run(ckpt: Checkpoint, out: str | Path, opts: ExportOptions, source_file: Path | None = None) -> Manifest:
    """Export ``ckpt`` into run folder ``out`` and return the manifest written there.

    Raises:
        ConfigError/InputError (exit 2), ParityFailure (exit 1), BackendUnavailable (exit 3, ``--engine``).
    """
    opts.validate()
    out = Path(out)
    if opts.engine:
        require_tensorrt()  # fail fast (exit 3) before minutes of ONNX work
    dataset = opts.dataset or ckpt.dataset or pipeline.DEFAULT_DATASET
    seed = ckpt.extra.get("seed") if source_file is None else None
    manifest = new_manifest(ckpt.spec, mean=ckpt.mean, std=ckpt.std, dataset=dataset, opset=opts.opset,
                            dynamic_batch=opts.dynamic_batch, batch=opts.batch, seed=seed,
                            weights=ckpt.extra.get("weights"))
    rules = (opts.rules or RuleSet()).for_model(is_trained(ckpt.metrics))
    model = load_model(ckpt)
    with pipeline.staging(out) as stage:
        names = _checkpoint(ckpt, stage, out, source_file, manifest)
        files = {"fp32": _fp32(model, ckpt, stage, opts, manifest)}
        for precision in [p for p in opts.precisions if p != "fp32"]:
            files[precision] = _lower_precision(precision, ckpt, dataset, stage, opts, manifest)
        _parity(model, ckpt, dataset, files, opts, rules, manifest)
        names += [p.name for p in files.values()]
        if opts.engine:
            names += _engines(stage, out, opts, manifest)
        write_manifest(stage, manifest)
        pipeline.commit(stage, out, [*names, MANIFEST])
    return manifest


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
    original = onnx.load(str(path))
    slim = restore_modules(onnxslim.slim(original), original)
    with atomic_path(path) as tmp:
        onnx.save_model(slim, str(tmp), save_as_external_data=False)
    return {"tool": "onnxslim", "nodes_before": len(original.graph.node), "nodes_after": len(slim.graph.node)}


def _fp32(model: Any, ckpt: Checkpoint, stage: Path, opts: ExportOptions, manifest: Manifest) -> Path:
    """Export and graph-check the fp32 file."""
    path = stage / onnx_name("fp32")
    export_onnx(model, path, ckpt.spec.input_shape, opset=opts.opset, dynamic_batch=opts.dynamic_batch,
                example_batch=2 if opts.dynamic_batch else opts.batch)
    pipeline.release_memory()  # the exporter's garbage (ExportedProgram, graph copies), before the checks load
    extra = {"simplified": _simplify(path)} if opts.simplify else {}
    pipeline.check_file(path, pipeline.random_batches(opts)[0], manifest.checks)
    manifest.checks.append(lint_check(path))
    manifest.files["fp32"] = {"path": path.name, **extra}
    return path


def _lower_precision(precision: str, ckpt: Checkpoint, dataset: str, stage: Path, opts: ExportOptions,
                     manifest: Manifest) -> Path:
    """Write and graph-check the fp16 / int8-QDQ file (int8 calibrated on the train split)."""
    src, path = stage / onnx_name("fp32"), stage / onnx_name(precision)
    if precision == "fp16":
        record = {"policy": {"name": opts.fp16_policy, **prec.convert_fp16(src, path, prec.Fp16Policy.named(opts.fp16_policy))}}
    else:
        calib, _ = pipeline.eval_samples(ckpt, dataset, opts, split="train", n=opts.calib_samples, seed=1)
        q = prec.quantize_int8(src, path, calib, target=opts.resolved_int8_target(), progress=opts.progress)
        record = {"quantization": {**q, "calibration_data": f"{dataset} train split, seed 1"}}
    pipeline.check_file(path, pipeline.random_batches(opts)[0], manifest.checks)
    manifest.checks.append(lint_check(path))
    manifest.files[precision] = {"path": path.name, **record}
    return path


def _parity(model: Any, ckpt: Checkpoint, dataset: str, files: dict[str, Path], opts: ExportOptions,
            rules: RuleSet, manifest: Manifest) -> None:
    """Every file vs the PyTorch fp32 model on seeded random inputs and real samples; raises on the first failure.

    Inference runs in batches of ``opts.eval_batch`` (random inputs at the batch sizes of
    :func:`~seadeploy.export.pipeline.random_batches`), so memory does not grow with the number of samples.
    """
    sizes = pipeline.random_batches(opts)
    noise = np.concatenate(checks.seeded_inputs(ckpt.spec.input_shape, sizes))
    x, y = pipeline.eval_samples(ckpt, dataset, opts)
    sets = {"random": (noise, None), "data": (x, y)}
    rand_batch = max(sizes) if opts.dynamic_batch else opts.batch  # dynamic: batches of 3 then 1, never 2
    batch = opts.eval_batch if opts.dynamic_batch else opts.batch
    with TorchBackend(model, input_shape=ckpt.spec.input_shape) as ref_be:
        refs = {"random": infer_batches(ref_be, noise, rand_batch),
                "data": infer_batches(ref_be, x, batch, opts.progress, desc="PyTorch reference")}
    # what fp32/fp16 arithmetic itself does to the model, for the rules' noise floors (seadeploy/parity.py)
    floors = reference_noise(model, refs, sets, list(files))
    floors["int8"] = int8_noise(model, refs, sets, files.get("int8"))  # the int8 rounding, with the file's scales
    for precision, path in files.items():
        with create_backend("ort", path) as be:
            verdicts = compare_backend(be, {"random": refs["random"]}, {"random": sets["random"]},
                                       lambda kind, p=precision: rules.rule(p, kind), name="ort", precision=precision,
                                       batch=rand_batch, noise=floors.get(precision))
            verdicts += compare_backend(be, {"data": refs["data"]}, {"data": sets["data"]},
                                        lambda kind, p=precision: rules.rule(p, kind), name="ort",
                                        precision=precision, batch=batch, progress=opts.progress,
                                        noise=floors.get(precision))
        for v in verdicts:
            v.info = {"reference": REFERENCE}
            manifest.checks.append(checks.parity_check(v, path.name).to_dict())
        rows = [v.to_row() for v in verdicts]
        if verdicts and "random" in sets:
            rows[0]["batches"] = list(sizes)
        notes = noise_notes(verdicts)
        entry = file_entry(path, precision, {"passed": all(verdicts), "reference": REFERENCE,
                                             "rules": rules.to_dict(), "comparisons": rows,
                                             **({"notes": notes} if notes else {})})
        manifest.files[precision] = {**entry, **{k: v for k, v in manifest.files[precision].items() if k != "path"}}
        failed = [v for v in verdicts if not v]
        if failed:
            raise ParityFailure(f"{path.name}: does not match PyTorch fp32 ({failed[0].name}): "
                                f"{'; '.join(failed[0].failures)}")


def _engines(stage: Path, out: Path, opts: ExportOptions, manifest: Manifest) -> list[str]:
    names = []
    for precision in opts.precisions:
        cfg = EngineConfig(precision=precision, workspace_mb=opts.workspace_mb, opt_batch=opts.batch,
                           max_batch=max(opts.max_batch, opts.batch), timing_cache=str(out / "trt_timing.cache"))
        sidecar = build_engine(stage / onnx_name(precision), stage, cfg)
        manifest.engines[precision] = {**sidecar, "sha256": sha256(stage / sidecar["path"])}
        manifest.checks.append({"name": "trt.layer_precisions", "file": sidecar["path"],
                                "passed": sidecar["precision_check"]["passed"], "detail": "", "metrics": {}})
        names += [sidecar["path"], sidecar["path"] + ".json"]
    return names


def export_model(spec: ModelSpec, out: str | Path, opts: ExportOptions) -> Manifest:
    """Build ``spec`` with weights drawn from ``opts.seed`` and export it (``--model``); returns the manifest."""
    ckpt, src = pipeline.load_source(spec=spec, dataset=opts.dataset, data_root=opts.data_root, seed=opts.seed)
    return export_run(ckpt, out, opts, source_file=src)
