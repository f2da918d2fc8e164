"""Tiny networks with channel attention written the way common libraries write it (timm, torchvision, the
reference repos), plus negatives with pooling that is not attention. Shared by the graph-analysis tests.

Every attention submodule is deliberately NOT named ``attn`` (``se``, ``gate_mod``, ``ca`` ...): the detector
must find blocks by graph structure. Each net is stem → block → stride-2 conv → block → GAP head, so a
net holds two blocks of one style and a classifier GAP that must not count.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import torch
import torch.nn.functional as F
from torch import nn

C = 8
SIZE = 16


class SEMeanConv(nn.Module):
    """timm SqueezeExcite: ``x.mean((2, 3), keepdim=True)`` → 1×1 conv → ReLU → 1×1 conv → sigmoid."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, c // 2, 1), nn.Conv2d(c // 2, c, 1)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * self.fc2(F.relu(self.fc1(s))).sigmoid()


class SEAdaptiveLinear(nn.Module):
    """The classic SENet: ``nn.AdaptiveAvgPool2d(1)`` → view → Linear → ReLU → Linear → Sigmoid → view."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(c, c // 2, bias=False), nn.ReLU(inplace=True), nn.Linear(c // 2, c),
                                nn.Sigmoid())

    def forward(self, x):
        b, c = x.shape[0], x.shape[1]
        y = self.fc(self.pool(x).view(b, c))
        return x * y.view(b, c, 1, 1).expand_as(x)


class SEHardSigmoid(nn.Module):
    """torchvision SqueezeExcitation as MobileNetV3 uses it: ``F.adaptive_avg_pool2d`` → conv → ReLU → conv →
    ``nn.Hardsigmoid``."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, c // 2, 1), nn.Conv2d(c // 2, c, 1)
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return self.scale_activation(self.fc2(F.relu(self.fc1(s)))) * x


class SERelu6(nn.Module):
    """Hand-written hard gate ``relu6(s + 3) / 6`` with a hard-swish ``h·relu6(h + 3)/6`` inside the excitation."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, c // 2, 1), nn.Conv2d(c // 2, c, 1)

    def forward(self, x):
        h = self.fc1(x.mean((2, 3), keepdim=True))
        h = h * F.relu6(h + 3.0) / 6.0
        return x * (F.relu6(self.fc2(h) + 3.0) / 6.0)


class SEStdMax(nn.Module):
    """SsENet-style squeeze: std over H·W (flatten + ``std``) plus ``amax``; FC excitation, sigmoid gate."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(c, c // 2), nn.Linear(c // 2, c)

    def forward(self, x):
        z = x.flatten(2).std(dim=2) + x.amax(dim=(2, 3))
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(z))))[:, :, None, None]


class ECA(nn.Module):
    """ECA-Net: GAP → Conv1d over the channel axis → sigmoid → ``x * y.expand_as(x)``."""

    def __init__(self, c: int, k: int = 3) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=k // 2, bias=False)

    def forward(self, x):
        y = self.avg_pool(x)
        y = self.conv(y.squeeze(-1).transpose(-1, -2)).transpose(-1, -2).unsqueeze(-1)
        return x * y.sigmoid().expand_as(x)


