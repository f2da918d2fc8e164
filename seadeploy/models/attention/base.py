"""The attention registry, the factory and the contract every attention class fulfils.

Contract (ARCHITECTURE in ``docs/architecture.md``): ``Cls(channels, **kwargs) -> nn.Module`` whose output has
the input's shape, exportable with standard ONNX ops, registered with :func:`register_attention`, and
defining ``work(c, h, w) -> AttentionWork`` — what the block costs beyond its conv/linear MACs, read by
``models stats`` (there is no fallback: a class without ``work`` cannot be registered).

Per-stage settings: any keyword whose value is a **list** (or a callable taking the stage index) is
resolved per stage by the backbone's ``stage=`` argument, e.g. ``tile=[2, 2, 4, 7]``; a **tuple** is a
single value such as a tile ``(kh, kw)``. Context keywords the backbones pass (``stage``, ``feat_size`` =
expected (H, W) of the attended map) reach only the classes whose ``__init__`` declares them.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from seadeploy.errors import ConfigError
from seadeploy.registry import Registry

ATTENTION: Registry[type[nn.Module]] = Registry("attention")
_CONTEXT_KEYS = ("stage", "feat_size")


@dataclasses.dataclass(frozen=True)
class AttentionWork:
    """Work of one attention block at batch 1 on a ``C×H×W`` input, beyond its conv/linear MACs.

    ``reduce_ops``: elementwise operations of the squeeze (one per pixel and pass); ``gate_ops``: gate
    nonlinearity evaluations; ``scale_ops``: the broadcast multiply (or add) over the map; ``reads``,
    ``gate_read``, ``writes``: elements the block reads from the feature map, reads of the gate tensor by
    the scale, and elements it writes (the traffic model of ``models stats``).
    """

    reduce_ops: int
    gate_ops: int
    scale_ops: int
    reads: int
    gate_read: int
    writes: int

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def register_attention(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: register an attention class under ``name`` after checking its contract."""

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"attention '{name}' must be an nn.Module subclass, got {cls!r}")
        if not callable(getattr(cls, "work", None)):
            raise TypeError(f"attention '{name}' ({cls.__qualname__}) must define work(c, h, w) -> AttentionWork "
                            "so models stats can count it (see docs/architecture.md, 'Attention')")
        return ATTENTION.register(name)(cls)

    return deco


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
    cls = ATTENTION.get(name)
    kw = {k: resolve_stage_value(v, stage) for k, v in kwargs.items()}
    params = inspect.signature(cls.__init__).parameters
    kw.update({key: val for key, val in (("stage", stage), ("feat_size", feat_size))
               if key in params and val is not None})
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
    return ["none", *ATTENTION.names()]


def is_attention(module: nn.Module) -> bool:
    """True for an instance of a registered attention class (how the zoo's blocks are found in PyTorch)."""
    return any(type(module) is ATTENTION.get(n) for n in ATTENTION.names())
