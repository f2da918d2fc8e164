"""Profiling: latency reports, per-layer latency, activation memory; the CLI of the dataflow model.

Modules (imported on demand, so ``import seadeploy.profiling`` stays light):

* :mod:`~seadeploy.profiling.schema` — the per-layer frame (columns, roles, ``classify_role``); attention blocks and roles come from :mod:`seadeploy.graphs.attention`.
* :mod:`~seadeploy.profiling.timing` — ``Measurement`` (median, IQR, percentiles, IQR/median stability),
  ``measure``, and the side-by-side core ``interleave(candidates)`` → ``SideBySide`` (paired ratios with
  bootstrap intervals, thread CPU time where the work stays on the calling thread).
* :mod:`~seadeploy.profiling.latency` — ``benchmark_latency(sources, backends, batches)`` → ``LatencyReport``
  (several run folders / ONNX files timed side by side); TensorRT stage times in
  :mod:`~seadeploy.profiling.trt_timing`.
* :mod:`~seadeploy.profiling.per_layer` — ``profile_layers(run_dir, backends)`` → ``LayerProfile`` with the
  per-layer profiler each backend names (``Backend.layer_profiler``): ``layers_torch`` (torch.profiler), ``layers_ort`` (ORT node profiles of the
  optimised and the one-to-one graph), ``layers_trt`` (IProfiler + engine inspector).
* :mod:`~seadeploy.profiling.memory` — ``activation_memory`` (shape inference + liveness), engine memory.
* the ``buffers`` and ``pipeline`` commands call the streaming-accelerator model of :mod:`seadeploy.dataflow`
  (``pipeline_command`` holds the latter's glue).
* :mod:`~seadeploy.profiling.summaries` — what the command line prints; ``python -m seadeploy.profiling``.
"""
