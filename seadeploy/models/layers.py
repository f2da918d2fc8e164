"""Small helpers shared by the backbones: output sizes and the attention hook-up."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from seadeploy.errors import ConfigError
from seadeploy.models.attention import create_attention


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Spatial output size of a conv / pool (floor mode)."""
    return (size + 2 * padding - kernel) // stride + 1


def make_attn(
    attn: str, channels: int, attn_kwargs: dict[str, Any], stage: int, feat: int | tuple[int, int]
) -> nn.Module | None:
    """``create_attention`` with the backbone context (stage index, attended map size); None for "none"."""
    size = (feat, feat) if isinstance(feat, int) else tuple(feat)
    return create_attention(attn, channels, stage=stage, feat_size=size, **attn_kwargs)


def init_kaiming(model: nn.Module, mode: str = "fan_out", skip_attention: bool = False) -> None:
    """Conv weights kaiming-normal (ReLU gain), conv biases 0, BatchNorm γ=1 β=0.

    With ``skip_attention`` the modules inside ``.attn`` keep PyTorch's defaults.
    """
    for name, m in model.named_modules():
        if skip_attention and (".attn." in f".{name}." or name.endswith("attn")):
            continue
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def reject_unknown(model: str, kw: dict[str, Any], valid: tuple[str, ...] = ()) -> None:
    """Raise ``ConfigError`` for model keyword arguments the builder does not know."""
    if kw:
        choices = f" Valid options: {', '.join(valid)}" if valid else " It takes no extra options."
        raise ConfigError(f"model '{model}' has no option '{next(iter(kw))}'.{choices}")


def recalibrate_batchnorm(model: Any, x: Any, batch: int = 32) -> Any:
    """Reset every BatchNorm's running statistics to their exact average over ``x`` (weights untouched).

    A freshly initialised net keeps mean 0 / var 1 statistics, so activations shrink or grow layer after
    layer (random EfficientNet-B0 logits are ~1e-13, below fp16's smallest subnormal) and the gate would
    compare numbers no trained model produces. Recalibrated statistics give O(1) activations for inputs
    like ``x``; the gate recalibrates on real samples *and* seeded noise, since it feeds both (measured on
    EfficientNet-B0: calibrated on digits only, noise inputs reach logits of 3e4 and fp32 ORT-vs-PyTorch
    error 2e-3 relative; on the mix, logits ≤ 150 and error 4e-6 relative on both).

    Only the BatchNorm layers run in training mode: dropout and stochastic depth stay in eval mode, so the
    statistics are those of the deterministic inference graph and identical on every run.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    model.eval()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average = the exact mean over all batches
        bn.train()
    with torch.no_grad():
        for chunk in torch.as_tensor(x).split(batch):
            model(chunk)
    for bn in bns:
        bn.momentum = 0.1
    return model.eval()
