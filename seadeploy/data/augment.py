"""Batch augmentation with kornia: one module turns a uint8 batch into a normalised float batch.

Everything runs on whole batches on the batch's device (CPU or GPU), drawing randomness from
torch's global generator, so ``torch.manual_seed`` makes it reproducible and resumable.

Example:
    >>> aug = BatchTransform(32, mean=(0.5,) * 3, std=(0.5,) * 3, crop_padding=4, hflip=True, rotation=15)
    >>> x = aug(images_uint8)            # float32 (N, 3, 32, 32), augmented + normalised
    >>> aug.eval(); x = aug(images_uint8)  # eval mode: normalisation only
"""

from __future__ import annotations

from collections.abc import Sequence

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from kornia.augmentation.auto import TrivialAugment
from torch import nn


class BatchTransform(nn.Module):
    """uint8 batch → float in [0, 1] → (training only) augmentations → normalisation.

    Args:
        input_size: output side; random crops produce this size.
        mean: per-channel mean of the normalisation (0–1 scale).
        std: per-channel std of the normalisation.
        crop_padding: random crop with this zero padding (0 = off), as ``RandomCrop(size, padding)``.
        hflip: random horizontal flip with p = 0.5.
        rotation: random rotation in ±degrees (0 = off).
        random_resized_crop: random resized crop with scale (0.08, 1) and ratio (3/4, 4/3).
        trivial_augment: kornia's TrivialAugment (one random op per image).
        random_erasing: probability of random erasing per image (0 = off).
    """

    def __init__(self, input_size: int, mean: Sequence[float], std: Sequence[float], *, crop_padding: int = 0,
                 hflip: bool = False, rotation: float = 0.0, random_resized_crop: bool = False,
                 trivial_augment: bool = False, random_erasing: float = 0.0) -> None:
        super().__init__()
        size = (int(input_size), int(input_size))
        ops: list[nn.Module] = []
        if trivial_augment:
            ops.append(TrivialAugment())
        if random_resized_crop:
            ops.append(K.RandomResizedCrop(size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)))
        if crop_padding:
            ops.append(K.RandomCrop(size, padding=int(crop_padding), fill=0.0))
        if hflip:
            ops.append(K.RandomHorizontalFlip(p=0.5))
        if rotation:
            ops.append(K.RandomRotation(degrees=float(rotation), p=1.0))
        if random_erasing:
            ops.append(K.RandomErasing(p=float(random_erasing)))
        self.augment = nn.Sequential(*ops)
        self.input_size = int(input_size)
        self.normalize = K.Normalize(mean=torch.tensor(mean, dtype=torch.float32),
                                     std=torch.tensor(std, dtype=torch.float32))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        if self.training and len(self.augment):
            x = self.augment(x).clamp_(0.0, 1.0)
        return self.normalize(x)


class CutMix(nn.Module):
    """CutMix on a batch (kornia's ``RandomCutMixV2``, α = β = 1, λ from the actual box area).

    ``forward(x, y)`` returns ``(x_mixed, y_a, y_b, lam)`` with per-sample ``lam`` = share of the
    image that still comes from ``y_a``; use :func:`mixed_cross_entropy` as the loss.

    Args:
        p: probability that a batch is mixed (the SE-ResNet recipe mixes every batch: 1.0).
    """

    def __init__(self, p: float = 1.0) -> None:
        super().__init__()
        self.p = float(p)
        self.mix = K.RandomCutMixV2(num_mix=1, beta=1.0, p=1.0, data_keys=["input", "class"], use_correct_lambda=True)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.p < 1.0 and float(torch.rand(())) >= self.p:
            return x, y, y, torch.ones(len(y), device=x.device)
        x_mix, lab = self.mix(x, y)
        lab = lab[0]  # (B, 3): label, permuted label, lambda (share of the original image)
        return x_mix, lab[:, 0].long(), lab[:, 1].long(), lab[:, 2].float()


def mixed_cross_entropy(logits: torch.Tensor, y_a: torch.Tensor, y_b: torch.Tensor, lam: torch.Tensor,
                        label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean over samples of ``lam·CE(y_a) + (1 − lam)·CE(y_b)`` with optional label smoothing."""
    ce_a = F.cross_entropy(logits, y_a, reduction="none", label_smoothing=label_smoothing)
    ce_b = F.cross_entropy(logits, y_b, reduction="none", label_smoothing=label_smoothing)
    return (lam * ce_a + (1.0 - lam) * ce_b).mean()
