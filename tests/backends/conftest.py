"""A tiny SE network and its ONNX export, shared by the backend tests."""

from __future__ import annotations

import pytest
import torch
from torch import nn

INPUT_SHAPE = (3, 16, 16)


class TinySE(nn.Module):
    """Squeeze-and-excite gate: x * sigmoid(fc2(relu(fc1(mean(x)))))."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, c // 2, 1), nn.Conv2d(c // 2, c, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))


class TinyNet(nn.Module):
    """conv-bn-relu → SE → global pool → linear: every op kind the zoo uses, in 1 ms."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv1, self.bn1, self.attn = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), TinySE(8)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        return self.fc(self.attn(torch.relu(self.bn1(self.conv1(x)))).mean((2, 3)))


def make_tiny_net(seed: int = 0, classes: int = 10) -> TinyNet:
    torch.manual_seed(seed)
    net = TinyNet(classes)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so folding it into the conv matters
        net.bn1.running_mean.uniform_(-0.5, 0.5)
        net.bn1.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.fixture(scope="session")
def tiny_net() -> TinyNet:
    return make_tiny_net()


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory, tiny_net):
    from seadeploy.export.onnx_export import export_onnx

    return export_onnx(tiny_net, tmp_path_factory.mktemp("tiny") / "model.onnx", INPUT_SHAPE)
