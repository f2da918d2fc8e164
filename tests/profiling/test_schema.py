"""The per-layer frame schema: roles, attention blocks, frame building and the attention share."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seadeploy.graphs.attention import find_attention
from seadeploy.graphs.index import node_modules
from seadeploy.profiling import schema


@pytest.mark.parametrize(("op", "module", "role"), [
    ("Conv", "layer1.0.conv1", "conv"), ("FusedConv", "layer1.0.conv1", "conv"), ("BatchNormalization", "bn1", "norm"),
    ("Relu", "relu", "act"), ("MaxPool", "pool", "pool"), ("Gemm", "fc", "linear"), ("Add", "layer1.0", "other"),
    ("Sigmoid", "blocks.0.act", "act"), ("Mul", "blocks.0.act", "act"), ("Conv+Relu", "layer1.0.conv1", "conv"),
    # names never make a node attention: that takes the graph (seadeploy.graphs.attention)
    ("ReduceMean", "layer1.0.attn", "pool"), ("Mul", "layer1.0.attn", "other"), ("Sigmoid", "layer1.0.attn", "act")])
def test_classify_role(op, module, role):
    assert schema.classify_role(op, module) == role
    assert role in schema.ROLES


def test_graph_gives_attention_roles(graphs):
    # TSE lowering: Reshape + ReduceMean are the squeeze, the MLP the excitation, Sigmoid the gate,
    # Resize + Mul the scale — found from the graph, whatever the module is called.
    model = graphs.tse_block(tile=2, module="stage.ctx")
    roles = schema.attention_roles(model, node_modules(model), find_attention(model))
    assert roles == {"tiles": "attention.squeeze", "squeeze": "attention.squeeze", "fc1": "attention.excite",
                     "act": "attention.excite", "fc2": "attention.excite", "gate": "attention.gate",
                     "up": "attention.scale", "scale": "attention.scale"}


def test_make_frame_fills_schema_and_pct():
    df = schema.make_frame([{"layer": "a", "time_ms": 1.0, "role": "conv"}, {"layer": "b", "time_ms": 3.0,
                            "role": "attention.gate", "extra": 1}], backend="ort", precision="fp32", batch=8)
    assert list(df.columns[: len(schema.COLUMNS)]) == list(schema.COLUMNS) and df.columns[-1] == "extra"
    assert df["time_pct"].tolist() == [25.0, 75.0]
    assert df["macs"].isna().all() and (df["batch"] == 8).all()
    assert schema.check_frame(df) is df
    with pytest.raises(ValueError, match="unknown roles"):
        schema.check_frame(df.assign(role="attention.magic"))
    with pytest.raises(ValueError, match="lacks columns"):
        schema.check_frame(df.drop(columns=["role"]))
    assert list(schema.empty_frame().columns) == list(schema.COLUMNS)


def test_attention_share_per_block_and_total():
    rows = [("conv", None, 6.0), ("attention.squeeze", "a.attn", 1.0), ("attention.excite", "a.attn", 0.5),
            ("attention.gate", "a.attn", 0.25), ("attention.scale", "a.attn", 0.25), ("attention.squeeze", "b.attn", 2.0)]
    df = schema.make_frame([{"role": r, "block": b, "time_ms": t} for r, b, t in rows], backend="ort",
                           precision="fp32", batch=1)
    share = schema.attention_share(df).set_index("block")
    assert share.loc["a.attn", "attention"] == 2.0 and share.loc["b.attn", "attention.squeeze"] == 2.0
    assert share.loc["TOTAL", "attention"] == 4.0
    assert share.loc["TOTAL", "pct_of_total"] == pytest.approx(40.0)
    assert np.isclose(share.loc["a.attn", "pct_of_total"], 20.0)
    assert isinstance(share, pd.DataFrame)
