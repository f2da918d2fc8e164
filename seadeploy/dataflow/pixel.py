"""Analytic timing of a streaming accelerator at pixel (position) granularity (docs/dataflow.md §3).

A tensor streams position by position in row-major order (all channels of one pixel, ⌈C/width⌉ words). Every
node is a FINN-style layer folded by :mod:`~seadeploy.dataflow.folding`:

* output position ``i`` needs, of each streamed input ``j``, the positions up to ``hi_j(i)`` — the per-op rules of
  the row model (:mod:`~seadeploy.dataflow.propagate`) applied to position *indices* over both spatial axes
  (a k×k stride-s window: input ``(s·r + k−1−p, s·c + k−1−p)``; elementwise: the same position; a broadcast gate:
  its one position; a global pool: the frame's last position; nearest upsampling: ``(⌊r/f⌋, ⌊c/f⌋)``);
* a layer starts position ``i`` once those have arrived and ``c`` cycles after its previous start:
  ``S_i = max(R_i, S_{i−1} + c)``, closed form ``S = i·c + cummax(R − i·c)``; the position leaves at
  ``S_i + c + L`` (``c``: FINN's cycles per position for the folding, ``L``: fixed pipeline depth);
* an accumulating pool (GlobalAccPool) is one server: accumulate each input position (``C/PE`` cycles, in
  arrival order), and after the last one an output needs, emit it (``C/PE`` cycles) — a max-plus prefix
  over the task sequence;
* wiring ops (Reshape, Flatten) pass positions on at no cost;
* the graph input sends one position every ``II / N_in`` cycles, ``II = max(N_in, max_n cycles_per_frame(n))``.

Several frames back to back are computed in one pass (the arrays of frame f follow those of frame f−1), so
bunching carried from one frame into the next is in the figures; latencies are those of the last frame.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import onnx

from seadeploy.dataflow.arrival import pad_dims
from seadeploy.dataflow.folding import Fold, fold_graph, positions
from seadeploy.dataflow.hardware import NONE_NEEDED, Graph, Hardware, op_class, rule_for


def position_grid(shape: tuple[int, ...]) -> np.ndarray:
    """Row-major position index of every position of a tensor, shaped to broadcast against it."""
    if len(shape) < 3:
        return np.zeros((1,) * len(shape))
    return np.arange(positions(shape), dtype=float).reshape((1, 1, *shape[2:]))


def need_map(g: Graph, node: onnx.NodeProto, j: int, sign: float) -> np.ndarray | None:
    """Per output position of ``node``: the last (``sign`` +1) or first (−1) position of input ``j`` it reads;
    ``-1`` / ``NONE_NEEDED`` where it reads none; ``None`` where the rule's layout does not match."""
    base = g.base
    ins = []
    for k, name in enumerate(node.input):
        t = base.times.get(name) if name else None
        if t is None:
            ins.append(None)
            continue
        shp = base.shape(name)
        ins.append(sign * position_grid(shp) if k == j else np.full((1,) * len(shp), -NONE_NEEDED if sign < 0 else -1.0))
    outs, _ = rule_for(node.op_type)(base, node, ins)
    out_shape = base.shape(node.output[0])
    if outs[0] is None:
        return None
    o = pad_dims(np.asarray(outs[0], dtype=float), len(out_shape))
    if o.ndim != len(out_shape):
        return None
    if len(out_shape) < 3:
        return np.array([float(np.max(o)) * sign])
    o = o.max(axis=(0, 1), keepdims=True)
    try:
        o = np.broadcast_to(o, (1, 1, *out_shape[2:]))
    except ValueError:
        return None
    return o.ravel() * sign


@dataclasses.dataclass
class Edge:
    """Input ``index`` of a stage: the tensor it reads and, per output position, the positions it needs."""

    index: int
    tensor: str
    n: int  # positions per frame of the tensor
    hi: np.ndarray  # last input position each output position needs (−1: none)
    lo: np.ndarray  # first (n: none)


@dataclasses.dataclass
class Stage:
    """A node at pixel granularity: its folding, latency and input edges."""

    node: onnx.NodeProto
    fold: Fold
    latency: float
    edges: list[Edge]

    @property
    def name(self) -> str:
        return self.node.name


