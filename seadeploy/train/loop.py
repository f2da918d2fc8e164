"""The training loop: train and evaluate every epoch, best/last checkpoints, metrics, curves, resume, DDP.

Example:
    >>> from seadeploy.train import make_config, train
    >>> result = train(make_config(model="resnet20_cifar", attn="se", epochs=5, out="runs/d-se"))
    >>> bool(result), result.best_top1
    (True, 98.6)

Run folder (names from :mod:`seadeploy.runfolder.names`): ``checkpoint.safetensors`` (best test top-1),
``last.safetensors`` (last epoch), ``train_state.pt`` (resume), ``metrics.csv``, ``curves.png``.
"""

from __future__ import annotations

import dataclasses
import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from seadeploy.data.augment import CutMix, mixed_cross_entropy
from seadeploy.errors import ConfigError, InputError, SeadeployError
from seadeploy.fileio import check_out_folder, sweep_stale
from seadeploy.runfolder import CHECKPOINT, LAST_CHECKPOINT, TRAIN_STATE, Checkpoint, ModelSpec, load_state_checked
from seadeploy.train.distributed import DistContext, init_distributed
from seadeploy.train.evaluate import evaluate, topk_correct
from seadeploy.train.history import history_frame, save_curves, write_metrics_csv
from seadeploy.train.optim import build_optimizer, build_scheduler, clip_gradients
from seadeploy.train.recipes import TrainConfig, validate_config
from seadeploy.train.setup import RunData, build_model, load_data
from seadeploy.train.state import load_train_state, rng_state, save_train_state, set_rng_state


@dataclasses.dataclass
class TrainResult:
    """Outcome of :func:`train`. Truthy when every epoch ran, losses stayed finite and ``target_acc`` was met."""

    run_dir: Path | None
    config: dict[str, Any]
    history: list[dict[str, Any]]
    best_epoch: int
    best_top1: float
    elapsed_s: float
    start_epoch: int = 0
    target_acc: float | None = None
    rank: int = 0
    spec: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}

    def __bool__(self) -> bool:
        done = len(self.history) >= self.config["epochs"]
        finite = all(math.isfinite(r["train_loss"]) and math.isfinite(r["test_loss"]) for r in self.history)
        return done and finite and (self.target_acc is None or self.best_top1 >= self.target_acc)

    def to_frame(self) -> pd.DataFrame:
        """One row per epoch (columns of :data:`seadeploy.train.history.COLUMNS`)."""
        return history_frame(self.history)

    def summary(self) -> dict[str, Any]:
        """The machine-readable summary ``--json`` prints."""
        c = self.config
        return {"passed": bool(self), "run_dir": str(self.run_dir) if self.run_dir else None, "recipe": c["recipe"],
                "model": c["model"], "attn": self.spec.get("attn", c["attn"]),
                "attn_kwargs": self.spec.get("attn_kwargs", c["attn_kwargs"]), "dataset": c["dataset"],
                "epochs": len(self.history),
                "resumed_from_epoch": self.start_epoch, "best_epoch": self.best_epoch, "best_top1": self.best_top1,
                "final": self.final, "target_acc": self.target_acc, "elapsed_s": round(self.elapsed_s, 2)}


def train(config: TrainConfig, *, progress: bool = False, log: Callable[[str], None] | None = None) -> TrainResult:
    """Train as ``config`` says; single process, or DDP when launched by torchrun.

    Args:
        config: a :class:`TrainConfig` (see :func:`seadeploy.train.make_config`).
        progress: show a tqdm bar per epoch (rank 0 only).
        log: called with one line per epoch (rank 0 only); None = silent.

    Raises:
        ConfigError: bad settings, an existing run folder without ``resume``/``overwrite``, or divergence.
        InputError: missing/corrupt dataset files or resume state.
    """
    ctx = init_distributed(config.device)
    try:
        return _Trainer(config, ctx, progress, log).run()
    finally:
        ctx.close()


