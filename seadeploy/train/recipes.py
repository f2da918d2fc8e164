"""Training configuration and the named recipes of docs/models.md §4, overridable field by field.

``make_config("sb-vgg-cifar", epochs=10, lr=0.05)`` = the recipe's values with two overrides.
Every :class:`TrainConfig` field is also a command-line flag (``--weight-decay``, ``--milestones 40 60``,
``--no-hflip``, ...), generated from the field list by :func:`add_config_args`.

Recipes:
    digits          the offline default: ResNet-20 on sklearn digits, ≥ 95 % in 5 epochs on 2 CPU cores
    tse-vgg-cifar   TSE repo (yuranusduke): VGG, SGD Nesterov 0.1, wd 9e-6, bs 64, 80 ep, [40,60,80] γ 0.2
    sb-vgg-cifar    SB repo (yuranusduke): same recipe with SB attention (ratio 0.5)
    seresnet-cifar  jordandeklerk SE-ResNet-56: AdamW, cosine warm restarts, CutMix, label smoothing, AMP
    sse-imagenet    SsENet: ResNet-18, SGD 0.01, wd 1e-4, [30,60] γ 0.1, bs 256, 224 px
    rgse-imagenet   SPSE/RGSE official: ResNet-50, SGD 0.1, wd 1e-4, ×0.1 every 30 epochs, 100 ep
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import types
import typing
from typing import Any

from seadeploy.cli import finite_float
from seadeploy.errors import ConfigError
from seadeploy.models import model_defaults
from seadeploy.runfolder import check_input_size

OPTIMIZERS = ("sgd", "adamw", "adam")
SCHEDULERS = ("constant", "multistep", "cosine", "cosine_restarts")
NORMALIZATIONS = ("dataset", "half", "imagenet")


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return dataclasses.field(default=default, metadata={"help": help, **kw})


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run needs. Field names are the command-line flags (``_`` → ``-``)."""

    recipe: str = _f("digits", "named preset the other fields start from", cli=False)
    model: str = _f("resnet20_cifar", "backbone", cli=False)
    attn: str | None = _f(None, "attention", cli=False)
    attn_kwargs: dict = _f({}, "attention options", cli=False)
    model_kwargs: dict = _f({}, "extra backbone options", cli=False)
    weights: str | None = _f(None, "initial weights (a .safetensors or PyTorch state dict) to fine-tune", cli=False)
    input_size: int | None = _f(None, "image side", cli=False)
    num_classes: int | None = _f(None, "classes (default: the dataset's)", cli=False)
    dataset: str = _f("digits", "dataset: digits, cifar10, cifar100, imagefolder, synthetic")
    data_root: str | None = _f(None, "folder holding the dataset files (default $SEADEPLOY_DATA or ./data)")
    download: bool = _f(False, "download a missing CIFAR archive")
    limit_train: int | None = _f(None, "use only the first N training samples (smoke runs)")
    limit_test: int | None = _f(None, "use only the first N test samples (smoke runs)")
    epochs: int = _f(5, "number of epochs")
    batch_size: int = _f(64, "global batch size (split evenly across DDP ranks)")
    eval_batch_size: int = _f(256, "batch size for evaluation")
    optimizer: str = _f("adamw", f"optimizer: {', '.join(OPTIMIZERS)}")
    lr: float = _f(3e-3, "peak learning rate")
    momentum: float = _f(0.9, "SGD momentum")
    nesterov: bool = _f(False, "Nesterov momentum (SGD)")
    betas: list = _f([0.9, 0.999], "Adam/AdamW betas", nargs=2, type=float)
    eps: float = _f(1e-8, "Adam/AdamW epsilon")
    weight_decay: float = _f(5e-4, "weight decay")
    decay_ndim2_only: bool = _f(False, "apply weight decay only to tensors with ndim ≥ 2 (not BN, not biases)")
    scheduler: str = _f("cosine", f"LR schedule: {', '.join(SCHEDULERS)}")
    milestones: list = _f([], "multistep: epochs at which the LR is multiplied by gamma", nargs="*", type=int)
    gamma: float = _f(0.1, "multistep: LR factor at each milestone")
    warmup_epochs: float = _f(1.0, "cosine/cosine_restarts: linear warm-up epochs (from min-lr)")
    cycle_epochs: int = _f(50, "cosine_restarts: epochs per cycle")
    min_lr: float = _f(1e-6, "cosine: lowest learning rate")
    sched_step: str = _f("iter", "update the LR every 'iter' (smooth) or every 'epoch' (as the reference scripts)")
    normalize: str = _f("dataset", f"normalisation: {', '.join(NORMALIZATIONS)} (half = mean 0.5, std 0.5)")
    crop_padding: int = _f(2, "random crop with this padding (0 = off)")
    hflip: bool = _f(False, "random horizontal flip")
    rotation: float = _f(0.0, "random rotation ±degrees (0 = off)")
    random_resized_crop: bool = _f(False, "random resized crop, scale 0.08–1")
    trivial_augment: bool = _f(False, "TrivialAugment (kornia)")
    random_erasing: float = _f(0.0, "random erasing probability")
    cutmix: float = _f(0.0, "probability of CutMix per batch (0 = off)")
    label_smoothing: float = _f(0.0, "label smoothing of the cross-entropy")
    clip_grad: float = _f(0.0, "gradient clipping threshold (0 = off)")
    clip_mode: str = _f("norm", "clip the global grad 'norm' or each 'param' tensor's norm separately")
    amp: bool = _f(False, "mixed precision (CUDA only; ignored on CPU)")
    sync_bn: bool = _f(False, "SyncBatchNorm across DDP ranks")
    seed: int = _f(0, "random seed (model init, sampling, augmentation)")
    deterministic: bool = _f(True, "deterministic algorithms (cuDNN benchmark off)")
    target_acc: float | None = _f(None, "exit 1 when the best test top-1 (%%) stays below this")
    device: str = _f("cpu", "torch device", cli=False)
    out: str | None = _f(None, "run folder", cli=False)
    resume: str | None = _f(None, "continue the run in this folder from its last complete epoch", cli=False)
    overwrite: bool = _f(False, "start again in a run folder that already holds a training state")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_VGG = {"model": "vgg16_cifar", "dataset": "cifar10", "epochs": 80, "batch_size": 64, "optimizer": "sgd", "lr": 0.1,
        "momentum": 0.9, "nesterov": True, "weight_decay": 9e-6, "scheduler": "multistep",
        "milestones": [40, 60, 80], "gamma": 0.2, "sched_step": "epoch", "normalize": "half", "crop_padding": 4,
        "hflip": True, "rotation": 15.0}
