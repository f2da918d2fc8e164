"""ONNX Runtime per-node latency from its profiling JSON, mapped back to ONNX nodes and PyTorch modules.

ORT's profiler (``SessionOptions.enable_profiling``) writes a Chrome trace; events with
``cat == "Node"`` are named ``<node>_kernel_time`` with ``dur`` in µs and ``args`` (``op_name``,
``provider``, shapes, ``output_size``, ``activation_size``, ``parameter_size`` and, in 1.31, the
per-node memory fields). With ``graph_opt="disable"`` every event names an exported node
(one-to-one); with optimisations on, fused nodes (``relu_nchwc`` = Conv+ReLU in NCHWc layout,
``ReorderOutput_token_8``) are mapped through the tensors of the optimised graph that ORT saves.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir
import pandas as pd

from seadeploy.backends.ort import plain_session
from seadeploy.errors import InputError
from seadeploy.graphs.index import GraphIndex
from seadeploy.graphs.load import load_model
from seadeploy.profiling.latency import make_feed
from seadeploy.profiling.per_layer import Timing, attach_nodes, node_info
from seadeploy.profiling.schema import make_frame
from seadeploy.profiling.sources import open_backend

#: ORT's layout and copy nodes (its own op types, and Transpose): they compute no original node.
LAYOUT_OPS = frozenset({"ReorderInput", "ReorderOutput", "Transpose", "MemcpyToHost", "MemcpyFromHost"})
MEM_FIELDS = ("activation_size", "parameter_size", "output_size", "mem_bytes_in_use", "mem_in_use_peak",
              "mem_arena_held", "mem_in_use_delta")


def load_events(trace: str | os.PathLike | list) -> list[dict[str, Any]]:
    """The event list of an ORT profiling trace (a path or the already parsed list)."""
    if isinstance(trace, list):
        return trace
    try:
        data = json.loads(Path(trace).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read ONNX Runtime profile '{trace}' ({exc})") from exc
    return data["traceEvents"] if isinstance(data, dict) else data


def parse_node_events(events: list[dict[str, Any]], skip_runs: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-run node durations and the per-run ``model_run`` durations (ms).

    Node events are assigned to runs by time (inside a ``model_run`` session event); the first
    ``skip_runs`` runs (warm-up) are dropped.

    Returns:
        ``(frame with node, run, op_type, provider, dur_ms, out_shape + memory fields, model_run_ms array)``.
    """
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("cat") == "Session"
                  and e.get("name") == "model_run")
    starts = np.array([r[0] for r in runs])
    rows = []
    for e in events:
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time"):
            continue
        run = int(np.searchsorted(starts, e["ts"], side="right") - 1) if len(starts) else 0
        if run < skip_runs:
            continue
        args = e.get("args", {})
        outs = args.get("output_type_shape") or [{}]
        shape = next(iter(outs[0].values()), None) if outs and isinstance(outs[0], dict) else None
        row = {"node": e["name"][: -len("_kernel_time")], "run": run, "op_type": args.get("op_name", ""),
               "provider": args.get("provider", ""), "dur_ms": float(e.get("dur", 0)) / 1e3,
               "out_shape": "x".join(map(str, shape)) if shape else None}
        for key in MEM_FIELDS:
            row[key] = float(args[key]) if key in args else np.nan
        rows.append(row)
    frame = pd.DataFrame(rows)
    model_run = np.array([(b - a) / 1e3 for a, b in runs[skip_runs:]])
    return frame, model_run


