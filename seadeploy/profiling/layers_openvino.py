"""OpenVINO per-layer latency from its performance counters, mapped back to ONNX nodes and PyTorch modules.

With ``PERF_COUNT`` on, ``InferRequest.get_profiling_info()`` lists, after each inference, one entry per node of
the graph the CPU plugin executes: its name, layer type, the kernel it chose (``exec_type``:
``brgconv_avx512_f32``, ``jit_avx512_I8``), its time and whether it ran (a fused node is ``NOT_RUN``). The
executed graph (``CompiledModel.get_runtime_model()``) names the ONNX nodes each executed node computes in
``rt_info["originalLayersNames"]`` (``node_Conv_450,node_relu_1``: the Conv with the ReLU fused into it), so
every row carries the ONNX nodes it covers (``fused``), its principal node, module, role and attention block
(:func:`~seadeploy.profiling.per_layer.node_info`, from the graph analysis). A layout copy (``Reorder``) computes
no ONNX node: it is charged to the ONNX node it converts for (named in its own name), with no params or MACs.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from seadeploy.graphs.ops import COMPUTE_OPS
from seadeploy.profiling.latency import make_feed
from seadeploy.profiling.per_layer import Timing, attach_nodes, node_info
from seadeploy.profiling.schema import make_frame
from seadeploy.profiling.sources import input_shape, open_backend

_TOKEN = re.compile(r"[A-Za-z0-9_.]+")


def executed_nodes(runtime_model: Any) -> dict[str, dict[str, Any]]:
    """``{executed node: {layer_type, original: [ONNX node names], precision, exec_order}}`` of a runtime model."""
    out = {}
    for op in runtime_model.get_ordered_ops():
        info = op.get_rt_info()

        def read(key: str, info=info) -> str:
            return info[key].astype(str) if key in info else ""

        out[op.get_friendly_name()] = {"layer_type": read("layerType"), "precision": read("runtimePrecision"),
                                       "original": [n for n in read("originalLayersNames").split(",") if n],
                                       "exec_order": read("execOrder")}
    return out


def map_executed(name: str, original: Sequence[str], order: Sequence[str]) -> tuple[str | None, list[str]]:
    """``(principal ONNX node, [ONNX nodes computed])`` of one executed node.

    ``original`` (``originalLayersNames``) may name OpenVINO-made nodes (``node_linear/WithoutBiases``); a name is
    kept when it or its part before ``/`` is an ONNX node. A node that computes none (a ``Reorder`` named
    ``x_abcd_acdb_node_Conv_447``) is charged to the last ONNX node its own name mentions, covering nothing.
    """
    index = {n: i for i, n in enumerate(order)}
    covered = sorted({c for n in original for c in (n, n.split("/")[0]) if c in index}, key=index.get)
    if covered:
        return covered[0], covered
    tokens = [t for t in _TOKEN.findall(name) if t in index]
    if not tokens:  # ``x_abcd_acdb_node_Conv_447``: the node name is a suffix of the token
        tokens = [n for n in order if name.endswith("_" + n) or name.startswith(n + "_")]
    return (max(tokens, key=index.get) if tokens else None), []


def aggregate_counters(runs: Iterable[Iterable[Any]]) -> pd.DataFrame:
    """Per-run ``ProfilingInfo`` lists → one row per executed node: median and mean ms over runs, type, kernel."""
    times: dict[str, list[float]] = defaultdict(list)
    meta: dict[str, dict[str, str]] = {}
    for counters in runs:
        for c in counters:
            if str(c.status).rsplit(".", 1)[-1] != "EXECUTED":
                continue
            times[c.node_name].append(c.real_time.total_seconds() * 1e3)
            meta.setdefault(c.node_name, {"node_type": c.node_type, "exec_type": c.exec_type})
    rows = [{"layer": n, "op_type": meta[n]["node_type"], "kernel": meta[n]["exec_type"],
             "time_ms": float(np.median(v)), "time_mean_ms": float(np.mean(v))} for n, v in times.items()]
    return pd.DataFrame(rows, columns=["layer", "op_type", "kernel", "time_ms", "time_mean_ms"])


def openvino_frame(agg: pd.DataFrame, executed: dict[str, dict[str, Any]], nodes: pd.DataFrame,
                   backend: str, precision: str, batch: int) -> pd.DataFrame:
    """Schema frame of aggregated counters; ``fused`` lists the ONNX nodes each executed node computes."""
    order = list(nodes.index)
    covered, principal = {}, []
    for name in agg["layer"]:
        info = executed.get(name, {"original": [], "precision": ""})
        main, names = map_executed(name, info["original"], order)
        covered[name] = names
        principal.append(main)
    rows = agg.assign(onnx_node=principal, fused=["+".join(covered[n]) or None for n in agg["layer"]],
                      precision_layer=[executed.get(n, {}).get("precision") for n in agg["layer"]])
    compute = [next((c for c in covered[n] if nodes.loc[c, "op_type"] in COMPUTE_OPS), p)
               for n, p in zip(agg["layer"], principal)]
    rows["onnx_node"] = compute
    return make_frame(attach_nodes(rows, nodes, covered), backend=backend, precision=precision, batch=batch)


def profile_openvino(src, *, run_dir, batch: int, threads: int | None, runs: int, warmup_runs: int,
                     duration_s: float) -> list[tuple[pd.DataFrame, Timing]]:
    """Per-node counters of ``src``, with unprofiled runs interleaved for the end-to-end median; ``[(frame, Timing)]``.

    The per-run sum is the sum of that run's executed-node times; the end-to-end figure is wall time (OpenVINO
    runs the graph on its own thread, ``OpenVinoBackend.in_caller_thread``).
    """
    nodes = node_info(src.path, batch)
    with open_backend(src, threads=threads) as plain, open_backend(src, threads=threads, profile=True) as prof:
        feed = make_feed({k: tuple(v) for k, v in plain.input_specs.items()}, batch, input_shape(run_dir))
        call, e2e, counters = plain.timed(feed), [], []
        prof.infer(feed)
        for i in range(warmup_runs + runs):  # interleaved, so both see the same machine load
            t0 = time.perf_counter()
            call()
            wall = (time.perf_counter() - t0) * 1e3
            prof.infer(feed)
            if i >= warmup_runs:
                e2e.append(wall)
                counters.append(prof.profiling_info())
        executed = executed_nodes(prof.runtime_model())
    sums = [sum(c.real_time.total_seconds() * 1e3 for c in run if str(c.status).endswith("EXECUTED"))
            for run in counters]
    frame = openvino_frame(aggregate_counters(counters), executed, nodes, src.backend, src.precision, batch)
    return [(frame, Timing(float(np.median(e2e)), float(np.median(sums))))]
