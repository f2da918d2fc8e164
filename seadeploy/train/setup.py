"""Everything a run needs before its first step: datasets, transforms, sampler, model spec, (DDP) model."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.data import DistributedSampler

from seadeploy.data import get_dataset
from seadeploy.data.augment import BatchTransform
from seadeploy.data.base import HALF, IMAGENET_STATS, ImageDataset
from seadeploy.errors import ConfigError, InputError, SeadeployError
from seadeploy.models import model_defaults
from seadeploy.models.build import build_model as build_spec_model  # this module's build_model also wraps DDP
from seadeploy.models.build import resolve_spec
from seadeploy.models.factories import load_weights
from seadeploy.models.source import ModelSource, is_external
from seadeploy.runfolder import ModelSpec, load_state_checked
from seadeploy.train.distributed import DistContext
from seadeploy.train.recipes import TrainConfig


@dataclasses.dataclass
class RunData:
    """Datasets, transforms and the sharded sample order of one run."""

    train: ImageDataset
    test: ImageDataset
    train_tf: BatchTransform
    eval_tf: BatchTransform
    sampler: DistributedSampler
    batch_per_rank: int
    spec: ModelSpec
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def steps_per_epoch(self) -> int:
        return len(self.sampler) // self.batch_per_rank

    def batches(self, epoch: int) -> Iterator[torch.Tensor]:
        """Index batches of this rank for ``epoch``; the incomplete last batch is dropped.

        The permutation depends only on (seed, epoch), and rank r takes positions r, r + W, ... of it,
        so batch i of all W ranks together is exactly batch i of a single process with the same
        global batch size.
        """
        self.sampler.set_epoch(epoch)
        order = torch.tensor(list(self.sampler), dtype=torch.int64)
        b = self.batch_per_rank
        for i in range(self.steps_per_epoch):
            yield order[i * b:(i + 1) * b]


def resolve_normalization(mode: str, dataset_mean: tuple, dataset_std: tuple) -> tuple[tuple, tuple]:
    """``dataset`` → the dataset's statistics, ``half`` → 0.5/0.5, ``imagenet`` → ImageNet statistics."""
    return {"dataset": (dataset_mean, dataset_std), "half": HALF, "imagenet": IMAGENET_STATS}[mode]


def load_data(cfg: TrainConfig, ctx: DistContext) -> RunData:
    """Load both splits, build the transforms, the sampler and the model spec."""
    external = is_external(cfg.model)
    size = cfg.input_size or (None if external else model_defaults(cfg.model).input_size)
    if external and size is None:  # the model's own default (its input_size attribute / timm cfg / 224)
        size = ModelSource(cfg.model, model_kwargs=dict(cfg.model_kwargs)).spec().input_size
    kw = {"root": cfg.data_root, "input_size": size}
    train = _load_on_main_first(cfg, ctx, kw).subset(cfg.limit_train)
    test = get_dataset(cfg.dataset, "test", **kw).subset(cfg.limit_test)
    info = train.info
    classes = cfg.num_classes or info.num_classes
    if classes < info.num_classes:
        raise ConfigError(f"--num-classes {classes} is smaller than the {info.num_classes} classes of '{cfg.dataset}'")
    if cfg.batch_size % ctx.world_size:
        raise ConfigError(f"--batch-size {cfg.batch_size} is not divisible by the {ctx.world_size} processes")
    mean, std = resolve_normalization(cfg.normalize, info.mean, info.std)
    aug = {"crop_padding": cfg.crop_padding, "hflip": cfg.hflip, "rotation": cfg.rotation,
           "random_resized_crop": cfg.random_resized_crop, "trivial_augment": cfg.trivial_augment,
           "random_erasing": cfg.random_erasing}
    train_tf = BatchTransform(size, mean, std, **aug).to(ctx.device)
    eval_tf = BatchTransform(size, mean, std).to(ctx.device).eval()
    sampler = DistributedSampler(train, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=cfg.seed,
                                 drop_last=True)
    if external:  # factory / timm / torchvision: the source builds once to check classes and record the spec
        spec = ModelSource(cfg.model, attn=cfg.attn, attn_kwargs=dict(cfg.attn_kwargs),
                           model_kwargs=dict(cfg.model_kwargs), input_size=size, num_classes=classes).spec()
    else:
        spec = resolve_spec(ModelSpec(model=cfg.model, attn=cfg.attn, attn_kwargs=dict(cfg.attn_kwargs),
                                      num_classes=classes, input_size=size, model_kwargs=dict(cfg.model_kwargs)))
    data = RunData(train, test, train_tf, eval_tf, sampler, cfg.batch_size // ctx.world_size, spec, tuple(mean),
                   tuple(std))
    if data.steps_per_epoch < 1:
        raise ConfigError(f"--batch-size {cfg.batch_size} is larger than the {len(train)} training samples")
    return data


