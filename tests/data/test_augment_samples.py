"""Batch augmentation (kornia), CutMix + mixed loss, and the seeded sample batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seadeploy.data import get_dataset
from seadeploy.data.augment import BatchTransform, CutMix, mixed_cross_entropy
from seadeploy.data.samples import load_samples
from seadeploy.errors import ConfigError


@pytest.fixture(scope="module")
def batch():
    ds = get_dataset("digits", split="test")
    return ds.images[:32], ds.labels[:32]


def test_eval_mode_is_exact_normalisation(batch):
    x, _ = batch
    tf = BatchTransform(32, mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 0.2), crop_padding=4, hflip=True, rotation=15).eval()
    mean, std = torch.tensor([0.1, 0.2, 0.3])[:, None, None], torch.tensor([0.5, 0.25, 0.2])[:, None, None]
    want = (x.float() / 255 - mean) / std
    torch.testing.assert_close(tf(x), want)
    assert BatchTransform(48, (0.5,) * 3, (0.5,) * 3).eval()(x).shape == (32, 3, 48, 48)


@pytest.mark.parametrize("opts", [{"crop_padding": 4}, {"hflip": True}, {"rotation": 15.0},
                                  {"random_resized_crop": True}, {"trivial_augment": True}, {"random_erasing": 1.0}])
def test_each_train_augmentation_changes_the_batch_reproducibly(batch, opts):
    x, _ = batch
    tf = BatchTransform(32, (0.5,) * 3, (0.5,) * 3, **opts).train()
    torch.manual_seed(3)
    a = tf(x)
    torch.manual_seed(3)
    b = tf(x)
    assert a.shape == (32, 3, 32, 32) and torch.isfinite(a).all()
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, tf.eval()(x)), f"{opts} left every image unchanged"


def test_crop_padding_pads_with_zeros(batch):
    x = torch.full((64, 3, 32, 32), 255, dtype=torch.uint8)
    tf = BatchTransform(32, (0.0,) * 3, (1.0,) * 3, crop_padding=4).train()
    torch.manual_seed(0)
    out = tf(x)
    assert out.min() == 0.0 and out.max() == 1.0  # shifted crops expose the zero padding
    assert (out == 0).flatten(1).any(1).float().mean() > 0.5


def test_cutmix_lambda_is_the_share_of_the_original_image():
    torch.manual_seed(0)
    x = torch.arange(8, dtype=torch.float32)[:, None, None, None].expand(8, 3, 32, 32).clone()
    y = torch.arange(8)
    xm, ya, yb, lam = CutMix(p=1.0)(x, y)
    assert torch.equal(ya, y) and ((lam >= 0) & (lam <= 1)).all()
    kept = (xm == x).float().mean(dim=(1, 2, 3))  # every image has its own constant value
    torch.testing.assert_close(kept[ya != yb], lam[ya != yb], atol=1e-6, rtol=0)
    assert torch.equal(xm[yb == ya], x[yb == ya])
    skipped = CutMix(p=0.0)(x, y)
    assert skipped[0] is x and torch.equal(skipped[3], torch.ones(8))


def test_mixed_cross_entropy_reduces_to_label_smoothed_ce():
    torch.manual_seed(0)
    logits, ya, yb = torch.randn(6, 10), torch.randint(0, 10, (6,)), torch.randint(0, 10, (6,))
    ones = torch.ones(6)
    torch.testing.assert_close(mixed_cross_entropy(logits, ya, yb, ones, 0.1),
                               F.cross_entropy(logits, ya, label_smoothing=0.1))
    half = mixed_cross_entropy(logits, ya, yb, ones / 2)
    torch.testing.assert_close(half, (F.cross_entropy(logits, ya) + F.cross_entropy(logits, yb)) / 2)


def test_load_samples_is_fixed_normalised_and_seeded():
    x, y = load_samples("digits", 16, mean=(0.5,) * 3, std=(0.5,) * 3)
    x2, y2 = load_samples("digits", 16, mean=(0.5,) * 3, std=(0.5,) * 3)
    assert x.shape == (16, 3, 32, 32) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert x.min() == -1.0 and x.max() == 1.0
    test = get_dataset("digits", split="test")
    first = int(torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[0])
    np.testing.assert_allclose(x[0], test.images[first].numpy() / 127.5 - 1.0, atol=1e-6)
    assert y[0] == int(test.labels[first])
    x3, _ = load_samples("digits", 16, seed=1)
    assert not np.array_equal(x3, x)
    big, yb = load_samples("digits", 500, input_size=40)  # more than the 360 test images: with replacement
    assert big.shape == (500, 3, 40, 40) and len(yb) == 500


def test_load_samples_synthetic_and_errors():
    x, y = load_samples("synthetic", 4, input_size=64, seed=2)
    assert y is None and x.shape == (4, 3, 64, 64) and x.dtype == np.float32
    np.testing.assert_array_equal(x, load_samples("synthetic", 4, input_size=64, seed=2)[0])
    assert abs(float(x.std()) - 1.0) < 0.05
    with pytest.raises(ConfigError, match="≥ 1"):
        load_samples("digits", 0)
    with pytest.raises(ConfigError, match="unknown dataset"):
        load_samples("mnist", 2)
