"""Squeeze-and-Excitation (Hu, Shen, Sun — arXiv:1709.01507) with the squeeze variants of SsENet.

One class covers the SE blocks of every reproduced project (docs/models.md §2.1) through arguments:

* jordandeklerk SE-ResNet / SsENet: ``bias=False, reduction=16``;
* yuranusduke VGG repos: ``ratio=0.5, bn=True`` (Linear → BN1d → ReLU → Linear → BN1d → sigmoid);
* SPSE/RGSE baselines: ``bias=True, reduction=16``; EfficientNet MBConv: ``hidden=in·0.25, act="silu"``.

Squeeze functions are data (``SQUEEZE``), not flags: ``avg``, ``max``, ``std`` (unbiased, no epsilon),
``avg_x_std`` and ``random`` (fresh ``U[0, 1)`` on the input's device at every call, train and eval).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from seadeploy.errors import ConfigError
from seadeploy.models.attention.base import AttentionWork, register_attention


def _std(x: Tensor) -> Tensor:
    return x.flatten(2).std(dim=2)  # unbiased (Bessel), no epsilon: torch.std's default, as in SsENet


SQUEEZE: dict[str, Callable[[Tensor], Tensor]] = {
    "avg": lambda x: x.mean(dim=(2, 3)),
    "max": lambda x: x.amax(dim=(2, 3)),
    "std": _std,
    "avg_x_std": lambda x: x.mean(dim=(2, 3)) * _std(x),
    "random": lambda x: torch.rand(x.shape[:2], device=x.device, dtype=x.dtype),
}

#: Passes over the map each squeeze makes (std: mean, squares, sum; random reads nothing), for ``work()``.
SQUEEZE_PASSES = {"avg": 1, "max": 1, "std": 3, "avg_x_std": 3, "random": 0}

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "silu": lambda: nn.SiLU(inplace=True),
    "gelu": nn.GELU,
}

#: BatchNorm placement in the excitation MLP: none, after the first layer, after both layers.
BN_FORMS = (False, "hidden", "both")


def hidden_channels(
    channels: int,
    reduction: float | None = 16,
    ratio: float | None = None,
    hidden: int | None = None,
    min_hidden: int = 1,
) -> int:
    """MLP width: ``hidden`` if given, else ``int(channels·ratio)`` if ``ratio``, else ``channels // reduction``.

    Raises:
        ConfigError: reduction < 1 or larger than ``channels``, ratio outside (0, 1], hidden < 1.
    """
    if hidden is not None:
        if int(hidden) < 1:
            raise ConfigError(f"hidden must be ≥ 1, got {hidden}")
        return int(hidden)
    if ratio is not None:
        if not 0 < float(ratio) <= 1:
            raise ConfigError(f"ratio (hidden = int(channels·ratio)) must be in (0, 1], got {ratio}")
        return max(int(min_hidden), int(channels * float(ratio)))
    if reduction is None or float(reduction) < 1:
        raise ConfigError(f"reduction must be ≥ 1 (hidden = channels // reduction), got {reduction}")
    if float(reduction) > channels:
        raise ConfigError(
            f"reduction {reduction} is larger than the {channels} channels it reduces; "
            f"use reduction ≤ {channels} or ratio=... / hidden=..."
        )
    return max(int(min_hidden), int(channels // reduction))


def make_act(name: str) -> nn.Module:
    """The MLP's inner activation by name."""
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ConfigError(f"unknown act '{name}'. Valid choices: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def bn_form(bn: bool | str, true_means: str) -> bool | str:
    """Normalise a ``bn`` argument to one of ``BN_FORMS``; ``True`` means each class's repo form."""
    if bn is True:
        return true_means
    if bn in (False, None, "none"):
        return False
    if bn in ("hidden", "both"):
        return bn
    raise ConfigError(f"bn must be one of false, true, hidden, both; got {bn!r}")


def check_bool(name: str, value: object) -> bool:
    """``value`` if it is a bool, else ``ConfigError`` (so ``bias="maybe"`` is not silently truthy)."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value


def check_squeeze(squeeze: str) -> str:
    if not isinstance(squeeze, str) or squeeze not in SQUEEZE:
        raise ConfigError(f"unknown squeeze '{squeeze}'. Valid choices: {', '.join(SQUEEZE)}")
    return squeeze


@register_attention("se")
class SqueezeExcite(nn.Module):
    """``y = x ⊙ σ(MLP(squeeze(x)))[:, :, None, None]``.

    Args:
        channels: C of the attended map.
        reduction: hidden = C // reduction (default 16) unless ``ratio`` or ``hidden`` is given.
        ratio: hidden = int(C·ratio) (the yuranusduke ``attn_ratio``).
        hidden: explicit hidden width (EfficientNet passes the block-input-based width).
        bias: biases in both Linear layers.
        bn: ``True``/``"both"``: BatchNorm1d after both Linear layers (the VGG repos' SE); ``"hidden"``:
            only after the first; ``False``: none.
        squeeze: key of ``SQUEEZE``.
        act: inner activation (relu, silu, gelu).
        min_hidden: lower bound of the hidden width.
    """

    def __init__(
        self,
        channels: int,
        reduction: float | None = 16,
        ratio: float | None = None,
        hidden: int | None = None,
        bias: bool = True,
        bn: bool | str = False,
        squeeze: str = "avg",
        act: str = "relu",
        min_hidden: int = 1,
    ) -> None:
        super().__init__()
        self.squeeze = check_squeeze(squeeze)
        self.bn_form = bn_form(bn, true_means="both")
        check_bool("bias", bias)
        h = hidden_channels(channels, reduction, ratio, hidden, min_hidden)
        self.fc1 = nn.Linear(channels, h, bias=bias)
        self.bn1 = nn.BatchNorm1d(h) if self.bn_form else nn.Identity()
        self.act = make_act(act)
        self.fc2 = nn.Linear(h, channels, bias=bias)
        self.bn2 = nn.BatchNorm1d(channels) if self.bn_form == "both" else nn.Identity()
        self.gate = nn.Sigmoid()

    def excite(self, z: Tensor) -> Tensor:
        """``(N, C)`` descriptors → ``(N, C)`` gates."""
        return self.gate(self.bn2(self.fc2(self.act(self.bn1(self.fc1(z))))))

    def forward(self, x: Tensor) -> Tensor:
        s = self.excite(SQUEEZE[self.squeeze](x))
        return x * s[:, :, None, None]

    def work(self, c: int, h: int, w: int) -> AttentionWork:
        """Squeeze passes over the map (avg/max 1, std and avg_x_std 3), one gate per channel, one multiply."""
        p = SQUEEZE_PASSES[self.squeeze]
        return AttentionWork(p * c * h * w, c, c * h * w, (min(p, 2) + 1) * c * h * w, c, c * h * w)

    def extra_repr(self) -> str:
        return f"squeeze={self.squeeze}, bn={self.bn_form}"
