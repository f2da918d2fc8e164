"""ImageNet-style ResNets (He et al. — arXiv:1512.03385) and ResNeXts (Xie et al. — arXiv:1611.05431),
torchvision layout, attention on the last BN of every residual branch before the add (docs/models.md §3.3/3.4).

``resnet18``/``resnet34``: the SsENet init (conv kaiming fan_out, BN 1/0, last BN of each branch γ = 0).
``resnet50/101/152``, ``resnext50_32x4d``/``resnext101_32x4d``: the SPSE/RGSE official init (backbone convs
kaiming fan_out, every BN γ=1, every bias 0 — attention MLP and fusion biases included — Linear weights and
attention convs default). Options: ``stem="cifar"`` (conv3×3/1, no max-pool) and ``zero_init_residual``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from seadeploy.errors import ConfigError
from seadeploy.models.layers import conv_out, init_kaiming, make_attn, reject_unknown
from seadeploy.models.zoo import register_model


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(
        self, cin: int, planes: int, stride: int, attn: nn.Module | None, groups: int = 1, base_width: int = 64
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.attn = attn
        self.downsample = _downsample(cin, planes, stride)

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        if self.attn is not None:
            out = self.attn(out)
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(
        self, cin: int, planes: int, stride: int, attn: nn.Module | None, groups: int = 1, base_width: int = 64
    ) -> None:
        super().__init__()
        width = int(planes * base_width / 64) * groups
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.attn = attn
        self.downsample = _downsample(cin, planes * 4, stride)

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn3(self.conv3(self.relu(self.bn2(self.conv2(out)))))
        if self.attn is not None:
            out = self.attn(out)
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


def _downsample(cin: int, cout: int, stride: int) -> nn.Module | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class ResNet(nn.Module):
    """Stem → 4 stages (``layer1..4``, planes 64/128/256/512) → global average pool → Linear."""

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: tuple[int, ...],
        attn: str = "none",
        attn_kwargs: dict[str, Any] | None = None,
        num_classes: int = 1000,
        input_size: int = 224,
        groups: int = 1,
        base_width: int = 64,
        stem: str = "imagenet",
    ) -> None:
        super().__init__()
        kw = dict(attn_kwargs or {})
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, 2, 1)
            size = conv_out(conv_out(input_size, 7, 2, 3), 3, 2, 1)
        elif stem == "cifar":
            self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
            size = input_size
        else:
            raise ConfigError(f"unknown stem '{stem}'. Valid choices: imagenet, cifar")
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        cin = 64
        for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = []
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                size = conv_out(size, 3, stride, 1)
                cout = planes * block.expansion
                blocks.append(block(cin, planes, stride, make_attn(attn, cout, kw, stage, size), groups, base_width))
                cin = cout
            self.add_module(f"layer{stage + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def init_megvii(model: nn.Module) -> None:
    """SPSE/RGSE official init: backbone convs kaiming fan_out, all BN γ=1, every bias 0."""
    init_kaiming(model, mode="fan_out", skip_attention=True)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            nn.init.ones_(m.weight)
        if getattr(m, "bias", None) is not None and isinstance(m.bias, nn.Parameter):
            nn.init.zeros_(m.bias)


_VARIANTS = {  # name: (block, layers, groups, base_width, init)
    "resnet18": (BasicBlock, (2, 2, 2, 2), 1, 64, "torchvision"),
    "resnet34": (BasicBlock, (3, 4, 6, 3), 1, 64, "torchvision"),
    "resnet50": (Bottleneck, (3, 4, 6, 3), 1, 64, "megvii"),
    "resnet101": (Bottleneck, (3, 4, 23, 3), 1, 64, "megvii"),
    "resnet152": (Bottleneck, (3, 8, 36, 3), 1, 64, "megvii"),
    "resnext50_32x4d": (Bottleneck, (3, 4, 6, 3), 32, 4, "megvii"),
    "resnext101_32x4d": (Bottleneck, (3, 4, 23, 3), 32, 4, "megvii"),
}


def _register(name: str) -> None:
    block, layers, groups, width, init = _VARIANTS[name]
    family = "resnext" if name.startswith("resnext") else "resnet"

    @register_model(name, family=family, input_size=224, num_classes=1000)
    def build(
        attn: str,
        attn_kwargs: dict[str, Any],
        num_classes: int,
        input_size: int,
        stem: str = "imagenet",
        zero_init_residual: bool | None = None,
        **kw: Any,
    ) -> nn.Module:
        reject_unknown(name, kw, ("stem", "zero_init_residual"))
        model = ResNet(block, layers, attn, attn_kwargs, num_classes, input_size, groups, width, stem)
        if init == "megvii":
            init_megvii(model)
        else:
            init_kaiming(model, mode="fan_out", skip_attention=True)
        if init == "torchvision" if zero_init_residual is None else zero_init_residual:
            for m in model.modules():
                if isinstance(m, BasicBlock | Bottleneck):
                    nn.init.zeros_(m.last_bn().weight)
        return model

    build.__qualname__ = name


for _name in _VARIANTS:
    _register(_name)
