"""Tiled Squeeze-and-Excite (Vosco, Shenkler, Grobman — arXiv:2107.02145, ICCV 2021 Workshops).

SE with local context (docs/models.md §2.2): average every non-overlapping ``(kh, kw)`` tile (ceil mode, edge
tiles average only their valid pixels), run the SE MLP on every tile descriptor as 1×1 convolutions,
broadcast each gate back over its tile (nearest repeat + crop) and multiply. When the tile covers the
map this is exactly SE (the global-mean path is used, so the graph is SE's).

Forms: ``bn=False`` the paper's pseudo-code (default); ``bn=True`` / ``"hidden"`` the yuranusduke repo
(BatchNorm2d after the first conv); ``bn="both"`` adds BatchNorm2d(C) before the sigmoid so the repo's
BN-heavy SE converts to TSE exactly (models/rewrite.py).

Lowering (docs/deployment.md, "Tiled SE export traps"; chosen by measuring full models in ONNX Runtime CPU):
``AveragePool(k, k)`` tile pooling (edge tiles: explicit zero Pad, floor-mode AveragePool, constant Mul by
``k²/valid``), the MLP as 1×1 convs, Resize(nearest) with integer scales (+ Slice when the tile does not divide
the map) for the broadcast, a 4-D Mul; no ceil_mode, no repeat_interleave, no 6-D broadcast. Tiles that divide
the map keep ORT's blocked layout end to end and run at SE's latency; edge tiles add a Slice (≈ +10 % on
resnet56_cifar with tile 7 at 32 px).
"""

from __future__ import annotations

from torch import Tensor, nn

from seadeploy.models.attention.base import AttentionWork, register_attention
from seadeploy.models.attention.pooling import global_mean, tile_broadcast, tile_grid, tile_mean
from seadeploy.models.attention.se import bn_form, check_bool, hidden_channels, make_act
from seadeploy.tiles import parse_tile


@register_attention("tse")
class TiledSqueezeExcite(nn.Module):
    """``y = x ⊙ up(σ(MLP₁ₓ₁(tile_mean(x))))``.

    Args:
        channels: C of the attended map.
        tile: ``k`` or ``(kh, kw)``; a list gives one value per stage (resolved by ``create_attention``).
        reduction, ratio, hidden, bias, act, min_hidden: the MLP width and options, as in ``se``.
        bn: ``False`` (paper), ``True``/``"hidden"`` (repo: BN2d after the first conv), ``"both"``.
    """

    def __init__(
        self,
        channels: int,
        tile: int | tuple[int, int] = 7,
        reduction: float | None = 16,
        ratio: float | None = None,
        hidden: int | None = None,
        bias: bool = True,
        bn: bool | str = False,
        act: str = "relu",
        min_hidden: int = 1,
    ) -> None:
        super().__init__()
        self.tile = parse_tile(tile)
        self.bn_form = bn_form(bn, true_means="hidden")
        check_bool("bias", bias)
        h = hidden_channels(channels, reduction, ratio, hidden, min_hidden)
        self.fc1 = nn.Conv2d(channels, h, 1, bias=bias)
        self.bn1 = nn.BatchNorm2d(h) if self.bn_form else nn.Identity()
        self.act = make_act(act)
        self.fc2 = nn.Conv2d(h, channels, 1, bias=bias)
        self.bn2 = nn.BatchNorm2d(channels) if self.bn_form == "both" else nn.Identity()
        self.gate = nn.Sigmoid()

    def excite(self, z: Tensor) -> Tensor:
        """``(N, C, gh, gw)`` tile descriptors → gates of the same shape."""
        return self.gate(self.bn2(self.fc2(self.act(self.bn1(self.fc1(z))))))

    def forward(self, x: Tensor) -> Tensor:
        h, w = int(x.shape[-2]), int(x.shape[-1])
        if self.tile[0] >= h and self.tile[1] >= w:
            return x * self.excite(global_mean(x))  # one tile: exactly SE
        a = self.excite(tile_mean(x, self.tile))
        return x * tile_broadcast(a, self.tile, (h, w))

    def work(self, c: int, h: int, w: int) -> AttentionWork:
        """One pass to pool the tiles, one gate per tile and channel; the upsampled gate map is materialised."""
        gh, gw = tile_grid((h, w), (min(self.tile[0], h), min(self.tile[1], w)))
        gate_read = c if gh * gw == 1 else c * h * w
        return AttentionWork(c * h * w, c * gh * gw, c * h * w, 2 * c * h * w, gate_read, c * h * w)

    def extra_repr(self) -> str:
        return f"tile={self.tile}, bn={self.bn_form}"
