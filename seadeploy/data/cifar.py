"""CIFAR-10 / CIFAR-100 from the official python-pickle folders, with an optional download.

Layout (as extracted from the official archives)::

    ROOT/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}
    ROOT/cifar-100-python/{train, test, meta}

The batches are Python pickles. They are read with a restricted unpickler that only admits the
handful of numpy globals an array needs, so a tampered file cannot run code.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seadeploy.data.base import CIFAR10_STATS, CIFAR100_STATS, DatasetInfo, ImageDataset, resize_uint8
from seadeploy.errors import InputError
from seadeploy.fileio import atomic_path

_SOURCES = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "md5": "c58f30108f718f92721af3b95e74349a",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "meta": ("batches.meta", "label_names"),
        "labels": "labels",
        "classes": 10,
        "stats": CIFAR10_STATS,
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "md5": "eb9058c3a382ffc7106e4002c42a8d85",
        "train": ["train"],
        "test": ["test"],
        "meta": ("meta", "fine_label_names"),
        "labels": "fine_labels",
        "classes": 100,
        "stats": CIFAR100_STATS,
    },
}

# Globals a pickled numpy array may reference (numpy 1 and numpy 2 module names).
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a CIFAR batch")


def default_root() -> Path:
    """``$SEADEPLOY_DATA`` or ``./data``: where dataset folders are looked up and downloaded to."""
    return Path(os.environ.get("SEADEPLOY_DATA", "data"))


def load_cifar(name: str, split: str = "train", root: str | os.PathLike | None = None,
               input_size: int | None = None, download: bool = False) -> ImageDataset:
    """Load ``cifar10`` or ``cifar100`` from ``root`` (the folder holding ``cifar-10-batches-py``).

    Args:
        name: ``cifar10`` or ``cifar100``.
        split: ``train`` or ``test``.
        root: parent folder of the extracted archive, or the extracted folder itself.
        input_size: resize the 32×32 images to this side (default 32).
        download: fetch and extract the official archive into ``root`` when the folder is missing.

    Raises:
        InputError: the folder is missing (with instructions), a batch is corrupt, or the download failed.
    """
    src = _SOURCES[name]
    folder = _find_folder(name, Path(root) if root is not None else default_root(), download)
    images, labels = [], []
    for fname in src[split]:
        batch = _read_pickle(folder / fname)
        data, lab = _field(batch, "data", folder / fname), _field(batch, src["labels"], folder / fname)
        arr = np.asarray(data, dtype=np.uint8)
        if arr.ndim != 2 or arr.shape[1] != 3072 or len(lab) != arr.shape[0]:
            raise InputError(f"'{folder / fname}' is corrupt: expected data (N, 3072) and N labels, got "
                             f"{arr.shape} and {len(lab)} labels; re-download with --download")
        images.append(torch.from_numpy(arr.reshape(-1, 3, 32, 32).copy()))
        labels.append(torch.as_tensor(np.asarray(lab, dtype=np.int64)))
    x, y = torch.cat(images), torch.cat(labels)
    size = int(input_size or 32)
    info = DatasetInfo(name, src["classes"], size, *src["stats"], classes=_class_names(folder, src))
    return ImageDataset(resize_uint8(x, size), y, info, split)


def _find_folder(name: str, root: Path, download: bool) -> Path:
    folder_name, url = _SOURCES[name]["folder"], _SOURCES[name]["url"]
    for cand in (root / folder_name, root):
        if cand.name == folder_name and cand.is_dir():
            return cand
    if download:
        download_cifar(name, root)
        return root / folder_name
    raise InputError(f"{name} not found: expected the folder '{root / folder_name}'. Point --data-root at the folder "
                     f"that contains '{folder_name}' (set SEADEPLOY_DATA to change the default), or add --download to "
                     f"fetch {url}")


def download_cifar(name: str, root: str | os.PathLike) -> Path:
    """Download the official archive of ``name`` into ``root``, check its MD5 and extract it."""
    src, root = _SOURCES[name], Path(root)
    archive = root / Path(src["url"]).name
    if not archive.is_file():
        try:
            with atomic_path(archive) as tmp, urllib.request.urlopen(src["url"], timeout=60) as resp:
                tmp.write_bytes(resp.read())  # 170 MB at most; atomic_path renames it only when complete
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise InputError(f"could not download {src['url']} ({exc}). Without a network, download it elsewhere and "
                             f"extract it into '{root}' so that '{root / src['folder']}' exists") from exc
    digest = hashlib.md5(archive.read_bytes()).hexdigest()
    if digest != src["md5"]:
        archive.unlink()
        raise InputError(f"downloaded '{archive}' has MD5 {digest}, expected {src['md5']}; it was deleted, try again")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(root, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise InputError(f"could not extract '{archive}' ({exc}); delete it and try again") from exc
    return root / src["folder"]


def _read_pickle(path: Path) -> dict:
    if not path.is_file():
        raise InputError(f"'{path}' is missing: the CIFAR folder is incomplete; re-extract the archive or use "
                         f"--download")
    try:
        obj = _SafeUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            ImportError, MemoryError, UnicodeDecodeError) as exc:
        raise InputError(f"'{path}' is not a valid CIFAR pickle batch ({type(exc).__name__}: {exc}); "
                         f"re-extract the archive or use --download") from exc
    if not isinstance(obj, dict):
        raise InputError(f"'{path}' is not a valid CIFAR pickle batch (holds a {type(obj).__name__}, not a dict)")
    return obj


def _field(batch: dict, key: str, path: Path) -> Any:
    for k in (key, key.encode()):
        if k in batch:
            return batch[k]
    raise InputError(f"'{path}' is not a valid CIFAR pickle batch: no '{key}' entry (keys: {sorted(map(str, batch))})")


def _class_names(folder: Path, src: dict) -> tuple[str, ...]:
    meta_file, key = src["meta"]
    if not (folder / meta_file).is_file():
        return tuple(str(i) for i in range(src["classes"]))
    names = _field(_read_pickle(folder / meta_file), key, folder / meta_file)
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
