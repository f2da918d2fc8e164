"""The per-layer frame: column names, roles and the attention-block rule — one source of truth.

Every per-layer profiler (``layers_torch``, ``layers_ort``, ``layers_trt``), the memory and buffer
analyses and the reports use these names (ARCHITECTURE.md §2). A column a backend cannot measure is
NaN. ``role`` splits the cost of channel attention into squeeze, excitation, gate and scale:

>>> attention_block("layer1.0.attn.fc1")
'layer1.0.attn'
>>> classify_role("ReduceMean", "layer1.0.attn")
'attention.squeeze'
>>> classify_role("Conv", "layer1.0.conv1")
'conv'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

SCHEMA_VERSION = 1

COLUMNS: tuple[str, ...] = (
    "backend", "precision", "batch", "layer", "onnx_node", "module", "op_type", "role", "block",
    "time_ms", "time_pct", "out_shape", "out_bytes", "params", "macs", "buffer_elems",
)
#: pandas dtypes of the columns (numbers are float so that "not measured" can be NaN).
DTYPES: dict[str, str] = {
    "backend": "object", "precision": "object", "batch": "Int64", "layer": "object", "onnx_node": "object",
    "module": "object", "op_type": "object", "role": "object", "block": "object", "time_ms": "float64",
    "time_pct": "float64", "out_shape": "object", "out_bytes": "float64", "params": "float64",
    "macs": "float64", "buffer_elems": "float64",
}

ATTENTION_ROLES: tuple[str, ...] = ("attention.squeeze", "attention.excite", "attention.gate", "attention.scale")
ROLES: tuple[str, ...] = ("conv", "norm", "act", "pool", "linear", *ATTENTION_ROLES, "other")

ATTN_NAME = "attn"  # the attribute name every backbone gives its attention submodule (CONTRACTS.md)

# ONNX op types (and ORT fused / TensorRT layer types) per role outside attention blocks.
_CONV = {"Conv", "ConvTranspose", "QLinearConv", "ConvInteger", "FusedConv", "NhwcFusedConv", "NhwcConv",
         "Convolution", "Deconvolution", "CaskConvolution", "CaskDeconvolution"}
_NORM = {"BatchNormalization", "LayerNormalization", "InstanceNormalization", "GroupNormalization", "LRN",
         "SimplifiedLayerNormalization", "Normalization", "Scale"}
_ACT = {"Relu", "Sigmoid", "Tanh", "LeakyRelu", "Elu", "Selu", "Celu", "HardSigmoid", "HardSwish", "Gelu",
        "FastGelu", "Softplus", "Softsign", "Clip", "PRelu", "Mish", "Swish", "QuickGelu", "Softmax",
        "LogSoftmax", "ThresholdedRelu", "Activation"}
_POOL = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool", "GlobalLpPool", "ReduceMean",
         "ReduceMax", "QLinearAveragePool", "QLinearGlobalAveragePool", "Pooling", "Reduce"}
_LINEAR = {"Gemm", "MatMul", "FusedMatMul", "QLinearMatMul", "MatMulInteger", "FusedGemm", "MatrixMultiply",
           "FullyConnected", "Einsum"}

# Inside an attention block.
SQUEEZE_OPS = frozenset({"ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceL1", "ReduceL2",
                         "ReduceSumSquare", "ReduceLogSumExp", "ReduceProd", "GlobalAveragePool", "GlobalMaxPool",
                         "GlobalLpPool", "AveragePool", "MaxPool", "LpPool", "RandomUniformLike", "RandomUniform",
                         "QLinearAveragePool", "QLinearGlobalAveragePool", "Pooling", "Reduce"})
GATE_OPS = frozenset({"Sigmoid", "HardSigmoid", "Tanh", "Softmax", "LogSoftmax", "Softsign"})
BROADCAST_OPS = frozenset({"Resize", "Upsample", "Expand", "Tile", "Resize_nearest"})
JOIN_OPS = frozenset({"Mul", "Add", "Sub", "Div", "Sum", "Where", "ElementWise", "PointWise"})
_EXCITE_OPS = _CONV | _NORM | _LINEAR | {"Relu", "LeakyRelu", "Elu", "Gelu", "Clip", "PRelu", "Mish", "Swish",
                                         "HardSwish", "Softplus"}
# Sub-module name hints (the name after ".attn."): mirror common attention code (timm, the reference repos).
_SQUEEZE_HINTS = ("squeeze", "pool", "gap", "gmp", "avg", "tile")
_EXCITE_HINTS = ("fc", "mlp", "excit", "conv", "bn", "norm", "act", "linear", "fusion", "fc_spatial", "dw", "lambda")
_GATE_HINTS = ("gate", "sigmoid")
_SCALE_HINTS = ("scale", "upsample", "interp", "broadcast", "resize")


def attention_block(module_path: str | None) -> str | None:
    """The attention block a module belongs to: the path up to and including the ``attn`` component.

    Returns ``None`` outside attention (or for an empty/unknown path).

    >>> attention_block("stages.0.attn"), attention_block("blocks.3.conv_dw"), attention_block(None)
    ('stages.0.attn', None, None)
    """
    if not module_path or not isinstance(module_path, str):
        return None
    parts = module_path.split(".")
    if ATTN_NAME not in parts:
        return None
    return ".".join(parts[: parts.index(ATTN_NAME) + 1])


def _leaf(module_path: str, block: str) -> str:
    """The sub-module name right after the block (``"fc1"`` for ``layer1.0.attn.fc1.0``), lower case."""
    rest = module_path[len(block):].lstrip(".")
    return rest.split(".")[0].lower() if rest else ""


def _hint_role(leaf: str) -> str | None:
    for hints, role in ((_GATE_HINTS, "gate"), (_SCALE_HINTS, "scale"), (_SQUEEZE_HINTS, "squeeze"),
                        (_EXCITE_HINTS, "excite")):
        if any(leaf.startswith(h) for h in hints):
            return f"attention.{role}"
    return None


def _attention_role(op_type: str, leaf: str) -> str:
    hint = _hint_role(leaf)
    if op_type in SQUEEZE_OPS:
        return "attention.squeeze"
    if op_type in GATE_OPS:
        # An inner activation module (``act``, ``act1``) is part of the excitation MLP, not the gate.
        return "attention.excite" if hint == "attention.excite" else "attention.gate"
    if op_type in BROADCAST_OPS:
        return "attention.scale"
    if hint is not None:
        return hint
    if op_type in _EXCITE_OPS:
        return "attention.excite"
    if op_type in JOIN_OPS:
        return "attention.scale"
    return "attention.excite"


def classify_role(op_type: str, module_path: str | None = None) -> str:
    """The ``role`` of one ONNX node / engine layer from its op type and PyTorch module path.

    Inside an attention block (see :func:`attention_block`) the role is one of the ``attention.*``
    roles: reductions are the squeeze, sigmoid-like ops the gate, broadcasts and the final multiply
    or add the scale, and everything else (1×1 convs, linears, inner activations) the excitation.
    Without a graph this is a heuristic; :func:`seadeploy.profiling.graph.attention_roles` refines it
    from the ONNX topology.
    """
    op = str(op_type or "")
    base = op.split("+")[0] if "+" in op else op  # "Conv+Relu" style fused names count as the first op
    block = attention_block(module_path)
    if block is not None:
        return _attention_role(base, _leaf(module_path, block))  # type: ignore[arg-type]
    leaf = (module_path or "").split(".")[-1].lower()
    if base in _CONV:
        return "conv"
    if base in _NORM:
        return "norm"
    if base in _ACT or (leaf.startswith("act") and base in {"Mul", "Sigmoid"}):
        return "act"
    if base in _POOL:
        return "pool"
    if base in _LINEAR:
        return "linear"
    return "other"


def is_attention_role(role: str | None) -> bool:
    """True for the four ``attention.*`` roles."""
    return isinstance(role, str) and role.startswith("attention.")


def empty_frame() -> pd.DataFrame:
    """A zero-row frame with the schema's columns and dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=DTYPES[c]) for c in COLUMNS})