class _Trainer:
    def __init__(self, cfg: TrainConfig, ctx: DistContext, progress: bool, log: Callable[[str], None] | None) -> None:
        self.cfg, self.ctx, self.progress = cfg, ctx, progress and ctx.is_main
        self.log = log if ctx.is_main else None
        self.out = Path(cfg.out) if cfg.out else None
        _check_run_dir(cfg, self.out)
        if self.out is not None and ctx.is_main:
            sweep_stale(self.out, (".*.tmp",))  # temp files of a killed run in this folder
        _seed_everything(cfg.seed, cfg.deterministic)
        self.data: RunData = load_data(cfg, ctx)
        self.model, self.core = build_model(self.data.spec, cfg, ctx)
        # create_model records the spec it built (the family's default attention resolved): save that one
        self.spec: ModelSpec = getattr(self.core, "spec", self.data.spec)
        self.optimizer = build_optimizer(self.core, cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg, self.data.steps_per_epoch)
        self.use_amp = cfg.amp and ctx.device.type == "cuda"
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=self.use_amp)
        self.cutmix = CutMix(cfg.cutmix) if cfg.cutmix > 0 else None
        self.history: list[dict[str, Any]] = []
        self.best = {"epoch": 0, "top1": -math.inf}
        self.start_epoch, self.last_lr = 0, cfg.lr
        if cfg.resume:
            self._restore(load_train_state(cfg.resume))
        else:
            torch.manual_seed(cfg.seed + ctx.rank)  # same init on every rank, different augmentation draws

    def run(self) -> TrainResult:
        t0 = time.perf_counter()
        for epoch in range(self.start_epoch, self.cfg.epochs):
            t_ep = time.perf_counter()
            train_stats = self._train_epoch(epoch)
            _broadcast_buffers(self.core, self.ctx)  # evaluate (and save) exactly rank 0's BN statistics
            test = evaluate(self.core, self.data.test, self.data.eval_tf, batch_size=self.cfg.eval_batch_size,
                            device=self.ctx.device, ctx=self.ctx, amp=self.use_amp)
            row = {"epoch": epoch + 1, "lr": self.last_lr, **train_stats,
                   "test_loss": test["loss"], "test_top1": test["top1"], "test_top5": test["top5"],
                   "epoch_time_s": time.perf_counter() - t_ep}
            self._end_epoch(row)
        return TrainResult(self.out, self.cfg.to_dict(), self.history, self.best["epoch"], self.best["top1"],
                           time.perf_counter() - t0, self.start_epoch, self.cfg.target_acc, self.ctx.rank,
                           self.spec.to_dict())

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        self.model.train()
        self.data.train_tf.train()
        sums = torch.zeros(3, dtype=torch.float64, device=self.ctx.device)  # loss sum, correct, samples
        bar = tqdm(self.data.batches(epoch), total=self.data.steps_per_epoch, leave=False, file=sys.stderr,
                   desc=f"epoch {epoch + 1}/{self.cfg.epochs}", disable=not self.progress, dynamic_ncols=True)
        for idx in bar:
            x = self.data.train_tf(self.data.train.images[idx].to(self.ctx.device, non_blocking=True))
            y = self.data.train.labels[idx].to(self.ctx.device, non_blocking=True)
            loss, logits = self._step(x, y)
            sums += torch.stack([loss.detach().double() * len(y), topk_correct(logits.detach(), y, 1).double(),
                                 torch.tensor(len(y), dtype=torch.float64, device=self.ctx.device)])
        total = self.ctx.all_reduce_sum(sums.cpu())
        n = max(float(total[2]), 1.0)
        stats = {"train_loss": float(total[0]) / n, "train_top1": 100.0 * float(total[1]) / n}
        if not math.isfinite(stats["train_loss"]):
            raise ConfigError(f"training diverged: the loss is {stats['train_loss']} in epoch {epoch + 1}; lower --lr "
                              f"(now {self.cfg.lr}) or set --clip-grad")
        return stats

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        with torch.autocast(self.ctx.device.type, dtype=torch.float16, enabled=self.use_amp):
            if self.cutmix is not None:
                x, y_a, y_b, lam = self.cutmix(x, y)
                logits = self.model(x)
                loss = mixed_cross_entropy(logits.float(), y_a, y_b, lam, cfg.label_smoothing)
            else:
                logits = self.model(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if cfg.clip_grad > 0:
            self.scaler.unscale_(self.optimizer)
            clip_gradients(self.core.parameters(), cfg.clip_grad, cfg.clip_mode)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.last_lr = self.optimizer.param_groups[0]["lr"]  # the LR of this epoch's last step, for the history
        self.scheduler.step()
        return loss, logits

    def _end_epoch(self, row: dict[str, Any]) -> None:
        self.history.append(row)
        is_best = row["test_top1"] > self.best["top1"]
        if is_best:
            self.best = {"epoch": row["epoch"], "top1": row["test_top1"]}
        rngs = self.ctx.gather_objects(rng_state())
        if self.out is not None and self.ctx.is_main:
            self._save(row, is_best, rngs)
        self.ctx.barrier()
        if self.log:
            top5 = f" (top-5 {row['test_top5']:.2f}%)" if math.isfinite(row["test_top5"]) else ""
            self.log(f"epoch {row['epoch']:>3}/{self.cfg.epochs}  loss {row['train_loss']:.4f}  "
                     f"train {row['train_top1']:.2f}%"
                     f"  test {row['test_top1']:.2f}%{top5}  lr {row['lr']:.3g}  {row['epoch_time_s']:.1f}s"
                     + ("  *best" if is_best else ""))

    def _save(self, row: dict[str, Any], is_best: bool, rngs: list[dict]) -> None:
        """Checkpoints, metrics and curves first, the resume state last (see state.py)."""
        metrics = {"epoch": row["epoch"], "top1": row["test_top1"], "top5": row["test_top5"],
                   "test_loss": row["test_loss"], "train_loss": row["train_loss"], "best_epoch": self.best["epoch"],
                   "best_top1": self.best["top1"]}
        extra = {"recipe": self.cfg.recipe, "config": self.cfg.to_dict(), "data_root": self.cfg.data_root}
        ckpt = Checkpoint(self.spec, self.core.state_dict(), self.data.mean, self.data.std, self.cfg.dataset, metrics,
                          extra)
        if is_best:
            dataclasses.replace(ckpt, extra={**extra, "kind": "best"}).save(self.out / CHECKPOINT)
        dataclasses.replace(ckpt, extra={**extra, "kind": "last"}).save(self.out / LAST_CHECKPOINT)
        write_metrics_csv(self.out, self.history)
        save_curves(self.out, self.history, title=f"{self.spec.model} (attn={self.spec.attn}) on {self.cfg.dataset}")
        save_train_state(self.out, {
            "epoch": row["epoch"], "config": self.cfg.to_dict(), "model": self.core.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "history": self.history, "best": self.best, "rng": rngs,
            "world_size": self.ctx.world_size, "steps_per_epoch": self.data.steps_per_epoch})

    def _restore(self, state: dict[str, Any]) -> None:
        where = f"{self.cfg.resume}/{TRAIN_STATE}"
        if state["steps_per_epoch"] != self.data.steps_per_epoch:
            raise ConfigError(f"cannot resume: the run used {state['steps_per_epoch']} steps per epoch, now "
                              f"{self.data.steps_per_epoch}; keep the same --batch-size, dataset and process count")
        load_state_checked(self.core, state["model"], source=where, hint=self.spec)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if state["scaler"]:
                self.scaler.load_state_dict(state["scaler"])
        except SeadeployError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:  # torch's own state checks
            raise InputError(f"cannot resume: the optimiser/scheduler state in '{where}' is damaged "
                             f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}); "
                             "start the run again with --overwrite") from exc
        self.history, self.best, self.start_epoch = list(state["history"]), dict(state["best"]), int(state["epoch"])
        if not 0 <= self.start_epoch <= self.cfg.epochs or self.best.keys() != {"epoch", "top1"}:
            raise InputError(f"cannot resume: '{where}' records epoch {self.start_epoch} of {self.cfg.epochs} and best "
                             f"{self.best!r:.40}; pass --epochs ≥ {self.start_epoch} or start again with --overwrite")
        if len(state["rng"]) == self.ctx.world_size:
            set_rng_state(state["rng"][self.ctx.rank])
        else:  # another process count: the sample order is unchanged (seed + epoch), augmentation draws are new
            torch.manual_seed(self.cfg.seed + 1000 * self.start_epoch + self.ctx.rank)