class CBAM(nn.Module):
    """CBAM: channel attention (avg and max squeeze through one shared 1×1-conv MLP, summed, sigmoid) then
    spatial attention (mean/max over channels → 7×7 conv → sigmoid)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Conv2d(c, c // 2, 1, bias=False), nn.ReLU(), nn.Conv2d(c // 2, c, 1, bias=False))
        self.spatial = nn.Conv2d(2, 1, 7, padding=3, bias=False)

    def forward(self, x):
        s = torch.sigmoid(self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1)))
        x = x * s
        p = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(p))


class GlobalContext(nn.Module):
    """GCNet / timm GlobalContext: attention pooling (1×1 conv → softmax over H·W → matmul) → 1×1 conv →
    LayerNorm → ReLU → 1×1 conv → sigmoid, fused by multiplication."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv_attn = nn.Conv2d(c, 1, 1)
        self.fc1, self.norm, self.fc2 = nn.Conv2d(c, c // 2, 1), nn.LayerNorm([c // 2, 1, 1]), nn.Conv2d(c // 2, c, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        attn = self.conv_attn(x).reshape(b, 1, h * w).softmax(dim=-1).unsqueeze(-1)  # B,1,HW,1
        context = (x.reshape(b, c, h * w).unsqueeze(1) @ attn).view(b, c, 1, 1)
        return x * torch.sigmoid(self.fc2(F.relu(self.norm(self.fc1(context)))))


class ShiftBalance(nn.Module):
    """SB (shift-and-balance): GAP → Linear → BN1d → ReLU → Linear → BN1d → tanh, added: ``x + λ·a``."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc1, self.bn1 = nn.Linear(c, c // 2), nn.BatchNorm1d(c // 2)
        self.fc2, self.bn2 = nn.Linear(c // 2, c), nn.BatchNorm1d(c)
        self.lam = nn.Parameter(torch.randn(1, c))

    def forward(self, x):
        a = torch.tanh(self.bn2(self.fc2(F.relu(self.bn1(self.fc1(x.mean(dim=(2, 3))))))))
        return x + (self.lam * a)[:, :, None, None]


class TiledSE(nn.Module):
    """TSE: ``avg_pool2d`` over 4×4 tiles → 1×1 conv MLP → sigmoid → nearest upsample back → multiply."""

    def __init__(self, c: int, tile: int = 4) -> None:
        super().__init__()
        self.tile = tile
        self.fc1, self.fc2 = nn.Conv2d(c, c // 2, 1), nn.Conv2d(c // 2, c, 1)

    def forward(self, x):
        a = torch.sigmoid(self.fc2(F.relu(self.fc1(F.avg_pool2d(x, self.tile, self.tile)))))
        return x * F.interpolate(a, scale_factor=float(self.tile), mode="nearest")


class TwoBlockNet(nn.Module):
    """stem conv → ``att1`` → stride-2 conv → ``att2`` → GAP → Linear (the head's GAP is not attention)."""

    def __init__(self, attention: type[nn.Module], name: str) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1), nn.BatchNorm2d(C), nn.ReLU())
        self.stage1 = nn.Sequential()
        self.stage1.add_module(name, attention(C))
        self.down = nn.Sequential(nn.Conv2d(C, C, 3, stride=2, padding=1), nn.ReLU())
        self.stage2 = nn.Sequential()
        self.stage2.add_module(name, attention(C))
        self.head = nn.Linear(C, 10)

    def forward(self, x):
        x = self.stage2(self.down(self.stage1(self.stem(x))))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


class ResNetD(nn.Module):
    """Negative: stem max-pool, a ResNet-D bottleneck whose shortcut is 2×2 avg-pool → 1×1 conv → BN, a plain
    identity residual block, SiLU (``x·sigmoid(x)``) activations and a GAP classifier head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1), nn.BatchNorm2d(C), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        self.conv1, self.bn1 = nn.Conv2d(C, 2 * C, 3, stride=2, padding=1), nn.BatchNorm2d(2 * C)
        self.conv2, self.bn2 = nn.Conv2d(2 * C, 2 * C, 3, padding=1), nn.BatchNorm2d(2 * C)
        self.down = nn.Sequential(nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False),
                                  nn.Conv2d(C, 2 * C, 1, bias=False), nn.BatchNorm2d(2 * C))
        self.conv3, self.bn3 = nn.Conv2d(2 * C, 2 * C, 3, padding=1), nn.BatchNorm2d(2 * C)
        self.head = nn.Linear(2 * C, 10)

    def forward(self, x):
        x = self.stem(x)
        y = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(y)) + self.down(x))
        x = F.silu(self.bn3(self.conv3(x)) + x)  # plain residual block, SiLU = x·sigmoid(x)
        return self.head(x.mean((2, 3)))


#: fixture name → (module factory, submodule name, gate op types, squeeze op types that must be found)
ATTENTION_NETS = {
    "se_mean_conv": (SEMeanConv, "se"),
    "se_adaptive_linear": (SEAdaptiveLinear, "gate_mod"),
    "se_hardsigmoid": (SEHardSigmoid, "ca"),
    "se_relu6": (SERelu6, "se"),
    "se_std_max": (SEStdMax, "ca"),
    "eca": (ECA, "eca"),
    "cbam": (CBAM, "cbam"),
    "global_context": (GlobalContext, "gc"),
    "shift_balance": (ShiftBalance, "sb"),
    "tiled_se": (TiledSE, "tse"),
}


def build(name: str) -> nn.Module:
    """The fixture net ``name`` (an ``ATTENTION_NETS`` key or ``resnet_d``), in eval mode with fixed weights."""
    torch.manual_seed(0)
    if name == "resnet_d":
        return ResNetD().eval()
    cls, sub = ATTENTION_NETS[name]
    return TwoBlockNet(cls, sub).eval()


def export(net: nn.Module, path, dynamo: bool) -> None:
    """Export ``net`` at batch 1, ``SIZE``×``SIZE`` with the dynamo or the TorchScript exporter."""
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(net, (x,), str(path), dynamo=True, opset_version=18, external_data=False,
                              verbose=False)
        else:
            torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=17)
