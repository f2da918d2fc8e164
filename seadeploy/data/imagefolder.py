"""ImageNet-style class folders: ``ROOT/{train,val}/<class>/<image>``, decoded with PIL.

Every image is decoded once, resized so its shorter side is ``input_size / 0.875`` and centre-cropped
to ``input_size`` (the Resize(256) → CenterCrop(224) evaluation transform), then kept in memory as
uint8. Training augmentation (random resized crop, flip) runs later on batches.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from seadeploy.data.base import IMAGENET_STATS, DatasetInfo, ImageDataset
from seadeploy.errors import InputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
_SPLIT_DIRS = {"train": ("train",), "test": ("val", "test")}
CROP_RATIO = 0.875


def split_folder(root: Path, split: str) -> Path:
    """``ROOT/train`` for the train split, ``ROOT/val`` or ``ROOT/test`` for the test split."""
    for name in _SPLIT_DIRS[split]:
        if (root / name).is_dir():
            return root / name
    want = " or ".join(f"'{root / n}'" for n in _SPLIT_DIRS[split])
    raise InputError(f"imagefolder: {want} not found. Expected ROOT/train/<class>/*.jpg and ROOT/val/<class>/*.jpg; "
                     f"pass that ROOT with --data-root")


def find_classes(folder: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """Sorted class folder names and (image path, label) pairs under ``folder``."""
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    samples = [(p, label) for label, cls in enumerate(classes) for p in sorted((folder / cls).rglob("*"))
               if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    if not classes or not samples:
        raise InputError(f"imagefolder: no classes with images found in '{folder}'. Expected one sub-folder per class "
                         f"holding {', '.join(IMAGE_EXTENSIONS[:3])}... files")
    return classes, samples


def decode_image(path: Path, size: int) -> np.ndarray:
    """Decode ``path`` to RGB, resize the shorter side to ``size / 0.875`` and centre-crop ``size``×``size``."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            short = max(size, round(size / CROP_RATIO))
            scale = short / min(w, h)
            im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BILINEAR)
            left, top = (im.size[0] - size) // 2, (im.size[1] - size) // 2
            return np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8).transpose(2, 0, 1)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(f"imagefolder: cannot decode '{path}' ({exc}); remove or replace the file") from exc


def load_imagefolder(split: str = "train", root: str | os.PathLike | None = None, input_size: int | None = None,
                     classes: list[str] | None = None) -> ImageDataset:
    """Load class folders into memory.

    Args:
        split: ``train`` (``ROOT/train``) or ``test`` (``ROOT/val`` or ``ROOT/test``).
        root: the folder holding the split folders.
        input_size: side of the stored square images (default 224).
        classes: class names fixing the label order (default: the sorted folder names of the split).

    Raises:
        InputError: no root, a missing split folder, no class folders/images, or an undecodable image.
    """
    if root is None:
        raise InputError("imagefolder needs --data-root ROOT with ROOT/train/<class>/ and ROOT/val/<class>/ folders")
    size = int(input_size or 224)
    folder = split_folder(Path(root), split)
    found, samples = find_classes(folder)
    if classes is not None and found != list(classes):
        extra = sorted(set(found) - set(classes))
        if extra:
            raise InputError(f"imagefolder: '{folder}' has classes not in the training split: {extra[:5]}")
        index = {c: i for i, c in enumerate(classes)}
        samples = [(p, index[found[label]]) for p, label in samples]
        found = list(classes)
    # Decoding is I/O- and C-bound (PIL releases the GIL), so a thread pool speeds it up without processes.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        arrays = list(pool.map(lambda s: decode_image(s[0], size), samples))
    images = torch.from_numpy(np.stack(arrays))
    labels = torch.tensor([label for _, label in samples], dtype=torch.int64)
    info = DatasetInfo("imagefolder", len(found), size, *IMAGENET_STATS, classes=tuple(found))
    return ImageDataset(images, labels, info, split)
