"""Test-set evaluation: loss, top-1 and top-5 counted over samples, sharded and reduced under DDP."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seadeploy.data.base import ImageDataset
from seadeploy.train.distributed import DistContext


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Number of samples whose label is among the ``k`` highest logits."""
    k = min(k, logits.shape[1])
    return (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1).sum()


@torch.no_grad()
def evaluate(model: nn.Module, dataset: ImageDataset, transform: nn.Module, *, batch_size: int = 256,
             device: torch.device | str = "cpu", ctx: DistContext | None = None, amp: bool = False) -> dict[str, float]:
    """Evaluate ``model`` (switched to eval mode) on ``dataset``.

    Under DDP every rank evaluates the samples ``rank::world_size`` and the counts are summed, so the
    result is exactly the single-process accuracy over all samples.

    Args:
        model: the (unwrapped) network.
        dataset: images and labels to evaluate on.
        transform: uint8 batch → normalised float batch (eval mode, no augmentation).
        batch_size: evaluation batch size.
        device: where to run.
        ctx: distributed context (None = single process).
        amp: autocast to float16 on CUDA.

    Returns:
        ``{"loss", "top1", "top5", "n"}``; accuracies in percent, ``top5`` NaN with fewer than 10 classes.
    """
    ctx = ctx or DistContext(device=torch.device(device))
    device = torch.device(device)
    model.eval()
    transform.eval()
    idx = torch.arange(ctx.rank, len(dataset), ctx.world_size)
    sums = torch.zeros(4, dtype=torch.float64)  # loss sum, top-1 correct, top-5 correct, samples
    for chunk in idx.split(batch_size):
        x = transform(dataset.images[chunk].to(device))
        y = dataset.labels[chunk].to(device)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp and device.type == "cuda"):
            logits = model(x)
        logits = logits.float()
        sums += torch.stack([F.cross_entropy(logits, y, reduction="sum"), topk_correct(logits, y, 1),
                             topk_correct(logits, y, 5), torch.tensor(len(chunk))]).double().cpu()
    sums = ctx.all_reduce_sum(sums)
    n = max(float(sums[3]), 1.0)
    top5 = 100.0 * float(sums[2]) / n if dataset.info.num_classes >= 10 else math.nan
    return {"loss": float(sums[0]) / n, "top1": 100.0 * float(sums[1]) / n, "top5": top5, "n": int(sums[3])}
