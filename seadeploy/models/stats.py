"""Model statistics: parameters, conv/linear MACs, activations, and the attention's own work.

Counting conventions (docs/deployment.md, "Numerics"): like fvcore, ``macs`` counts only Conv2d and Linear
multiply-accumulates (forward hooks, batch 1) and ``activations`` the elements those layers output. FLOP
counters skip the attention's reductions, gates and broadcast multiply, so those are counted separately per
attention block (batch 1, fp32), from the block's input ``C×H×W``:

* ``reduce_ops``: elementwise operations of the squeeze (one per pixel and pass: avg/max 1, std 2 + 1 for
  the squares, SPSE one per pyramid level, CBAM avg+max over space and over channels);
* ``gate_ops``: gate nonlinearity evaluations (sigmoid/tanh/...; TSE one per tile and channel);
* ``scale_ops``: the broadcast multiply (or SB's add) over the map;
* ``excite_macs``: conv/linear MACs inside the block (also part of ``macs``);
* ``bytes_moved``: a simple traffic model, 4 bytes × (feature-map reads by the squeeze and the scale, the
  gate tensor the scale reads — the full upsampled map for TSE —, the output write, the parameters).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import pandas as pd
import torch
from torch import nn

from seadeploy.models import create_model
from seadeploy.models.convert import attention_paths

BYTES = 4  # fp32


def attention_work(module: nn.Module, shape: tuple[int, int, int]) -> dict[str, int]:
    """Work of one attention block on a ``(C, H, W)`` input: the block's own ``work()`` (see
    :class:`~seadeploy.models.attention.AttentionWork`). Every registered attention defines it."""
    c, h, w = shape
    return module.work(c, h, w).as_dict()


def _layer_macs(m: nn.Module, out: torch.Tensor) -> int:
    if isinstance(m, nn.Conv2d):
        return out.numel() * (m.in_channels // m.groups) * math.prod(m.kernel_size)
    if isinstance(m, nn.Linear):
        return out.numel() * m.in_features
    return 0


@dataclasses.dataclass
class ModelStats:
    """Statistics of one model at batch 1: ``summary`` (totals), ``layers`` and ``attention`` frames."""

    summary: dict[str, Any]
    layers: pd.DataFrame
    attention: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        """Per attention block, plus a ``total`` row."""
        if self.attention.empty:
            return self.attention
        total = self.attention.select_dtypes("number").sum().to_frame().T
        total.insert(0, "module", "total")
        return pd.concat([self.attention, total], ignore_index=True)

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, "attention": self.attention.to_dict(orient="records")}

    def format(self) -> str:
        """Human-readable summary + attention table."""
        lines = [f"{k:>18}: {v:,}" if isinstance(v, int) else f"{k:>18}: {v}" for k, v in self.summary.items()]
        frame = self.to_frame()
        if not frame.empty:
            lines += ["", frame.drop(columns=["type"]).to_string(index=False)]
        return "\n".join(lines)


def compute_stats(model: nn.Module, input_size: int | tuple[int, int]) -> ModelStats:
    """Run one zero batch through ``model`` (eval, no grad) with hooks and count."""
    hw = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    attn = {p: model.get_submodule(p) for p in attention_paths(model)}
    owner = {id(sub): p for p, a in attn.items() for sub in a.modules()}
    rows: list[dict[str, Any]] = []
    shapes: dict[str, tuple[int, ...]] = {}

    def leaf_hook(name: str) -> Callable:
        def hook(m: nn.Module, args: tuple, out: torch.Tensor) -> None:
            if isinstance(out, torch.Tensor):
                macs = _layer_macs(m, out)
                rows.append(
                    {
                        "module": name,
                        "type": type(m).__name__,
                        "out_shape": tuple(out.shape[1:]),
                        "params": sum(p.numel() for p in m.parameters(recurse=False)),
                        "macs": macs,
                        "activations": out.numel() if macs else 0,
                        "attention": owner.get(id(m)),
                    }
                )

        return hook

    def attn_hook(name: str) -> Callable:
        def hook(m: nn.Module, args: tuple) -> None:
            shapes[name] = tuple(args[0].shape[1:])

        return hook

    handles = [m.register_forward_hook(leaf_hook(n)) for n, m in model.named_modules() if not list(m.children())]
    handles += [m.register_forward_pre_hook(attn_hook(n)) for n, m in attn.items()]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, *hw))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    layers = pd.DataFrame(rows)
    frame = _attention_frame(attn, shapes, layers)
    return ModelStats(_summary(model, layers, frame), layers, frame)


def _attention_frame(attn: dict[str, nn.Module], shapes: dict, layers: pd.DataFrame) -> pd.DataFrame:
    recs = []
    for path, m in attn.items():
        c, h, w = shapes[path]
        work = attention_work(m, (c, h, w))
        params = sum(p.numel() for p in m.parameters())
        excite = int(layers.loc[layers["attention"] == path, "macs"].sum()) if not layers.empty else 0
        moved = BYTES * (work["reads"] + work["gate_read"] + work["writes"] + params)
        recs.append(
            {
                "module": path,
                "type": type(m).__name__,
                "C": c,
                "H": h,
                "W": w,
                "params": params,
                "excite_macs": excite,
                "reduce_ops": work["reduce_ops"],
                "gate_ops": work["gate_ops"],
                "scale_ops": work["scale_ops"],
                "bytes_moved": moved,
            }
        )
    return pd.DataFrame(recs)


def _summary(model: nn.Module, layers: pd.DataFrame, frame: pd.DataFrame) -> dict[str, Any]:
    spec = getattr(model, "spec", None)

    def total(col: str) -> int:
        return int(frame[col].sum()) if not frame.empty else 0

    return {
        "model": getattr(spec, "model", type(model).__name__),
        "attn": getattr(spec, "attn", None),
        "input_size": getattr(spec, "input_size", None),
        "num_classes": getattr(spec, "num_classes", None),
        "params": sum(p.numel() for p in model.parameters()),
        "macs": int(layers["macs"].sum()) if not layers.empty else 0,
        "activations": int(layers["activations"].sum()) if not layers.empty else 0,
        "attn_blocks": len(frame),
        "attn_params": total("params"),
        "attn_excite_macs": total("excite_macs"),
        "attn_reduce_ops": total("reduce_ops"),
        "attn_gate_ops": total("gate_ops"),
        "attn_scale_ops": total("scale_ops"),
        "attn_bytes_moved": total("bytes_moved"),
    }


def model_stats(
    name: str,
    attn: str | None = None,
    attn_kwargs: dict[str, Any] | None = None,
    input_size: int | None = None,
    num_classes: int | None = None,
    **kwargs: Any,
) -> ModelStats:
    """Build ``name`` with ``create_model`` and compute its statistics at its input size."""
    model = create_model(
        name, attn=attn, attn_kwargs=attn_kwargs, num_classes=num_classes, input_size=input_size, **kwargs
    )
    return compute_stats(model, model.spec.input_size)


def zoo_table(models: list[str], attns: list[str], input_size: int | None = None) -> pd.DataFrame:
    """Params and MACs of every ``model × attn`` (each at its default input size unless given)."""
    rows = []
    for name in models:
        for a in attns:
            s = model_stats(name, a, input_size=input_size).summary
            rows.append(
                {
                    k: s[k]
                    for k in (
                        "model",
                        "attn",
                        "input_size",
                        "params",
                        "macs",
                        "attn_params",
                        "attn_reduce_ops",
                        "attn_bytes_moved",
                    )
                }
            )
    return pd.DataFrame(rows)
