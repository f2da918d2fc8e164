"""Fixtures: CIFAR-10/100 folders in the real python-pickle layout, and an ImageNet-style image folder."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(autouse=True, scope="session")
def _single_thread(single_thread):
    """Every test here runs on one thread (see tests/conftest.py)."""


def write_batch(path, images, labels, label_key="labels", extra=None):
    """Write one batch as the official archives do: a protocol-2 pickle of a dict with bytes keys, data (N, 3072)."""
    n = len(labels)
    obj = {b"batch_label": b"fixture batch", label_key.encode(): [int(v) for v in labels],
           b"data": images.reshape(n, 3072), b"filenames": [f"img_{i}.png".encode() for i in range(n)], **(extra or {})}
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def make_cifar(root, name="cifar10", per_batch=40, seed=0):
    """Write a small CIFAR folder; returns {split: (images (N,3,32,32) uint8, labels)} as written."""
    rng = np.random.default_rng(seed)
    classes = 10 if name == "cifar10" else 100
    if name == "cifar10":
        folder, files, key = root / "cifar-10-batches-py", {"train": [f"data_batch_{i}" for i in range(1, 6)],
                                                            "test": ["test_batch"]}, "labels"
    else:
        folder, files, key = root / "cifar-100-python", {"train": ["train"], "test": ["test"]}, "fine_labels"
    folder.mkdir(parents=True)
    written = {}
    for split, names in files.items():
        xs, ys = [], []
        for fname in names:
            n = per_batch * (3 if name == "cifar100" and split == "train" else 1)
            x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
            y = rng.integers(0, classes, n)
            extra = {b"coarse_labels": [int(v) // 5 for v in y]} if name == "cifar100" else None
            write_batch(folder / fname, x, y, key, extra)
            xs.append(x)
            ys.append(y)
        written[split] = (np.concatenate(xs), np.concatenate(ys))
    meta_name, meta_key = ("batches.meta", b"label_names") if name == "cifar10" else ("meta", b"fine_label_names")
    with open(folder / meta_name, "wb") as f:
        pickle.dump({meta_key: [f"class{i}".encode() for i in range(classes)], b"num_vis": 3072}, f, protocol=2)
    return written


@pytest.fixture
def cifar_writer():
    """``make_cifar(root, name, per_batch, seed)`` itself, for tests that build their own folders."""
    return make_cifar


@pytest.fixture
def cifar_root(tmp_path):
    """A data root holding both cifar-10-batches-py (240 train / 40 test) and cifar-100-python (120 / 40)."""
    written = {"cifar10": make_cifar(tmp_path, "cifar10"), "cifar100": make_cifar(tmp_path, "cifar100", seed=1)}
    return tmp_path, written


@pytest.fixture
def image_root(tmp_path):
    """ROOT/{train,val}/{cat,dog,fish}/*.png written with PIL, of varied sizes and modes."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for split, per_class in (("train", 4), ("val", 2)):
        for c, cls in enumerate(("cat", "dog", "fish")):
            (root / split / cls).mkdir(parents=True)
            for i in range(per_class):
                h, w = int(rng.integers(40, 90)), int(rng.integers(40, 90))
                arr = np.full((h, w, 3), 60 * c + 20, dtype=np.uint8)
                mode = "L" if i == 1 else "RGB"
                img = Image.fromarray(arr).convert(mode)
                img.save(root / split / cls / f"{i}.png")
    return root
