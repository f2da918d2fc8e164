"""SE → TSE on any PyTorch model, found by behaviour rather than by module names.

**Finding the squeeze-excite modules.** A channel-attention module computes ``y = x ⊙ g(x)`` with a gate
``g`` of shape ``(N, C, 1, 1)`` that is a function of a global pooling of ``x``. Source code expresses that
in many ways (``nn.AdaptiveAvgPool2d(1)``, ``x.mean((2, 3))``, ``F.adaptive_avg_pool2d``, ``b, c, _, _ =
x.size(); ...view(b, c)`` with ``Linear`` layers, ``expand_as``...), several of which ``torch.fx`` cannot trace.
So the detector tests the defining property instead of the spelling: one forward pass records each
module's input shape; a module whose output has its input's 4-D shape is probed with two seeded positive
inputs, and it is an SE-like block when ``y / x`` is constant over H×W for every (sample, channel) and differs
between the two samples (input-dependent: this excludes Identity, eval-mode BatchNorm, LayerScale). The
innermost such modules are taken (a wrapper holding only the SE also passes the test).

**The rewrite.** Tiled SE applies the same squeeze-excite to every non-overlapping ``kh × kw`` tile (ceil
mode: edge tiles use only their valid pixels). Running the original module on the tiles folded into the
batch does exactly that for any implementation (its global pool of a tile is the tile mean, its excitation
is per tile, its multiply is per tile), with the original parameters: the module keeps its class, its
parameters and its state-dict keys — only its class is swapped for a subclass whose ``forward`` tiles, runs
the original ``forward`` on up to four regions (whole tiles, right and bottom edge tiles, corner) and
reassembles. It stays a trainable ``nn.Module``. When the tile covers the map the original ``forward`` runs
unchanged, so the result is exactly the SE network. ``tse_to_se`` restores the original classes.

Trade-off: the fold is a 6-D reshape; for deployment the ONNX route (:mod:`seadeploy.graphs.se_rewrite`) emits the zoo's
lowering (AveragePool → 1×1 convs → Resize), which keeps ONNX Runtime's blocked layout.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from seadeploy.errors import InputError
from seadeploy.tiles import stage_tiles


# ----------------------------------------------------------------------------------------------- detect
def _shapes(model: nn.Module, input_size: int) -> dict[str, tuple[tuple[int, ...], tuple[int, ...] | None]]:
    """``{module path: (input shape, output shape)}`` of each module's first call on a 1×3×S×S input."""
    seen: dict[str, tuple[tuple[int, ...], tuple[int, ...] | None]] = {}
    hooks = []

    def hook(name: str):
        def fn(m: nn.Module, args: tuple, out: Any) -> None:
            if name not in seen and args and isinstance(args[0], Tensor):
                seen[name] = (tuple(args[0].shape), tuple(out.shape) if isinstance(out, Tensor) else None)
        return fn

    for name, m in model.named_modules():
        if name:
            hooks.append(m.register_forward_hook(hook(name)))
    was = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, input_size, input_size))
    except Exception as exc:  # noqa: BLE001 - the user's forward may raise anything
        raise InputError(f"the model fails on a 1×3×{input_size}×{input_size} input ({type(exc).__name__}: "
                         f"{exc}); pass the right --input-size") from exc
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    return seen


def _global_pool_child(m: nn.Module) -> bool:
    return any(isinstance(c, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d) and c.output_size in (1, (1, 1))
               for c in m.modules())


def _is_channel_gate(m: nn.Module, shape: tuple[int, ...], seed: int = 0) -> bool:
    """The behavioural SE test on a module whose output keeps its 4-D input shape (see the module doc).

    Four probes (small/large, positive/mixed-sign, |x| ≥ 0.5 so ``y / x`` is defined): the gate must be constant
    over H×W in all, and differ between probes — or, when every probe saturates the gate to one value (dead
    ReLUs of a small random MLP), the module must contain a global pooling layer.
    """
    g = torch.Generator().manual_seed(seed)
    _, c, h, w = shape
    if h * w < 2:
        return False
    mag = torch.rand((4, c, h, w), generator=g) + 0.5
    sign = torch.where(torch.rand((4, c, h, w), generator=g) < 0.5, -1.0, 1.0)
    x = mag * torch.tensor([1.0, 8.0, 1.0, 8.0]).view(4, 1, 1, 1)
    x[2:] = x[2:] * sign[2:]
    try:
        with torch.no_grad():
            y = m(x)
    except Exception:  # noqa: BLE001 - a module that cannot run alone is not a candidate
        return False
    if not isinstance(y, Tensor) or y.shape != x.shape or not torch.isfinite(y).all():
        return False
    r = (y / x).flatten(2)
    scale = r.abs().amax().clamp_min(1e-12)
    if (r.amax(-1) - r.amin(-1)).abs().max() > 1e-4 * scale:
        return False
    gate = r[:, :, 0]
    varies = bool((gate - gate[:1]).abs().max() > 1e-5 * scale)
    return varies or _global_pool_child(m)


