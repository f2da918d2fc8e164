"""CIFAR ResNets (He et al. — arXiv:1512.03385), 6n+2 layers, widths 16/32/64 (docs/models.md §3.2).

The jordandeklerk SE-ResNet layout: BasicBlock conv3×3 → BN → ReLU → conv3×3 → BN → **attention** →
+ shortcut (1×1 conv + BN when the shape changes) → ReLU; stem conv3×3(3→16) → BN → ReLU; head
AdaptiveAvgPool → Linear(64 → classes). Init: conv kaiming-normal (fan_in, √2), BN 1/0, Linear default.
``resnet56_cifar`` with ``attn="se", attn_kwargs={"bias": False}`` is SE-ResNet-56 (861,818 parameters).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from seadeploy.models.layers import conv_out, init_kaiming, make_attn, reject_unknown
from seadeploy.models.zoo import register_model

WIDTHS = (16, 32, 64)


class BasicBlock(nn.Module):
    """Two 3×3 convs; the attention sits on the residual branch before the add."""

    def __init__(self, cin: int, cout: int, stride: int, attn: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.attn = attn
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.attn is not None:
            out = self.attn(out)
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for small images: 3 stages of ``n`` BasicBlocks."""

    def __init__(
        self,
        n: int,
        attn: str = "none",
        attn_kwargs: dict[str, Any] | None = None,
        num_classes: int = 10,
        input_size: int = 32,
    ) -> None:
        super().__init__()
        kw = dict(attn_kwargs or {})
        self.conv1 = nn.Conv2d(3, WIDTHS[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(WIDTHS[0])
        self.relu = nn.ReLU(inplace=True)
        cin, size = WIDTHS[0], input_size
        for stage, width in enumerate(WIDTHS):
            blocks = []
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                size = conv_out(size, 3, stride, 1)
                blocks.append(BasicBlock(cin, width, stride, make_attn(attn, width, kw, stage, size)))
                cin = width
            self.add_module(f"layer{stage + 1}", nn.Sequential(*blocks))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        init_kaiming(self, mode="fan_in", skip_attention=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.pool(x).flatten(1))


# TSE tile 7 (the ImageNet guidance) does not divide CIFAR maps (32/16/8): the edge-tile crop then costs
# ~1.10x SE latency in ONNX Runtime; tile 4 divides every CIFAR stage and measured ~0.98x SE.
CIFAR_ATTN_DEFAULTS = {"tse": {"tile": 4}}


def _register(depth: int) -> None:
    @register_model(f"resnet{depth}_cifar", family="resnet_cifar", input_size=32, num_classes=10,
                    attn_defaults=CIFAR_ATTN_DEFAULTS)
    def build(attn: str, attn_kwargs: dict[str, Any], num_classes: int, input_size: int, **kw: Any) -> nn.Module:
        reject_unknown(f"resnet{depth}_cifar", kw)
        return CifarResNet((depth - 2) // 6, attn, attn_kwargs, num_classes, input_size)

    build.__qualname__ = f"resnet{depth}_cifar"


for _depth in (20, 32, 44, 56, 110):
    _register(_depth)
