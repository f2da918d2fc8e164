"""Channel-attention zoo: one registry, one factory.

``create_attention(name, channels, **kw)`` returns an ``nn.Module`` whose output has the input's
shape, or ``None`` for ``"none"``. Per-stage settings: any keyword whose value is a **list** (or a
callable taking the stage index) is resolved per stage by the backbone's ``stage=`` argument, e.g.
``tile=[2, 2, 4, 7]``; a **tuple** is a single value such as a tile ``(kh, kw)``.

Context keywords the backbones pass (``stage``, ``feat_size`` = expected (H, W) of the attended map)
reach only the classes whose ``__init__`` declares them.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from seadeploy.errors import ConfigError
from seadeploy.registry import Registry

ATTENTION: Registry[type[nn.Module]] = Registry("attention")
_CONTEXT_KEYS = ("stage", "feat_size")


def resolve_stage_value(value: Any, stage: int | None) -> Any:
    """A list picks element ``stage`` (the last one when the list is shorter), a callable is called."""
    if callable(value) and not isinstance(value, type):
        return value(stage)
    if isinstance(value, list):
        if stage is None:
            raise ConfigError(f"per-stage value {value} given where no stage is known; pass a single value")
        if not value:
            raise ConfigError("per-stage value list is empty")
        return value[min(stage, len(value) - 1)]
    return value


def create_attention(name: str | None, channels: int, *, stage: int | None = None,
                     feat_size: tuple[int, int] | None = None, **kwargs: Any) -> nn.Module | None:
    """Build attention ``name`` for ``channels`` channels; ``None``/``"none"`` gives ``None``."""
    if name is None or name == "none":
        return None
    _ensure_registered()
    cls = ATTENTION.get(name)
    kw = {k: resolve_stage_value(v, stage) for k, v in kwargs.items()}
    params = inspect.signature(cls.__init__).parameters
    for key, val in (("stage", stage), ("feat_size", feat_size)):
        if key in params and val is not None:
            kw[key] = val
    unknown = [k for k in kw if k not in params and not any(p.kind == p.VAR_KEYWORD for p in params.values())]
    if unknown:
        valid = [p for p in params if p not in ("self", "channels", *_CONTEXT_KEYS)]
        raise ConfigError(f"attention '{name}' has no option '{unknown[0]}'. Valid options: {', '.join(valid)}")
    try:
        return cls(channels, **kw)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:  # a wrongly typed value (reduction="abc", tile="x") → one-line error
        raise ConfigError(f"attention '{name}': invalid option value ({exc}); options given: {kw}") from exc


def list_attention() -> list[str]:
    """Registered attention names, ``none`` included."""
    _ensure_registered()
    return ["none", *ATTENTION.names()]


def _ensure_registered() -> None:
    # Import the modules that register attention classes (kept lazy to avoid import cycles).
    from seadeploy.models.attention import cbam, rgse, sb, se, spse, tse  # noqa: F401
