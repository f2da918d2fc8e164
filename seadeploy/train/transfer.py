"""Evaluate a trained run, optionally after converting its attention without retraining (TSE transfer).

Conversions (docs/models.md §2.2.3), implemented in :mod:`seadeploy.models.rewrite`:

- ``se-to-tse``: the paper's experiment — the same trained SE network with every global pooling
  replaced by tiled pooling (``--attn-arg tile=...``), all weights kept.
- ``tse-to-se``: the inverse weight mapping.
- ``swap``: the unofficial repo's module swap — this run's backbone with the attention modules of
  ``--donor`` (both in eval mode; the repo ran the donor modules in train mode, see §2.2.3).
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from seadeploy.data import get_dataset
from seadeploy.data.augment import BatchTransform
from seadeploy.errors import ConfigError
from seadeploy.models import rewrite
from seadeploy.models.build import load_model
from seadeploy.runfolder import CHECKPOINT, Checkpoint, ModelSpec
from seadeploy.train.evaluate import evaluate

CONVERSIONS = ("se-to-tse", "tse-to-se", "swap")


@dataclasses.dataclass
class TransferResult:
    """Accuracy of a run before and (optionally) after an attention conversion. Falsy when the top-1 drop
    exceeds ``max_drop``."""

    run_dir: str
    dataset: str
    before: dict[str, float]
    spec_before: dict[str, Any]
    conversion: str | None = None
    after: dict[str, float] | None = None
    spec_after: dict[str, Any] | None = None
    donor: str | None = None
    saved: str | None = None
    max_drop: float | None = None

    @property
    def drop(self) -> float:
        """Top-1 points lost by the conversion (NaN without one)."""
        return self.before["top1"] - self.after["top1"] if self.after else math.nan

    def __bool__(self) -> bool:
        return self.after is None or self.max_drop is None or self.drop <= self.max_drop

    def to_frame(self) -> pd.DataFrame:
        """One row for the model as trained and one after the conversion."""
        rows = [{"model": "as trained", "attn": _attn_label(self.spec_before), **_metric_cols(self.before)}]
        if self.after is not None:
            rows.append({"model": f"after {self.conversion}", "attn": _attn_label(self.spec_after),
                         **_metric_cols(self.after)})
        return pd.DataFrame(rows)

    def summary(self) -> dict[str, Any]:
        return {"passed": bool(self), **dataclasses.asdict(self), "drop_top1": self.drop}


def _attn_label(spec: dict[str, Any]) -> str:
    """``tse(tile=4)``: the attention and its options, as a table cell."""
    opts = ", ".join(f"{k}={v}" for k, v in sorted(spec.get("attn_kwargs", {}).items()))
    return f"{spec.get('attn')}({opts})" if opts else str(spec.get("attn"))


def _metric_cols(m: dict[str, float]) -> dict[str, float]:
    return {"top1": m["top1"], "top5": m["top5"], "loss": m["loss"], "n": m["n"]}


def convert_model(model: nn.Module, conversion: str, attn_kwargs: dict[str, Any] | None = None,
                  donor: nn.Module | None = None, donor_train_mode: bool = False) -> nn.Module:
    """Apply ``conversion`` with :mod:`seadeploy.models.rewrite`; the result carries its new ``.spec``.

    Raises:
        ConfigError: unknown conversion, options it does not take, a missing donor, or attention that does
            not fit the conversion (raised by the converter).
    """
    kwargs = dict(attn_kwargs or {})
    allowed = {"se-to-tse": {"tile"}, "tse-to-se": set(), "swap": set()}.get(conversion)
    if allowed is None:
        raise ConfigError(f"unknown conversion '{conversion}'. Valid choices: {', '.join(CONVERSIONS)}")
    extra = sorted(set(kwargs) - allowed)
    if extra:
        raise ConfigError(f"--convert {conversion} takes no option '{extra[0]}'" +
                          (f" (valid: {', '.join(sorted(allowed))})" if allowed else ""))
    if conversion == "se-to-tse":
        return rewrite.se_to_tse(model, **kwargs).eval()
    if conversion == "tse-to-se":
        return rewrite.tse_to_se(model).eval()
    if donor is None:
        raise ConfigError("--convert swap needs --donor RUN_DIR2 (the run whose attention modules are used)")
    return rewrite.swap_attention(model, donor, donor_train_mode=donor_train_mode).eval()


def evaluate_run(run_dir: str | os.PathLike, *, convert: str | None = None, donor: str | os.PathLike | None = None,
                 attn_kwargs: dict[str, Any] | None = None, dataset: str | None = None,
                 data_root: str | os.PathLike | None = None, batch_size: int = 256, device: str = "cpu",
                 limit: int | None = None, save: str | os.PathLike | None = None,
                 max_drop: float | None = None, donor_train_mode: bool = False) -> TransferResult:
    """Evaluate the best checkpoint of ``run_dir`` on its test set, then again after ``convert``.

    Args:
        run_dir: run folder or checkpoint file.
        convert: ``se-to-tse``, ``tse-to-se``, ``swap`` or None (plain evaluation).
        donor: run folder whose attention modules ``swap`` uses.
        attn_kwargs: conversion options (``{"tile": 4}``).
        dataset: dataset name (default: the checkpoint's).
        data_root: dataset folder (default: the one recorded at training time).
        batch_size: evaluation batch size.
        device: torch device.
        limit: evaluate only the first ``limit`` test samples.
        save: write the converted model as ``SAVE/checkpoint.safetensors`` (ready for export).
        max_drop: the result is falsy when top-1 drops by more points than this.
        donor_train_mode: ``swap`` only: keep the donor's modules in training mode (the repo's accident,
            docs/models.md §2.2.3) to reproduce its numbers.
    """
    ckpt = Checkpoint.load(run_dir)
    name = dataset or ckpt.dataset
    if not name:
        raise ConfigError(f"checkpoint '{run_dir}' records no dataset; pass --dataset")
    ds = get_dataset(name, "test", root=data_root or ckpt.extra.get("data_root"),
                     input_size=ckpt.spec.input_size).subset(limit)
    tf = BatchTransform(ckpt.spec.input_size, ckpt.mean, ckpt.std).to(device).eval()
    model = load_model(ckpt).to(device)
    before = evaluate(model, ds, tf, batch_size=batch_size, device=device)
    result = TransferResult(str(run_dir), name, before, ckpt.spec.to_dict(), max_drop=max_drop)
    if convert is None:
        return result
    donor_model = _load_donor(donor, ckpt.spec) if donor is not None else None
    converted = convert_model(model, convert, attn_kwargs, donor_model, donor_train_mode).to(device)
    spec = converted.spec
    after = evaluate(converted, ds, tf, batch_size=batch_size, device=device)
    result = dataclasses.replace(result, conversion=convert, after=after, spec_after=spec.to_dict(),
                                 donor=str(donor) if donor is not None else None)
    if save is not None:
        path = Path(save) / CHECKPOINT if not str(save).endswith(".safetensors") else Path(save)
        extra = {**ckpt.extra, "kind": "converted", "conversion": convert, "converted_from": str(run_dir),
                 "donor": result.donor, "donor_train_mode": donor_train_mode}
        state = dict(converted.state_dict())
        Checkpoint(spec, state, ckpt.mean, ckpt.std, ckpt.dataset, {"top1": after["top1"], "top5": after["top5"],
                   "test_loss": after["loss"], "top1_before": before["top1"]}, extra).save(path)
        result.saved = str(path)
    return result


def _load_donor(donor: str | os.PathLike, spec: ModelSpec) -> nn.Module:
    d = Checkpoint.load(donor)
    if (d.spec.model, d.spec.num_classes, d.spec.input_size) != (spec.model, spec.num_classes, spec.input_size):
        raise ConfigError(f"--donor must have the same backbone: '{d.spec.model}' ({d.spec.num_classes} classes, "
                          f"{d.spec.input_size} px) vs '{spec.model}' ({spec.num_classes} classes, "
                          f"{spec.input_size} px)")
    return load_model(d)
