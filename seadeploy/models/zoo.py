"""The backbone registry and ``create_model(name, attn=..., attn_kwargs=...)``: backbones × attention."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from torch import nn

from seadeploy.errors import ConfigError
from seadeploy.models.attention import list_attention
from seadeploy.registry import Registry
from seadeploy.runfolder import ModelSpec


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """A registered backbone builder and its defaults."""

    fn: Callable[..., nn.Module]
    family: str
    default_attn: str = "none"
    input_size: int = 32
    num_classes: int = 10
    attn_defaults: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def __repr__(self) -> str:  # shown by Registry.__repr__ (a __qualname__ property is a TypeError on 3.11)
        return f"{self.fn.__qualname__} (family={self.family}, attn={self.default_attn})"


MODELS: Registry[ModelEntry] = Registry("model")


def register_model(name: str, family: str, default_attn: str = "none", input_size: int = 32, num_classes: int = 10,
                   attn_defaults: dict[str, dict[str, Any]] | None = None):
    """Decorator: register ``fn(attn, attn_kwargs, num_classes, input_size, **kw) -> nn.Module``.

    ``attn_defaults`` gives per-attention option defaults for this backbone (e.g. a TSE tile that divides
    CIFAR feature maps); the user's ``attn_kwargs`` override them and the merged options go in ``model.spec``.
    """

    def deco(fn):
        MODELS.register(name)(ModelEntry(fn, family, default_attn, input_size, num_classes, dict(attn_defaults or {})))
        return fn

    return deco


def create_model(name: str, attn: str | None = None, attn_kwargs: dict[str, Any] | None = None,
                 num_classes: int | None = None, input_size: int | None = None, **kwargs: Any) -> nn.Module:
    """Build backbone ``name`` with attention ``attn`` (default: the family's, ``none`` for most).

    The returned model carries ``model.spec`` (a :class:`~seadeploy.runfolder.ModelSpec`) that rebuilds it.
    """
    entry = MODELS.get(name)
    attn, attn_kwargs = resolve_attention(name, attn, attn_kwargs)
    if attn not in list_attention():
        raise ConfigError(f"unknown attention '{attn}'. Valid choices: {', '.join(list_attention())}")
    input_size = entry.input_size if input_size is None else int(input_size)
    num_classes = entry.num_classes if num_classes is None else int(num_classes)
    if input_size < 32:
        raise ConfigError(f"input size {input_size} is too small; the backbones need at least 32 pixels")
    if num_classes < 1:
        raise ConfigError(f"num_classes must be ≥ 1, got {num_classes}")
    model = entry.fn(attn=attn, attn_kwargs=dict(attn_kwargs), num_classes=num_classes,
                     input_size=input_size, **kwargs)
    # The recipe that rebuilds this model (read by models.rewrite and by whoever writes a checkpoint).
    model.spec = ModelSpec(model=name, attn=attn, attn_kwargs=dict(attn_kwargs), num_classes=num_classes,
                           input_size=input_size, model_kwargs=dict(kwargs))
    return model


def resolve_attention(name: str, attn: str | None, attn_kwargs: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """``(attention, options)`` of backbone ``name``: its default attention when ``attn`` is None, and the backbone's
    defaults for that attention under the user's ``attn_kwargs`` (the one place they are merged)."""
    entry = MODELS.get(name)
    attn = entry.default_attn if attn is None else attn
    return attn, {**entry.attn_defaults.get(attn, {}), **dict(attn_kwargs or {})}


def list_models(pattern: str | None = None) -> list[str]:
    """Registered backbone names, optionally filtered by a shell pattern such as ``resnet*``."""
    return MODELS.names(pattern)


def model_defaults(name: str) -> ModelEntry:
    """The registry entry (family, default attention, input size, classes) of ``name``."""
    return MODELS.get(name)
