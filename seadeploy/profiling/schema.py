"""The per-layer frame: column names, roles and the attention-block rule — one source of truth.

Every per-layer profiler (``layers_torch``, ``layers_ort``, ``layers_trt``), the memory and buffer
analyses and the reports use these names (docs/architecture.md §2). A column a backend cannot measure is
NaN. ``role`` splits the cost of channel attention into squeeze, excitation, gate and scale (found by
graph structure in :mod:`seadeploy.graphs.attention`); other layers get a plain op-type role:

>>> classify_role("Conv", "layer1.0.conv1")
'conv'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from seadeploy.graphs.ops import (
    ROLE_ACT,
    ROLE_CONV,
    ROLE_LINEAR,
    ROLE_NORM,
    ROLE_POOL,
)
from seadeploy.runfolder import LAYER_COLUMNS as COLUMNS
from seadeploy.runfolder import LAYER_DTYPES as DTYPES

if TYPE_CHECKING:  # annotations only: the schema stays importable without onnx_ir (the run folder reads it)
    import onnx

    from seadeploy.graphs.blocks import AttentionGraph

SCHEMA_VERSION = 1

#: ``COLUMNS`` / ``DTYPES``: the per-layer file's columns and dtypes, defined with the file in :mod:`seadeploy.runfolder`.

ATTENTION_ROLES: tuple[str, ...] = ("attention.squeeze", "attention.excite", "attention.gate", "attention.scale")
ROLES: tuple[str, ...] = ("conv", "norm", "act", "pool", "linear", *ATTENTION_ROLES, "other")

def classify_role(op_type: str, module_path: str | None = None) -> str:
    """The plain ``role`` of one ONNX node / engine layer from its op type (conv, norm, act, pool, linear, other).

    Attention roles are never guessed from names or op types here: they come from the graph analysis
    (:func:`seadeploy.graphs.attention.find_attention`), which finds blocks by structure. ``module_path``
    only tells a SiLU written as ``x * sigmoid(x)`` inside an ``act`` module apart from other multiplies.
    """
    op = str(op_type or "")
    base = op.split("+")[0] if "+" in op else op  # "Conv+Relu" style fused names count as the first op
    leaf = (module_path or "").split(".")[-1].lower()
    if base in ROLE_CONV:
        return "conv"
    if base in ROLE_NORM:
        return "norm"
    if base in ROLE_ACT or (leaf.startswith("act") and base in {"Mul", "Sigmoid"}):
        return "act"
    if base in ROLE_POOL:
        return "pool"
    if base in ROLE_LINEAR:
        return "linear"
    return "other"


def attention_roles(model: onnx.ModelProto, modules: Mapping[str, str], found: AttentionGraph) -> dict[str, str]:
    """``{node: role}``: the ``attention.*`` role of every node of a block ``found`` by structure, the plain op-type
    role (:func:`classify_role`) elsewhere; ``modules`` is ``graphs.index.node_modules(model)``."""
    return {n.name: found.roles.get(n.name) or classify_role(n.op_type, modules.get(n.name, ""))
            for n in model.graph.node}


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
