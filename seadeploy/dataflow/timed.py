"""Row-arrival propagation with service times: the row model's stage recurrence (docs/architecture.md §5)."""

from __future__ import annotations

import numpy as np
import onnx

from seadeploy.dataflow.arrival import EPS, compress, pad_dims
from seadeploy.dataflow.hardware import rule_for
from seadeploy.dataflow.propagate import Propagation


class TimedPropagation(Propagation):
    """The buffer model's propagation with a service recurrence in place of its rate limit.

    Times are in input-row periods (as in :class:`Propagation`). ``costs`` maps a node to
    ``(service per output row, service per accumulated input row, latency)`` in the same unit. With all
    zeros every array equals the buffer model's. ``starts`` keeps each row's start time (when its
    inputs are read: the moment the rows it needs are released).
    """

    def __init__(self, *args, costs: dict[str, tuple[float, float, float]], steady: bool = False,
                 periods: dict[str, float] | None = None, row_shapes: dict[str, tuple[int, ...]] | None = None,
                 **kw) -> None:
        super().__init__(*args, **kw)
        self.costs = costs
        self.steady = steady
        self.fixed_periods = periods  # row periods of the design (from the infinite-speed run)
        self.row_shapes = row_shapes or {}  # the rows each tensor streams in (the infinite-speed run's arrays)
        self.accumulates: set[str] = set()  # reducing stages whose input rows queue for their accumulator
        self.queued: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # such a stage → (arrival, accumulation start)
        self.periods: dict[str, float] = {}
        self.starts: dict[str, np.ndarray] = {}
        self.reduced: dict[str, bool] = {}
        self._node: onnx.NodeProto | None = None

    def _step(self, node: onnx.NodeProto) -> None:
        self._node = node
        acc = self._accumulated(node)
        if acc is None:
            super()._step(node)
            return
        # The rule reads each input row at the time it has been accumulated rather than at its arrival (the
        # stage's service is in those times, see _accumulated); the arrival array is put back afterwards.
        name, arrived = acc
        try:
            super()._step(node)
        finally:
            self.times[name] = arrived

    def _accumulated(self, node: onnx.NodeProto) -> tuple[str, np.ndarray] | None:
        """A reducing stage with one streamed input (a squeeze) accumulates its input rows one after the
        other, ``service per accumulated row`` each: row m is done at ``D_m = max(A_m, D_{m−1}) + s_acc``,
        later than its arrival ``A_m`` when rows arrive closer than ``s_acc`` (bunched: the rows after a
        floor-mode crop or a Pad's padding). In steady state the first row also waits for the previous
        frame's last (``D_0 ≥ D_last − H_in + s_acc``). The output row that reads rows up to m is then ready
        at ``D_m``. Installs the done times as the input's times and returns ``(input, its arrival array)``;
        ``None`` for every other stage."""
        s_acc = self.costs.get(node.name, (0.0, 0.0, 0.0))[1]
        live = [i for i in node.input if i and self.times.get(i) is not None]
        if len(live) != 1 or s_acc <= 0:
            return None
        name = live[0]
        ins = [self.times.get(i) if i else None for i in node.input]
        if not rule_for(node.op_type)(self, node, ins)[1]:
            return None
        arrived = self.times[name]
        shape = self.row_shapes.get(name, arrived.shape)
        try:
            a = np.broadcast_to(arrived, shape).ravel()
        except ValueError:
            a, shape = arrived.ravel(), arrived.shape
        m = np.arange(1, a.size + 1) * s_acc
        done = m + np.maximum.accumulate(a - m + s_acc)  # max over j ≤ m of A_j + (m − j + 1)·s_acc
        if self.steady:
            done = np.maximum(done, done[-1] - self.ref_rows + m)
        self.times[name] = done.reshape(shape)
        self.accumulates.add(node.name)
        self.queued[node.name] = (a, done - s_acc)  # a row leaves the input FIFO when its accumulation starts
        return name, arrived

    def _label(self, node, ins, reduced):
        self.reduced[node.name] = bool(reduced)
        return super()._label(node, ins, reduced)

    def _rate_limit(self, name: str, t):
        node = self._node
        s_row, _s_acc, lat = self.costs.get(node.name, (0.0, 0.0, 0.0)) if node is not None else (0.0, 0.0, 0.0)
        # An accumulating stage's service is already in its input's done times (_accumulated); it emits rows
        # at its row period. Any other stage serves each output row.
        reduced = node is not None and node.name in self.accumulates
        serv = 0.0 if reduced else s_row
        if reduced and t is not None:
            # Its rows are ready s_acc after the last accumulated row arrives: the buffer model's EPS ("strictly
            # after the last row", added per squeeze) is not needed, and summed over a deep net's squeezes it is not 0.
            t = t - EPS
        if t is None or name not in self.shapes:
            out = compress(t)
            if out is not None:
                self.starts[name] = out
                out = out + (serv + lat) if serv + lat else out
            return out
        shp = self.shape(name)
        t = compress(pad_dims(t, len(shp)) if t.ndim <= len(shp) else t)
        if len(shp) != 4 or shp[2] <= 1 or t.ndim != 4 or t.shape[1] > 1 or t.shape[3] > 1:
            self.starts[name] = t
            return t + (serv + lat) if serv + lat else t
        need = np.broadcast_to(t, (1, 1, shp[2], 1))[0, 0, :, 0]
        # Row period exactly as the buffer model's rate limit (a floor-mode crop can make it shorter); with
        # service times, the period of the infinite-speed run (a property of the design, not of the timing).
        if self.fixed_periods is not None and name in self.fixed_periods:
            period = self.fixed_periods[name]
        else:
            steps = np.diff(need)
            steps = steps[steps > 0.5]
            period = min(self.ref_rows / shp[2], float(steps.min()) if steps.size else np.inf)
        self.periods[name] = period
        gap = period if reduced else max(period, s_row)
        r = np.arange(shp[2]) * gap
        start = r + np.maximum.accumulate(need - r)
        if self.steady:
            # Frames follow every H_in input rows: row 0 of the next frame starts no earlier than ``gap`` after
            # this frame's last row. The least periodic schedule (what a cold start settles into) is
            # max(single frame, last start − II + (r+1)·gap); it differs only for a stage kept busy all frame
            # whose rows arrive bunched (e.g. after an edge tile), which carries the bunching into the next frame.
            start = np.maximum(start, start[-1] - self.ref_rows + r + gap)
        start = np.round(start, 6)
        self.starts[name] = compress(start.reshape(1, 1, -1, 1))
        return compress((start + (serv + lat)).reshape(1, 1, -1, 1))