@dataclasses.dataclass
class PixelDesign:
    """A graph, folded: stages in graph order, the source's rate and the design II."""

    graph: Graph
    stages: list[Stage]
    folds: dict[str, Fold]
    n_in: int
    ii: float

    @property
    def period(self) -> float:
        """Cycles between two positions of the graph input."""
        return self.ii / self.n_in


def design(g: Graph, hw: Hardware, folding: dict | None = None) -> PixelDesign:
    """Fold every streamed node of ``g`` (``folding``: the folding file's dict) and build its need maps."""
    live = [n for n in g.model.graph.node if n.output and g.base.times.get(n.output[0]) is not None]
    folds = fold_graph(g.model, g.shapes, [n.name for n in live], folding, hw.macs_per_cycle)
    stages = []
    for n in live:
        edges = []
        for j, name in enumerate(n.input):
            if not name or g.base.times.get(name) is None:
                continue
            n_in = positions(g.base.shape(name))
            n_out = folds[n.name].n_out
            hi, lo = need_map(g, n, j, 1.0), need_map(g, n, j, -1.0)
            if hi is None or lo is None or hi.size != n_out:  # unmatched layout: every output reads the whole input
                hi, lo = np.full(n_out, n_in - 1.0), np.zeros(n_out)
            hi = np.maximum.accumulate(np.round(hi)).astype(np.int64)
            lo = np.where(lo >= NONE_NEEDED / 2, n_in, np.round(lo)).astype(np.int64)
            edges.append(Edge(j, name, n_in, hi, np.minimum.accumulate(lo[::-1])[::-1]))
        fold = folds[n.name]
        lat = 0.0 if fold.kind == "move" else float(hw.latency.get(op_class(n.op_type), 0))
        stages.append(Stage(n, fold, lat, edges))
    n_in = positions(g.shapes[g.input_name][0])
    ii = max(float(n_in), max((f.cycles_per_frame() for f in folds.values()), default=0.0))
    return PixelDesign(g, stages, folds, n_in, ii)


@dataclasses.dataclass
class Timing:
    """Times (cycles) of ``frames`` frames: per tensor the arrival of each position, per stage the start of each
    output position and, per edge, when each input position leaves its FIFO."""

    frames: int
    arrive: dict[str, np.ndarray]
    start: dict[str, np.ndarray]
    release: dict[tuple[str, int], np.ndarray]
    scale: float


def _gather(arr: np.ndarray, n: int, idx: np.ndarray, frames: int) -> np.ndarray:
    """``arr[f·n + idx[i]]`` for every frame f and output position i (−1: no constraint)."""
    glob = (np.arange(frames)[:, None] * n + np.maximum(idx, 0)[None, :]).ravel()
    vals = arr[glob]
    return np.where(np.tile(idx, frames) < 0, -np.inf, vals)


def _fifo_order(release: np.ndarray, arrive: np.ndarray) -> np.ndarray:
    """A FIFO releases in order and never before arrival."""
    return np.maximum.accumulate(np.maximum(release, arrive))


def run(d: PixelDesign, frames: int, scale: float = 1.0, period: float | None = None) -> Timing:
    """Propagate ``frames`` frames through the design (``scale`` multiplies every service time and latency;
    ``period``: the source's position period instead of the design's)."""
    g = d.graph
    n_src = d.n_in
    period = d.period if period is None else period
    src = (np.arange(frames)[:, None] * period * n_src + np.arange(n_src)[None, :] * period).ravel()
    arrive: dict[str, np.ndarray] = {g.input_name: src}
    start: dict[str, np.ndarray] = {}
    release: dict[tuple[str, int], np.ndarray] = {}
    for st in d.stages:
        f = st.fold
        n_out = f.n_out
        c, lat = scale * f.cycles_per_position(), (scale * st.latency if period == d.period else 0.0)
        need = np.full(frames * n_out, -np.inf)
        for e in st.edges:
            need = np.maximum(need, _gather(arrive[e.tensor], e.n, e.hi, frames))
        need = np.maximum(need, 0.0)
        if f.kind == "accpool" and len(st.edges) == 1:
            s, out, rel = _accumulate(st.edges[0], arrive[st.edges[0].tensor], n_out, frames,
                                      scale * f.cycles_per_input(), c)
            release[(st.name, st.edges[0].index)] = _fifo_order(rel, arrive[st.edges[0].tensor])
            out = out + lat
        else:
            i = np.arange(frames * n_out) * c
            s = i + np.maximum.accumulate(need - i)
            out = s + c + lat
            for e in st.edges:
                a = arrive[e.tensor]
                pos = np.arange(e.n)
                last = np.searchsorted(e.lo, pos, side="right") - 1  # last output position reading each input
                glob = (np.arange(frames)[:, None] * n_out + np.maximum(last, 0)[None, :]).ravel()
                rel = np.where(np.tile(last, frames) >= 0, s[glob], a)
                release[(st.name, e.index)] = _fifo_order(rel, a)
        start[st.name] = s
        for o in st.node.output:
            if o:
                arrive[o] = out
    return Timing(frames, arrive, start, release, scale)


