"""Tiny models and exported files shared by the export tests (exports are the slow part: do each once)."""

from __future__ import annotations

import pytest
import torch
from torch import nn


class TinySE(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(c, max(c // 4, 1), 1)
        self.fc2 = nn.Conv2d(max(c // 4, 1), c, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))


class TinyNet(nn.Module):
    """conv-bn-relu → attn → conv-bn-relu → GAP → fc, with the ``attn`` naming convention of the zoo."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.layer1 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.layer1.attn = TinySE(16)
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        return self.fc(self.layer1.attn(self.layer1(self.stem(x))).mean((2, 3)))


@pytest.fixture(scope="session")
def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    model = TinyNet().eval()
    with torch.no_grad():  # non-trivial BN statistics so BN folding is exercised
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model


@pytest.fixture(scope="session")
def tiny_onnx(tiny_model, tmp_path_factory):
    from seadeploy.export.onnx_export import export_onnx

    return export_onnx(tiny_model, tmp_path_factory.mktemp("tiny") / "model.onnx", (3, 16, 16))
