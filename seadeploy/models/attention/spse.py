"""Spatial-Pyramid SE (Jin, Xie, Wei et al., "Delving deep into spatial pooling for squeeze-and-excitation
networks", Pattern Recognition 121 (2022) 108159, doi:10.1016/j.patcog.2021.108159 — no arXiv id could be
found, so the DOI is cited; official code megvii-research/RG-SENet_SP-SENet), docs/models.md §2.5.

Descriptors from adaptive average pooling at pyramid levels 1, 2, 4; per level a biased depthwise conv
with kernel = level collapses them to 1×1; ``u = ReLU(BN(ΣF_l))``; biased MLP C → C/16 → C; sigmoid gate.
Works at any input size: the adaptive pooling uses the PyTorch windows ``[⌊iH/o⌋, ⌈(i+1)H/o⌉)`` (they
overlap when H is not divisible, e.g. 7×7 at level 2 and 4) computed by ``pooling.adaptive_mean``:
reshape + ReduceMean when divisible, otherwise two constant averaging MatMuls — the same numbers
without the GatherND that non-divisible ``AdaptiveAvgPool2d`` exports to.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from seadeploy.errors import ConfigError
from seadeploy.models.attention.base import AttentionWork, register_attention
from seadeploy.models.attention.pooling import adaptive_mean
from seadeploy.models.attention.se import check_bool, hidden_channels, make_act


@register_attention("spse")
class SpatialPyramidSE(nn.Module):
    """SPSE block.

    Args:
        channels: C of the attended map.
        levels: pyramid output sizes, a tuple (default (1, 2, 4) as in the official code); a list would be
            read as one value per stage by ``create_attention``.
        reduction, ratio, hidden: MLP width (default C // 16).
        bias: biases in the MLP (official: yes).
        act: MLP inner activation.
    """

    def __init__(
        self,
        channels: int,
        levels: Sequence[int] = (1, 2, 4),
        reduction: float | None = 16,
        ratio: float | None = None,
        hidden: int | None = None,
        bias: bool = True,
        act: str = "relu",
    ) -> None:
        super().__init__()
        levels = (levels,) if isinstance(levels, int) else tuple(levels)
        if not levels or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in levels):
            raise ConfigError(f"levels must be positive ints such as (1, 2, 4), got {levels!r}")
        self.levels = levels
        check_bool("bias", bias)
        self.fuse = nn.ModuleList(nn.Conv2d(channels, channels, lv, groups=channels, bias=True) for lv in levels)
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        h = hidden_channels(channels, reduction, ratio, hidden)
        self.fc1 = nn.Linear(channels, h, bias=bias)
        self.act = make_act(act)
        self.fc2 = nn.Linear(h, channels, bias=bias)
        self.gate = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        u = None
        for lv, conv in zip(self.levels, self.fuse):
            f = conv(adaptive_mean(x, (lv, lv)))
            u = f if u is None else u + f
        z = self.relu(self.bn(u)).flatten(1)
        s = self.gate(self.fc2(self.act(self.fc1(z))))
        return x * s[:, :, None, None]

    def extra_repr(self) -> str:
        return f"levels={self.levels}"

    def work(self, c: int, h: int, w: int) -> AttentionWork:
        """One pooling pass per pyramid level, one gate per channel, one multiply."""
        n = len(self.levels)
        return AttentionWork(n * c * h * w, c, c * h * w, (n + 1) * c * h * w, c, c * h * w)
