"""Optimisers, learning-rate schedules and gradient clipping for the recipes.

Every schedule is one ``LambdaLR`` stepped after each optimiser step, whose factor is a function of
the (fractional) epoch. With ``sched_step="epoch"`` the epoch is floored, which reproduces the
reference scripts' per-epoch ``scheduler.step()`` exactly. Written by hand because torch has no
cosine-with-warm-restarts schedule with a linear warm-up inside every cycle (the SE-ResNet recipe).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from seadeploy.train.recipes import TrainConfig


def param_groups(model: nn.Module, weight_decay: float, ndim2_only: bool) -> list[dict]:
    """One group with weight decay; with ``ndim2_only`` a second, undecayed group for BN and biases."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not ndim2_only:
        return [{"params": params, "weight_decay": weight_decay}]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum, optional Nesterov), Adam or AdamW as the config says."""
    groups = param_groups(model, cfg.weight_decay, cfg.decay_ndim2_only)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)


def lr_factor_fn(cfg: TrainConfig) -> Callable[[float], float]:
    """Factor of the peak LR as a function of the fractional epoch ``t``."""
    floor = min(cfg.min_lr / cfg.lr, 1.0)

    def warm_cos(t: float, warmup: float, length: float) -> float:
        if t < warmup:
            return floor + (1.0 - floor) * t / warmup
        frac = min(max((t - warmup) / max(length - warmup, 1e-12), 0.0), 1.0)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * frac))

    def factor(t: float) -> float:
        if cfg.sched_step == "epoch":
            t = math.floor(t + 1e-9)
        if cfg.scheduler == "multistep":
            return cfg.gamma ** sum(t >= m for m in cfg.milestones)
        if cfg.scheduler == "cosine":
            return warm_cos(t, cfg.warmup_epochs, cfg.epochs)
        if cfg.scheduler == "cosine_restarts":
            return warm_cos(t % cfg.cycle_epochs, cfg.warmup_epochs, cfg.cycle_epochs)
        return 1.0

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig,
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` to be stepped once per optimiser step."""
    factor = lr_factor_fn(cfg)
    steps = max(int(steps_per_epoch), 1)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: factor(step / steps))


def clip_gradients(params: Iterable[torch.Tensor], max_norm: float, mode: str) -> None:
    """Clip the global gradient norm (``norm``) or each tensor's norm on its own (``param``, SE-ResNet recipe)."""
    grads = [p for p in params if p.grad is not None]
    if max_norm <= 0 or not grads:
        return
    if mode == "norm":
        nn.utils.clip_grad_norm_(grads, max_norm)
        return
    for p in grads:  # per-tensor clipping: torch's clip_grad_norm_ only clips the joint norm
        nn.utils.clip_grad_norm_([p], max_norm)
