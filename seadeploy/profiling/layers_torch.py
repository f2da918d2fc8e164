"""PyTorch per-layer latency with ``torch.profiler``, each top-level ATen op attributed to its module.

torch.profiler's ``with_modules`` only works for TorchScript, so every module's forward is wrapped in
a ``record_function("seadeploy.module::<path>")`` (forward pre/post hooks) and each ATen op is
attributed to the innermost module range that contains it (ops inside other ops are part of their
parent's time). One row per (module, op, occurrence) with the median over runs.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch
from torch import nn

from seadeploy.errors import ConfigError
from seadeploy.graphs.ops import SQUEEZE_OPS, VIEW_OPS
from seadeploy.profiling.latency import make_feed
from seadeploy.profiling.per_layer import Timing, attach_nodes, node_info
from seadeploy.profiling.schema import classify_role, make_frame
from seadeploy.profiling.sources import input_shape, open_backend
from seadeploy.profiling.timing import measure

MODULE_TAG, RUN_TAG = "seadeploy.module::", "seadeploy.run#"
#: ATen op → the ONNX op it exports to (for roles and for matching ONNX nodes).
ATEN_TO_ONNX = {
    "conv2d": "Conv", "convolution": "Conv", "_convolution": "Conv", "conv1d": "Conv", "linear": "Gemm",
    "addmm": "Gemm", "matmul": "MatMul", "mm": "MatMul", "bmm": "MatMul", "batch_norm": "BatchNormalization",
    "layer_norm": "LayerNormalization", "group_norm": "GroupNormalization", "relu": "Relu", "silu": "Swish",
    "sigmoid": "Sigmoid", "tanh": "Tanh", "hardsigmoid": "HardSigmoid", "hardswish": "HardSwish", "gelu": "Gelu",
    "softmax": "Softmax", "_softmax": "Softmax", "mean": "ReduceMean", "amax": "ReduceMax", "max": "ReduceMax",
    "std": "ReduceMean", "var": "ReduceMean", "sum": "ReduceSum", "adaptive_avg_pool2d": "GlobalAveragePool",
    "adaptive_max_pool2d": "GlobalMaxPool", "avg_pool2d": "AveragePool", "max_pool2d": "MaxPool",
    "upsample_nearest2d": "Resize", "mul": "Mul", "add": "Add", "sub": "Sub", "div": "Div", "reshape": "Reshape",
    "view": "Reshape", "flatten": "Flatten", "constant_pad_nd": "Pad", "pad": "Pad", "cat": "Concat",
    "rand": "RandomUniformLike", "expand": "Expand", "repeat_interleave": "Expand", "slice": "Slice",
    "dropout": "Dropout", "clamp": "Clip", "hardtanh": "Clip",
}


def onnx_op(aten_name: str) -> str:
    """``aten::relu_`` → ``Relu``; unknown ops keep their ATen name."""
    base = aten_name.split("::")[-1].rstrip("_")
    return ATEN_TO_ONNX.get(base, aten_name)


#: Lines libkineto (torch.profiler's native half) writes straight to file descriptor 2 on every profile start
#: and stop ("USDT:… profiler_start"), whatever KINETO_LOG_LEVEL says (torch 2.13); they are not ours to show.
KINETO_LINES = ("USDT:", "STAGE:")


@contextlib.contextmanager
def kineto_lines_dropped() -> Iterator[None]:
    """Capture fd 2 around a profile and pass every line through except libkineto's start/stop chatter."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().decode(errors="replace").splitlines(keepends=True)
                    if not line.startswith(KINETO_LINES)]
            sys.stderr.write("".join(kept))


