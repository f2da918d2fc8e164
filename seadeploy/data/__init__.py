"""Datasets held in memory as uint8 tensors, batch augmentation with kornia, seeded sample batches.

``get_dataset(name, split, root, input_size, download)`` returns an :class:`ImageDataset` with
``.images`` (uint8 N×3×H×W), ``.labels`` (int64 N) and ``.info`` (:class:`DatasetInfo`). Names:
``digits`` (the offline default, real), ``cifar10``, ``cifar100``, ``imagefolder``, ``synthetic``.

Example:
    >>> ds = get_dataset("digits", split="test")
    >>> ds.images.shape, ds.info.num_classes
    (torch.Size([360, 3, 32, 32]), 10)
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seadeploy.data.base import DatasetInfo, ImageDataset
from seadeploy.data.builtin import load_digits_dataset, load_synthetic
from seadeploy.data.cifar import load_cifar
from seadeploy.data.imagefolder import find_classes, load_imagefolder, split_folder
from seadeploy.errors import ConfigError
from seadeploy.registry import Registry

DATASETS: Registry[Callable[..., ImageDataset]] = Registry("dataset")
DEFAULT_DATASET = "digits"


@DATASETS.register("digits")
def _digits(split: str, root: Any, input_size: int | None, download: bool) -> ImageDataset:
    return load_digits_dataset(split, input_size)


@DATASETS.register("cifar10")
def _cifar10(split: str, root: Any, input_size: int | None, download: bool) -> ImageDataset:
    return load_cifar("cifar10", split, root, input_size, download)


@DATASETS.register("cifar100")
def _cifar100(split: str, root: Any, input_size: int | None, download: bool) -> ImageDataset:
    return load_cifar("cifar100", split, root, input_size, download)


@DATASETS.register("imagefolder")
def _imagefolder(split: str, root: Any, input_size: int | None, download: bool) -> ImageDataset:
    classes = None
    if split == "test" and root is not None and (Path(root) / "train").is_dir():
        split_folder(Path(root), "test")  # say first that the test folder itself is missing
        classes = find_classes(Path(root) / "train")[0]  # test labels follow the training class order
    return load_imagefolder(split, root, input_size, classes=classes)


@DATASETS.register("synthetic")
def _synthetic(split: str, root: Any, input_size: int | None, download: bool, num_samples: int | None = None,
               num_classes: int = 10, seed: int = 0) -> ImageDataset:
    return load_synthetic(split, input_size, num_samples=num_samples, num_classes=num_classes, seed=seed)


def get_dataset(name: str = DEFAULT_DATASET, split: str = "train", root: str | os.PathLike | None = None,
                input_size: int | None = None, download: bool = False, **options: Any) -> ImageDataset:
    """Load dataset ``name`` into memory.

    Args:
        name: one of :func:`list_datasets`.
        split: ``train`` or ``test``.
        root: folder holding the dataset files (cifar*, imagefolder); ignored by digits/synthetic.
        input_size: side of the square images (default: the dataset's own, 224 for imagefolder).
        download: fetch a missing CIFAR archive from its official address.
        **options: dataset-specific options (synthetic: ``num_samples``, ``num_classes``, ``seed``).

    Raises:
        ConfigError: unknown name, split or option.
        InputError: missing or corrupt files (the message says how to get them).
    """
    fn = DATASETS.get(name)
    if split not in ("train", "test"):
        raise ConfigError(f"unknown split '{split}'. Valid choices: train, test")
    if input_size is not None and int(input_size) < 8:
        raise ConfigError(f"input size must be ≥ 8, got {input_size}")
    allowed = [p for p in inspect.signature(fn).parameters if p not in ("split", "root", "input_size", "download")]
    bad = [k for k in options if k not in allowed]
    if bad:
        raise ConfigError(f"dataset '{name}' has no option '{bad[0]}'" + (f". Valid options: {', '.join(allowed)}"
                                                                         if allowed else " (it takes none)"))
    return fn(split, root, input_size, download, **options)


def list_datasets() -> list[str]:
    """Registered dataset names."""
    return DATASETS.names()


__all__ = ["DATASETS", "DEFAULT_DATASET", "DatasetInfo", "ImageDataset", "get_dataset", "list_datasets"]