def _accumulate(e: Edge, a: np.ndarray, n_out: int, frames: int, c_in: float, c_out: float):
    """One accumulator serving, per frame, each input position in turn and each output after the last input it
    needs: ``done_k = C_k + cummax(ready_k − C_{k−1})`` over the task sequence (``C``: cumulative cost)."""
    n = e.n
    emit_after = np.clip(e.hi, 0, n - 1)  # output i is emitted right after input emit_after[i] is accumulated
    # Task order within a frame: input m, then the outputs emitted after it.
    key = np.concatenate([np.arange(n) * 2.0, emit_after * 2.0 + 1.0])
    order = np.argsort(key, kind="stable")
    is_in = np.concatenate([np.ones(n, bool), np.zeros(n_out, bool)])[order]
    which = np.concatenate([np.arange(n), np.arange(n_out)])[order]
    per = n + n_out
    ready = np.full(frames * per, -np.inf)
    cost = np.tile(np.where(is_in, c_in, c_out), frames)
    fidx = np.repeat(np.arange(frames), per)
    tin = np.tile(is_in, frames)
    tw = np.tile(which, frames)
    ready[tin] = a[fidx[tin] * n + tw[tin]]
    cum = np.cumsum(cost)
    done = cum + np.maximum.accumulate(ready - (cum - cost))
    begin = done - cost
    rel = np.empty(frames * n)
    rel[fidx[tin] * n + tw[tin]] = begin[tin]
    out = np.empty(frames * n_out)
    tout = ~tin
    out[fidx[tout] * n_out + tw[tout]] = done[tout]
    s = np.empty(frames * n_out)
    s[fidx[tout] * n_out + tw[tout]] = begin[tout]
    return s, out, rel


def frames_needed(d: PixelDesign) -> int:
    """Frames to compute so that the last one runs in steady state: those in flight during one frame's latency,
    plus two."""
    one = run(d, 1)
    outs = [o.name for o in d.graph.model.graph.output if o.name in one.arrive]
    latency = max((float(np.max(one.arrive[o])) for o in outs), default=0.0)
    return max(3, math.ceil(latency / d.ii) + 2)


def latencies(d: PixelDesign, t: Timing, frame: int) -> tuple[float, float]:
    """(fill, frame latency) of ``frame``: its first / last output position after its first input position."""
    outs = [o.name for o in d.graph.model.graph.output if o.name in t.arrive]
    t0 = frame * d.ii
    firsts, lasts = [], []
    for o in outs:
        n = positions(d.graph.base.shape(o))
        part = t.arrive[o][frame * n:(frame + 1) * n]
        firsts.append(float(part.min()))
        lasts.append(float(part.max()))
    return (min(firsts) - t0, max(lasts) - t0) if outs else (0.0, 0.0)


def ordered_limit(d: PixelDesign) -> Timing:
    """The infinite-speed schedule that keeps the hardware's order: the source one position per time unit, every
    service time scaled so that all of them together stay below half a unit (latencies 0). Positions that a
    global squeeze releases at one instant still pass each layer one after the other, in order."""
    total = sum(s.fold.cycles_per_frame() for s in d.stages) or 1.0
    return run(d, 1, scale=0.5 / total, period=1.0)