@contextlib.contextmanager
def module_ranges(model: nn.Module) -> Iterator[None]:
    """Wrap every module's forward in a profiler range named after its path (root = ``""``)."""
    stacks: dict[int, list] = defaultdict(list)
    handles = []
    for name, mod in model.named_modules():
        def pre(m, args, name=name):
            rf = torch.profiler.record_function(MODULE_TAG + name)
            rf.__enter__()
            stacks[id(m)].append(rf)

        def post(m, args, out):
            stacks[id(m)].pop().__exit__(None, None, None)

        handles += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def attribute_events(events) -> pd.DataFrame:
    """Rows (run, module, op, occurrence, time_ms) from profiler ``FunctionEvent``s.

    An ATen op counts when its parent range is a module range (so nested ops are not counted twice);
    time is device time when the op ran kernels on a GPU, else CPU time.
    """
    rows = []
    counts: dict[tuple, int] = defaultdict(int)
    for e in events:
        parent = e.cpu_parent
        if not e.name.startswith("aten::") or parent is None or not parent.name.startswith(MODULE_TAG):
            continue
        run_ev = parent
        while run_ev is not None and not run_ev.name.startswith(RUN_TAG):
            run_ev = run_ev.cpu_parent
        run = int(run_ev.name[len(RUN_TAG):]) if run_ev is not None else 0
        module = parent.name[len(MODULE_TAG):]
        key = (run, module, e.name)
        occ = counts[key]
        counts[key] += 1
        dev = float(getattr(e, "device_time_total", 0.0) or 0.0)
        rows.append({"run": run, "module": module, "op": e.name, "occurrence": occ,
                     "time_ms": (dev if dev > 0 else float(e.cpu_time_total)) / 1e3})
    return pd.DataFrame(rows, columns=["run", "module", "op", "occurrence", "time_ms"])


def torch_rows(per_run: pd.DataFrame, nodes: pd.DataFrame | None) -> pd.DataFrame:
    """Median over runs per (module, op, occurrence), matched to the ONNX node of the same module and op."""
    keys = ["module", "op", "occurrence"]
    agg = per_run.groupby(keys, sort=False)["time_ms"].median().reset_index()
    agg["op_type"] = agg["op"].map(onnx_op)
    agg["layer"] = [f"{m or '<root>'}:{op.split('::')[-1]}#{o}" for m, op, o in zip(agg["module"], agg["op"],
                                                                                   agg["occurrence"])]
    matched = []
    for m, op, occ in zip(agg["module"], agg["op_type"], agg["occurrence"]):
        cands = [] if nodes is None else nodes.index[(nodes["module"] == m) & (nodes["op_type"] == op)].tolist()
        matched.append(cands[occ] if occ < len(cands) else None)
    agg["onnx_node"] = matched
    return agg


#: aten view ops the ONNX name map does not cover (``VIEW_OPS`` holds their ONNX counterparts).
_ATEN_VIEWS = frozenset({"aten::unsqueeze", "aten::squeeze", "aten::view", "aten::expand_as", "aten::flatten"})


def module_blocks(nodes: pd.DataFrame | None) -> dict[str, str]:
    """``{module path: attention block}`` from the ONNX nodes of the blocks found by graph structure."""
    if nodes is None or "block" not in nodes or "module" not in nodes:
        return {}
    part = nodes[nodes["block"].notna() & nodes["module"].astype(bool)]
    return dict(zip(part["module"], part["block"]))


def _block_role(op_type: str) -> str:
    """Role of a torch op with no ONNX node inside a block (the block itself was found in the ONNX graph)."""
    if op_type in SQUEEZE_OPS:
        return "attention.squeeze"
    if op_type in ("Sigmoid", "HardSigmoid", "Tanh", "Clip"):
        return "attention.gate"
    return "attention.scale" if op_type in ("Mul", "Add", "Expand", "Resize") else "attention.excite"


def sequence_roles(modules: list[str], ops: list[str], roles: list[str], blocks: list[str | None]) -> list[str]:
    """Refine attention roles of ops in call order: inside a block, shape ops up to its first squeeze
    belong to the squeeze and those after its gate to the scale (the graph-free counterpart of
    :func:`schema.attention_roles`)."""
    out, state = list(roles), {}
    for i, (_, op, role, block) in enumerate(zip(modules, ops, roles, blocks)):
        if not isinstance(block, str):
            continue
        seen = state.setdefault(block, set())
        if role in ("attention.squeeze", "attention.gate"):
            seen.add(role)
        elif onnx_op(op) in VIEW_OPS or op in VIEW_OPS or op in _ATEN_VIEWS:
            if "attention.squeeze" not in seen:
                out[i] = "attention.squeeze"
            elif "attention.gate" in seen:
                out[i] = "attention.scale"
    return out


