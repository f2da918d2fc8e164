"""Export-friendly pooling and broadcast primitives shared by the attention blocks.

Why hand-written instead of ``nn.AvgPool2d(ceil_mode=True)`` / ``nn.AdaptiveAvgPool2d`` /
``repeat_interleave`` (docs/deployment.md, "Tiled SE export traps"): a ceil-mode partial window leaves each
backend to decide how to divide it; non-divisible adaptive pooling exports to GatherND; ``repeat_interleave``
exports to a slow Expand; and reshape + ReduceMean over a 6-D view breaks ONNX Runtime's blocked (NCHWc)
layout, measured 1.15–1.3× SE on full CIFAR ResNets. Every function computes the same numbers as the
PyTorch reference op (up to float summation order) with AveragePool / Pad / Mul / MatMul / ReduceMean /
Resize(nearest, integer scales) / Slice, and keeps the graph 4-D.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def global_mean(x: Tensor) -> Tensor:
    """``(N, C, H, W) → (N, C, 1, 1)`` mean over H and W (exports as one ReduceMean)."""
    return x.mean(dim=(2, 3), keepdim=True)


def tile_grid(size: tuple[int, int], tile: tuple[int, int]) -> tuple[int, int]:
    """Number of (ceil-mode) tiles along H and W: ``(⌈H/kh⌉, ⌈W/kw⌉)``."""
    return math.ceil(size[0] / tile[0]), math.ceil(size[1] / tile[1])


def tile_mean(x: Tensor, tile: tuple[int, int]) -> Tensor:
    """Non-overlapping ``(kh, kw)`` tile averages in ceil mode; edge tiles average only their valid pixels.

    Equals ``AvgPool2d(tile, tile, ceil_mode=True, count_include_pad=False)(x)`` (a tile larger than the map
    is clipped to it, as PyTorch does). Lowering chosen by measurement (ONNX Runtime CPU, full resnet56_cifar
    and vgg16_cifar graphs): a plain ``AveragePool(k, k)`` keeps ORT's blocked NCHWc layout from the conv
    before it through to the gate multiply (≈ SE's latency), where reshape + ReduceMean over a 6-D view cost
    1.15–1.3× SE. Edge tiles: explicit zero ``Pad`` to whole tiles, ``AveragePool`` (floor mode, no implicit
    padding, so no backend has to guess how to divide a partial window) and a constant ``Mul`` by
    ``k²/valid`` per tile — the same averages up to one float rounding.
    """
    h, w = int(x.shape[-2]), int(x.shape[-1])
    kh, kw = min(tile[0], h), min(tile[1], w)
    if kh == h and kw == w:
        return global_mean(x)
    gh, gw = tile_grid((h, w), (kh, kw))
    if gh * kh == h and gw * kw == w:
        return F.avg_pool2d(x, (kh, kw), (kh, kw))
    xp = F.pad(x, (0, gw * kw - w, 0, gh * kh - h))
    # One constant (gh, gw) tensor, built from Python numbers so the exporter folds it into an initializer.
    scale = [[kh * kw / (min(kh, h - i * kh) * min(kw, w - j * kw)) for j in range(gw)] for i in range(gh)]
    return F.avg_pool2d(xp, (kh, kw), (kh, kw)) * torch.tensor(scale, dtype=x.dtype, device=x.device)


def tile_broadcast(a: Tensor, tile: tuple[int, int], size: tuple[int, int]) -> Tensor:
    """Nearest "repeat + crop": ``out[n, c, i, j] = a[n, c, ⌊i/kh⌋, ⌊j/kw⌋]`` for ``(i, j) < size``.

    Exports as ``Resize(nearest, asymmetric, floor)`` with integer scales, plus a ``Slice`` when the tile
    does not divide the map. Note: ``F.interpolate(a, size=size)`` is NOT the same in general (it scales by
    ``grid/size``; e.g. H=4, k=3 maps row 2 to tile 1), hence the integer scale and the crop.
    """
    h, w = size
    kh, kw = min(tile[0], h), min(tile[1], w)
    gh, gw = int(a.shape[-2]), int(a.shape[-1])
    if (gh, gw) == (1, 1):
        return a  # a plain broadcasting Mul does the rest
    if nearest_is_exact(kh, gh) and nearest_is_exact(kw, gw):
        # scale_factor (not size) so the exporter writes Resize(scales) with no Shape/Concat for the batch dim.
        up = F.interpolate(a, scale_factor=(float(kh), float(kw)), mode="nearest")
    else:  # rare tiles (41, 47, 55, ...): PyTorch's float32 nearest index is off by one; repeat exactly instead
        up = a.repeat_interleave(kh, dim=2).repeat_interleave(kw, dim=3)
    if gh * kh != h or gw * kw != w:
        up = up[:, :, :h, :w]
    return up


def nearest_is_exact(k: int, g: int) -> bool:
    """Whether PyTorch's ``mode="nearest"`` upsampling of ``g`` cells to ``g·k`` repeats each exactly ``k`` times.

    PyTorch computes the source index as ``floor(i · float32(g / (g·k)))`` (``size=``) or ``floor(i · float32(1/k))``
    (``scale_factor=``; the same float32 number); for some k (41, 47, 55, 61, 82, ...)
    the rounded scale is just below ``1/k`` and row ``m·k`` maps to cell ``m − 1``. This emulates that
    float32 arithmetic in numpy (checked against PyTorch for k < 130, g < 100), so no tensor is touched.
    """
    n = g * k
    if k == 1 or k == 2:
        return True  # PyTorch special-cases equal and doubled sizes
    idx = np.floor(np.arange(n, dtype=np.float32) * (np.float32(g) / np.float32(n)))
    return bool(np.array_equal(np.minimum(idx.astype(np.int64), g - 1), np.arange(n) // k))


def _adaptive_matrix(n_in: int, n_out: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """(n_out, n_in) averaging matrix of PyTorch's adaptive windows ``[⌊i·n/o⌋, ⌈(i+1)·n/o⌉)``."""
    rows = []
    for i in range(n_out):
        lo, hi = (i * n_in) // n_out, -(-((i + 1) * n_in) // n_out)
        rows.append([1.0 / (hi - lo) if lo <= j < hi else 0.0 for j in range(n_in)])
    return torch.tensor(rows, dtype=dtype, device=device)


def adaptive_mean(x: Tensor, out: tuple[int, int]) -> Tensor:
    """``AdaptiveAvgPool2d(out)`` without GatherND.

    Divisible maps: reshape + ReduceMean. Otherwise the (possibly overlapping) adaptive windows are applied
    as two constant averaging matrices, ``A_h @ x @ A_wᵀ`` (two MatMuls) — the mean over a rectangle is the
    mean of its row means, so this is the same function, equal up to float rounding.
    """
    h, w = int(x.shape[-2]), int(x.shape[-1])
    oh, ow = out
    if (oh, ow) == (1, 1):
        return global_mean(x)
    if h % oh == 0 and w % ow == 0:
        return x.reshape(-1, int(x.shape[1]), oh, h // oh, ow, w // ow).mean(dim=(3, 5))
    a_h = _adaptive_matrix(h, oh, x.dtype, x.device)
    a_w = _adaptive_matrix(w, ow, x.dtype, x.device)
    return torch.matmul(torch.matmul(a_h, x), a_w.t())


def window_mean_floor(x: Tensor, window: tuple[int, int]) -> Tensor:
    """``AvgPool2d(window, window)`` (floor mode, no padding): crop to whole windows, reshape + ReduceMean."""
    h, w = int(x.shape[-2]), int(x.shape[-1])
    kh, kw = window
    gh, gw = h // kh, w // kw
    if (gh * kh, gw * kw) != (h, w):
        x = x[:, :, : gh * kh, : gw * kw]
    if (gh, gw) == (1, 1):
        return global_mean(x)
    return x.reshape(-1, int(x.shape[1]), gh, kh, gw, kw).mean(dim=(3, 5))
