"""The one attention analysis feeds the profilers: buffer-model blocks, memory tags and liveness, layer roles."""

from __future__ import annotations

import onnx
import pandas as pd
import pytest

from seadeploy.dataflow.buffers import analyse_buffers
from seadeploy.graphs.attention import find_attention
from seadeploy.profiling.memory import activation_memory
from seadeploy.profiling.per_layer import LayerProfile, node_info
from seadeploy.profiling.schema import ATTENTION_ROLES, make_frame

EXPORTERS = ("dynamo", "torchscript")


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_buffers_count_no_attention_in_resnet_d(exported, exporter):
    # a 2×2 average-pool shortcut is a downsampling, not a tiled squeeze
    report = analyse_buffers(exported("resnet_d", exporter))
    summary = report.summary()
    assert summary["attention_blocks"] == 0 and summary["attention_buffer_elements"] == 0 and report.blocks.empty
    assert summary["total_buffer_elements"] > 0  # the windows and the residual joins still buffer


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_buffers_blocks_are_the_structural_blocks(exported, exporter):
    report = analyse_buffers(exported("tiled_se", exporter))
    assert report.summary()["attention_blocks"] == 2
    assert list(report.blocks["block"]) == ["stage1.tse", "stage2.tse"]
    # a 4-row tile band of the 16-wide, 8-channel map is held (then 4 rows of the 8×8 map after the stride)
    assert (report.blocks["attention_elements"] > 0).all()
    assert set(report.joins.loc[report.joins["attention_elements"] > 0, "block"]) == {"stage1.tse", "stage2.tse"}


def _without_weight_identities(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph with TorchScript's ``Identity(initializer)`` nodes removed and their readers rewired."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = {i.name for i in m.graph.initializer}
    rename = {n.output[0]: n.input[0] for n in m.graph.node if n.op_type == "Identity" and n.input[0] in inits}
    kept = [n for n in m.graph.node if not (n.op_type == "Identity" and n.input[0] in inits)]
    for n in kept:
        n.input[:] = [rename.get(i, i) for i in n.input]
    del m.graph.node[:]
    m.graph.node.extend(kept)
    return m


def test_memory_liveness_ignores_identity_passed_weights(exported):
    model = onnx.load(exported("shift_balance", "torchscript"))
    inits = {i.name for i in model.graph.initializer}
    assert any(n.op_type == "Identity" and n.input[0] in inits for n in model.graph.node)  # the case exists
    ts, plain = activation_memory(model), activation_memory(_without_weight_identities(model))
    assert ts.totals["peak_live_bytes"] == plain.totals["peak_live_bytes"]
    assert ts.totals["buffers"] == plain.totals["buffers"]


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_memory_tags_attention_by_structure(exported, exporter):
    path = exported("se_hardsigmoid", exporter)
    report = activation_memory(path)
    found = find_attention(path)
    assert report.totals["attention_blocks"] == 2 and report.totals["warnings"] == []
    tagged = report.frame[report.frame["role"].isin(ATTENTION_ROLES)]
    assert set(tagged["onnx_node"]) == {n for b in found.blocks for n in b.nodes}
    assert set(tagged["block"]) == {"stage1.ca", "stage2.ca"}


def test_layer_roles_and_blocks_by_structure(exported):
    nodes = node_info(exported("eca", "dynamo"), batch=1)
    att = nodes[nodes["role"].isin(ATTENTION_ROLES)]
    assert set(att["block"]) == {"stage1.eca", "stage2.eca"} and set(att["role"]) == set(ATTENTION_ROLES)
    assert set(nodes.loc[nodes["op_type"] == "Sigmoid", "role"]) == {"attention.gate"}
    assert nodes.loc[nodes["role"] == "attention.squeeze", "op_type"].tolist() == ["ReduceMean", "ReduceMean"]
    assert nodes.loc[nodes["block"].isna(), "role"].isin(["conv", "act", "pool", "linear", "other", "norm"]).all()


def test_node_info_reuses_the_callers_analysis(exported, monkeypatch):
    path = exported("eca", "dynamo")
    found = find_attention(path)
    monkeypatch.setattr("seadeploy.profiling.per_layer.find_attention", lambda *_: pytest.fail("analysed twice"))
    nodes = node_info(path, batch=1, found=found)
    assert set(nodes["block"].dropna()) == {"stage1.eca", "stage2.eca"}


def test_layers_summary_carries_blocks_and_share():
    rows = [("conv", None, 6.0), ("attention.squeeze", "s.se", 1.0), ("attention.gate", "s.se", 1.0)]
    frame = make_frame([{"role": r, "block": b, "time_ms": t} for r, b, t in rows], backend="ort",
                       precision="fp32", batch=1)
    summary = LayerProfile(frame=frame, gaps=pd.DataFrame(), attention_blocks=1).summary()
    assert summary["attention_blocks"] == 1 and summary["attention_share"] == pytest.approx(0.25)
    assert summary["attention_share_by_backend"] == {"ort/fp32": pytest.approx(0.25)}