def aggregate_nodes(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per node: median per-run time (a node running twice in a run is summed first), memory fields."""
    if frame.empty:
        return frame
    per_run = frame.groupby(["node", "run"], sort=False)["dur_ms"].sum().reset_index()
    med = per_run.groupby("node", sort=False)["dur_ms"].agg(time_ms="median", time_mean_ms="mean")
    first = frame.drop_duplicates("node").set_index("node").drop(columns=["run", "dur_ms"])
    mem = frame.groupby("node", sort=False)[[k for k in MEM_FIELDS if k in frame]].max()
    out = first.drop(columns=[k for k in MEM_FIELDS if k in first]).join(mem).join(med)
    return out.reset_index()


def _hint(name: str) -> str:
    """The original name an ORT-made node is named after: ``relu_nchwc`` → ``relu``, ``fused node_x`` → ``node_x``."""
    for prefix in ("fused ",):
        name = name[len(prefix):] if name.startswith(prefix) else name
    return name[: -len("_nchwc")] if name.endswith("_nchwc") else name


def map_optimized_nodes(original: onnx.ModelProto, optimized: onnx.ModelProto,
                        max_fused: int = 8) -> dict[str, tuple[str, list[str]]]:
    """``{optimised node: (principal original node, [original nodes it computes])}``.

    ORT keeps tensor names and names new nodes after the tensor or node they replace (``relu_nchwc``
    computes tensor ``relu``; ``fused node_linear`` replaces ``node_linear``). An optimised node
    computes the original nodes between the original tensors it reads and those it writes (at most
    ``max_fused``); layout nodes (``ReorderOutput``) compute none and are charged to the producer of
    the tensor they convert. The principal is the first computed node of the same op type.
    """
    orig = GraphIndex.of(original, shapes=False)
    opt = GraphIndex.of(optimized, shapes=False)
    names = orig.by_name
    order = {n.name: orig.position(n) for n in orig.nodes}
    inputs = {v.name for v in orig.graph.inputs}
    memo: dict[str, set[str]] = {}

    def made(t: str) -> bool:
        """``t`` is an original tensor some original node writes."""
        return orig.producer_of(t) is not None

    def writes(n: ir.Node) -> set[str]:
        """Original tensors an optimised node produces."""
        if n.name not in memo:
            hint = _hint(n.name)
            found = {o.name for o in n.outputs if o.name and made(o.name)}
            if not found and hint in names:
                found = {o.name for o in names[hint].outputs if o.name}
            elif not found and made(hint):
                found = {hint}
            memo[n.name] = found
        return memo[n.name]

    def reads(n: ir.Node, depth: int = 0) -> set[str]:
        found: set[str] = set()
        for v in n.inputs:
            t = v.name if v is not None else ""
            if not t:
                continue
            if made(t) or t in inputs:
                found.add(t)
            elif opt.producer_of(t) is not None and depth < 4:
                src = opt.producer_of(t)
                found |= writes(src) or reads(src, depth + 1)
        return found

    out: dict[str, tuple[str, list[str]]] = {}
    for n in opt.nodes:
        if n.name in names:
            out[n.name] = (n.name, [n.name])
            continue
        outs, ins = writes(n), reads(n)
        if n.op_type in LAYOUT_OPS:
            producers = [orig.producer_of(t).name for t in outs if made(t)]
            if producers:
                out[n.name] = (max(producers, key=order.get), [])
            continue
        covered: set[str] = set()
        stack = [orig.producer_of(t) for t in outs if made(t) and t not in ins]
        while stack and len(covered) < max_fused:
            cur = stack.pop()
            if cur.name not in covered:
                covered.add(cur.name)
                stack.extend(orig.producer(v) for v in cur.inputs
                             if v is not None and v.name and made(v.name) and v.name not in ins)
        done = sorted(covered, key=order.get)
        if done:
            same = [c for c in done if names[c].op_type == n.op_type]
            if same:
                # The walk back from the written tensor can overshoot the fused node's real inputs (they may be
                # ORT-internal layout tensors); the same-op node nearest the output is the one it computes
                # (Conv+Relu "relu_nchwc" must not be charged to an earlier attention Conv).
                principal = same[-1]
                done = [c for c in done if order[c] >= order[principal]]
                out[n.name] = (principal, done)
            else:
                out[n.name] = (done[0], done)
    return out


def optimized_graph(path: str | os.PathLike, graph_opt: str, threads: int | None = None,
                    providers: tuple[str, ...] = ("cpu",)) -> onnx.ModelProto:
    """The graph ONNX Runtime actually runs at ``graph_opt`` (saved via ``optimized_model_filepath``)."""
    with tempfile.TemporaryDirectory(prefix="seadeploy-ortopt-") as tmp:
        saved = Path(tmp) / "optimized.onnx"
        plain_session(path, threads=int(threads or 1), graph_opt=graph_opt, providers=providers,
                      optimized_model_path=saved)
        return load_model(saved)


def ort_frame(agg: pd.DataFrame, nodes: pd.DataFrame, mapping: dict[str, tuple[str, list[str]]],
              backend: str, precision: str, batch: int) -> pd.DataFrame:
    """Schema frame from aggregated node times; fused nodes carry ``fused`` (the ONNX nodes they compute)."""
    rows = pd.DataFrame({"layer": agg["node"], "op_type": agg["op_type"], "time_ms": agg["time_ms"],
                         "out_shape": agg["out_shape"], "out_bytes": agg.get("output_size"),
                         "onnx_node": [mapping.get(n, (n if n in nodes.index else None, []))[0] for n in agg["node"]],
                         "fused": ["+".join(mapping.get(n, (None, []))[1]) or None for n in agg["node"]],
                         "time_mean_ms": agg["time_mean_ms"],
                         "provider": agg["provider"]})
    for key in MEM_FIELDS:
        if key in agg:
            rows[key] = agg[key].to_numpy()
    covered = {n: c for n, (_, c) in mapping.items()}
    return make_frame(attach_nodes(rows, nodes, covered), backend=backend, precision=precision, batch=batch)


def profile_ort(src, *, run_dir, batch: int, threads: int | None, runs: int, warmup_runs: int,
                duration_s: float, graph_opts: tuple[str, ...] = ("all", "disable")) -> list[tuple[pd.DataFrame, Timing]]:
    """Profile ``src`` (an ORT source) with the optimised and the one-to-one graph; ``[(frame, Timing)]``."""
    nodes = node_info(src.path, batch)
    original = load_model(src.path)
    out = []
    for opt in graph_opts:
        label = src.backend if opt == "all" else f"{src.backend}-noopt"
        # the trace folder is a context manager, so no empty seadeploy-ort-* folder outlives the run
        with tempfile.TemporaryDirectory(prefix="seadeploy-ort-") as trace_dir, \
                open_backend(src, threads=threads, graph_opt=opt) as plain, \
                open_backend(src, threads=threads, graph_opt=opt, profile=True, profile_dir=trace_dir) as prof:
            feed = make_feed({k: tuple(v) for k, v in plain.input_specs.items()}, batch, None)
            plain.infer(feed)
            e2e = []
            for i in range(warmup_runs + runs):  # interleaved, so both see the same machine load
                t0 = time.perf_counter()
                plain.session.run(None, feed)
                if i >= warmup_runs:
                    e2e.append((time.perf_counter() - t0) * 1e3)
                prof.session.run(None, feed)
            trace = prof.end_profiling()
            frame, model_run = parse_node_events(load_events(trace), skip_runs=warmup_runs)
        providers = tuple(src.backend.partition(":")[2].split("+")) if ":" in src.backend else ("cpu",)
        mapping = {} if opt == "disable" else map_optimized_nodes(
            original, optimized_graph(src.path, opt, threads, providers))
        timing = Timing(float(np.median(e2e)), float(frame.groupby("run")["dur_ms"].sum().median()),
                        float(np.median(model_run)) if len(model_run) else float("nan"))
        out.append((ort_frame(aggregate_nodes(frame), nodes, mapping, label, src.precision, batch), timing))
    return out
