"""Shift-and-Balance attention (Luo et al. — arXiv:2103.13080), as reproduced by yuranusduke (docs/models.md §2.3).

Additive instead of multiplicative: ``y = x + (λ ⊙ act(BN1d(Linear(ReLU(BN1d(Linear(GAP(x))))))))[:, :, None, None]``
with a learned per-channel balance ``λ`` of shape (1, C) initialised from N(0, 1) (the repo's ``randn``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from seadeploy.errors import ConfigError
from seadeploy.models.attention.base import AttentionWork, register_attention
from seadeploy.models.attention.se import bn_form, check_bool, hidden_channels

#: The attention-branch activation ablation of the SB repo; softmax runs over the channels (dim=-1).
SB_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "relu": nn.ReLU,
    "softmax": lambda: nn.Softmax(dim=-1),
    "linear": nn.Identity,
}


@register_attention("sb")
class ShiftBalance(nn.Module):
    """Shift-and-balance block on a feature map (identity trunk).

    Args:
        channels: C of the attended map.
        ratio: hidden = int(C·ratio); the repo's ``attn_ratio`` 0.5 when neither this nor ``reduction`` is given.
        reduction: hidden = C // reduction instead.
        bias: biases in both Linear layers.
        bn: BatchNorm1d after both Linear layers (the repo and paper form) when True.
        act: tanh (paper default), sigmoid, relu, softmax (over channels) or linear.
    """

    def __init__(
        self,
        channels: int,
        ratio: float | None = None,
        reduction: float | None = None,
        bias: bool = True,
        bn: bool | str = True,
        act: str = "tanh",
    ) -> None:
        super().__init__()
        if not isinstance(act, str) or act not in SB_ACTIVATIONS:
            raise ConfigError(f"unknown sb act '{act}'. Valid choices: {', '.join(SB_ACTIVATIONS)}")
        form = bn_form(bn, true_means="both")
        check_bool("bias", bias)
        if ratio is None and reduction is None:
            ratio = 0.5  # the repo's attn_ratio
        h = hidden_channels(channels, reduction, ratio)
        self.fc1 = nn.Linear(channels, h, bias=bias)
        self.bn1 = nn.BatchNorm1d(h) if form else nn.Identity()
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(h, channels, bias=bias)
        self.bn2 = nn.BatchNorm1d(channels) if form == "both" else nn.Identity()
        self.gate = SB_ACTIVATIONS[act]()
        self.lam = nn.Parameter(torch.randn(1, channels))

    def forward(self, x: Tensor) -> Tensor:
        a = self.gate(self.bn2(self.fc2(self.act(self.bn1(self.fc1(x.mean(dim=(2, 3))))))))
        return x + (self.lam * a)[:, :, None, None]

    def work(self, c: int, h: int, w: int) -> AttentionWork:
        """One squeeze pass, one tanh/sigmoid per channel, one broadcast add over the map."""
        return AttentionWork(c * h * w, c, c * h * w, 2 * c * h * w, c, c * h * w)