_IMAGENET = {"dataset": "imagefolder", "input_size": 224, "batch_size": 256, "optimizer": "sgd",
             "momentum": 0.9, "weight_decay": 1e-4, "scheduler": "multistep", "gamma": 0.1, "sched_step": "epoch",
             "normalize": "imagenet", "crop_padding": 0, "random_resized_crop": True, "hflip": True}

RECIPES: dict[str, dict[str, Any]] = {
    # The TrainConfig defaults are the digits recipe: AdamW 3e-3, batch 64, 1 warm-up epoch then cosine (stepped
    # per iteration: 5 epochs are only 110 steps), random crop with 2-pixel padding only (digits are not
    # mirror-symmetric, so no flip). ResNet-20 reaches 98.6-99.7 % in 5 epochs, ~85-105 s on 2 loaded cores.
    "digits": {},
    # repo forms (docs/models.md §8): hidden = C/2, TSE tile 2 with BN2d after the first 1×1 conv
    "tse-vgg-cifar": {**_VGG, "attn": "tse", "attn_kwargs": {"tile": 2, "ratio": 0.5, "bn": "hidden"}},
    "sb-vgg-cifar": {**_VGG, "attn": "sb", "attn_kwargs": {"ratio": 0.5}},
    "seresnet-cifar": {"model": "resnet56_cifar", "attn": "se", "attn_kwargs": {"reduction": 16, "bias": False},
                       "dataset": "cifar10", "epochs": 200, "batch_size": 128,
                       "optimizer": "adamw", "lr": 1e-3, "betas": [0.9, 0.99], "eps": 1e-8, "weight_decay": 0.1,
                       "decay_ndim2_only": True, "scheduler": "cosine_restarts", "cycle_epochs": 50,
                       "warmup_epochs": 10, "min_lr": 1e-6, "sched_step": "epoch", "normalize": "dataset",
                       "crop_padding": 4, "hflip": True, "trivial_augment": True, "random_erasing": 0.1,
                       "cutmix": 1.0, "label_smoothing": 0.1, "clip_grad": 3.0, "clip_mode": "param", "amp": True,
                       "seed": 42},
    "sse-imagenet": {**_IMAGENET, "model": "resnet18", "attn": "se", "attn_kwargs": {"bias": False}, "epochs": 90,
                     "lr": 0.01, "milestones": [30, 60], "seed": 123},
    "rgse-imagenet": {**_IMAGENET, "model": "resnet50", "attn": "rgse", "epochs": 100, "lr": 0.1,
                      "milestones": [30, 60, 90]},
}


