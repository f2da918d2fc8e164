"""EfficientNet-B0/B1/B2 (Tan & Le — arXiv:1905.11946), torchvision layout (docs/models.md §3.5).

MBConv: [1×1 expand → BN → SiLU] → depthwise k×k/s → BN → SiLU → **attention on the expanded map** →
1×1 project → BN → (+ input, with drop-path in training, when s = 1 and in = out). The built-in SE is this
package's ``se`` with ``hidden = max(1, int(block_input·0.25))`` and ``act="silu"`` (``MBCONV_SE``); any
attention that takes ``hidden``/``act`` (``tse``, ``cbam``, ...) gets the same MLP width, so ``attn="tse"``
is the tiled drop-in replacement; ``attn="none"`` removes it. Explicit ``reduction``/``ratio``/``hidden``
in ``attn_kwargs`` override the width. Init as torchvision: conv kaiming fan_out, BN 1/0,
Linear U(±1/√out), bias 0.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
from torch import Tensor, nn

from seadeploy.models.attention.base import ATTENTION
from seadeploy.models.layers import conv_out, make_attn, reject_unknown
from seadeploy.models.zoo import register_model

#: B0 stages: (expand, kernel, stride, out channels, repeats).
B0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
#: name: (width, depth, resolution, dropout)
SCALING = {
    "efficientnet_b0": (1.0, 1.0, 224, 0.2),
    "efficientnet_b1": (1.0, 1.1, 240, 0.2),
    "efficientnet_b2": (1.1, 1.2, 260, 0.3),
}
#: The MBConv SE settings: reduced width from the block input × 0.25, SiLU inside.
MBCONV_SE = {"se_ratio": 0.25, "act": "silu"}


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of ``divisor``, never below 90 % of ``v``."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def mbconv_attn_kwargs(attn: str, block_in: int, user: dict[str, Any]) -> dict[str, Any]:
    """The user's ``attn_kwargs`` plus the MBConv SE width/activation where the attention accepts them."""
    if attn == "none":
        return dict(user)
    params = inspect.signature(ATTENTION.get(attn).__init__).parameters
    kw = dict(user)
    if "hidden" in params and not {"hidden", "reduction", "ratio"} & set(user):
        kw["hidden"] = max(1, int(block_in * MBCONV_SE["se_ratio"]))
    if "act" in params and "act" not in user and attn != "sb":
        kw["act"] = MBCONV_SE["act"]
    return kw


class DropPath(nn.Module):
    """Stochastic depth per sample ("row" mode); identity in eval."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype) >= self.p
        return x * keep / (1.0 - self.p)


def _cna(cin: int, cout: int, k: int, s: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, s, (k - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act:
        layers.append(nn.SiLU(inplace=True))
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    def __init__(
        self, cin: int, cout: int, expand: int, k: int, stride: int, attn: nn.Module | None, drop_path: float
    ) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = _cna(cin, mid, 1) if expand != 1 else nn.Identity()
        self.dw = _cna(mid, mid, k, stride, groups=mid)
        self.attn = attn
        self.project = _cna(mid, cout, 1, act=False)
        self.use_res = stride == 1 and cin == cout
        self.drop_path = DropPath(drop_path) if self.use_res else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.dw(self.expand(x))
        if self.attn is not None:
            out = self.attn(out)
        out = self.project(out)
        return x + self.drop_path(out) if self.use_res else out


class EfficientNet(nn.Module):
    """Stem → ``blocks`` (flat Sequential of MBConvs, ``blocks.<i>.attn``) → head conv → GAP → dropout → Linear."""

    def __init__(
        self,
        width: float,
        depth: float,
        dropout: float,
        attn: str = "se",
        attn_kwargs: dict[str, Any] | None = None,
        num_classes: int = 1000,
        input_size: int = 224,
        drop_path: float = 0.2,
    ) -> None:
        super().__init__()
        stem = make_divisible(32 * width)
        self.stem = _cna(3, stem, 3, 2)
        size, cin = conv_out(input_size, 3, 2, 1), stem
        plan = [(e, k, s, make_divisible(c * width), math.ceil(r * depth)) for e, k, s, c, r in B0_STAGES]
        total, idx, blocks = sum(p[-1] for p in plan), 0, []
        for stage, (e, k, s, c, r) in enumerate(plan):
            for i in range(r):
                stride = s if i == 0 else 1
                size = conv_out(size, k, stride, (k - 1) // 2)
                kw = mbconv_attn_kwargs(attn, cin, dict(attn_kwargs or {}))
                mod = make_attn(attn, cin * e, kw, stage, size)
                blocks.append(MBConv(cin, c, e, k, stride, mod, drop_path * idx / total))
                cin, idx = c, idx + 1
        self.blocks = nn.Sequential(*blocks)
        head = 4 * cin
        self.head = _cna(cin, head, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout, inplace=True)
        self.fc = nn.Linear(head, num_classes)
        self._init()

    def _init(self) -> None:
        for name, m in self.named_modules():
            if ".attn" in f".{name}":
                continue
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(self.dropout(self.pool(x).flatten(1)))


def _register(name: str) -> None:
    width, depth, res, dropout = SCALING[name]

    @register_model(name, family="efficientnet", default_attn="se", input_size=res, num_classes=1000)
    def build(
        attn: str, attn_kwargs: dict[str, Any], num_classes: int, input_size: int, drop_path: float = 0.2, **kw: Any
    ) -> nn.Module:
        reject_unknown(name, kw, ("drop_path",))
        return EfficientNet(width, depth, dropout, attn, attn_kwargs, num_classes, input_size, float(drop_path))

    build.__qualname__ = name


for _name in SCALING:
    _register(_name)