def make_frame(rows: Iterable[Mapping[str, Any]] | pd.DataFrame, **constants: Any) -> pd.DataFrame:
    """Build a schema frame from row dicts (or a frame); missing columns become NaN, extra ones are kept last.

    ``constants`` fill whole columns (``backend="ort", precision="fp32", batch=8``). ``time_pct`` is
    recomputed from ``time_ms`` when absent.
    """
    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    for key, value in constants.items():
        df[key] = value
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = np.nan
    if df["time_pct"].isna().all() and df["time_ms"].notna().any():
        total = float(df["time_ms"].sum())
        df["time_pct"] = 100.0 * df["time_ms"] / total if total > 0 else np.nan
    extra = [c for c in df.columns if c not in COLUMNS]
    df = df[list(COLUMNS) + extra]
    for col, dtype in DTYPES.items():
        if dtype == "object":
            df[col] = df[col].astype(object).where(df[col].notna(), None)
        else:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype(dtype)
    return df.reset_index(drop=True)


def check_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Raise ``ValueError`` when ``df`` lacks a schema column or has an unknown role; return it unchanged."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"per-layer frame lacks columns {missing}; build it with schema.make_frame")
    bad = sorted({r for r in df["role"].dropna().unique() if r not in ROLES})
    if bad:
        raise ValueError(f"unknown roles {bad}; valid roles: {', '.join(ROLES)}")
    return df


def attention_share(df: pd.DataFrame, value: str = "time_ms") -> pd.DataFrame:
    """Share of ``value`` spent in each attention role, per block and in total (block ``"TOTAL"``).

    Returns one row per (backend, precision, batch, block) with a column per attention role, the
    block's sum ``attention`` and ``pct_of_total`` (the block's attention as % of all layers).
    """
    keys = [k for k in ("backend", "precision", "batch") if k in df.columns]
    out = []
    for group_key, g in (df.groupby(keys, dropna=False) if keys else [((), df)]):
        total = float(g[value].sum(min_count=1)) if g[value].notna().any() else np.nan
        att = g[g["role"].map(is_attention_role)]
        base = dict(zip(keys, group_key if isinstance(group_key, tuple) else (group_key,)))
        blocks = [(b, att[att["block"] == b]) for b in sorted(att["block"].dropna().unique())]
        for name, part in [*blocks, ("TOTAL", att)]:
            row = {**base, "block": name}
            for role in ATTENTION_ROLES:
                row[role] = float(part.loc[part["role"] == role, value].sum())
            row["attention"] = float(part[value].sum())
            row["pct_of_total"] = 100.0 * row["attention"] / total if total and total == total else np.nan
            out.append(row)
    return pd.DataFrame(out)
