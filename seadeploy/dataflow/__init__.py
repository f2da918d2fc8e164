"""The streaming-accelerator (dataflow) model: buffers, pipeline timing, FIFO sizing and simulators.

Row granularity (a tensor streams row by row; docs/architecture.md §5):

* :mod:`~seadeploy.dataflow.buffers` — ``analyse_buffers``: join and line buffers at infinite speed; row timing in
  :mod:`~seadeploy.dataflow.arrival`, :mod:`~seadeploy.dataflow.propagate` (compute/window rules),
  :mod:`~seadeploy.dataflow.movement` (data-movement rules), registered in :mod:`~seadeploy.dataflow.row_rules`.
* :mod:`~seadeploy.dataflow.hardware` (budget / folding, stage costs), :mod:`~seadeploy.dataflow.timed` (the stage
  recurrence), :mod:`~seadeploy.dataflow.fifos` (FIFO accounting), :mod:`~seadeploy.dataflow.pipeline`
  (``analyse_pipeline``), :mod:`~seadeploy.dataflow.bounded` (given depths: stall / deadlock),
  :mod:`~seadeploy.dataflow.simulate_rows` (row-level discrete-event check).

Pixel (position) granularity (a tensor streams position by position, FINN-style; docs/dataflow.md):

* :mod:`~seadeploy.dataflow.folding` (PE/SIMD per node, FINN's cycle formulas), :mod:`~seadeploy.dataflow.pixel`
  (analytic timing), :mod:`~seadeploy.dataflow.pixel_fifos` (FIFO depths, memory blocks, stalls, deadlock),
  :mod:`~seadeploy.dataflow.fifo_memory` (BRAM18 / URAM blocks), :mod:`~seadeploy.dataflow.simulate_pixel` (an
  independent discrete-event simulator that shares no timing code with the analytic model).
* :mod:`~seadeploy.dataflow.analysis` — the command's sources, sweeps and text (``python -m seadeploy.profiling
  pipeline``).
"""
