"""Folding at pixel granularity: PE/SIMD per node and FINN's cycles per frame for it (docs/dataflow.md §2).

Every ONNX node is one FINN-style layer of a *kind*; its cycles per frame are the kind's ``get_exp_cycles``
(FINN, ``src/finn/custom_op/fpgadataflow/<file>.py``) for the same folding:

=============  ====================================  ======================================================
kind           ONNX ops                              cycles per frame (``N_out`` / ``N_in`` positions)
=============  ====================================  ======================================================
``mvau``       Conv (not depthwise), Gemm, MatMul    ``(MH/PE)·(MW/SIMD)·N_out`` (matrixvectoractivation)
``vvau``       depthwise Conv                        ``(C·k²/(PE·SIMD))·N_out`` (vectorvectoractivation)
``pool``       MaxPool / AveragePool (a window)      ``(C·k²/PE)·N_out`` (pool)
``accpool``    GlobalAveragePool, Reduce*            ``(C/PE)·N_in + (C/PE)·N_out`` (globalaccpool)
``pad``        Pad                                   ``(C/SIMD)·N_out`` (fmpadding)
``upsample``   Resize / Upsample                     ``(C/PE)·N_out``; PE = C is FINN's ``OFMDim²`` (upsampler)
``eltwise``    unary / binary ops, Concat            ``(C/PE)·N_out`` (thresholding, addstreams, channelwise_op)
``move``       Reshape, Flatten, Squeeze, ...        0 (wiring)
=============  ====================================  ======================================================

A folding file is ``{node: {"PE": p, "SIMD": s}}`` keyed by ONNX node name, plus an optional ``"Defaults"``:
``{"PE": p, "SIMD": s}`` for every kind or ``{kind: {"PE": p, "SIMD": s}}`` per kind. A node's own entry must
divide its dimensions (a one-line ``ConfigError`` otherwise); a default is an upper bound (the largest
divisor not above it is used). Nodes with neither are folded by :func:`set_folding` to the slowest listed node.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np
import onnx

from seadeploy.dataflow.arrival import POOL_OPS, REDUCE_OPS, window_spec
from seadeploy.errors import ConfigError, InputError
from seadeploy.graphs.index import attrs
from seadeploy.graphs.ops import GLOBAL_POOLS, MATMULS, MOVE_OPS, WINDOW_OPS

KINDS = ("mvau", "vvau", "pool", "accpool", "pad", "upsample", "eltwise", "move")


@dataclasses.dataclass
class Fold:
    """One node as a FINN-style layer: kind, dimensions, folding and cycles.

    ``C`` output channels, ``MH``/``MW`` the matrix (MVAU), ``k2`` window positions, ``n_in``/``n_out``
    positions per frame of the first streamed input and of the output.
    """

    node: str
    op_type: str
    kind: str
    C: int
    MH: int
    MW: int
    k2: int
    c_in: int
    n_in: int
    n_out: int
    pe: int = 1
    simd: int = 1

    def cycles_per_position(self) -> float:
        """Cycles per output position (``accpool``: per output emitted; its input side is :meth:`cycles_per_input`)."""
        k = self.kind
        if k == "mvau":
            return (self.MH / self.pe) * (self.MW / self.simd)
        if k == "vvau":
            return self.C * self.k2 / (self.pe * self.simd)
        if k == "pool":
            return self.C * self.k2 / self.pe
        if k == "pad":
            return self.C / self.simd
        if k in ("accpool", "upsample", "eltwise"):
            return self.C / self.pe
        return 0.0

    def cycles_per_input(self) -> float:
        """Cycles an accumulating pool spends per input position (``C/PE``)."""
        return self.C / self.pe if self.kind == "accpool" else 0.0

    def cycles_per_frame(self) -> float:
        return self.cycles_per_position() * self.n_out + self.cycles_per_input() * self.n_in

    def in_width(self) -> int:
        """Elements per word this layer reads: SIMD (MVAU, padding), PE (depthwise and pooling windows), else PE."""
        return self.simd if self.kind in ("mvau", "pad") else self.pe

    def limits(self) -> tuple[int, int]:
        """(largest PE, largest SIMD) of the kind: PE divides this, SIMD that."""
        return {"mvau": (self.MH, self.MW), "vvau": (self.C, self.k2), "pad": (1, self.C)}.get(
            self.kind, (self.C, 1))


def positions(shape: tuple[int, ...]) -> int:
    """Positions a tensor streams in: the product of its spatial axes (axes 2…), 1 for a vector."""
    return int(np.prod(shape[2:])) if len(shape) >= 3 else 1


def channels(shape: tuple[int, ...]) -> int:
    """Elements per position: axis 1 of a map, every element of a vector."""
    return int(shape[1]) if len(shape) >= 3 else int(np.prod(shape[1:])) if len(shape) > 1 else 1


def classify(node: onnx.NodeProto, shapes: dict) -> Fold:
    """The FINN kind and dimensions of ``node`` (shapes from ``infer_shapes`` of the static graph)."""
    op = node.op_type
    out = shapes[node.output[0]][0]
    streamed = [i for i in node.input if i and i in shapes and len(shapes[i][0]) >= 1]
    x = shapes[streamed[0]][0] if streamed else out
    C, n_out, n_in, c_in = channels(out), positions(out), positions(x), channels(x)
    mh, mw, k2, kind = C, 1, 1, "eltwise"
    if op in MOVE_OPS:
        kind = "move"
    elif op in WINDOW_OPS and op not in POOL_OPS:
        w = shapes[node.input[3 if op == "QLinearConv" else 1]][0]
        k2 = int(np.prod(w[2:]))
        group = attrs(node).get("group", 1)
        if group > 1 and group == c_in and c_in == C:
            kind = "vvau"
        else:
            kind, mh, mw = "mvau", C, k2 * int(w[1])
    elif op in MATMULS or op == "Gemm":
        kind = "mvau"
        a = shapes[node.input[0]][0]
        trans_a = attrs(node).get("transA", 0) if op == "Gemm" else 0
        mw = int(a[0] if trans_a and len(a) == 2 else a[-1])
        mh = int(out[-1])
        C = mh
    elif op in POOL_OPS:
        spec = window_spec(node, x, out, None)
        kind, k2 = "pool", int(np.prod([k for k, *_ in spec]))
    elif op in GLOBAL_POOLS or op in REDUCE_OPS:
        kind = "accpool"
    elif op == "Pad":
        kind = "pad"
    elif op in ("Resize", "Upsample"):
        kind = "upsample"
    return Fold(node.name, op, kind, C, mh, mw, k2, c_in, n_in, n_out)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _largest_divisor(n: int, cap: int) -> int:
    return max(d for d in _divisors(n) if d <= max(1, cap))


def set_folding(fold: Fold, target: float) -> None:
    """FINN's ``SetFolding`` rule (transformation/fpgadataflow/set_folding.py) for one node: an MVAU raises SIMD
    through the divisors of MW, then PE through those of MH; a VVAU raises PE, then SIMD; every other kind raises
    PE (SIMD for padding) — each until the cycles per frame fall below ``target`` (or the dimension is used up)."""
    fold.pe, fold.simd = 1, 1
    if fold.kind == "move":
        return
    max_pe, max_simd = fold.limits()
    order = {"mvau": ("simd", "pe"), "vvau": ("pe", "simd"), "pad": ("simd",)}.get(fold.kind, ("pe",))
    for attr in order:
        for val in _divisors(max_simd if attr == "simd" else max_pe):
            setattr(fold, attr, val)
            if fold.cycles_per_frame() < target:
                return


def _check(fold: Fold, pe: int, simd: int, source: str) -> None:
    max_pe, max_simd = fold.limits()
    if pe < 1 or simd < 1 or max_pe % pe or max_simd % simd:
        what = {"mvau": f"MH={fold.MH} (PE) and MW={fold.MW} (SIMD)", "vvau": f"C={fold.C} (PE) and k²={fold.k2} (SIMD)",
                "pad": f"C={fold.C} (SIMD)"}.get(fold.kind, f"C={fold.C} (PE)")
        raise ConfigError(f"folding {source}: PE={pe}, SIMD={simd} does not divide {fold.kind} node '{fold.node}' "
                          f"{what}; use divisors")


def read_folding(path: str | os.PathLike) -> dict:
    """A folding file as a dict (one-line ``InputError`` when it is missing or not a JSON object)."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError(f"folding file '{p}' does not exist") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"folding file '{p}' is not readable JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise InputError(f"folding file '{p}' must hold a JSON object {{node: {{PE, SIMD}}}}")
    return raw


