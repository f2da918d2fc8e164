"""Resolution-Guided SE (Jin, Xie, Wei et al., Pattern Recognition 121 (2022) 108159,
doi:10.1016/j.patcog.2021.108159 — no arXiv id could be found, so the DOI is cited; official code
megvii-research/RG-SENet_SP-SENet), docs/models.md §2.6.

A fixed 7×7 average window with stride 7 (floor mode) gives a stage-dependent grid of descriptors
(224-px ResNet: 56→8×8, 28→4×4, 14→2×2, 7→1×1); a depthwise conv without bias whose kernel = stride =
the grid collapses it to 1×1, then BN (both skipped when the grid is 1×1); ``u = ReLU(...)`` at every
stage; biased MLP C → C/16 → C; sigmoid gate.

Any input size: the backbone passes ``feat_size`` (the attended map's H, W), from which the grid is
``(H // 7, W // 7)``; a map smaller than the window uses a window of the map's size (grid 1×1). At 224 px
this reproduces the official layout exactly. Pooling is crop + reshape + ReduceMean (pooling.py).
"""

from __future__ import annotations

from torch import Tensor, nn

from seadeploy.errors import ConfigError, InputError
from seadeploy.models.attention.base import AttentionWork, register_attention
from seadeploy.models.attention.pooling import window_mean_floor
from seadeploy.models.attention.se import check_bool, hidden_channels, make_act


@register_attention("rgse")
class ResolutionGuidedSE(nn.Module):
    """RGSE block.

    Args:
        channels: C of the attended map.
        feat_size: (H, W) of the attended map (passed by every backbone).
        window: pooling window and stride (7 in the official code).
        grid: explicit descriptor grid instead of ``feat_size // window``.
        reduction, ratio, hidden, bias, act: the MLP (default biased, C // 16).
    """

    def __init__(
        self,
        channels: int,
        feat_size: tuple[int, int] | None = None,
        window: int = 7,
        grid: int | tuple[int, int] | None = None,
        reduction: float | None = 16,
        ratio: float | None = None,
        hidden: int | None = None,
        bias: bool = True,
        act: str = "relu",
    ) -> None:
        super().__init__()
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigError(f"window must be a positive int, got {window!r}")
        self.window = window
        check_bool("bias", bias)
        if grid is not None:
            g = (grid, grid) if isinstance(grid, int) else tuple(grid)
        elif feat_size is not None:
            g = tuple(max(1, int(s) // window) for s in feat_size)
        else:
            raise ConfigError(
                "rgse needs the attended map's size: build it through a backbone, or pass feat_size=(H, W) or grid=G"
            )
        if len(g) != 2 or min(g) < 1:
            raise ConfigError(f"grid must be ≥ 1, got {g}")
        self.grid = g
        identity = g == (1, 1)
        self.fuse = (
            nn.Identity() if identity else nn.Conv2d(channels, channels, g, stride=g, groups=channels, bias=False)
        )
        self.bn = nn.Identity() if identity else nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        h = hidden_channels(channels, reduction, ratio, hidden)
        self.fc1 = nn.Linear(channels, h, bias=bias)
        self.act = make_act(act)
        self.fc2 = nn.Linear(h, channels, bias=bias)
        self.gate = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        h, w = int(x.shape[-2]), int(x.shape[-1])
        win = (min(self.window, h), min(self.window, w))
        if (h // win[0], w // win[1]) != self.grid:
            raise InputError(
                f"rgse was built for a {self.grid} descriptor grid but got a {h}×{w} map "
                f"({h // win[0]}×{w // win[1]} windows of {self.window}); build the model for this input size"
            )
        z = self.relu(self.bn(self.fuse(window_mean_floor(x, win)))).flatten(1)
        s = self.gate(self.fc2(self.act(self.fc1(z))))
        return x * s[:, :, None, None]

    def extra_repr(self) -> str:
        return f"window={self.window}, grid={self.grid}"

    def work(self, c: int, h: int, w: int) -> AttentionWork:
        """The floor-mode windows read only the covered pixels; one gate per channel, one multiply."""
        wh, ww = min(self.window, h), min(self.window, w)
        used = c * (h // wh * wh) * (w // ww * ww)
        return AttentionWork(used, c, c * h * w, used + c * h * w, c, c * h * w)
