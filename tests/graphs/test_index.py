"""The graph index: one per graph, with the producer/consumer lookups by tensor name the proto-level passes use."""

from __future__ import annotations

from onnx import TensorProto, helper

from seadeploy.graphs.index import GraphIndex


def _graph():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    w = helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0])
    nodes = [helper.make_node("Mul", ["x", "w"], ["a"], name="scale"),
             helper.make_node("Mul", ["a", "a"], ["sq"], name="square"),  # reads "a" twice
             helper.make_node("Add", ["sq", "a"], ["y"], name="add")]
    return helper.make_model(helper.make_graph(nodes, "g", [x], [y], [w]))


def test_name_lookups_follow_the_graph():
    ix = GraphIndex.of(_graph(), shapes=False)
    assert ix.producer_of("a").name == "scale" and ix.producer_of("x") is None and ix.producer_of("nope") is None
    assert [n.name for n in ix.consumers_of("a")] == ["square", "add"]  # each reading node once
    assert ix.uses_of("a") == 3 and ix.uses_of("y") == 0  # every input slot counts; a graph output has no reader
    assert ix.value("w").is_initializer() and ix.is_static(ix.value("w")) and not ix.is_static(ix.value("a"))
    assert [ix.position(n) for n in ix.nodes] == [0, 1, 2]


def test_index_with_shapes_infers_them():
    ix = GraphIndex.of(_graph())
    assert ix.shape(ix.value("sq")) == (1, 2)