def _entry(val, where: str) -> tuple[int, int]:
    if isinstance(val, dict) and ("PE" in val or "SIMD" in val):
        pe, simd = val.get("PE", 1), val.get("SIMD", 1)
        if all(isinstance(v, int) and not isinstance(v, bool) for v in (pe, simd)):
            return pe, simd
    raise ConfigError(f"folding {where} needs integer PE and/or SIMD, got {val!r}")


def fold_graph(model: onnx.ModelProto, shapes: dict, live: list[str], folding: dict | None = None,
               macs_per_cycle: float | None = None) -> dict[str, Fold]:
    """PE/SIMD for every streamed node of ``model`` (``live``: node names in graph order).

    ``folding``: the file's dict (see the module). Unlisted nodes without a default are folded by
    :func:`set_folding` to the slowest listed node's cycles, or — without a file — to the II a MAC budget gives:
    ``ceil(total MACs / macs_per_cycle)`` (every node then as parallel as that target needs).
    """
    nodes = {n.name: n for n in model.graph.node}
    folds = {name: classify(nodes[name], shapes) for name in live}
    folding = dict(folding or {})
    defaults = folding.pop("Defaults", None)
    unknown = sorted(set(folding) - set(nodes))
    if unknown:
        raise ConfigError(f"folding names {len(unknown)} node(s) not in the graph (e.g. '{unknown[0]}'); use the "
                          "ONNX node names")
    fixed: set[str] = set()
    for name, f in folds.items():
        if name in folding:
            f.pe, f.simd = _entry(folding[name], f"entry '{name}'")
            _check(f, f.pe, f.simd, f"entry '{name}'")
            fixed.add(name)
        elif isinstance(defaults, dict) and defaults and f.kind != "move":
            d = defaults.get(f.kind) if any(k in KINDS for k in defaults) else defaults
            if d is None:
                continue
            pe, simd = _entry(d, f"Defaults for {f.kind}")
            max_pe, max_simd = f.limits()
            f.pe, f.simd = _largest_divisor(max_pe, pe), _largest_divisor(max_simd, simd)
            fixed.add(name)
    if fixed:
        target = max(folds[n].cycles_per_frame() for n in fixed) + 1
    else:
        macs = sum(f.MH * f.MW * f.n_out if f.kind == "mvau" else f.C * f.k2 * f.n_out if f.kind == "vvau" else 0
                   for f in folds.values())
        target = math.ceil(macs / (macs_per_cycle or 4096.0)) + 1
    for name, f in folds.items():
        if name not in fixed:
            set_folding(f, target)
    return folds


def folding_dict(folds: dict[str, Fold]) -> dict[str, dict[str, int]]:
    """``{node: {"PE": p, "SIMD": s}}`` for every folded (non-wiring) node: the file format."""
    return {n: {"PE": f.pe, "SIMD": f.simd} for n, f in folds.items() if f.kind != "move"}
