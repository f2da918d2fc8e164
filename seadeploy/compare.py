"""The study: what does tiled vs global squeeze cost and buy here?

For every attention variant: train → export (fp32 + fp16 + int8) → validate (ONNX Runtime CPU parity) →
profile (latency torch/ORT, per-layer ORT/torch, dataflow buffers), then one combined report
(``report.html``, ``report.md``, ``summary.csv``, ``summary.json``) in ``--out``::

    python -m seadeploy.compare                                   # small default on digits, a few minutes
    python -m seadeploy.compare --model resnet20_cifar --attn none,se,tse --epochs 5 --out runs/study \\
        --attn-arg tse:tile=4 --batch 1,8,32

Each variant has its own run folder ``OUT/<variant>``; the stages are the library functions the stage
commands call. A failing stage is recorded (the report says "not measured: <why>"), the remaining
variants still run, and the exit code is the first failure's (1 check failed, 2 bad input, 3 backend
unavailable). ``--attn-arg KEY=VALUE`` goes to every variant whose attention takes KEY;
``--attn-arg NAME:KEY=VALUE`` to variant NAME only.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from seadeploy import cli
from seadeploy.artifacts import CHECKPOINT, PRECISIONS, Checkpoint, check_out_folder
from seadeploy.backends import backend_class
from seadeploy.cli import (
    ArgumentParser,
    add_common_args,
    parse_kv_args,
    parse_value,
    print_json,
    progress_enabled,
    run_main,
)
from seadeploy.data import DatasetInfo, get_dataset
from seadeploy.dataflow.report import hardware_from, load_graph, run_pipeline
from seadeploy.errors import BackendUnavailable, ConfigError, InputError, ParityFailure, SeadeployError
from seadeploy.export.pipeline import ExportOptions, load_source
from seadeploy.export.runner import export_run
from seadeploy.models.attention import ATTENTION, list_attention
from seadeploy.models.source import ModelSource, is_external
from seadeploy.models.zoo import create_model
from seadeploy.profiling.latency import benchmark_latency
from seadeploy.profiling.layers import profile_layers
from seadeploy.profiling.sources import plan, require_backend
from seadeploy.profiling.summaries import buffers_for
from seadeploy.reports.summary import format_summary, write_summary
from seadeploy.runfolder import stage_files, write_buffers, write_layers_summary, write_pipeline
from seadeploy.train import make_config, train
from seadeploy.train.transfer import evaluate_run
from seadeploy.validate.parity import validate_run

STAGES = ("train", "export", "validate", "latency", "layers", "buffers", "pipeline")


class PartialStage(Exception):
    """A stage produced usable output but not all of it (e.g. int8 export failed, fp32/fp16 exported)."""

    def __init__(self, info: dict[str, Any], reason: str) -> None:
        super().__init__(reason)
        self.info = info


class StageWarning(PartialStage):
    """A stage finished and its outputs are complete, with a finding worth reporting (exit code unaffected)."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclasses.dataclass
class Variant:
    """One attention variant of the study and its run folder."""

    name: str
    attn: str
    attn_kwargs: dict[str, Any]
    run_dir: Path