RESUME_OVERRIDES = ("epochs", "device", "target_acc")


def resume_config(run_dir: str | Path, **overrides: Any) -> TrainConfig:
    """The configuration saved in ``RUN/train_state.pt``, to continue that run.

    Only ``epochs`` (to extend a run), ``device`` and ``target_acc`` may change; any other override
    that differs from the saved value raises ``ConfigError``.
    """
    saved = load_train_state(run_dir)["config"]
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    missing = sorted({"model", "dataset", "epochs", "batch_size"} - set(saved))
    if missing:
        raise InputError(f"cannot resume: the configuration in '{Path(run_dir) / TRAIN_STATE}' has no '{missing[0]}'; "
                         "it is damaged; start the run again with --overwrite")
    for key, value in overrides.items():
        if value is not None and key not in (*RESUME_OVERRIDES, "out", "resume") and value != saved.get(key):
            raise ConfigError(f"--resume continues the run with its own settings: --{key.replace('_', '-')} cannot "
                              f"change ({saved.get(key)!r} → {value!r}); only --epochs, --device, --target-acc can")
    values = {k: v for k, v in saved.items() if k in known}
    values.update({k: overrides[k] for k in RESUME_OVERRIDES if overrides.get(k) is not None})
    cfg = TrainConfig(**{**values, "resume": str(run_dir), "out": str(run_dir)})
    try:
        validate_config(cfg)
    except ConfigError as exc:
        raise InputError(f"cannot resume: the configuration saved in '{Path(run_dir) / TRAIN_STATE}' is not usable "
                         f"({exc}); start the run again with --overwrite") from exc
    return cfg


def _check_run_dir(cfg: TrainConfig, out: Path | None) -> None:
    check_out_folder(out)
    if out is None or cfg.resume or cfg.overwrite:
        return
    if (out / TRAIN_STATE).exists():
        raise ConfigError(f"run folder '{out}' already holds a training run; pass --resume {out} to continue it, "
                          f"--overwrite to start again, or another --out")
    if (out / CHECKPOINT).exists():  # no resume state: resuming is impossible, so do not suggest it
        raise ConfigError(f"run folder '{out}' holds a checkpoint but no resume state (the run stopped before its "
                          f"first epoch was saved, or it was exported from flags); pass --overwrite to train there "
                          f"again, or another --out")


def _seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic


def _broadcast_buffers(module: torch.nn.Module, ctx: DistContext) -> None:
    if not ctx.distributed:
        return
    for buf in module.buffers():
        torch.distributed.broadcast(buf.data, src=0)