def module_params(model: nn.Module, modules: list[str]) -> list[float]:
    """Parameters a module owns directly, charged to its first op (BatchNorm, folded away in ONNX, included)."""
    owned = {name: float(sum(p.numel() for p in mod.parameters(recurse=False))) for name, mod in model.named_modules()}
    first: set[str] = set()
    out = []
    for m in modules:
        out.append(owned.get(m, 0.0) if m not in first else 0.0)
        first.add(m)
    return out


def profile_torch(src, *, run_dir, batch: int, threads: int | None, runs: int, warmup_runs: int,
                  duration_s: float) -> list[tuple[pd.DataFrame, Timing]]:
    """torch.profiler over ``runs`` forwards of the run's checkpoint; ``[(frame, Timing)]``.

    The unprofiled end-to-end times are taken half before and half after the profiled runs.
    """
    onnx_path = run_dir / "model.onnx"
    nodes = node_info(onnx_path, batch) if onnx_path.is_file() else None
    with open_backend(src, threads=threads) as be:
        if getattr(be, "mode", "eager") != "eager":
            # Inductor fuses ops across modules and a CUDA graph replays without calling them: there are no module
            # boundaries to attribute kernels to. Per-layer time is measured eagerly (with the same autocast/TF32).
            raise ConfigError(f"per-layer times need the eager module structure, and '{src.backend}' runs {be.mode}: "
                              "profile torch or torch:cuda (+fp16/+bf16/+tf32) for layers; the variant's latency is "
                              "in `profiling latency`")
        feed = make_feed({k: tuple(v) for k, v in be.input_specs.items()}, batch, input_shape(run_dir))
        call = be.timed(feed)
        before = measure(call, warmup_s=0.5, duration_s=duration_s / 2, batch=batch).times_ms
        activities = [torch.profiler.ProfilerActivity.CPU]
        if be.device.type == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        for _ in range(warmup_runs):
            call()
        with kineto_lines_dropped(), module_ranges(be.model), torch.profiler.profile(activities=activities) as prof:
            for i in range(runs):
                with torch.profiler.record_function(f"{RUN_TAG}{i}"):
                    call()
        after = measure(call, warmup_s=0.0, duration_s=duration_s / 2, batch=batch).times_ms
        device = str(be.device)
        model = be.model
        amp = getattr(be, "amp", None)
    per_run = attribute_events(prof.events())
    timing = Timing(float(np.median(np.concatenate([before, after]))),
                    float(per_run.groupby("run")["time_ms"].sum().median()))
    agg = torch_rows(per_run, nodes)
    rows = attach_nodes(agg, nodes if nodes is not None else pd.DataFrame(columns=["module", "role", "block"]))
    rows["module"] = agg["module"].to_numpy()
    unmatched = rows["onnx_node"].isna()
    by_module = module_blocks(nodes)  # blocks come from the ONNX graph's structure, never from module names
    rows["block"] = [b if isinstance(b, str) else by_module.get(m) for b, m in zip(rows["block"], rows["module"])]
    rows.loc[unmatched, "role"] = [_block_role(op) if isinstance(b, str) else classify_role(op, m) for op, m, b in
                                   zip(agg.loc[unmatched, "op_type"], agg.loc[unmatched, "module"],
                                       rows.loc[unmatched, "block"])]
    rows["op_type"] = agg["op"].to_numpy()
    rows["role"] = sequence_roles(list(rows["module"]), list(rows["op_type"]), list(rows["role"]),
                                  list(rows["block"]))
    rows["params"] = module_params(model, list(agg["module"]))
    rows["device"] = device
    # time_ms is CUDA kernel time (profiler device time of the op and its children) on a GPU, CPU time otherwise
    spec = str(src.backend)  # "torch" on a CUDA device is labelled with its variant, as "torch:cuda" would be
    label = spec if ":" in spec or device == "cpu" else f"{spec}:{device.split(':')[0]}"
    return [(make_frame(rows.drop(columns=["op", "occurrence"]), backend=label, precision=amp or src.precision,
                        batch=batch), timing)]
