"""Model statistics: parameters, conv/linear MACs, activations, and the attention's own work.

Counting conventions (docs/deployment.md, "Numerics"): like fvcore, ``macs`` counts only Conv1d/2d and Linear
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

A user's own attention module (found by behaviour, :func:`seadeploy.models.structural.find_se_modules`) has
no ``work()``; its work is **measured** from one batch-1 call instead (:func:`measured_work`), with the same
fields: every call that reduces the block's ``C×H×W`` map counts its elements once in ``reduce_ops`` (so a
``torch.std`` squeeze counts one pass here where the zoo's SE counts its 2 + 1), every broadcast multiply/add of
the map by a smaller gate counts the map in ``scale_ops`` and the gate's distinct elements in ``gate_ops``.
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
from seadeploy.models.attention.base import AttentionWork
from seadeploy.models.rewrite import attention_paths

BYTES = 4  # fp32


def attention_work(module: nn.Module, shape: tuple[int, int, int]) -> dict[str, int]:
    """Work of one attention block on a ``(C, H, W)`` input: the block's own ``work()`` (see
    :class:`~seadeploy.models.attention.AttentionWork`; every registered attention defines it), or, for a
    user's module without one, the work :func:`measured_work` records."""
    c, h, w = shape
    work = getattr(module, "work", None)
    return (work(c, h, w) if callable(work) else measured_work(module, shape)).as_dict()


def _distinct(t: torch.Tensor) -> int:
    """Elements a tensor really holds: a broadcast view (``expand_as``) has stride 0 on its expanded dims."""
    return math.prod(size for size, stride in zip(t.shape, t.stride(), strict=True) if stride != 0)


class _WorkCounter(torch.overrides.TorchFunctionMode):
    """Follows the block's input through one forward, per top-level torch call (see the module doc).

    Each tensor is either part of a *map* (the input, its views and crops, and what a scale produces) or part of
    a *gate* (what a reduction of a map produces, and everything computed from gates alone). A call that takes a
    map and yields fewer elements, not as a view, is a squeeze reduction; a call that takes a map and a gate and
    yields a map is the scale. A gate remembers how many values its nonlinearity produced (``origin``) across an
    upsampling to the map size (TSE), so ``gate_ops`` counts evaluations and ``gate_read`` the tensor the scale
    reads. A function mode, not a FLOP counter: fvcore/``FlopCounterMode`` count conv/matmul only, and these are
    exactly the ops they skip.
    """

    def __init__(self, x: torch.Tensor) -> None:
        super().__init__()
        # id → (tensor, kind, origin); holding the tensor keeps its id from being reused by a later one
        self.kind: dict[int, tuple[torch.Tensor, str, int]] = {id(x): (x, "map", x.numel())}
        self.work = dict.fromkeys(("reduce_ops", "gate_ops", "scale_ops", "reads", "gate_read", "writes"), 0)

    def _mark(self, t: torch.Tensor, kind: str, origin: int) -> None:
        self.kind[id(t)] = (t, kind, origin)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not isinstance(out, torch.Tensor):
            return out
        flat = [a for arg in (*args, *(kwargs or {}).values())
                for a in (arg if isinstance(arg, list | tuple) else (arg,))]  # torch.cat((avg, max), 1)
        ins = [self.kind[id(t)] for t in flat if isinstance(t, torch.Tensor) and id(t) in self.kind]
        read = max((t.numel() for t, k, _ in ins if k == "map"), default=0)  # the map elements the call reads
        gates = [(t, o) for t, k, o in ins if k == "gate"]
        if read and not gates:
            if out._is_view() or out.numel() >= read:
                self._mark(out, "map", out.numel())  # a view, crop or elementwise op of the map
            else:  # a squeeze: pool, mean, amax, std... over space or channels
                self.work["reduce_ops"] += read
                self.work["reads"] += read
                self._mark(out, "gate", _distinct(out))
        elif read and gates and out.numel() == read:  # the map times (or plus) the gate
            gate, origin = min(gates, key=lambda g: _distinct(g[0]))
            self.work["scale_ops"] += out.numel()
            self.work["reads"] += read
            self.work["writes"] += out.numel()
            self.work["gate_read"] += _distinct(gate)
            self.work["gate_ops"] += origin
            self._mark(out, "map", out.numel())
        elif gates:  # the excitation, the gate nonlinearity, an upsampling of the gate to the map
            widest = max(gates, key=lambda g: _distinct(g[0]))
            copied = out._is_view() or _distinct(out) > _distinct(widest[0])  # a crop or an upsampling evaluates
            self._mark(out, "gate", widest[1] if copied else _distinct(out))    # nothing new
        return out


def measured_work(module: nn.Module, shape: tuple[int, int, int]) -> AttentionWork:
    """The work of ``module`` on one ``(C, H, W)`` input, recorded from a batch-1 call (module doc)."""
    c, h, w = shape
    x = torch.rand(1, c, h, w, generator=torch.Generator().manual_seed(0)) + 0.5
    counter = _WorkCounter(x)
    was = module.training
    try:
        with torch.no_grad(), counter:
            module.eval()(x)
    finally:
        module.train(was)
    return AttentionWork(**counter.work)


def _layer_macs(m: nn.Module, out: torch.Tensor) -> int:
    if isinstance(m, nn.Conv1d | nn.Conv2d):  # Conv1d: ECA's excitation over the channel descriptor
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
        total = self.attention.select_dtypes("number").drop(columns=["C", "H", "W"]).sum().to_frame().T
        total.insert(0, "module", "total")  # shapes do not add up; the table leaves them blank on this row
        frame = pd.concat([self.attention, total], ignore_index=True)
        return frame.astype(dict.fromkeys(("C", "H", "W"), "Int64"))

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, "attention": self.attention.to_dict(orient="records")}

    def format(self) -> str:
        """Human-readable summary + attention table."""
        lines = [f"{k:>18}: {v:,}" if isinstance(v, int) else f"{k:>18}: {v}" for k, v in self.summary.items()]
        frame = self.to_frame()
        if not frame.empty:
            shown = frame.drop(columns=["type"]).astype(dict.fromkeys(("C", "H", "W"), object)).fillna("")
            lines += ["", shown.to_string(index=False)]
        return "\n".join(lines)


def compute_stats(model: nn.Module, input_size: int | tuple[int, int],
                  blocks: list[str] | None = None) -> ModelStats:
    """Run one zero batch through ``model`` (eval, no grad) with hooks and count.

    ``blocks``: module paths of the attention blocks (a user's SE-like modules, found by behaviour); by default
    the instances of registered attention classes."""
    hw = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    attn = {p: model.get_submodule(p) for p in (attention_paths(model) if blocks is None else blocks)}
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
