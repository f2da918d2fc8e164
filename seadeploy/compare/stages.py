"""One adapter per stage of the study: each runs the library function its stage command calls on one variant's run
folder and returns what the summary records (a failing stage raises; ``PartialStage`` / ``StageWarning`` keep what
it measured)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import torch

from seadeploy.backends import backend_class
from seadeploy.cli import (
    parse_kv_args,
)
from seadeploy.compare.options import CompareOptions, Variant
from seadeploy.data import DatasetInfo, get_dataset
from seadeploy.dataflow.analysis import hardware_from, load_graph, run_pipeline
from seadeploy.errors import BackendUnavailable, InputError, ParityFailure, PartialFailure, SeadeployError
from seadeploy.export.runner import export_run
from seadeploy.export.steps import ExportOptions, load_source
from seadeploy.models.source import is_external
from seadeploy.profiling.latency import benchmark_latency
from seadeploy.profiling.per_layer import profile_layers
from seadeploy.profiling.sources import plan
from seadeploy.profiling.summaries import buffers_for
from seadeploy.runfolder import (
    CHECKPOINT,
    Checkpoint,
    write_buffers,
    write_layers_summary,
    write_pipeline,
)
from seadeploy.train import make_config, train
from seadeploy.train.transfer import evaluate_run
from seadeploy.validate.judge import validate_run


class PartialStage(Exception):
    """A stage produced usable output but not all of it (e.g. int8 export failed, fp32/fp16 exported)."""

    def __init__(self, info: dict[str, Any], reason: str) -> None:
        super().__init__(reason)
        self.info = info


class StageWarning(PartialStage):
    """A stage finished and its outputs are complete, with a finding worth reporting (exit code unaffected)."""


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ------------------------------------------------------------------------------------------------- stages
def _train(v: Variant, o: CompareOptions) -> dict[str, Any]:
    if o.skip_train:
        if not (v.run_dir / CHECKPOINT).is_file():
            raise InputError(f"--skip-train: no {v.run_dir / CHECKPOINT}; run once without --skip-train")
        return {"skipped": True}

    init = None
    if is_external(o.model) or o.epochs == 0:  # a user model's variant starts from its (converted) source weights
        info = get_dataset(o.dataset, split="test", root=o.data_root).info
        ckpt = _source_checkpoint(v, o, info)
        init = str(v.run_dir / CHECKPOINT)
        if o.epochs == 0:
            return _evaluate_source(ckpt, v, o, info.num_classes)
    model_kwargs = parse_kv_args(o.model_args, flag="--model-arg") or None if is_external(o.model) else None
    cfg = make_config(model=o.model, attn=None if v.attn == "original" else v.attn, attn_kwargs=v.attn_kwargs,
                      model_kwargs=model_kwargs, weights=init, input_size=o.input_size, dataset=o.dataset,
                      data_root=o.data_root, epochs=o.epochs, batch_size=o.train_batch_size, lr=o.lr, warmup_epochs=o.warmup_epochs,
                      seed=o.seed, limit_train=o.limit_train, limit_test=o.limit_test, device=o.device,
                      out=str(v.run_dir), overwrite=True)
    return train(cfg).summary()


def _source_checkpoint(v: Variant, o: CompareOptions, info: DatasetInfo) -> Checkpoint:
    """Write the variant's starting checkpoint (source weights, converted; ``info``: the dataset's normalisation and
    classes) to its run folder; returns it."""
    with torch.random.fork_rng(devices=[]):  # without --weights every variant starts from the same seeded
        torch.manual_seed(o.seed)            # initialisation: tse:tile=K is then the original's own conversion
        ckpt = o.source(v, info.num_classes).checkpoint(tuple(info.mean), tuple(info.std), o.dataset)
    ckpt.save(v.run_dir / CHECKPOINT)
    return ckpt


def _evaluate_source(ckpt: Checkpoint, v: Variant, o: CompareOptions, labels: int) -> dict[str, Any]:
    """``--epochs 0``: the source weights' test accuracy, recorded in the variant's checkpoint ``ckpt`` (where the
    report reads every variant's accuracy). A head whose size differs from the dataset's ``labels`` classes is a
    warning."""
    result = evaluate_run(v.run_dir, dataset=o.dataset, data_root=o.data_root, device=o.device, limit=o.limit_test)
    ckpt.metrics = {"top1": result.before["top1"], "top5": result.before["top5"], "test_loss": result.before["loss"],
                    "test_samples": int(result.before["n"]), "trained": o.weights is not None}
    ckpt.save(v.run_dir / CHECKPOINT)
    info = {"trained": False, "weights": "the source's (--epochs 0: evaluated only)", "top1": result.before["top1"]}
    classes = ckpt.spec.num_classes
    if classes != labels:
        raise StageWarning(info, f"the model outputs {classes} classes and '{o.dataset}' has {labels}: its accuracy "
                                 f"scores labels 0-{labels - 1} against {classes} logits; fine-tune (--epochs N) to "
                                 "train a head for this dataset")
    return info


def _export(v: Variant, o: CompareOptions) -> dict[str, Any]:
    """Export every precision. A precision that fails parity is left out (export keeps what passed): a warning, or
    a failed stage with ``--strict-parity``. Any other failure retries without int8, then fp32 only."""
    ckpt, src = load_source(v.run_dir)
    tries = list(dict.fromkeys([o.precisions, tuple(p for p in o.precisions if p != "int8"), ("fp32",)]))
    first: Exception | None = None
    for precisions in tries:
        opts = ExportOptions(precisions=precisions, dataset=o.dataset, data_root=o.data_root,
                             calib_samples=o.calib_samples, eval_samples=o.parity_samples,
                             int8_target=study_int8_target(o.backends))
        try:
            manifest = export_run(ckpt, v.run_dir, opts, source_file=src)
        except PartialFailure as exc:  # an fp16/int8 parity failure; what passed is in the run folder
            info = {"files": sorted(exc.result.files), "failed": sorted(exc.result.failed)}
            text = f"{','.join(exc.result.failed)} left out: {first_line(exc)}"
            raise (PartialStage if o.strict_parity else StageWarning)(info, text) from None
        except BackendUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - retried with fewer precisions, re-raised when fp32 fails too
            first = first or exc
            if precisions == tries[-1]:
                raise first from exc
            continue
        dropped = [p for p in o.precisions if p not in manifest.files]
        if dropped:
            raise PartialStage({"files": sorted(manifest.files)},
                               f"{','.join(dropped)} not exported: {type(first).__name__}: {first_line(first)}")
        return {"files": sorted(manifest.files)}
    raise AssertionError("unreachable")  # the loop returns or raises


def study_int8_target(backends: tuple[str, ...]) -> str:
    """The int8 form the study's latency backends run: TensorRT's symmetric s8 when a ``trt`` backend is timed,
    else ONNX Runtime CPU's asymmetric u8 when ONNX Runtime is timed (a study has one int8 file per variant), else
    the one form the timed backends name (``openvino``); the study must not time a form its backend runs slowly."""
    targets = {backend_class(b).int8_target(b) for b in backends} - {None}  # each backend says which form it runs well
    if "tensorrt" in targets or "ort-cpu" in targets or len(targets) != 1:
        return "tensorrt" if "tensorrt" in targets else "ort-cpu"
    return targets.pop()


def _validate(v: Variant, o: CompareOptions) -> dict[str, Any]:
    """ORT CPU parity of every exported precision. fp32 outside tolerance fails the stage; fp16/int8 outside
    their (tighter, top-1 based) tolerances are measurements of the quantisation and only warn, unless strict
    (the same rule as export's, :func:`_export`, and ``--strict-parity``'s help)."""
    report = validate_run(v.run_dir, backends=("ort",), dataset=o.dataset, root=o.data_root,
                          samples=o.parity_samples, threads=o.threads, seed=o.seed)
    failing = [c for c in report.comparisons if not c]
    fatal = [c for c in failing if o.strict_parity or c.precision == "fp32"]
    if fatal or not report.comparisons:
        raise ParityFailure("; ".join(f"{c.name}: {c.failures[0]}" for c in fatal) or "no parity comparison ran")
    info = {"comparisons": len(report.comparisons)}
    if failing:
        raise StageWarning(info, "; ".join(f"{c.name}: {c.failures[0]}" for c in failing))
    return info


def _latency(v: Variant, o: CompareOptions) -> dict[str, Any]:
    """Per variant: check the run has a file for every backend × precision to time (exit codes as the timing's).

    The timing itself runs once every variant is exported (:func:`latency_side_by_side`), all variants
    interleaved in one process, so every latency ratio comes with its interval from paired rounds."""
    return {"candidates": len(plan(v.run_dir, o.backends, o.latency_precisions, device=o.device)),
            "timed": "side by side with the other variants"}


def latency_side_by_side(variants: list[Variant], o: CompareOptions, stages: dict[str, dict[str, dict[str, Any]]],
                          log: Callable[[str], None]) -> None:
    """Time the variants whose latency check passed side by side (baseline first: the reference of every
    ``ratio``), write each run's latency.csv/json, and fold the outcome into their ``latency`` stage."""
    ready = sorted((v for v in variants if stages[v.name].get("latency", {}).get("status") == "ok"),
                   key=lambda v: v.name != o.baseline)
    if not ready:
        return
    threads, t0 = torch.get_num_threads(), time.perf_counter()
    try:
        report = benchmark_latency([v.run_dir for v in ready], o.backends, o.batches, o.latency_precisions,
                                   threads=o.threads, warmup_s=o.warmup_s, duration_s=o.duration_s, device=o.device)
        report.write_all()
        result: dict[str, Any] = {"status": "ok"}
    except Exception as exc:  # noqa: BLE001 - the study keeps the other stages' results
        if os.environ.get("SEADEPLOY_DEBUG"):
            raise
        report = None
        result = {"status": "failed", "error": f"{type(exc).__name__}: {first_line(exc)}",
                  "exit_code": exc.exit_code if isinstance(exc, SeadeployError) else 1}
    finally:
        torch.set_num_threads(threads)
    seconds = round(time.perf_counter() - t0, 2)
    for v in ready:
        info = {**stages[v.name]["latency"], **result, "seconds": stages[v.name]["latency"]["seconds"] + seconds}
        if report is not None:
            info["measurements"] = sum(1 for r in report.rows if r.get("source") == v.run_dir.name)
            info["warnings"] = [w for w in report.warnings() if w.startswith(f"{v.run_dir.name} ")]
        stages[v.name]["latency"] = info
    log(f"[{','.join(v.name for v in ready)}] latency  {result['status']:7s} {seconds:6.1f} s  (side by side)"
        + (f"  {result['error']}" if "error" in result else ""))


def _layers(v: Variant, o: CompareOptions) -> dict[str, Any]:
    prof = profile_layers(v.run_dir, o.backends, batch=max(o.batches), precisions=("fp32",), threads=o.threads,
                          runs=o.layer_runs, warmup_runs=2, duration_s=o.duration_s, device=o.device)
    prof.write(v.run_dir)
    write_layers_summary(v.run_dir, prof.summary())  # per-layer sum vs interleaved end-to-end timing
    return {"layers": len(prof.frame), "within_tolerance": bool(prof)}


def _buffers(v: Variant, o: CompareOptions) -> dict[str, Any]:
    summary = buffers_for(run_dir=str(v.run_dir)).summary()
    write_buffers(v.run_dir, summary)
    return {k: summary[k] for k in ("attention_buffer_elements", "total_buffer_elements")}


def _pipeline(v: Variant, o: CompareOptions) -> dict[str, Any]:
    """Streaming accelerator: pipeline timing of the exported fp32 graph (dataflow/pipeline.py) → pipeline.json."""
    hw = hardware_from(None, None, 200.0, granularity=o.granularity)
    summary = run_pipeline(load_graph(run_dir=str(v.run_dir)), hw, "auto").summary()
    write_pipeline(v.run_dir, summary)
    return {k: summary[k] for k in ("fps", "initiation_interval_cycles", "fill_latency_cycles", "fifo_elements")}


STAGE_FNS: dict[str, Callable[[Variant, CompareOptions], dict[str, Any]]] = {
    "train": _train, "export": _export, "validate": _validate, "latency": _latency, "layers": _layers,
    "buffers": _buffers, "pipeline": _pipeline}


NEEDS = {"export": "train", "validate": "export", "latency": "export", "layers": "export", "buffers": "export", "pipeline": "export"}
