"""TensorRT per-layer latency: ``IProfiler.report_layer_time`` + the engine inspector for layer structure.

Engine layers are fusions named after the ONNX nodes they compute (``node_conv2d_1 + node_relu_1``,
``PWN(node_sigmoid, node_mul_28)``, ``Reformatting CopyNode for Input Tensor 0 to node_conv``,
``{ForeignNode[node_a...node_b]}``) and, from TensorRT 10, carry ``[ONNX Layer: name]`` metadata in
the inspector JSON. Both are parsed here so every engine layer maps to its ONNX nodes, its PyTorch
module and a role. The parsing is pure Python (tested on CPU with handwritten samples); timing needs
a GPU (``@pytest.mark.trt`` tests).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from seadeploy import fileio, runfolder
from seadeploy.backends.trt import import_tensorrt
from seadeploy.backends.trt_support import engine_information
from seadeploy.export.engine_inspect import parse_inspector_json
from seadeploy.graphs.ops import COMPUTE_OPS
from seadeploy.profiling.latency import make_feed
from seadeploy.profiling.per_layer import Timing, attach_nodes, node_info
from seadeploy.profiling.schema import make_frame
from seadeploy.profiling.sources import input_shape, open_backend
from seadeploy.profiling.trt_timing import measure_trt_stages

_TOKEN = re.compile(r"[A-Za-z0-9_./:\-]+")
_FOREIGN = re.compile(r"ForeignNode\[(.+?)\.\.\.(.+?)\]")


def onnx_nodes_in_name(name: str, order: Sequence[str]) -> list[str]:
    """ONNX node names a TensorRT layer name mentions, in graph order (``ForeignNode[a...b]`` spans a..b)."""
    index = {n: i for i, n in enumerate(order)}
    found = {t for t in _TOKEN.findall(name) if t in index}
    for first, last in _FOREIGN.findall(name):
        if first in index and last in index:
            found.update(order[index[first]: index[last] + 1])
    return sorted(found, key=index.get)


def aggregate_layer_times(reports: Iterable[tuple[str, float]], runs: int) -> pd.DataFrame:
    """``(layer, ms)`` reports of ``runs`` executions → one row per layer: median, mean and total per run.

    A layer reported k times per run (loops) is summed within the run; runs are split evenly in
    report order, as IProfiler reports every layer once per execution.
    """
    per_layer: dict[str, list[float]] = defaultdict(list)
    order: list[str] = []
    for name, ms in reports:
        if name not in per_layer:
            order.append(name)
        per_layer[name].append(float(ms))
    rows = []
    for name in order:
        vals = np.asarray(per_layer[name])
        k = max(1, len(vals) // max(runs, 1))
        per_run = vals[: k * (len(vals) // k)].reshape(-1, k).sum(axis=1) if len(vals) >= k else vals
        rows.append({"layer": name, "time_ms": float(np.median(per_run)), "mean_ms": float(per_run.mean()),
                     "count": len(vals)})
    return pd.DataFrame(rows, columns=["layer", "time_ms", "mean_ms", "count"])


def trt_rows(times: pd.DataFrame, inspector_layers: list | None, nodes: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Attach layer type, output shape and ONNX nodes (inspector metadata first, else names) to layer times."""
    order = list(nodes.index)
    info = {layer.name: layer for layer in (inspector_layers or [])}
    covered: dict[str, list[str]] = {}
    rows = []
    for name, t in zip(times["layer"], times["time_ms"]):
        layer = info.get(name) or info.get(name.split(" [")[0])
        names = [n for n in (layer.onnx_nodes if layer else []) if n in nodes.index] or onnx_nodes_in_name(name, order)
        reformat = "reformat" in name.lower() or (layer is not None and "reformat" in layer.layer_type.lower())
        covered[name] = [] if reformat else names  # a copy charges its time, not the node's params/MACs
        compute = [n for n in names if nodes.loc[n, "op_type"] in COMPUTE_OPS]
        principal = (compute or names or [None])[0]
        out = layer.outputs[0] if layer and layer.outputs else None
        rows.append({"layer": name, "time_ms": t, "onnx_node": principal,
                     "op_type": (layer.layer_type if layer else "") or (nodes.loc[principal, "op_type"]
                                                                        if principal else "Reformat"),
                     "out_shape": "x".join(map(str, out[2])) if out else None,
                     "precision_layer": layer.precision if layer else None, "fused": "+".join(names) or None})
    return pd.DataFrame(rows), covered


def _profiler_class(trt):
    class LayerTimes(trt.IProfiler):
        """Collects ``(layer, ms)`` from ``report_layer_time``."""

        def __init__(self) -> None:
            trt.IProfiler.__init__(self)
            self.reports: list[tuple[str, float]] = []

        def report_layer_time(self, layer_name: str, ms: float) -> None:
            self.reports.append((layer_name, ms))

    return LayerTimes


def engine_device_memory(engine_path) -> float:
    """The engine's activation memory from its ``.json`` sidecar (NaN when it is absent)."""
    side = Path(str(engine_path) + ".json")
    if not side.is_file():
        return float("nan")
    data = fileio.read_json(side)
    return float(data.get("device_memory_bytes") or data.get("device_memory_size_v2") or np.nan)


def profile_trt(src, *, run_dir, batch: int, threads: int | None, runs: int, warmup_runs: int,
                duration_s: float) -> list[tuple[pd.DataFrame, Timing]]:
    """Per-layer GPU times of a TensorRT engine; the end-to-end figure is the median GPU compute time."""
    trt = import_tensorrt()
    onnx_path = run_dir / runfolder.onnx_name(src.precision)
    nodes = node_info(onnx_path, batch)
    with open_backend(src) as be:
        feed = make_feed({k: tuple(v) for k, v in be.input_specs.items()}, batch, input_shape(run_dir))
        stages = measure_trt_stages(be, feed, warmup_s=0.5, duration_s=duration_s)
        e2e = next(m for m in stages if m.meta["metric"] == "gpu_compute").median
        be.stage_inputs(feed)
        for _ in range(warmup_runs):
            be.execute()
            be.fetch_outputs()
        timer = _profiler_class(trt)()
        be.context.profiler = timer
        for _ in range(runs):
            be.execute()
            be.fetch_outputs()
        text = engine_information(trt, be.engine, be.context)  # context attached: dynamic dims resolved
    parsed = parse_inspector_json(text, nodes.index)
    times = aggregate_layer_times(timer.reports, runs)
    rows, covered = trt_rows(times, parsed["layers"], nodes)
    rows = attach_nodes(rows, nodes, covered)
    rows["engine_device_memory"] = engine_device_memory(src.path)
    run_sum = float(times["mean_ms"].sum())  # IProfiler reports per layer; the per-run sum is the sum of means
    return [(make_frame(rows, backend="trt", precision=src.precision, batch=batch), Timing(e2e, run_sum))]
