"""Row-level discrete-event simulation of a layer-pipelined streaming accelerator (row granularity).

Written separately from the analytic model (:mod:`seadeploy.dataflow.pipeline`) to check it: no
arrival-time algebra is shared. What is shared is the description of the design — the graph, which
rows of each input an output row reads, and each stage's hardware cost
(:func:`~seadeploy.dataflow.hardware.stage_costs`) — and the simulator executes it:

* every node is a stage that fires its output rows in order, frame after frame; a firing starts when
  the rows it reads are in its input FIFOs, ``gap`` after its previous start, and while its output is
  not blocked; it reads (and releases the rows no later firing needs) at its start and delivers the
  row ``service + latency`` later; a reducing stage instead accumulates each input row as it arrives
  (``service_acc`` each, releasing it at once) and emits an output row ``latency`` after accumulating
  the last row it needs;
* every edge is a FIFO of ``depth`` rows (the arriving row included); a stage delivers a row to all its consumers at once and is blocked while any of them is
  full (backpressure);
* the graph input streams one row every ``period`` cycles for ``frames`` frames;
* a liveness watchdog: when no event is left and the frames are not done, the run is a deadlock and
  the full FIFOs and blocked stages are reported.

Which rows an output row reads (``hi``: the last, ``lo``: the first) comes from the per-op row rules of
:mod:`seadeploy.dataflow.propagate` applied to row *indices* (not times):
:func:`~seadeploy.dataflow.hardware.row_index`, part of the graph description both models share. Hand-written event loop on
``heapq``: a SimPy process per stage would add a dependency and run slower for ~10⁵ row events.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections import deque
from typing import Any

import numpy as np

from seadeploy.dataflow.arrival import pad_dims
from seadeploy.dataflow.hardware import (
    NONE_NEEDED,
    PASS_THROUGH_ROWS,
    Graph,
    Hardware,
    Stage,
    row_index,
    rule_for,
    stage_costs,
)
from seadeploy.errors import ConfigError

INF = math.inf


@dataclasses.dataclass
class Edge:
    """A FIFO from a producer stage into input ``index`` of ``consumer``."""

    producer: str
    consumer: str
    index: int
    tensor: str
    rows: int  # rows per frame
    capacity: float = INF
    pushed: int = 0
    freed: int = 0  # rows below this global index are released (lazily: a row released before it arrives)
    max_held: int = 0  # most rows resident at once, the arriving one included

    def held(self) -> int:
        return self.pushed - self.freed if self.pushed > self.freed else 0


@dataclasses.dataclass
class Node:
    name: str
    rows: int
    gap: float
    service: float
    service_acc: float
    latency: float
    accumulate: bool
    ins: list[Edge] = dataclasses.field(default_factory=list)
    outs: list[Edge] = dataclasses.field(default_factory=list)
    hi: dict[int, list[int]] = dataclasses.field(default_factory=dict)
    lo_next: dict[int, list[int]] = dataclasses.field(default_factory=dict)
    sink: bool = False
    # state
    fired: int = 0  # output rows started (global, across frames)
    consumed: int = 0  # accumulated input rows (reducing stages)
    next_start: float = 0.0
    last_emit: float = -INF
    outq: deque = dataclasses.field(default_factory=deque)
    blocked_since: float | None = None
    starved_since: float | None = None
    blocked: float = 0.0
    starved: float = 0.0
    busy: float = 0.0
    try_at: float = INF
    row_times: dict = dataclasses.field(default_factory=dict)  # frame → [first, last] delivery time


def build(g: Graph, hw: Hardware, depths: dict[tuple[str, int], int] | None = None,
          stages: dict[str, Stage] | None = None) -> tuple[dict[str, Node], float]:
    """Stages and FIFOs of ``g``; returns ``(nodes, source period in cycles)``.

    ``depths``: rows per FIFO ``(consumer, input index)``; unlisted FIFOs get ``PASS_THROUGH_ROWS``
    (``None``: every FIFO unbounded).
    """
    stages = stages if stages is not None else stage_costs(g, hw)
    base = g.base
    h_in = g.input_rows
    ii = max(max((s.cycles_per_frame for s in stages.values()), default=0.0), float(h_in))
    period = ii / h_in
    producer = {g.input_name: "__input__"}
    nodes: dict[str, Node] = {"__input__": Node("__input__", h_in, period, 0.0, 0.0, 0.0, False)}
    for n in g.model.graph.node:
        st = stages.get(n.name)
        if st is None:
            continue
        out = n.output[0]
        shp = base.shape(out) if out in base.shapes else ()
        # The row period of the buffer model (input rows per row) in cycles; 0 for non-image tensors.
        row_period = period * h_in / shp[2] if len(shp) == 4 and shp[2] > 1 else 0.0
        rows = int(np.size(base.times[out]))
        node = Node(n.name, rows, 0.0, st.service_row, st.service_acc, st.latency, False)
        live = [j for j, i in enumerate(n.input) if i and base.times.get(i) is not None]
        need, reduced = rule_for(n.op_type)(base, n, [base.times.get(i) if i else None for i in n.input])
        node.accumulate = bool(reduced) and len(live) == 1
        if len(shp) == 4 and shp[2] > 1 and rows > 1 and need[0] is not None:
            # A floor-mode crop: rows may be closer than H_in / H (the same rule as the buffer model's).
            steps = np.diff(np.broadcast_to(pad_dims(need[0], 4), (1, 1, shp[2], 1))[0, 0, :, 0])
            steps = steps[steps > 0.5]
            if steps.size:
                row_period = min(row_period, float(steps.min()) * period)
        node.gap = row_period if node.accumulate else max(row_period, st.service_row)
        for j in live:
            src = n.input[j]
            if src not in producer:
                raise ConfigError(f"tensor '{src}' read by '{n.name}' has no producing stage")
            hi = row_index(g, n, j, 1.0)
            lo = row_index(g, n, j, -1.0)
            r_in = int(np.size(base.times[src]))
            if hi is None or lo is None or hi.size != rows:  # unmatched layout: read the whole input per row
                hi, lo = np.full(rows, r_in - 1.0), np.zeros(rows)
            node.hi[j] = np.maximum.accumulate(np.round(hi).astype(np.int64)).tolist()
            lo = np.where(lo >= NONE_NEEDED / 2, r_in, np.round(lo)).astype(np.int64)
            lo = np.minimum.accumulate(lo[::-1])[::-1]  # a row stays until no later firing reads it
            node.lo_next[j] = np.append(lo[1:], r_in).tolist()
            cap = INF if depths is None else depths.get((n.name, j), PASS_THROUGH_ROWS)
            e = Edge(producer[src], n.name, j, src, r_in, capacity=cap)
            node.ins.append(e)
            nodes[producer[src]].outs.append(e)
        for o in n.output:
            if o:
                producer[o] = n.name
        nodes[n.name] = node
    outputs = [o.name for o in g.model.graph.output if o.name in producer]
    for o in outputs:
        nodes[producer[o]].sink = True
    return nodes, period


@dataclasses.dataclass
class SimResult:
    """Measured figures of one simulation (cycles)."""

    frames: int
    deadlock: bool
    reason: str
    initiation_interval_cycles: float
    fill_latency_cycles: float
    frame_latency_cycles: float
    fifo_rows: dict[tuple[str, int], int]
    stalls: dict[str, dict[str, float]]
    events: int
    end_cycles: float
    first_frame: tuple = (math.nan, math.nan)  # (fill, frame latency) of frame 0 through an idle pipeline
    row_times: dict = dataclasses.field(default_factory=dict)  # node → frame → [first, last] delivery

    def summary(self) -> dict[str, Any]:
        return {"frames": self.frames, "deadlock": self.deadlock, "reason": self.reason,
                "initiation_interval_cycles": self.initiation_interval_cycles,
                "fill_latency_cycles": self.fill_latency_cycles, "frame_latency_cycles": self.frame_latency_cycles,
                "first_frame_fill_latency_cycles": self.first_frame[0], "first_frame_latency_cycles": self.first_frame[1],
                "blocked_cycles": sum(s["blocked"] for s in self.stalls.values()),
                "events": self.events, "end_cycles": self.end_cycles}


def simulate(g: Graph, hw: Hardware, depths: dict[tuple[str, int], int] | None = None, frames: int | None = None,
             stages: dict[str, Stage] | None = None, max_events: int = 50_000_000, max_frames: int = 200) -> SimResult:
    """Run frames through the pipeline of ``g`` (bounded FIFOs where ``depths`` says).

    ``frames=None``: once the first frame is out, run at least ``ceil(its latency / frame time) + 3`` frames (so
    the frames in flight overlap fully) and then until the frame latency is the same for three frames in a row
    (a stage kept busy all frame carries bunched rows into later frames; at most ``max_frames``).
    """
    nodes, _period = build(g, hw, depths, stages)
    order = {name: i for i, name in enumerate(nodes)}
    heap: list[tuple[float, int, int, str, int]] = []  # (time, kind, seq, node, row)
    seq = 0
    frame_in: list[float] = []
    out_first: dict[int, float] = {}
    out_last: dict[int, float] = {}
    sinks = [n for n in nodes.values() if n.sink]
    sink_rows = {n.name: n.rows for n in sinks}
    got: dict[int, int] = {}
    need_per_frame = sum(sink_rows.values())
    src = nodes["__input__"]
    target = frames if frames is not None else None
    adaptive = frames is None
    lead = 0
    total_src = frames * src.rows if frames is not None else INF

    current = [0.0]
    ready: deque = deque()  # events at the current time: no heap traffic for the many same-instant retries

    def schedule(t: float, kind: int, name: str, row: int = 0) -> None:
        nonlocal seq
        if t == current[0]:
            ready.append((kind, name, row))
            return
        seq += 1
        heapq.heappush(heap, (t, kind, seq, name, row))

    def want_try(node: Node, t: float) -> None:
        if t < node.try_at:
            node.try_at = t
            schedule(t, 1, node.name)

    def push_out(node: Node, now: float) -> None:
        outs = node.outs
        while node.outq:
            row = node.outq[0]
            for e in outs:
                if e.pushed - e.freed >= e.capacity:
                    if node.blocked_since is None:
                        node.blocked_since = now
                    return
            node.outq.popleft()
            span = node.row_times.get(row // node.rows)
            if span is None:
                node.row_times[row // node.rows] = [now, now]
            else:
                span[1] = now
            for e in outs:
                e.pushed += 1
                occ = e.pushed - e.freed
                if occ > e.max_held:
                    e.max_held = occ
                cons = nodes[e.consumer]
                if now < cons.try_at:
                    cons.try_at = now
                    ready.append((1, cons.name, 0))
            if node.sink:
                k, _r = divmod(row, node.rows)
                out_first.setdefault(k, now)
                got[k] = got.get(k, 0) + 1
                if got[k] == need_per_frame:
                    out_last[k] = now
                    set_target(now, k)
            if node is src and row % src.rows == 0:
                frame_in.append(now)
        if node.blocked_since is not None:
            node.blocked += now - node.blocked_since
            node.blocked_since = None
        want_try(node, now)

    def set_target(now: float, k: int) -> None:
        nonlocal target, total_src, lead
        if not adaptive:
            return
        lat = now - frame_in[k]
        if target is None:
            lead = math.ceil(lat / (src.rows * src.gap)) + 2  # frames in flight: keep the input that far ahead
            target = max(4, lead + 1)
        elif k >= target - 1 and k < max_frames - 1:
            prev = [out_last[j] - frame_in[j] for j in (k - 1, k - 2) if j in out_last]
            if any(abs(lat - v) > 1e-6 * src.rows * src.gap for v in prev):
                target = k + 2  # not settled: one more frame
        total_src = (target + lead) * src.rows
        want_try(src, now)

    def release(e: Edge, upto: int, now: float) -> None:
        if upto > e.freed:
            e.freed = upto
            prod = nodes[e.producer]
            if prod.outq:
                schedule(now, 0, prod.name)

    def try_start(node: Node, now: float) -> None:
        if node.outq or now < node.next_start:
            if not node.outq and now < node.next_start:
                want_try(node, node.next_start)
            return
        if node is src:
            if node.fired >= total_src:
                return
            node.outq.append(node.fired)
            node.fired += 1
            node.next_start = now + node.gap
            push_out(node, now)
            return
        if node.accumulate:
            e = node.ins[0]
            j = e.index
            if e.pushed <= node.consumed:
                if node.starved_since is None:
                    node.starved_since = now
                return
            if node.starved_since is not None:
                node.starved += now - node.starved_since
                node.starved_since = None
            m = node.consumed
            node.consumed += 1
            release(e, node.consumed, now)
            done = now + node.service_acc
            node.busy += node.service_acc
            node.next_start = done
            k, local = divmod(m, e.rows)
            hi = node.hi[j]
            last = local == e.rows - 1  # at the frame's last input row, rows that read nothing of it go out too
            while node.fired < (k + 1) * node.rows and (last or hi[node.fired - k * node.rows] <= local):
                start = max(done, node.last_emit + node.gap)
                node.last_emit = start
                schedule(start + node.latency, 2, node.name, node.fired)
                node.fired += 1
            want_try(node, done)
            return
        k, r = divmod(node.fired, node.rows)
        for e in node.ins:
            if e.pushed < k * e.rows + node.hi[e.index][r] + 1:
                if node.starved_since is None:
                    node.starved_since = now
                return
        if node.starved_since is not None:
            node.starved += now - node.starved_since
            node.starved_since = None
        for e in node.ins:
            release(e, k * e.rows + int(node.lo_next[e.index][r]), now)
        node.fired += 1
        node.busy += node.service
        node.next_start = now + node.gap
        schedule(now + node.service + node.latency, 2, node.name, node.fired - 1)
        want_try(node, node.next_start)

    want_try(src, 0.0)
    events = 0
    now = 0.0
    while ready or heap:
        if ready:
            kind, name, row = ready.popleft()
        else:
            now, kind, _, name, row = heapq.heappop(heap)
            current[0] = now
        events += 1
        if events > max_events:
            break
        node = nodes[name]
        if kind == 1:
            if now != node.try_at:
                continue
            node.try_at = INF
            try_start(node, now)
        elif kind == 2:
            node.outq.append(row)
            push_out(node, now)
        else:
            push_out(node, now)
        if target is not None and len(out_last) >= target:
            break
    done = target is not None and len(out_last) >= target
    reason = ""
    if not done:
        full = [f"{e.producer}→{e.consumer}[{e.index}] ({e.held()} rows)" for n in nodes.values() for e in n.ins
                if e.held() >= e.capacity]
        blocked = [n.name for n in nodes.values() if n.outq]
        reason = ("event limit reached" if events > max_events else
                  f"deadlock: no stage can move; full FIFOs {full[:5]}{' …' if len(full) > 5 else ''}; "
                  f"blocked stages {blocked[:5]}")
    # Steady state: the last frames (the first ones run through a pipeline still filling).
    lasts = [out_last[k] for k in sorted(out_last)]
    ii = (lasts[-1] - lasts[-3]) / 2 if len(lasts) > 2 else math.nan
    k = len(lasts) - 1
    fill = out_first[k] - frame_in[k] if k in out_first and len(frame_in) > k else math.nan
    frame = out_last[k] - frame_in[k] if k in out_last and len(frame_in) > k else math.nan
    first = (out_first[0] - frame_in[0], out_last[0] - frame_in[0]) if 0 in out_last else (math.nan, math.nan)
    fifo = {(e.consumer, e.index): e.max_held for n in nodes.values() for e in n.ins}
    stalls = {n.name: {"blocked": n.blocked + ((now - n.blocked_since) if n.blocked_since is not None else 0.0),
                       "starved": n.starved, "busy": n.busy} for n in nodes.values()}
    del order
    res = SimResult(target or 0, not done, reason, ii, fill, frame, fifo, stalls, events, now, first_frame=first)
    res.row_times = {n.name: n.row_times for n in nodes.values()}
    return res
