"""Small helpers shared by the backbones: output sizes and the attention hook-up."""

from __future__ import annotations

from typing import Any

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
