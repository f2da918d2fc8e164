"""Datasets that need no files: ``digits`` (real, bundled with scikit-learn) and ``synthetic``.

``digits`` is scikit-learn's copy of the UCI handwritten digits: 1,797 real 8×8 grayscale images of
the digits 0–9 (values 0–16). They are split once, stratified and seeded (80 % train / 20 % test), and
scaled to ``input_size``×``input_size`` RGB uint8, so the whole pipeline runs offline on real data.
"""

from __future__ import annotations

import functools

import torch

from seadeploy.data.base import DatasetInfo, ImageDataset, channel_stats, resize_uint8
from seadeploy.errors import ConfigError

DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


@functools.lru_cache(maxsize=4)
def _digits_split(input_size: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    from sklearn.datasets import load_digits  # noqa: PLC0415  heavy (~1.7 s): only the digits dataset needs it
    from sklearn.model_selection import train_test_split  # noqa: PLC0415  heavy (~1.7 s): only the digits dataset needs it

    bunch = load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32).mul_(255.0 / 16.0).round_().to(torch.uint8)
    x = x[:, None].expand(-1, 3, -1, -1)
    y = torch.as_tensor(bunch.target, dtype=torch.int64)
    idx_train, idx_test = train_test_split(torch.arange(len(y)).numpy(), test_size=DIGITS_TEST_FRACTION,
                                           stratify=y.numpy(), random_state=DIGITS_SPLIT_SEED)
    # split the 8×8 images, then resize each split (per image, so the same pixels): no full-size copy of the set
    return {"train": (resize_uint8(x[idx_train], input_size), y[idx_train]),
            "test": (resize_uint8(x[idx_test], input_size), y[idx_test])}


def load_digits_dataset(split: str = "train", input_size: int | None = None) -> ImageDataset:
    """scikit-learn's handwritten digits, stratified 80/20 split, scaled to RGB ``input_size`` (default 32)."""
    size = int(input_size or 32)
    parts = _digits_split(size)
    mean, std = channel_stats(parts["train"][0])
    info = DatasetInfo("digits", 10, size, mean, std, classes=tuple(str(i) for i in range(10)))
    x, y = parts[split]
    return ImageDataset(x.clone(), y.clone(), info, split)


def load_synthetic(split: str = "train", input_size: int | None = None, num_samples: int | None = None,
                   num_classes: int = 10, seed: int = 0) -> ImageDataset:
    """Seeded random uint8 images with random labels (for latency work and smoke tests; not learnable).

    Args:
        split: ``train`` (512 samples by default) or ``test`` (128); the splits use different seeds.
        input_size: image side (default 32).
        num_samples: number of samples.
        num_classes: number of classes.
        seed: base seed.
    """
    size = int(input_size or 32)
    n = int(num_samples if num_samples is not None else (512 if split == "train" else 128))
    if n < 1 or num_classes < 1:
        raise ConfigError(f"synthetic: num_samples and num_classes must be ≥ 1, got {n} and {num_classes}")
    g = torch.Generator().manual_seed(seed * 2 + (split == "test"))
    x = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    y = torch.randint(0, num_classes, (n,), generator=g)
    info = DatasetInfo("synthetic", num_classes, size, (0.5, 0.5, 0.5), (0.29, 0.29, 0.29),
                       classes=tuple(str(i) for i in range(num_classes)))
    return ImageDataset(x, y, info, split)