@dataclasses.dataclass
class CompareOptions:
    """Settings of a study; the defaults are the small default run (a few minutes on 2 CPU cores)."""

    model: str = "resnet20_cifar"
    attn: tuple[str, ...] = ("none", "se", "tse")
    attn_args: tuple[str, ...] = ()
    dataset: str = "digits"
    data_root: str | None = None
    #: 4 epochs on digits train every default variant to ≥ 99 % test accuracy. The study compares deployable
    #: models, and the int8 check (top-1 agreement ≥ 99 %, docs/parity.md) needs decisive logits: at 2 epochs
    #: (~97.5 %) a tse model had 4 of 360 test samples on near-ties that int8 rounding flipped (98.89 % agreement,
    #: no calibration method helped); at 3 and 4 epochs the same variant agreed on 360/360 (99.2 % / 99.7 % acc).
    epochs: int = 4
    #: Training overrides of the dataset's recipe (batch 64 halves the per-sample CPU cost of batch 32 on 2 cores;
    #: a 0.3-epoch warm-up leaves time to learn).
    train_batch_size: int | None = 64
    lr: float | None = 4e-3
    warmup_epochs: float | None = 0.3
    out: str = "runs/study"
    batches: tuple[int, ...] = (1, 8)
    backends: tuple[str, ...] = ("torch", "ort")
    precisions: tuple[str, ...] = PRECISIONS
    latency_precisions: tuple[str, ...] = ("fp32", "int8")
    threads: int | None = 1
    warmup_s: float = 0.2
    duration_s: float = 0.5
    layer_runs: int = 10
    parity_samples: int = 512
    #: int8 calibration samples (train split): MinMax ranges need the rare large activations; 128 left digits
    #: ResNet int8 at 98.9 % top-1 agreement, 512 (streamed in batches of 32) keeps it ≥ 99 %.
    calib_samples: int = 512
    limit_train: int | None = None
    limit_test: int | None = None
    skip_train: bool = False
    strict_parity: bool = False
    baseline: str = "se"
    #: A user's model (models/source.py): factory arguments, weights, input size; its variants are
    #: ``original`` and ``tse:tile=K`` (the structural SE → TSE of convert/torch_rewrite.py).
    model_args: tuple[str, ...] = ()
    weights: str | None = None
    input_size: int | None = None
    seed: int = 0
    device: str = "cpu"
    #: The streaming-accelerator stage streams rows or positions (docs/dataflow.md).
    granularity: str = "row"

    def variants(self) -> list[Variant]:
        """The variants with their attention kwargs (raises ``ConfigError`` for bad names or options)."""
        if is_external(self.model):
            return self._source_variants()
        names = [a.strip() for a in self.attn if a.strip()]
        valid = list_attention()
        bad = [a for a in names if a not in valid]
        if not names or bad or len(set(names)) != len(names):
            why = f"unknown attention '{bad[0]}'" if bad else ("duplicate variants" if names else "no variants")
            raise ConfigError(f"--attn: {why}. Valid choices: {', '.join(valid)} (e.g. --attn none,se,tse)")
        kwargs = _route_attn_args(self.attn_args, names)
        out = [Variant(n, n, kwargs[n], Path(self.out) / n) for n in names]
        for v in out:  # fail fast (exit 2) on a bad option, before minutes of training
            create_model(self.model, attn=v.attn, attn_kwargs=dict(v.attn_kwargs))
        if not self.batches or min(self.batches) < 1 or self.epochs < 0:
            raise ConfigError(f"--batch must be ≥ 1 and --epochs ≥ 0 (got {self.epochs}, {list(self.batches)})")
        return out

    def _source_variants(self) -> list[Variant]:
        """``original``, ``tse:tile=7``, ``tse:tile=[4,2]``... of one user model (``--attn`` names them)."""
        out = []
        for text in [a.strip() for a in self.attn if a.strip()]:
            kind, _, opts = text.partition(":")
            if kind not in ("original", "tse") or (kind == "original" and opts):
                raise ConfigError(f"--attn '{text}': a user model's variants are original and tse:tile=K "
                                  "(e.g. --attn original,tse:tile=7,tse:tile=4)")
            kwargs = parse_kv_args(opts.split(";") if opts else [], flag="--attn") if kind == "tse" else {}
            if kind == "tse":
                kwargs.setdefault("tile", 7)
            name = "original" if kind == "original" else "tse_" + "_".join(
                f"{k}{str(v).replace(' ', '').replace(',', 'x').strip('[]()')}" for k, v in kwargs.items())
            out.append(Variant(name, kind, kwargs, Path(self.out) / name))
        names = [v.name for v in out]
        if not out or len(set(names)) != len(names):
            raise ConfigError(f"--attn: {'duplicate variants' if out else 'no variants'} (e.g. original,tse:tile=7)")
        if self.epochs < 0 or not self.batches or min(self.batches) < 1:
            raise ConfigError(f"--batch must be ≥ 1 and --epochs ≥ 0 (got {self.epochs}, {list(self.batches)})")
        return out

    def source(self, v: Variant, classes: int | None = None) -> ModelSource:
        """The model source of variant ``v`` (its ``tse`` conversion applied when built). ``classes``: the
        dataset's; a model built from random initialisation gets a head of that size where its factory takes
        ``num_classes`` (an ImageNet-sized head on digits would score labels 0-9 against 1,000 logits)."""
        external = is_external(self.model)
        src = ModelSource(self.model, attn=None if v.attn == "original" else v.attn,
                          attn_kwargs=dict(v.attn_kwargs), weights=self.weights, input_size=self.input_size,
                          model_kwargs=parse_kv_args(self.model_args, flag="--model-arg") if external else {})
        if classes is not None and self.weights is None and src.sizes_its_head():
            src.num_classes = classes
        return src


