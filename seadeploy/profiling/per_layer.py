"""Per-layer latency for every backend in one schema (``schema.COLUMNS``), with the attention split out.

``profile_layers(run_dir, ["torch", "ort"])`` runs each backend's per-layer profiler (named by the
backend class, ``Backend.layer_profiler``: torch.profiler, ORT's node profiler for the optimised and the
one-to-one graph, TensorRT's IProfiler) and returns a :class:`LayerProfile`: the frame (one row per
layer, mapped to its ONNX node, PyTorch module, role and attention block), the per-layer sum
compared with the end-to-end median (the gap), and the attention share per block and in total.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seadeploy import runfolder
from seadeploy.backends import resolve
from seadeploy.backends.ort import shapes_by_running
from seadeploy.dataflow.buffers import analyse_buffers
from seadeploy.errors import ConfigError
from seadeploy.graphs.attention import find_attention, print_warnings
from seadeploy.graphs.blocks import AttentionGraph
from seadeploy.graphs.classify import BlockClass, classify
from seadeploy.graphs.index import node_modules
from seadeploy.graphs.load import load_model
from seadeploy.graphs.macs import node_params_macs
from seadeploy.graphs.shapes import elem_size, infer_shapes, make_static
from seadeploy.profiling import sources
from seadeploy.profiling.memory import liveness
from seadeploy.profiling.schema import attention_roles, attention_share, classify_role, make_frame

GAP_TOLERANCE = 0.15  # |Σ layers − end-to-end| / end-to-end accepted as "layers explain the latency"


@dataclasses.dataclass
class Timing:
    """Whole-run figures a per-layer profile is checked against.

    Attributes:
        end_to_end_ms: median latency of unprofiled runs (interleaved with the profiled ones where possible).
        run_sum_ms: median over profiled runs of that run's per-layer sum.
        profiled_run_ms: median wall time of the profiled runs (profiler overhead included), if known.
    """

    end_to_end_ms: float
    run_sum_ms: float
    profiled_run_ms: float = float("nan")


@dataclasses.dataclass
class LayerProfile:
    """Per-layer frame + per-backend sums. ``bool()`` is True when every gap is within ``GAP_TOLERANCE``."""

    frame: pd.DataFrame
    gaps: pd.DataFrame  # backend, precision, batch, layers, run_sum_ms, end_to_end_ms, gap_ms, gap_pct, ...
    attention_blocks: int | None = None  # channel-attention blocks of the run's ONNX graph (found by structure)
    warnings: list[str] = dataclasses.field(default_factory=list)
    blocks: list[BlockClass] = dataclasses.field(default_factory=list)  # their kinds (graphs/classify.py)

    def __bool__(self) -> bool:
        return bool(len(self.gaps)) and bool((self.gaps["gap_pct"].abs() <= 100 * GAP_TOLERANCE).all())

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()

    def all_warnings(self) -> list[str]:
        """Every warning the text report prints (the JSON summary carries the same list)."""
        gap = [] if self else ["a per-layer sum is more than 15% away from its end-to-end median (see gap_pct)"]
        return [*self.warnings, *gap]

    def attention(self) -> pd.DataFrame:
        """Attention share per block and ``TOTAL`` (see :func:`schema.attention_share`)."""
        return attention_share(self.frame)

    def write(self, run_dir: str | os.PathLike) -> list[Path]:
        """``layers_<backend>.csv`` per backend family (ort and ort-noopt share ``layers_ort.csv``)."""
        paths = []
        family = self.frame["backend"].str.split(r"[-:]", regex=True).str[0]
        for name, part in self.frame.groupby(family, sort=False):
            paths.append(runfolder.write_layers(run_dir, str(name), part))
        return paths

    def summary(self) -> dict[str, Any]:
        total = self.attention()
        total = total[total["block"] == "TOTAL"]
        # attention_share: fraction of all layer time spent in attention, of the first backend profiled.
        share = {f"{r['backend']}/{r['precision']}": float(r["pct_of_total"]) / 100.0 for r in total.to_dict("records")}
        return {"gaps": self.gaps.to_dict("records"), "attention_total": total.to_dict("records"),
                "attention_blocks": self.attention_blocks, "attention_share": next(iter(share.values()), None),
                "attention_share_by_backend": share, "warnings": self.all_warnings(),
                "blocks": [b.to_dict() for b in self.blocks],
                "within_tolerance": bool(self)}


def node_info(model_path: str | os.PathLike, batch: int, found: AttentionGraph | None = None) -> pd.DataFrame:
    """Static facts per ONNX node: module, role, block, op type, output shape/bytes and live activation bytes
    (liveness, :mod:`seadeploy.profiling.memory`) at ``batch``, params, MACs per sample and the dataflow
    ``buffer_elems`` (batch 1).

    The graph is loaded once and its attention analysed once (``found``, when the caller already has it).
    """
    model = load_model(model_path)
    modules = node_modules(model)
    found = find_attention(model) if found is None else found  # by graph structure, never by module names
    roles = attention_roles(model, modules, found)
    static = make_static(model, batch=batch)
    shapes = infer_shapes(static, shapes_by_running)
    pm = node_params_macs(static, shapes)

    sizes = {t: float(np.prod(s)) * elem_size(e) for t, (s, e) in shapes.items()}
    live = dict(zip([n.name for n in static.graph.node], liveness(static, sizes)[0]))
    try:
        buffers = analyse_buffers(model).node_elements()  # at batch 1; it cannot take `found` yet (dataflow move)
    except ConfigError:  # dynamic spatial dims: no buffer model without an input size
        buffers = {}
    rows = []
    for n in model.graph.node:
        shape, elem = shapes.get(n.output[0], ((), 1)) if n.output else ((), 1)
        rows.append({"onnx_node": n.name, "module": modules.get(n.name, ""), "op_type": n.op_type,
                     "role": roles[n.name], "block": found.block_of.get(n.name),
                     "out_shape": "x".join(map(str, shape)) or None,
                     "out_bytes": float(np.prod(shape)) * elem_size(elem) if shape else np.nan,
                     "params": pm[n.name][0], "macs": pm[n.name][1], "buffer_elems": buffers.get(n.name, 0.0),
                     "live_bytes": live.get(n.name, np.nan)})
    return pd.DataFrame(rows).set_index("onnx_node", drop=False)


def attach_nodes(rows: pd.DataFrame, nodes: pd.DataFrame, covered: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Fill module/role/block/params/macs/buffer_elems of per-layer rows from their ONNX node(s).

    ``rows`` has ``layer`` and ``onnx_node`` (the principal node); ``covered`` lists every ONNX node a
    fused layer computes (sums of params/MACs/buffers over them).
    """
    out = rows.copy()
    for col in ("module", "role", "block", "live_bytes"):
        out[col] = out["onnx_node"].map(nodes[col]) if len(nodes) and col in nodes else None
    for col in ("params", "macs", "buffer_elems"):
        def total(row, col=col):
            if covered is not None and row["layer"] in covered:
                names = covered[row["layer"]]
            else:
                names = [row["onnx_node"]] if row["onnx_node"] in nodes.index else []
            return float(nodes.loc[[n for n in names if n in nodes.index], col].sum()) if names else np.nan
        out[col] = out.apply(total, axis=1) if len(out) else []

    missing = out["role"].isna()
    out.loc[missing, "role"] = [classify_role(op, None) for op in out.loc[missing, "op_type"]]
    return out