def _load_on_main_first(cfg: TrainConfig, ctx: DistContext, kw: dict) -> ImageDataset:
    """Rank 0 loads (and downloads) first; its error, if any, is raised on every rank instead of a hang."""
    train, error = None, None
    if ctx.is_main:
        try:
            train = get_dataset(cfg.dataset, "train", download=cfg.download, **kw)
        except SeadeployError as exc:
            error = exc
    failed = ctx.broadcast_object(None if error is None else (isinstance(error, ConfigError), str(error)))
    if error is not None:
        raise error
    if failed:
        raise (ConfigError if failed[0] else InputError)(failed[1])
    return train if train is not None else get_dataset(cfg.dataset, "train", **kw)


def classifier_head_misfits(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], classes: int) -> list[str]:
    """The tensors of a classifier head sized for another dataset — what fine-tuning re-initialises, as timm does
    when ``num_classes`` differs from the pretrained one. Only when every other tensor fits, and every misfit
    differs in its leading (class) dimension alone: ``classes`` in the model, one other count in ``state``."""
    if set(own) != set(state):
        return []
    bad = [k for k, v in own.items() if tuple(state[k].shape) != tuple(v.shape)]
    head = all(own[k].dim() >= 1 and own[k].shape[0] == classes and state[k].dim() == own[k].dim()
               and tuple(state[k].shape[1:]) == tuple(own[k].shape[1:]) for k in bad)
    if not bad or not head:
        return []
    theirs = {int(state[k].shape[0]) for k in bad}  # every misfit's class count in the weights: one, not ours
    return bad if len(theirs) == 1 and classes not in theirs else []


def build_model(spec: ModelSpec, cfg: TrainConfig, ctx: DistContext) -> tuple[nn.Module, nn.Module]:
    """``(model_to_train, core)``: the DDP wrapper (or the model itself) and the plain module to save/evaluate."""
    core = build_spec_model(spec)
    if cfg.weights:  # fine-tuning: start from these weights (a mismatch names the tensors)
        state, own = load_weights(cfg.weights), core.state_dict()
        head = classifier_head_misfits(own, state, spec.num_classes)
        if head:
            if ctx.is_main:
                print(f"note: --weights '{cfg.weights}' has a {int(state[head[0]].shape[0])}-class head; "
                      f"{', '.join(head)} start from fresh initialisation for {spec.num_classes} classes",
                      file=sys.stderr)
            state = {**state, **{k: own[k] for k in head}}
        load_state_checked(core, state, source=f"--weights '{cfg.weights}'", hint=spec)
    core = core.to(ctx.device)
    if not ctx.distributed:
        return core, core
    if cfg.sync_bn:
        if ctx.device.type != "cuda":
            raise ConfigError("--sync-bn needs CUDA devices (torch's SyncBatchNorm is GPU-only); drop it on CPU")
        core = nn.SyncBatchNorm.convert_sync_batchnorm(core)
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(core, device_ids=ids), core
