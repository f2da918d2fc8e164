"""Discrete-event simulation of a streaming accelerator at pixel (position) granularity (docs/dataflow.md §5).

Written to check :mod:`seadeploy.dataflow.pixel` without sharing its timing code: this module reads the ONNX
graph and its shapes (:mod:`seadeploy.graphs`) and a folding ``{node: (PE, SIMD)}``, and has its own
node rules (:mod:`seadeploy.dataflow.sim_rules`), written from how the hardware layers work:

* which input positions an output position reads: a k×k stride-s window reads rows ``s·r − p … s·r − p + d(k−1)``
  and the same columns; an elementwise op the same position (a 1-position operand: its only one); a reduction
  the positions it reduces; nearest / linear resizing the positions its interpolation reads; a reshape that
  keeps the positions passes them on;
* cycles per output position from the folding (MVAU ``(MH/PE)·(MW/SIMD)``, depthwise ``C·k²/(PE·SIMD)``, pooling
  window ``C·k²/PE``, padding ``C/SIMD``, every other layer ``C/PE``; wiring 0); an accumulating pool spends
  ``C/PE`` per input position and per output position, one task after the other;
* a layer fires its output positions in order, frame after frame: a firing starts when the positions it reads
  are in its input FIFOs, ``c`` after its previous start and while none of its finished positions waits for
  room; it frees the input positions no later firing reads; the position is delivered ``c + latency`` later to
  every consumer at once (backpressure: not while any of their FIFOs is full);
* every edge is a FIFO of a given capacity in positions (unbounded by default); the graph input sends one
  position every ``II / N_in`` cycles; a liveness watchdog reports a deadlock (full FIFOs, blocked layers) when no
  event is left before the frames are through.

Hand-written event loop on ``heapq`` with a same-instant queue: a SimPy process per layer would run far slower
for ~10⁶ position events.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections import deque
from typing import Any

import numpy as np
import onnx

from seadeploy.backends.ort import shapes_by_running
from seadeploy.dataflow.sim_rules import ACCUMULATORS, costs, count, reads
from seadeploy.graphs.index import constant_values
from seadeploy.graphs.shapes import infer_shapes

INF = math.inf


@dataclasses.dataclass
class Fifo:
    producer: str
    consumer: str
    index: int
    n: int  # positions per frame
    capacity: float = INF
    pushed: int = 0
    freed: int = 0
    peak: int = 0

    def held(self) -> int:
        return max(self.pushed - self.freed, 0)


@dataclasses.dataclass
class Layer:
    name: str
    n: int
    c: float
    c_in: float
    latency: float
    tasks: list | None = None  # an accumulator's per-frame sequence: m ≥ 0 accumulate input m, −1−i emit output i
    ins: list = dataclasses.field(default_factory=list)
    outs: list = dataclasses.field(default_factory=list)
    last: dict = dataclasses.field(default_factory=dict)  # fifo index → last needed per output
    keep: dict = dataclasses.field(default_factory=dict)  # fifo index → first needed by the next output
    fired: int = 0
    task: int = 0
    free_at: float = 0.0
    outq: deque = dataclasses.field(default_factory=deque)
    try_at: float = INF
    blocked_since: float | None = None
    blocked: float = 0.0
    sink: bool = False


@dataclasses.dataclass
class PixelSim:
    """Measured figures of one run (cycles; FIFO peaks in positions, per ``(consumer, input index)``)."""

    frames: int
    deadlock: bool
    reason: str
    initiation_interval_cycles: float
    fill_latency_cycles: float
    frame_latency_cycles: float
    first_frame: tuple[float, float]
    fifo_positions: dict[tuple[str, int], int]
    blocked: dict[str, float]
    events: int

    def summary(self) -> dict[str, Any]:
        return {"frames": self.frames, "deadlock": self.deadlock, "reason": self.reason,
                "initiation_interval_cycles": self.initiation_interval_cycles,
                "fill_latency_cycles": self.fill_latency_cycles, "frame_latency_cycles": self.frame_latency_cycles,
                "first_frame_fill_latency_cycles": self.first_frame[0],
                "first_frame_latency_cycles": self.first_frame[1],
                "blocked_cycles": sum(self.blocked.values()), "events": self.events}


def build(model: onnx.ModelProto, folding: dict[str, tuple[int, int]], latency: dict[str, float],
          depths: dict[tuple[str, int], int] | None) -> tuple[dict[str, Layer], float, str]:
    """Layers and FIFOs of a static graph; returns ``(layers, source period, input name)``."""
    shapes = infer_shapes(model, shapes_by_running)
    consts = constant_values(model)
    inits = {i.name for i in model.graph.initializer}
    src_name = next(vi.name for vi in model.graph.input if vi.name not in inits)
    n_src = count(shapes[src_name][0])
    layers = {"__input__": Layer("__input__", n_src, 0.0, 0.0, 0.0)}
    producer = {src_name: "__input__"}
    per_frame = [float(n_src)]
    for node in model.graph.node:
        live = [j for j, i in enumerate(node.input) if i in producer]
        if not live or not node.output:
            continue
        pe, simd = folding.get(node.name, (1, 1))
        c, c_in = costs(node, shapes, pe, simd)
        y = shapes[node.output[0]][0]
        lay = Layer(node.name, count(y), c, c_in, float(latency.get(node.name, 0.0)))
        for j in live:
            lo, hi = reads(node, j, shapes, consts)
            n_in = count(shapes[node.input[j]][0])
            hi = np.maximum.accumulate(hi).astype(np.int64)
            lo = np.minimum.accumulate(np.asarray(lo)[::-1])[::-1]
            lay.last[j] = hi.tolist()
            lay.keep[j] = np.append(lo[1:], n_in).tolist()
            cap = INF if depths is None else depths.get((node.name, j), INF)
            f = Fifo(producer[node.input[j]], node.name, j, n_in, cap)
            lay.ins.append(f)
            layers[f.producer].outs.append(f)
        if node.op_type in ACCUMULATORS and len(live) == 1:
            hi = lay.last[live[0]]
            tasks, i = [], 0
            for m in range(lay.ins[0].n):
                tasks.append(m)
                while i < lay.n and hi[i] <= m:
                    tasks.append(-1 - i)
                    i += 1
            tasks += [-1 - k for k in range(i, lay.n)]
            lay.tasks = tasks
        per_frame.append(c * lay.n + c_in * (lay.ins[0].n if lay.tasks else 0))
        for o in node.output:
            producer[o] = node.name
        layers[node.name] = lay
    for o in model.graph.output:
        if o.name in producer:
            layers[producer[o.name]].sink = True
    ii = max(per_frame)
    return layers, ii / n_src, src_name


def simulate_pixel(model: onnx.ModelProto, folding: dict[str, tuple[int, int]], latency: dict[str, float] | None = None,
                   depths: dict[tuple[str, int], int] | None = None, frames: int = 3,
                   max_events: int = 100_000_000) -> PixelSim:
    """Run ``frames`` frames through the static graph ``model`` folded by ``folding`` (``{node: (PE, SIMD)}``), with
    FIFO capacities ``depths`` in positions per ``(node, input index)`` (unlisted or ``None``: unbounded)."""
    layers, period, _ = build(model, folding, latency or {}, depths)
    src = layers["__input__"]
    total_src = frames * src.n
    heap: list = []
    ready: deque = deque()
    now = [0.0]
    seq = [0]
    frame_in: list[float] = []
    out_first: dict[int, float] = {}
    out_last: dict[int, float] = {}
    got: dict[int, int] = {}
    sinks = [x for x in layers.values() if x.sink]
    per_frame_out = sum(x.n for x in sinks)

    def at(t: float, kind: int, name: str) -> None:
        if t == now[0]:
            ready.append((kind, name))
        else:
            seq[0] += 1
            heapq.heappush(heap, (t, seq[0], kind, name))

    def wake(lay: Layer, t: float) -> None:
        if t < lay.try_at:
            lay.try_at = t
            at(t, 1, lay.name)

    def deliver(lay: Layer, t: float) -> None:
        """Hand finished positions to every consumer FIFO, in order, while all have room."""
        while lay.outq:
            if any(f.pushed - f.freed >= f.capacity for f in lay.outs):
                if lay.blocked_since is None:
                    lay.blocked_since = t
                return
            pos = lay.outq.popleft()
            for f in lay.outs:
                f.pushed += 1
                f.peak = max(f.peak, f.pushed - f.freed)
                wake(layers[f.consumer], t)
            if lay is src and pos % src.n == 0:
                frame_in.append(t)
            if lay.sink:
                k = pos // lay.n
                out_first.setdefault(k, t)
                got[k] = got.get(k, 0) + 1
                if got[k] == per_frame_out:
                    out_last[k] = t
        if lay.blocked_since is not None:
            lay.blocked += t - lay.blocked_since
            lay.blocked_since = None
        wake(lay, t)

    def free(f: Fifo, upto: int, t: float) -> None:
        if upto > f.freed:
            f.freed = upto
            prod = layers[f.producer]
            if prod.outq:
                at(t, 2, prod.name)

    def fire(lay: Layer, t: float) -> None:
        if lay.outq:
            return
        if t < lay.free_at:
            wake(lay, lay.free_at)
            return
        if lay is src:
            if lay.fired < total_src:
                lay.outq.append(lay.fired)
                lay.fired += 1
                lay.free_at = t + period
                deliver(lay, t)
            return
        if lay.tasks is not None:
            f = lay.ins[0]
            k, step = divmod(lay.task, len(lay.tasks))
            m = lay.tasks[step]
            if m >= 0:
                if f.pushed < k * f.n + m + 1:
                    return
                free(f, k * f.n + m + 1, t)
                lay.free_at = t + lay.c_in
            else:
                lay.free_at = t + lay.c
                at(lay.free_at + lay.latency, 3, lay.name)
            lay.task += 1
            wake(lay, lay.free_at)
            return
        k, r = divmod(lay.fired, lay.n)
        for f in lay.ins:
            if f.pushed < k * f.n + lay.last[f.index][r] + 1:
                return
        for f in lay.ins:
            free(f, k * f.n + lay.keep[f.index][r], t)
        lay.fired += 1
        lay.free_at = t + lay.c
        at(lay.free_at + lay.latency, 3, lay.name)
        wake(lay, lay.free_at)

    emitted: dict[str, int] = {}
    wake(src, 0.0)
    events = 0
    while (ready or heap) and len(out_last) < frames:
        if ready:
            kind, name = ready.popleft()
        else:
            now[0], _, kind, name = heapq.heappop(heap)
        events += 1
        if events > max_events:
            break
        lay = layers[name]
        t = now[0]
        if kind == 1:
            if t != lay.try_at:
                continue
            lay.try_at = INF
            fire(lay, t)
        elif kind == 3:  # a position finishes: positions leave in firing order
            i = emitted.get(name, 0)
            emitted[name] = i + 1
            lay.outq.append(i)
            deliver(lay, t)
        else:
            deliver(lay, t)
    done = len(out_last) >= frames
    reason = ""
    if not done:
        full = [f"{f.producer}→{f.consumer}[{f.index}] ({f.held()} positions)" for x in layers.values() for f in x.ins
                if f.held() >= f.capacity]
        stuck = [x.name for x in layers.values() if x.outq]
        reason = ("event limit reached" if events > max_events else
                  f"deadlock: no layer can move; full FIFOs {full[:4]}{' …' if len(full) > 4 else ''}; "
                  f"blocked layers {stuck[:4]}")
    last = frames - 1
    lasts = [out_last[k] for k in sorted(out_last)]
    ii = lasts[-1] - lasts[-2] if len(lasts) > 1 else math.nan
    fill = out_first[last] - frame_in[last] if done else math.nan
    frame = out_last[last] - frame_in[last] if done else math.nan
    first = (out_first[0] - frame_in[0], out_last[0] - frame_in[0]) if 0 in out_last else (math.nan, math.nan)
    fifo = {(f.consumer, f.index): f.peak for x in layers.values() for f in x.ins}
    blocked = {x.name: x.blocked + ((now[0] - x.blocked_since) if x.blocked_since is not None else 0.0)
               for x in layers.values()}
    return PixelSim(frames, not done, reason, ii, fill, frame, first, fifo, blocked, events)
