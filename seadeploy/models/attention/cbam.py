"""CBAM: Convolutional Block Attention Module (Woo, Park, Lee, Kweon — arXiv:1807.06521).

Channel attention ``σ(MLP(avg(x)) + MLP(max(x)))`` with one shared MLP (C → C/r → C, biased, r = 16),
then spatial attention ``σ(BN(conv7×7([mean_c(x), max_c(x)])))`` as in the official code (the BN can be
switched off). The SPSE/RGSE tables compare against it (docs/models.md §5).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seadeploy.errors import ConfigError
from seadeploy.models.attention.base import AttentionWork, register_attention
from seadeploy.models.attention.se import check_bool, hidden_channels, make_act


@register_attention("cbam")
class CBAM(nn.Module):
    """Channel then spatial attention.

    Args:
        channels: C of the attended map.
        reduction, ratio, hidden: the shared MLP width (default C // 16).
        bias: biases in the MLP.
        kernel_size: spatial conv kernel (odd; 7 in the paper).
        spatial_bn: BatchNorm2d(1) after the spatial conv (official code).
        act: MLP inner activation.
    """

    def __init__(
        self,
        channels: int,
        reduction: float | None = 16,
        ratio: float | None = None,
        hidden: int | None = None,
        bias: bool = True,
        kernel_size: int = 7,
        spatial_bn: bool = True,
        act: str = "relu",
    ) -> None:
        super().__init__()
        if int(kernel_size) < 1 or int(kernel_size) % 2 == 0:
            raise ConfigError(f"kernel_size must be a positive odd number, got {kernel_size}")
        h = hidden_channels(channels, reduction, ratio, hidden)
        check_bool("bias", bias)
        self.fc1 = nn.Linear(channels, h, bias=bias)
        self.act = make_act(act)
        self.fc2 = nn.Linear(h, channels, bias=bias)
        self.spatial = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=not spatial_bn)
        self.spatial_bn = nn.BatchNorm2d(1) if spatial_bn else nn.Identity()
        self.gate = nn.Sigmoid()

    def _mlp(self, z: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(z)))

    def forward(self, x: Tensor) -> Tensor:
        s = self.gate(self._mlp(x.mean(dim=(2, 3))) + self._mlp(x.amax(dim=(2, 3))))
        x = x * s[:, :, None, None]
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * self.gate(self.spatial_bn(self.spatial(pooled)))

    def work(self, c: int, h: int, w: int) -> AttentionWork:
        """Avg+max over space and over channels, C + H·W gates, two multiplies over the map."""
        chw = c * h * w
        return AttentionWork(4 * chw, c + h * w, 2 * chw, 4 * chw, c + h * w, 2 * chw)
