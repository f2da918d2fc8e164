"""The "VGG16 modified for CIFAR-10" of the TSE and SB repos (Simonyan & Zisserman — arXiv:1409.1556),
docs/models.md §3.1: 10 conv layers (2×64, 2×128, 3×256, 3×512; Conv3×3 with bias → BN → ReLU), attention after
the last conv of each stage and before its 2×2 max-pool, then GAP → Linear(512→256) → ReLU → Linear(256→classes).

Init (the repos' custom init): every ``nn.Linear`` and ``nn.BatchNorm1d`` — the head and the SE/SB MLPs
including their BN1d — gets weight ~ N(0, 0.02), bias 0; convs and BN2d keep PyTorch's defaults.
The repos' attention forms are attention arguments: SE ``{"ratio": 0.5, "bn": True}``, TSE
``{"ratio": 0.5, "bn": True, "tile": 2}``, SB ``{}`` (its defaults are the repo's); ``repo_attn_kwargs``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from seadeploy.models.layers import make_attn, reject_unknown
from seadeploy.models.resnet_cifar import CIFAR_ATTN_DEFAULTS
from seadeploy.models.zoo import register_model

STAGES = ((64, 2), (128, 2), (256, 3), (512, 3))

#: attn_kwargs that reproduce the yuranusduke repos' attention blocks on this backbone.
REPO_ATTN_KWARGS: dict[str, dict[str, Any]] = {
    "se": {"ratio": 0.5, "bn": True},
    "tse": {"ratio": 0.5, "bn": True, "tile": 2},
    "sb": {"ratio": 0.5, "bn": True},
}


def repo_attn_kwargs(attn: str) -> dict[str, Any]:
    """The repo form of ``attn`` for ``vgg16_cifar`` (empty for attentions the repos did not have)."""
    return dict(REPO_ATTN_KWARGS.get(attn, {}))


class VGGCifar(nn.Module):
    """10-conv CIFAR VGG with attention after each of the 4 stages (``stages.<i>.attn``)."""

    def __init__(
        self, attn: str = "none", attn_kwargs: dict[str, Any] | None = None, num_classes: int = 10, input_size: int = 32
    ) -> None:
        super().__init__()
        kw = dict(attn_kwargs or {})
        stages, cin, size = [], 3, input_size
        for i, (width, convs) in enumerate(STAGES):
            layers: list[nn.Module] = []
            for _ in range(convs):
                layers += [nn.Conv2d(cin, width, 3, 1, 1, bias=True), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
                cin = width
            stage = nn.Sequential(*layers)
            attn_mod = make_attn(attn, width, kw, i, size)
            if attn_mod is not None:
                stage.add_module("attn", attn_mod)
            stage.add_module("pool", nn.MaxPool2d(2, 2))
            stages.append(stage)
            size //= 2
        self.stages = nn.Sequential(*stages)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(512, 256), nn.ReLU(inplace=True), nn.Linear(256, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.BatchNorm1d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.gap(self.stages(x)).flatten(1))


@register_model("vgg16_cifar", family="vgg_cifar", input_size=32, num_classes=10, attn_defaults=CIFAR_ATTN_DEFAULTS)
def vgg16_cifar(attn: str, attn_kwargs: dict[str, Any], num_classes: int, input_size: int, **kw: Any) -> nn.Module:
    """The TSE/SB repos' CIFAR VGG; see ``REPO_ATTN_KWARGS`` for their attention settings."""
    reject_unknown("vgg16_cifar", kw)
    return VGGCifar(attn, attn_kwargs, num_classes, input_size)