def list_recipes() -> list[str]:
    """Names of the training recipes."""
    return sorted(RECIPES)


def make_config(recipe: str | None = None, **overrides: Any) -> TrainConfig:
    """The recipe's :class:`TrainConfig` with ``overrides`` applied (``None`` values are ignored).

    Raises:
        ConfigError: unknown recipe or field, or a value out of range.
    """
    name = recipe or "digits"
    if name not in RECIPES:
        close = difflib.get_close_matches(name, list(RECIPES), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown recipe '{name}'.{hint} Valid choices: {', '.join(list_recipes())}")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    given = {k: v for k, v in overrides.items() if v is not None}
    values = {**RECIPES[name], **given, "recipe": name}
    # The recipe's attention options belong to the recipe's attention: a different --attn starts from none.
    same_attn = given.get("attn", RECIPES[name].get("attn")) == RECIPES[name].get("attn")
    inherited = RECIPES[name].get("attn_kwargs", {}) if same_attn else {}
    values["attn_kwargs"] = {**inherited, **given.get("attn_kwargs", {})}
    bad = sorted(set(values) - fields)
    if bad:
        raise ConfigError(f"unknown training option '{bad[0]}'. Valid options: {', '.join(sorted(fields))}")
    cfg = TrainConfig(**values)
    validate_config(cfg)
    return cfg


def _type_ok(value: Any, kind: Any) -> bool:
    args = typing.get_args(kind)
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        return any(_type_ok(value, a) for a in args)
    if kind is type(None):
        return value is None
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, typing.get_origin(kind) or kind)


def check_config_types(cfg: TrainConfig) -> None:
    """Raise ``ConfigError`` for a field of the wrong type (a hand-edited or foreign saved configuration)."""
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        value = getattr(cfg, f.name)
        if not _type_ok(value, hints[f.name]):
            raise ConfigError(f"training option '{f.name}' has the wrong type: {type(value).__name__} {value!r:.40}")
    for name in ("betas", "milestones"):
        if not all(_type_ok(v, float if name == "betas" else int) for v in getattr(cfg, name)):
            raise ConfigError(f"training option '{name}' must hold numbers, got {getattr(cfg, name)!r:.40}")


