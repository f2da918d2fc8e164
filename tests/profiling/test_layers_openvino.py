"""OpenVINO's per-layer profiler: executed nodes mapped back to ONNX nodes (pure), and a real profile in the schema."""

from __future__ import annotations

import importlib.util
from datetime import timedelta
from types import SimpleNamespace

import pytest

from seadeploy.profiling.layers_openvino import aggregate_counters, map_executed
from seadeploy.profiling.per_layer import profile_layers
from seadeploy.profiling.schema import check_frame

ORDER = ["node_Conv_447", "node_relu", "node_mean", "node_linear", "node_relu_2", "node_mul_44"]


def test_executed_nodes_map_to_the_onnx_nodes_they_compute():
    assert map_executed("node_Conv_447", ["node_Conv_447", "node_relu"], ORDER) == (
        "node_Conv_447", ["node_Conv_447", "node_relu"])
    # OpenVINO-made names (a Linear split into a bias-free conv) resolve to the ONNX node before the "/"
    assert map_executed("node_linear/WithoutBiases", ["node_linear/WithoutBiases", "node_linear", "node_relu_2"],
                        ORDER) == ("node_linear", ["node_linear", "node_relu_2"])
    # a layout copy computes nothing: it is charged to the node it converts for, with no nodes covered
    assert map_executed("x_abcd_acdb_node_Conv_447", [], ORDER) == ("node_Conv_447", [])
    assert map_executed("Constant_8232", [], ORDER) == (None, [])


def test_counters_keep_executed_nodes_and_take_the_median_over_runs():
    def info(name, us, status="Status.EXECUTED"):
        return SimpleNamespace(node_name=name, node_type="Convolution", exec_type="brgconv_avx512_f32",
                               real_time=timedelta(microseconds=us), status=status)

    runs = [[info("a", 100), info("b", 0, "Status.NOT_RUN")], [info("a", 300)], [info("a", 200)]]
    agg = aggregate_counters(runs)
    assert list(agg["layer"]) == ["a"] and agg["time_ms"].iloc[0] == pytest.approx(0.2)
    assert agg["kernel"].iloc[0] == "brgconv_avx512_f32"


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="OpenVINO is not installed")
def test_openvino_profile_is_in_the_schema_with_attention_roles(tiny_run):
    prof = profile_layers(tiny_run, ["openvino"], batch=2, threads=1, runs=3, warmup_runs=1)
    frame = check_frame(prof.frame)
    assert set(frame["backend"]) == {"openvino"} and frame["time_ms"].sum() > 0
    roles = set(frame["role"])
    assert {"attention.squeeze", "attention.excite", "attention.scale"} <= roles and "conv" in roles
    fused = frame.dropna(subset=["fused"])
    assert (fused["fused"].str.contains(r"\+")).any()  # a conv with its activation fused in names both nodes
    assert frame["kernel"].notna().all() and len(prof.gaps) == 1
