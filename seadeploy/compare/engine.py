"""The stage engine: every variant through every stage in order, a stage's files removed before it runs, failures
recorded (the report says "not measured: <why>") and the remaining variants still run."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from tqdm import tqdm

from seadeploy.backends import BACKENDS
from seadeploy.compare.options import STAGES, CompareOptions, Variant
from seadeploy.compare.stages import NEEDS, STAGE_FNS, PartialStage, StageWarning, first_line, latency_side_by_side
from seadeploy.compare.summary import write_summary
from seadeploy.data import get_dataset
from seadeploy.errors import InputError, SeadeployError
from seadeploy.fileio import check_out_folder
from seadeploy.models.source import is_external
from seadeploy.profiling.sources import require_backend
from seadeploy.runfolder import (
    CHECKPOINT,
    stage_files,
)
from seadeploy.train import make_config


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
        for name in stage_files(stage, BACKENDS):  # a report must never show a previous run's output of this stage
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
            status[stage] = {"status": "failed", "error": f"{type(exc).__name__}: {first_line(exc)}", "exit_code": code}
        status[stage]["seconds"] = round(time.perf_counter() - t0, 2)
        log(f"[{v.name}] {stage:8s} {status[stage]['status']:7s} {status[stage]['seconds']:6.1f} s"
            + (f"  {status[stage]['error']}" if "error" in status[stage] else ""))
    return status


# ------------------------------------------------------------------------------------------------ the study
def run_compare(o: CompareOptions, *, progress: bool = False, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the study and write the report; returns the summary (``summary.json``) with ``exit_code``."""
    say = log or (lambda _m: None)
    variants = o.variants()
    info = get_dataset(o.dataset, split="test", root=o.data_root).info  # unknown or missing: one line, exit 2
    if is_external(o.model) and not o.skip_train:  # factory arguments and weights, before the first stage
        with torch.random.fork_rng(devices=[]):
            o.source(variants[0], info.num_classes).build()
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
    latency_side_by_side(variants, o, stages, say)
    return write_summary(variants, o, stages, time.perf_counter() - t0)