def _accepts(attn: str, key: str) -> bool:
    list_attention()  # imports (registers) the attention modules
    params = inspect.signature(ATTENTION.get(attn).__init__).parameters
    return key in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


def _route_attn_args(items: tuple[str, ...], names: list[str]) -> dict[str, dict[str, Any]]:
    """``KEY=VALUE`` to every variant whose attention takes KEY; ``NAME:KEY=VALUE`` to variant NAME."""
    out: dict[str, dict[str, Any]] = {n: {} for n in names}
    for item in items:
        head, sep, value = item.partition("=")
        scope, _, key = head.rpartition(":")
        scope, key = scope.strip(), key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"--attn-arg expects [VARIANT:]KEY=VALUE, got '{item}' (example: --attn-arg tse:tile=4)")
        if scope and scope not in names:
            raise ConfigError(f"--attn-arg '{item}': no variant '{scope}' in --attn {','.join(names)}")
        targets = [scope] if scope else [n for n in names if n != "none" and _accepts(n, key)]
        if not targets:
            raise ConfigError(f"--attn-arg '{item}': no attention in --attn {','.join(names)} takes option '{key}'")
        for t in targets:
            out[t][key] = parse_value(value)
    return out


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
    """Export every precision; if that fails, retry without int8, then fp32 only, and report what was dropped."""
    ckpt, src = load_source(v.run_dir)
    tries = list(dict.fromkeys([o.precisions, tuple(p for p in o.precisions if p != "int8"), ("fp32",)]))
    first: Exception | None = None
    for precisions in tries:
        opts = ExportOptions(precisions=precisions, dataset=o.dataset, data_root=o.data_root,
                             calib_samples=o.calib_samples, eval_samples=o.parity_samples,
                             int8_target=study_int8_target(o.backends))
        try:
            manifest = export_run(ckpt, v.run_dir, opts, source_file=src)
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
                               f"{','.join(dropped)} not exported: {type(first).__name__}: {_first_line(first)}")
        return {"files": sorted(manifest.files)}
    raise AssertionError("unreachable")  # the loop returns or raises


def study_int8_target(backends: tuple[str, ...]) -> str:
    """The int8 form the study's latency backends run: TensorRT's symmetric s8 when a ``trt`` backend is timed,
    else ONNX Runtime CPU's asymmetric u8 (the study must not time a form its backend runs slowly)."""
    targets = {backend_class(b).int8_target(b) for b in backends}  # each backend says which form it runs well
    return "tensorrt" if "tensorrt" in targets else "ort-cpu"


