"""The in-memory dataset every loader returns: uint8 images, int64 labels and a :class:`DatasetInfo`.

Whole datasets live in memory as one ``uint8`` tensor (N, 3, H, W): indexing a batch is a single
gather, augmentation then runs on the whole batch (:mod:`seadeploy.data.augment`), so CPU training
needs no worker processes.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

from seadeploy.errors import InputError

#: Normalisation constants used by the recipes (docs/models.md §4).
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
CIFAR100_STATS = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a model trained on a dataset needs to know about it.

    Attributes:
        name: registry name (``digits``, ``cifar10``, ...).
        num_classes: number of classes.
        input_size: side of the square images held in memory.
        mean: per-channel mean of the images scaled to [0, 1] (the dataset's own statistics).
        std: per-channel standard deviation, same scale.
        classes: class names, index = label.
    """

    name: str
    num_classes: int
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    classes: tuple[str, ...] = ()


class ImageDataset(torch.utils.data.Dataset):
    """Images (uint8, N×3×H×W) and labels (int64, N) held in memory.

    ``dataset[i]`` gives ``(image_uint8, label)``; training code indexes ``dataset.images`` with a
    whole batch of indices instead (one gather, no per-sample Python work).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, info: DatasetInfo, split: str = "train") -> None:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise InputError(f"dataset '{info.name}': images must be uint8 (N, 3, H, W), got {images.dtype} "
                             f"{tuple(images.shape)}")
        if labels.shape != (images.shape[0],):
            raise InputError(f"dataset '{info.name}': {images.shape[0]} images but labels of shape "
                             f"{tuple(labels.shape)}")
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= info.num_classes):
            raise InputError(f"dataset '{info.name}': labels must lie in [0, {info.num_classes}), "
                             f"got [{int(labels.min())}, {int(labels.max())}]")
        self.images = images.contiguous()
        self.labels = labels.to(torch.int64)
        self.info = info
        self.split = split

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])

    def __repr__(self) -> str:
        h, w = self.images.shape[-2:]
        return (f"ImageDataset({self.info.name!r}, split={self.split!r}, n={len(self)}, {h}x{w}, "
                f"classes={self.info.num_classes})")

    def subset(self, n: int | None) -> ImageDataset:
        """The first ``n`` samples (all when ``n`` is None or larger than the set), for smoke runs."""
        if n is None or n >= len(self):
            return self
        if n < 1:
            raise InputError(f"a dataset limit must be ≥ 1, got {n}")
        return ImageDataset(self.images[:n], self.labels[:n], self.info, self.split)


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a uint8 batch (N, C, H, W) to ``size``×``size`` (bilinear, antialiased when shrinking)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = images.new_empty((images.shape[0], images.shape[1], size, size))
    # bounded float memory: ~64 MB of float32 input or output per chunk (5461 images at 32 px, 111 at 224 px);
    # each image is resized on its own, so the chunking does not change the result
    per_chunk = max(1, 2**24 // (images.shape[1] * max(size * size, images.shape[-2] * images.shape[-1])))
    for start in range(0, images.shape[0], per_chunk):
        chunk = images[start:start + per_chunk]
        x = F.interpolate(chunk.float(), size=(size, size), mode="bilinear", align_corners=False,
                          antialias=size < min(chunk.shape[-2:]))
        out[start:start + per_chunk] = x.round_().clamp_(0, 255)  # written into the result: no list + cat copy
    return out


def channel_stats(images: torch.Tensor, chunk: int = 64) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (unbiased) std of a uint8 batch, on the [0, 1] scale.

    Exact integer sums of x and x² over ``chunk`` images at a time: a float64 copy of the whole set
    (1.7 GB for the digits train split at 224 px) was the peak of a 224-px export.
    """
    s1 = torch.zeros(images.shape[1], dtype=torch.int64)
    s2 = torch.zeros_like(s1)
    for part in images.split(chunk):
        v = part.to(torch.int64)
        s1 += v.sum(dim=(0, 2, 3))
        s2 += v.mul_(v).sum(dim=(0, 2, 3))
    n = images.shape[0] * images.shape[2] * images.shape[3]
    mean = [int(a) / (255 * n) for a in s1]
    std = [math.sqrt((n * int(b) - int(a) ** 2) / (n * (n - 1))) / 255 for a, b in zip(s1, s2, strict=True)]
    return tuple(round(v, 4) for v in mean), tuple(round(v, 4) for v in std)