def find_se_modules(model: nn.Module, input_size: int) -> list[tuple[str, tuple[int, ...]]]:
    """``[(module path, input shape)]`` of the innermost SE-like modules, in forward order."""
    seen = _shapes(model, input_size)
    hits: list[tuple[str, tuple[int, ...]]] = []
    was = model.training
    model.eval()
    try:
        for name, (shape_in, shape_out) in seen.items():
            if len(shape_in) != 4 or shape_out != shape_in:
                continue
            if any(name.startswith(p + ".") for p, _ in hits):
                continue
            if _is_channel_gate(model.get_submodule(name), shape_in):
                # innermost wins: drop an already-taken ancestor (forward hooks fire child-first, but be sure)
                hits = [(p, s) for p, s in hits if not name.startswith(p + ".")]
                hits.append((name, shape_in))
    finally:
        model.train(was)
    return [(p, s) for p, s in hits if not any(q != p and q.startswith(p + ".") for q, _ in hits)]


# ---------------------------------------------------------------------------------------------- rewrite
def _tile_split(x: Tensor, th: int, tw: int) -> Tensor:
    n, c, h, w = x.shape
    return x.reshape(n, c, h // th, th, w // tw, tw).permute(0, 2, 4, 1, 3, 5).reshape(-1, c, th, tw)


def _tile_merge(t: Tensor, n: int, h: int, w: int) -> Tensor:
    c, th, tw = t.shape[1], t.shape[2], t.shape[3]
    return t.reshape(n, h // th, w // tw, c, th, tw).permute(0, 3, 1, 4, 2, 5).reshape(n, c, h, w)


def tiled_call(fn: Any, x: Tensor, tile: tuple[int, int]) -> Tensor:
    """``fn`` applied to every ``tile`` of ``x`` (ceil mode; edge tiles get their valid pixels only)."""
    n, _, h, w = x.shape
    kh, kw = min(tile[0], h), min(tile[1], w)
    if kh == h and kw == w:
        return fn(x)
    gh, gw = h // kh, w // kw
    rows = [(0, gh * kh, kh)] + ([(gh * kh, h, h - gh * kh)] if h % kh else [])
    cols = [(0, gw * kw, kw)] + ([(gw * kw, w, w - gw * kw)] if w % kw else [])
    out_rows = []
    for r0, r1, th in rows:
        parts = []
        for c0, c1, tw in cols:
            region = x[:, :, r0:r1, c0:c1]
            parts.append(_tile_merge(fn(_tile_split(region, th, tw)), n, r1 - r0, c1 - c0))
        out_rows.append(parts[0] if len(parts) == 1 else torch.cat(parts, dim=3))
    return out_rows[0] if len(out_rows) == 1 else torch.cat(out_rows, dim=2)


class _TiledMixin:
    """Mixed in front of the original SE class: run the original ``forward`` per tile."""

    tse_tile: tuple[int, int]
    tse_base: type

    def forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        base = super().forward  # type: ignore[misc]
        return tiled_call(lambda t: base(t, *args, **kwargs), x, self.tse_tile)

    def extra_repr(self) -> str:
        inner = super().extra_repr()  # type: ignore[misc]
        return f"tse_tile={self.tse_tile}" + (f", {inner}" if inner else "")


_CLASSES: dict[type, type] = {}


def _tiled_class(base: type) -> type:
    if base not in _CLASSES:
        _CLASSES[base] = type(f"Tiled{base.__name__}", (_TiledMixin, base), {"__module__": __name__})
    return _CLASSES[base]


def se_to_tse_structural(model: nn.Module, tile: Any = 7, input_size: int = 224,
                         blocks: Sequence[str] | None = None) -> nn.Module:
    """A copy of ``model`` whose SE-like modules run tiled (same parameters and state-dict keys).

    Args:
        tile: ``k``, ``(kh, kw)`` or a per-stage list (one per distinct attention map size, in forward order).
        input_size: the square input size the blocks' map sizes are measured at.
        blocks: module paths to convert (default: every module :func:`find_se_modules` finds).

    Raises:
        InputError: no SE-like module was found.
    """
    found = find_se_modules(model, input_size)
    if blocks is not None:
        by = dict(found)
        missing = [b for b in blocks if b not in by]
        if missing:
            raise InputError(f"no squeeze-excite module at '{missing[0]}' in this model")
        found = [(b, by[b]) for b in blocks]
    if not found:
        raise InputError("no squeeze-excite (channel attention) module found in the model: nothing to convert")
    new = copy.deepcopy(model)
    for (path, _shape), t in zip(found, stage_tiles(tile, [s for _, s in found]), strict=True):
        m = new.get_submodule(path)
        base = getattr(m, "tse_base", type(m))
        m.__class__ = _tiled_class(base)
        m.tse_tile, m.tse_base = t, base
    new.tse_blocks = [p for p, _ in found]
    return new


def tse_to_se_structural(model: nn.Module) -> nn.Module:
    """The inverse of :func:`se_to_tse_structural`: every tiled module gets its original class back."""
    new = copy.deepcopy(model)
    n = 0
    for _, m in new.named_modules():
        base = getattr(m, "tse_base", None)
        if base is not None:
            m.__class__ = base
            del m.tse_tile, m.tse_base
            n += 1
    if not n:
        raise InputError("the model has no tiled squeeze-excite module converted by seadeploy: nothing to go back from")
    new.tse_blocks = []
    return new


def tiled_blocks(model: nn.Module) -> dict[str, tuple[int, int]]:
    """``{path: tile}`` of the converted modules."""
    return {p: m.tse_tile for p, m in model.named_modules() if hasattr(m, "tse_tile")}