def validate_config(cfg: TrainConfig) -> None:
    """Raise ``ConfigError`` for values no run can use (wrong types first, then ranges)."""
    check_config_types(cfg)
    if cfg.input_size is not None and ":" not in cfg.model:  # a model source (models/source.py) checks its own size
        check_input_size(cfg.model, cfg.input_size, model_defaults(cfg.model).input_size)
    checks = [
        (cfg.epochs >= 1, f"--epochs must be ≥ 1, got {cfg.epochs}"),
        (cfg.batch_size >= 1 and cfg.eval_batch_size >= 1, f"--batch-size must be ≥ 1, got {cfg.batch_size}"),
        (cfg.lr > 0, f"--lr must be > 0, got {cfg.lr}"),
        (cfg.limit_train is None or cfg.limit_train >= 1, f"--limit-train must be ≥ 1, got {cfg.limit_train}"),
        (cfg.limit_test is None or cfg.limit_test >= 1, f"--limit-test must be ≥ 1, got {cfg.limit_test}"),
        (cfg.num_classes is None or cfg.num_classes >= 1, f"--num-classes must be ≥ 1, got {cfg.num_classes}"),
        (cfg.crop_padding >= 0 and cfg.seed >= 0, "--crop-padding and --seed must be ≥ 0"),
        (cfg.momentum >= 0 and cfg.eps > 0 and cfg.min_lr >= 0 and cfg.gamma > 0 and cfg.clip_grad >= 0,
         "--momentum, --min-lr, --clip-grad must be ≥ 0 and --eps, --gamma > 0"),
        (cfg.weight_decay >= 0, f"--weight-decay must be ≥ 0, got {cfg.weight_decay}"),
        (cfg.optimizer in OPTIMIZERS, f"unknown optimizer '{cfg.optimizer}'. Valid choices: {', '.join(OPTIMIZERS)}"),
        (cfg.scheduler in SCHEDULERS, f"unknown scheduler '{cfg.scheduler}'. Valid choices: {', '.join(SCHEDULERS)}"),
        (cfg.normalize in NORMALIZATIONS, f"unknown --normalize '{cfg.normalize}'. Valid: {', '.join(NORMALIZATIONS)}"),
        (cfg.sched_step in ("iter", "epoch"), f"--sched-step must be iter or epoch, got '{cfg.sched_step}'"),
        (cfg.clip_mode in ("norm", "param"), f"--clip-mode must be norm or param, got '{cfg.clip_mode}'"),
        (list(cfg.milestones) == sorted(cfg.milestones), f"--milestones must be increasing, got {cfg.milestones}"),
        (0 <= cfg.cutmix <= 1 and 0 <= cfg.random_erasing <= 1, "--cutmix and --random-erasing are probabilities"),
        (0 <= cfg.label_smoothing < 1, f"--label-smoothing must be in [0, 1), got {cfg.label_smoothing}"),
        (cfg.cycle_epochs >= 1 and cfg.warmup_epochs >= 0, "--cycle-epochs must be ≥ 1, --warmup-epochs ≥ 0"),
        (cfg.scheduler != "cosine_restarts" or cfg.warmup_epochs < cfg.cycle_epochs,
         f"--warmup-epochs ({cfg.warmup_epochs}) must be shorter than --cycle-epochs ({cfg.cycle_epochs})"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)


_FLAG_TYPES: dict[Any, Any] = {float: finite_float}  # nan/inf refused while parsing


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """Add one flag per CLI-visible :class:`TrainConfig` field, all defaulting to ``None`` (= the recipe's)."""
    g = parser.add_argument_group("training (defaults come from --recipe)")
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        meta = f.metadata
        if not meta.get("cli", True):
            continue
        flag, kind = "--" + f.name.replace("_", "-"), hints[f.name]
        if kind is bool:
            g.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=meta["help"])
        elif "nargs" in meta:
            g.add_argument(flag, nargs=meta["nargs"], type=_FLAG_TYPES.get(meta["type"], meta["type"]), default=None,
                           help=meta["help"])
        else:
            union = isinstance(kind, types.UnionType)
            base = [a for a in typing.get_args(kind) if a is not type(None)] if union else [kind]
            kind = _FLAG_TYPES.get(base[0], base[0])
            g.add_argument(flag, type=kind, default=None, help=meta["help"])