def _validate(v: Variant, o: CompareOptions) -> dict[str, Any]:
    """ORT CPU parity of every exported precision. fp32 outside tolerance fails the stage; fp16/int8 outside
    their (tighter, top-1 based) tolerances are measurements of the quantisation and only warn, unless strict."""
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

    The timing itself runs once every variant is exported (:func:`_latency_side_by_side`), all variants
    interleaved in one process, so every latency ratio comes with its interval from paired rounds."""
    return {"candidates": len(plan(v.run_dir, o.backends, o.latency_precisions, device=o.device)),
            "timed": "side by side with the other variants"}


def _latency_side_by_side(variants: list[Variant], o: CompareOptions, stages: dict[str, dict[str, dict[str, Any]]],
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
        result = {"status": "failed", "error": f"{type(exc).__name__}: {_first_line(exc)}",
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


def run_variant(v: Variant, o: CompareOptions, log: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Run every stage of one variant; returns ``{stage: {"status", "seconds", "error"?, ...}}``, never raises
    for a failing stage (``SEADEPLOY_DEBUG=1`` re-raises)."""
    status: dict[str, dict[str, Any]] = {}
    threads = torch.get_num_threads()
    for stage in STAGES:
        need = NEEDS.get(stage)
        if need and status[need]["status"] not in ("ok", "partial", "warning"):
            status[stage] = {"status": "skipped", "seconds": 0.0, "error": f"{need} did not finish"}
            continue
        for name in stage_files(stage):  # a report must never show a previous run's output of this stage
            (v.run_dir / name).unlink(missing_ok=True)
        torch.set_num_threads(threads)  # a pinned profiling backend must not slow the next training
        t0 = time.perf_counter()
        try:
            info = STAGE_FNS[stage](v, o)
            status[stage] = {"status": "ok", **info}
        except StageWarning as warn:
            status[stage] = {"status": "warning", **warn.info, "error": str(warn)}
        except PartialStage as part:
            status[stage] = {"status": "partial", **part.info, "error": str(part), "exit_code": 1}
        except Exception as exc:  # noqa: BLE001 - one broken stage must not lose the other variants' results
            if os.environ.get("SEADEPLOY_DEBUG"):
                raise
            code = exc.exit_code if isinstance(exc, SeadeployError) else 1
            status[stage] = {"status": "failed", "error": f"{type(exc).__name__}: {_first_line(exc)}", "exit_code": code}
        status[stage]["seconds"] = round(time.perf_counter() - t0, 2)
        log(f"[{v.name}] {stage:8s} {status[stage]['status']:7s} {status[stage]['seconds']:6.1f} s"
            + (f"  {status[stage]['error']}" if "error" in status[stage] else ""))
    return status


