"""Fixed, seeded sample batches for parity checks, INT8 calibration and profiling.

The same ``(dataset, n, split, input_size, seed)`` always gives the same images in the same order,
so every stage (validate, export calibration, profiling) sees identical inputs.

Example:
    >>> x, y = load_samples("digits", 16, mean=ckpt.mean, std=ckpt.std)
    >>> x.shape, x.dtype, y[:4]
    ((16, 3, 32, 32), dtype('float32'), array([...]))
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from seadeploy.data import get_dataset
from seadeploy.data.augment import BatchTransform
from seadeploy.errors import ConfigError


def load_samples(dataset: str, n: int, *, split: str = "test", input_size: int = 32,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None, seed: int = 0,
                 root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """``n`` seeded samples of ``dataset``, normalised with ``mean``/``std``.

    Args:
        dataset: a dataset name (``digits``, ``cifar10``, ...). ``synthetic`` gives seeded standard-normal
            noise (already "normalised") and ``y = None``.
        n: number of samples; drawn without replacement (with replacement when ``n`` exceeds the split).
        split: ``test`` (default) or ``train``.
        input_size: side of the returned images.
        mean: normalisation mean (0–1 scale); default: the dataset's own statistics. Pass the checkpoint's.
        std: normalisation std; default: the dataset's own.
        seed: selection seed.
        root: dataset folder for file-based datasets.

    Returns:
        ``x`` float32 (n, 3, input_size, input_size) and ``y`` int64 (n,) — or ``None`` for synthetic.

    Raises:
        ConfigError: ``n`` < 1 or an unknown dataset. InputError: missing/corrupt dataset files.
    """
    if int(n) < 1:
        raise ConfigError(f"number of samples must be ≥ 1, got {n}")
    gen = torch.Generator().manual_seed(int(seed))
    if dataset == "synthetic":
        x = torch.randn((int(n), 3, int(input_size), int(input_size)), generator=gen)
        return x.numpy().astype(np.float32), None
    ds = get_dataset(dataset, split=split, root=root, input_size=input_size)
    if n <= len(ds):
        idx = torch.randperm(len(ds), generator=gen)[: int(n)]
    else:
        idx = torch.randint(0, len(ds), (int(n),), generator=gen)
    transform = BatchTransform(input_size, mean if mean is not None else ds.info.mean,
                               std if std is not None else ds.info.std).eval()
    with torch.no_grad():
        x = transform(ds.images[idx])
    return x.numpy().astype(np.float32, copy=False), ds.labels[idx].numpy().astype(np.int64)  # no second copy