def gap_row(frame: pd.DataFrame, timing: Timing, precision: str, batch: int) -> dict[str, Any]:
    """Per-layer sum vs end-to-end for one backend.

    ``gap_pct`` compares the per-layer sum of a run (median over runs) with the unprofiled end-to-end
    median. ``layers_sum_ms`` (the sum of per-layer medians) is lower when other processes preempt
    random layers; ``interference_pct`` is that difference, a measure of how noisy the machine was.
    """
    e2e, run_sum = timing.end_to_end_ms, timing.run_sum_ms
    layers_sum = float(frame["time_ms"].sum())
    return {"backend": frame["backend"].iloc[0], "precision": precision, "batch": batch, "layers": len(frame),
            "layers_sum_ms": layers_sum, "run_sum_ms": run_sum, "profiled_run_ms": timing.profiled_run_ms,
            "end_to_end_ms": e2e, "gap_ms": e2e - run_sum, "gap_pct": 100.0 * (e2e - run_sum) / e2e if e2e else np.nan,
            "interference_pct": 100.0 * (run_sum - layers_sum) / run_sum if run_sum else np.nan}


def profile_layers(run_dir: str | os.PathLike, backends: Sequence[str] = ("ort",), *, batch: int = 8,
                   precisions: Sequence[str] | None = ("fp32",), threads: int | None = None, runs: int = 20,
                   warmup_runs: int = 5, duration_s: float = 2.0, device: str = "cpu") -> LayerProfile:
    """Profile layer by layer on every backend × precision of a run folder.

    Raises:
        BackendUnavailable: a requested backend cannot run here (before anything runs).
    """
    if batch < 1 or runs < 1 or warmup_runs < 0:
        raise ConfigError(f"batch and runs must be ≥ 1 and warm-up ≥ 0 (got {batch}, {runs}, {warmup_runs})")
    plan = sources.plan(run_dir, backends, precisions, device=device)
    none = [s.backend for s in plan if s.backend_class.layer_profiler is None]
    if none:
        raise ConfigError(f"backend '{none[0]}' has no per-layer profiler")
    frames, gaps = [], []
    for src in plan:
        fn = resolve(src.backend_class.layer_profiler)  # the backend names its profiler ("module:function")
        for frame, timing in fn(src, run_dir=Path(run_dir), batch=batch, threads=threads, runs=runs,
                                warmup_runs=warmup_runs, duration_s=duration_s):
            frames.append(frame)
            gaps.append(gap_row(frame, timing, src.precision, batch))
    frame = pd.concat(frames, ignore_index=True) if frames else make_frame([])
    onnx_path = Path(run_dir) / runfolder.onnx_name("fp32")
    found = find_attention(onnx_path) if onnx_path.is_file() else None
    if found is not None:
        print_warnings(found, onnx_path)
    return LayerProfile(frame=frame, gaps=pd.DataFrame(gaps), attention_blocks=None if found is None else len(found),
                        warnings=[] if found is None else list(found.warnings),
                        blocks=classify(onnx_path) if found is not None and len(found) else [])
