"""Shared helpers for the model tests."""

from __future__ import annotations

import pytest
import torch
from torch import nn


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine params, and every Linear a unit-scale init, so
    eval-mode outputs are O(1) and comparisons mean something (fresh zoo models have tiny logits)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / m.in_features**0.5)
    return model


@pytest.fixture
def randomized():
    return randomize


@pytest.fixture(autouse=True, scope="session")
def _single_thread(single_thread):
    """Every test here runs on one thread (see tests/conftest.py)."""