# ------------------------------------------------------------------------------------------------ the study
def run_compare(o: CompareOptions, *, progress: bool = False, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the study and write the report; returns the summary (``summary.json``) with ``exit_code``."""
    say = log or (lambda _m: None)
    variants = o.variants()
    for spec in o.backends:
        require_backend(spec)  # exit 3 with the install hint before anything runs
    check_out_folder(o.out)
    missing = [v for v in variants if o.skip_train and not (v.run_dir / CHECKPOINT).is_file()]
    if missing:
        raise InputError(f"--skip-train: no {missing[0].run_dir / CHECKPOINT}; run once without --skip-train")
    if not o.skip_train and o.epochs > 0 and not is_external(o.model):  # every training setting checked before the
        # first variant trains (exit 2, no status lines)

        for v in variants:
            make_config(model=o.model, attn=v.attn, attn_kwargs=v.attn_kwargs, dataset=o.dataset, epochs=o.epochs,
                        batch_size=o.train_batch_size, lr=o.lr, warmup_epochs=o.warmup_epochs, seed=o.seed,
                        limit_train=o.limit_train, limit_test=o.limit_test, device=o.device, out=str(v.run_dir))
    t0 = time.perf_counter()
    stages: dict[str, dict[str, dict[str, Any]]] = {}
    bar = None
    if progress:
        bar = tqdm(variants, desc="variants", unit="variant", file=sys.stderr)
        say = (lambda m: tqdm.write(m, file=sys.stderr)) if log else say
    for v in bar if bar is not None else variants:
        if bar is not None:
            bar.set_postfix_str(v.name)
        stages[v.name] = run_variant(v, o, say)
    _latency_side_by_side(variants, o, stages, say)
    return write_summary(variants, o, stages, time.perf_counter() - t0)


def _parser() -> ArgumentParser:
    d = CompareOptions()
    p = ArgumentParser(prog="python -m seadeploy.compare", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=d.model, help=f"backbone (default {d.model})")
    p.add_argument("--attn", default=",".join(d.attn), help="comma-separated variants (default none,se,tse)")
    p.add_argument("--attn-arg", action="append", default=[], metavar="[VARIANT:]KEY=VALUE",
                   help="attention option, repeatable (tile=4 → every variant taking 'tile'; tse:tile=[2,2,4])")
    p.add_argument("--dataset", default=d.dataset)
    p.add_argument("--data-root", default=None)
    # typed validators (seadeploy.cli): a bad value is refused while parsing, before any variant trains
    p.add_argument("--epochs", type=cli.non_negative_int, default=d.epochs, help="0: evaluate the source's weights")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE", help="factory argument (user model)")
    p.add_argument("--weights", default=None, help="the user model's weights (.safetensors or a state dict)")
    p.add_argument("--input-size", type=cli.positive_int, default=None, help="the user model's input size")
    p.add_argument("--train-batch-size", type=cli.positive_int, default=d.train_batch_size,
                   help="training batch (default 64)")
    p.add_argument("--lr", type=cli.positive_float, default=d.lr, help="peak learning rate (default 4e-3)")
    p.add_argument("--warmup-epochs", type=cli.non_negative_float, default=d.warmup_epochs,
                   help="LR warm-up (default 0.3 epoch)")
    p.add_argument("--out", default=d.out, metavar="DIR", help=f"study folder (default {d.out})")
    p.add_argument("--batch", default="1,8", help="latency batch sizes (per-layer profile at the largest)")
    p.add_argument("--backends", default="torch,ort", help="profiling backends (torch, ort, ort:cuda, trt)")
    p.add_argument("--threads", type=cli.positive_int, default=d.threads, help="pinned threads while timing (default 1)")
    p.add_argument("--duration-s", type=cli.positive_float, default=d.duration_s, help="timing window per configuration")
    p.add_argument("--parity-samples", type=cli.positive_int, default=d.parity_samples,
                   help="test samples for export/validate")
    p.add_argument("--calib-samples", type=cli.positive_int, default=d.calib_samples, help="int8 calibration samples")
    p.add_argument("--limit-train", type=cli.positive_int, default=None, help="use only N training samples (smoke runs)")
    p.add_argument("--limit-test", type=cli.positive_int, default=None, help="use only N test samples (smoke runs)")
    p.add_argument("--skip-train", action="store_true", help="reuse OUT/<variant>/checkpoint.safetensors")
    p.add_argument("--strict-parity", action="store_true",
                   help="fail (exit 1) when fp16/int8 parity is out of tolerance too (default: fp32 only; others warn)")
    p.add_argument("--baseline", default=d.baseline, help="variant the ratios refer to (default se)")
    p.add_argument("--granularity", choices=("row", "pixel"), default=d.granularity,
                   help="streaming-accelerator stage: rows (default) or positions, FINN-style")
    add_common_args(p, out=False)
    return p


def _csv(text: str, kind: type = str) -> tuple:
    try:
        return tuple(kind(t.strip()) for t in text.split(",") if t.strip())
    except ValueError as exc:
        raise ConfigError(f"expected a comma-separated list of {kind.__name__}, got '{text}'") from exc


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _main(argv: list[str] | None) -> int:
    a = _parser().parse_args(argv)
    o = CompareOptions(model=a.model, attn=_csv(a.attn), attn_args=tuple(a.attn_arg), dataset=a.dataset,
                       data_root=a.data_root, epochs=a.epochs, train_batch_size=a.train_batch_size, lr=a.lr,
                       warmup_epochs=a.warmup_epochs, out=a.out, batches=_csv(a.batch, int),
                       backends=_csv(a.backends), threads=a.threads, duration_s=a.duration_s,
                       parity_samples=a.parity_samples, calib_samples=a.calib_samples,
                       limit_train=a.limit_train, limit_test=a.limit_test, skip_train=a.skip_train, strict_parity=a.strict_parity,
                       baseline="original" if is_external(a.model) and a.baseline == "se" else a.baseline,
                       device=a.device, model_args=tuple(a.model_arg), weights=a.weights, input_size=a.input_size,
                       granularity=a.granularity)
    summary = run_compare(o, progress=progress_enabled(a.json), log=_log)
    print_json(summary) if a.json else print(format_summary(summary))
    return summary["exit_code"]


def main(argv: list[str] | None = None) -> int:
    """``python -m seadeploy.compare`` / ``seadeploy compare``."""
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
