"""``export_run``: the steps of ``python -m seadeploy.export`` in order, each recorded in the manifest.

1. checkpoint into the run folder (saved when built from flags, copied from a checkpoint file);
2. fp32 ONNX (dynamo exporter) [+ onnxslim] → checker, strict shape inference, declared-vs-runtime shapes,
   ONNX Runtime vs PyTorch on seeded inputs at batch sizes other than the export example, and on real samples;
3. fp16 / int8-QDQ ONNX → the same graph checks + comparison with fp32 on real samples;
4. TensorRT engines (``--engine``) with precision verification;
5. manifest.json, then everything is moved from the staging folder into the run folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from seadeploy.artifacts import CHECKPOINT, MANIFEST, Checkpoint, ModelSpec, atomic_path, onnx_name, sha256
from seadeploy.errors import ParityFailure
from seadeploy.export import checks, pipeline
from seadeploy.export.manifest import new_manifest, write_manifest
from seadeploy.export.onnx_export import export_onnx, restore_modules
from seadeploy.export.pipeline import ExportOptions, chunk, compare_precision, file_entry, lint_check


def export_run(ckpt: Checkpoint, out: str | Path, opts: ExportOptions, source_file: Path | None = None) -> dict[str, Any]:
    """Export ``ckpt`` into run folder ``out`` and return the manifest written there.

    Raises:
        ConfigError/InputError (exit 2), ParityFailure (exit 1), BackendUnavailable (exit 3, ``--engine``).
    """
    opts.validate()
    out = Path(out)
    if opts.engine:
        from seadeploy.export.trt_engine import require_tensorrt

        require_tensorrt()  # fail fast (exit 3) before minutes of ONNX work
    dataset = opts.dataset or ckpt.dataset or pipeline.DEFAULT_DATASET
    manifest = new_manifest(ckpt.spec, mean=ckpt.mean, std=ckpt.std, dataset=dataset, opset=opts.opset,
                            dynamic_batch=opts.dynamic_batch, batch=opts.batch)
    model = ckpt.build_model()
    with pipeline.staging(out) as stage:
        names = _checkpoint(ckpt, stage, out, source_file, manifest)
        x, y = pipeline.eval_samples(ckpt, dataset, opts)
        ref = _fp32(model, ckpt, stage, opts, manifest, x, y)
        names.append(onnx_name("fp32"))
        for precision in [p for p in opts.precisions if p != "fp32"]:
            names.append(_lower_precision(precision, ckpt, dataset, stage, opts, manifest, ref, x, y))
        if opts.engine:
            names += _engines(stage, out, opts, manifest)
        write_manifest(stage, manifest)
        pipeline.commit(stage, out, [*names, MANIFEST])
    return manifest


def _checkpoint(ckpt: Checkpoint, stage: Path, out: Path, source: Path | None, manifest: dict[str, Any]) -> list[str]:
    target = out / CHECKPOINT
    if source is None:
        ckpt.save(stage / CHECKPOINT)
    elif not (target.exists() and source.resolve() == target.resolve()):
        shutil.copyfile(source, stage / CHECKPOINT)
    else:
        manifest["checkpoint_sha256"] = sha256(target)
        return []
    manifest["checkpoint_sha256"] = sha256(stage / CHECKPOINT)
    return [CHECKPOINT]


def _simplify(path: Path) -> dict[str, Any]:
    import onnxslim

    original = onnx.load(str(path))
    slim = restore_modules(onnxslim.slim(original), original)
    with atomic_path(path) as tmp:
        onnx.save_model(slim, str(tmp), save_as_external_data=False)
    return {"tool": "onnxslim", "nodes_before": len(original.graph.node), "nodes_after": len(slim.graph.node)}


def _fp32(model: Any, ckpt: Checkpoint, stage: Path, opts: ExportOptions, manifest: dict[str, Any],
          x: np.ndarray, y: np.ndarray | None) -> np.ndarray:
    """Export, check and compare the fp32 file; returns its logits on the real samples."""
    path = stage / onnx_name("fp32")
    export_onnx(model, path, ckpt.spec.input_shape, opset=opts.opset, dynamic_batch=opts.dynamic_batch,
                example_batch=2 if opts.dynamic_batch else opts.batch)
    extra = {"simplified": _simplify(path)} if opts.simplify else {}
    pipeline.check_file(path, pipeline._batches(opts)[0], manifest["checks"])
    tol = opts.tolerances["fp32"]
    reference = pipeline.torch_reference(model)
    seeded = checks.check_parity(reference, path, checks.seeded_inputs(ckpt.spec.input_shape, pipeline._batches(opts)),
                                 atol=tol["atol"], rtol=tol["rtol"])
    real = checks.check_parity(reference, path, chunk(x, None if opts.dynamic_batch else opts.batch),
                               name="parity.ort_vs_torch.dataset", atol=tol["atol"], rtol=tol["rtol"])
    manifest["checks"] += [seeded.to_dict(), real.to_dict(), lint_check(path)]
    for result in (seeded, real):
        if not result:
            raise ParityFailure(f"{path.name}: ONNX Runtime does not match PyTorch ({result.name}): {result.detail}")
    sess = checks.ort_session(path)
    ref = np.concatenate([sess.run(None, {"x": b})[0] for b in chunk(x, None if opts.dynamic_batch else opts.batch)])
    parity = {"reference": "PyTorch eval-mode model (CPU)", "passed": True, "seeded": seeded.metrics,
              **real.metrics, "accuracy": pipeline.accuracy(ref, y),
              "reference_accuracy": pipeline.accuracy(pipeline.torch_reference(model)(x), y)}
    manifest["files"]["fp32"] = file_entry(path, "fp32", parity, **extra)
    return ref


def _lower_precision(precision: str, ckpt: Checkpoint, dataset: str, stage: Path, opts: ExportOptions,
                     manifest: dict[str, Any], ref: np.ndarray, x: np.ndarray, y: np.ndarray | None) -> str:
    from seadeploy.export import precision as prec

    src, path = stage / onnx_name("fp32"), stage / onnx_name(precision)
    if precision == "fp16":
        record = {"policy": {"name": opts.fp16_policy, **prec.convert_fp16(src, path, prec.Fp16Policy.named(opts.fp16_policy))}}
    else:
        calib, _ = pipeline.eval_samples(ckpt, dataset, opts, split="train", n=opts.calib_samples, seed=1)
        q = prec.quantize_int8(src, path, calib, activations=opts.int8_activations, progress=opts.progress)
        record = {"quantization": {**q, "calibration_data": f"{dataset} train split, seed 1"}}
    pipeline.check_file(path, pipeline._batches(opts)[0], manifest["checks"])
    result = compare_precision(path, ref, x, y, precision, opts)
    manifest["checks"] += [result.to_dict(), lint_check(path)]
    if not result:
        raise ParityFailure(f"{path.name}: {precision} does not match fp32: {result.detail}")
    manifest["files"][precision] = file_entry(path, precision, {**result.metrics, "passed": True}, **record)
    return path.name


def _engines(stage: Path, out: Path, opts: ExportOptions, manifest: dict[str, Any]) -> list[str]:
    from seadeploy.export.trt_engine import EngineConfig, build_engine

    names = []
    for precision in opts.precisions:
        cfg = EngineConfig(precision=precision, workspace_mb=opts.workspace_mb, opt_batch=opts.batch,
                           max_batch=max(opts.max_batch, opts.batch), timing_cache=str(out / "trt_timing.cache"))
        sidecar = build_engine(stage / onnx_name(precision), stage, cfg)
        manifest["engines"][precision] = {**sidecar, "sha256": sha256(stage / sidecar["path"])}
        manifest["checks"].append({"name": "trt.layer_precisions", "file": sidecar["path"],
                                   "passed": sidecar["precision_check"]["passed"], "detail": "", "metrics": {}})
        names += [sidecar["path"], sidecar["path"] + ".json"]
    return names


def export_model(spec: ModelSpec, out: str | Path, opts: ExportOptions) -> dict[str, Any]:
    """Build ``spec`` with freshly initialised weights and export it (``--model``); returns the manifest."""
    ckpt, src = pipeline.load_source(spec=spec, dataset=opts.dataset, data_root=opts.data_root)
    return export_run(ckpt, out, opts, source_file=src)
