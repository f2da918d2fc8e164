"""Channel attention found by graph structure: exact block counts and roles on nets written in the styles common
libraries use, exported by both PyTorch exporters, and zero blocks on pooling that is not attention."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from seadeploy.graphs.attention import find_attention, keep_fp32_nodes
from seadeploy.graphs.index import GraphIndex
from seadeploy.graphs.load import load_ir
from tests.graphs.attention_nets import ATTENTION_NETS

EXPORTERS = ("dynamo", "torchscript")
#: Ops that only move data or compute shapes (they differ between exporters); BatchNorm1d is folded by one.
_IGNORED = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Constant", "Shape", "Gather", "Identity",
            "Cast", "Slice", "Concat", "BatchNormalization"}
_SAME = {"GlobalAveragePool": "mean", "ReduceMean": "mean", "GlobalMaxPool": "max", "ReduceMax": "max",
         "MaxPool": "max", "Gemm": "fc", "MatMul": "fc"}
_SE = {"squeeze": ["mean"], "excite": ["Conv", "Conv", "Relu"], "gate": ["Sigmoid"], "scale": ["Mul"]}
#: fixture → the compute ops of each of its two blocks, per role (both exporters).
EXPECTED = {
    "se_mean_conv": _SE,
    "se_adaptive_linear": {**_SE, "excite": ["Relu", "fc", "fc"], "scale": ["Expand", "Mul"]},
    "se_hardsigmoid": {**_SE, "gate": ["HardSigmoid"]},
    # hard-swish h·relu6(h+3)/6 inside the excitation; the relu6(s+3)/6 gate as Add/Clip/Div
    "se_relu6": {**_SE, "excite": ["Add", "Clip", "Conv", "Conv", "Div", "Mul"], "gate": ["Add", "Clip", "Div"]},
    "se_std_max": {**_SE, "squeeze": ["Add", "Div", "Mul", "Mul", "Sqrt", "Sub", "max", "mean", "mean"],
                   "excite": ["Relu", "fc", "fc"]},
    "eca": {**_SE, "excite": ["Conv"], "scale": ["Expand", "Mul"]},
    "cbam": {"squeeze": ["max", "max", "mean", "mean"], "excite": ["Add", "Conv", "Conv", "Conv", "Conv", "Conv",
                                                                   "Relu", "Relu"],
             "gate": ["Sigmoid", "Sigmoid"], "scale": ["Mul", "Mul"]},
    "global_context": {**_SE, "squeeze": ["Conv", "Softmax", "fc"],
                       "excite": ["Conv", "Conv", "LayerNormalization", "Relu"]},
    "shift_balance": {**_SE, "excite": ["Relu", "fc", "fc"], "gate": ["Mul", "Tanh"], "scale": ["Add"]},
    "tiled_se": {**_SE, "squeeze": ["AveragePool"], "scale": ["Mul", "Resize"]},
}
KINDS = {"cbam": "channel+spatial", "shift_balance": "shift", "global_context": "global-context"}


def _compute_roles(path, block) -> dict[str, list[str]]:
    model = onnx.load(path)
    ops = {n.name: n.op_type for n in model.graph.node}
    ix = GraphIndex(load_ir(model))
    static = {n.name for n in ix.nodes if n.outputs and all(ix.is_static(o) for o in n.outputs)}
    return {role: sorted(_SAME.get(ops[n], ops[n]) for n in getattr(block, role)
                         if ops[n] not in _IGNORED and n not in static)
            for role in ("squeeze", "excite", "gate", "scale")}


def test_every_fixture_has_expectations():
    assert set(EXPECTED) == set(ATTENTION_NETS)


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", list(ATTENTION_NETS))
def test_blocks_and_roles_by_structure(exported, name, exporter):
    path = exported(name, exporter)
    found = find_attention(path)
    assert len(found.blocks) == 2 and not found.warnings
    sub = ATTENTION_NETS[name][1]
    assert [b.name for b in found.blocks] == [f"stage1.{sub}", f"stage2.{sub}"]  # metadata only names them
    for block in found.blocks:
        assert block.kind == KINDS.get(name, "channel")
        assert _compute_roles(path, block) == EXPECTED[name]
        assert block.tiled == (name == "tiled_se")
    members = [n for b in found.blocks for n in b.nodes]
    assert len(members) == len(set(members))  # a node belongs to one block
    outside = {n for n, b in found.block_of.items() if b is None}
    assert all(found.roles[n] is None for n in outside)
    heads = [n.name for n in onnx.load(path).graph.node if n.op_type in ("Gemm", "MatMul")][-1:]
    assert all(found.block_of[h] is None for h in heads)  # the classifier (after the GAP head) is not attention


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_pooling_that_is_not_attention(exported, exporter):
    # stem max-pool, ResNet-D 2×2 avg-pool shortcut, identity residual, SiLU = x·sigmoid(x), GAP classifier head
    found = find_attention(exported("resnet_d", exporter))
    assert found.blocks == [] and not found.warnings
    assert set(found.roles.values()) == {None}


def test_warning_when_attention_like_ops_form_no_block(exported):
    # x · sigmoid(mean(x)) without channel mixing is no channel attention; the graph still looks like one.

    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[2, 3], keepdims=1),
             helper.make_node("Sigmoid", ["m"], ["g"]), helper.make_node("Mul", ["x", "g"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])])
    found = find_attention(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert found.blocks == [] and "no channel-attention block" in found.warnings[0]


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_fp16_keeps_reductions_excitation_and_gate(exported, exporter):
    path = exported("se_std_max", exporter)
    model = onnx.load(path)
    ops = {n.name: n.op_type for n in model.graph.node}
    kept = keep_fp32_nodes(model)
    block = find_attention(model).blocks[0]
    assert set(block.reductions) <= kept and set(block.gate) <= kept and set(block.excite) <= kept
    assert not any(ops[n] == "Mul" for n in block.scale if n in kept)  # the scale multiply runs in fp16
    assert not any(ops[n] == "Reshape" for n in block.squeeze[:1] if n in kept)  # the full-map flatten too
