"""TensorRT per-layer parsing on handwritten engine-inspector samples (CPU); real engines on a GPU (marked)."""

from __future__ import annotations

import json
import shutil

import pytest

from seadeploy.export.engine_inspect import parse_inspector_json
from seadeploy.export.trt_engine import EngineConfig, build_engine
from seadeploy.profiling.latency import benchmark_latency
from seadeploy.profiling.layers_trt import aggregate_layer_times, onnx_nodes_in_name, trt_rows
from seadeploy.profiling.per_layer import attach_nodes, node_info, profile_layers

ORDER = ["squeeze", "fc1", "act", "fc2", "gate", "scale"]  # the se_block graph of conftest


def _tensor(name, dims, fmt_10=None, dtype_11=None):
    t = {"Name": name, "Dimensions": dims}
    if fmt_10:
        t["Format/Datatype"] = fmt_10
    else:
        t.update({"Format": "Row major linear", "Datatype": dtype_11})
    return t


INSPECTOR_10 = {"Bindings": ["x", "y"], "Layers": [
    {"Name": "squeeze", "LayerType": "Reduce", "Inputs": [_tensor("x", [1, 4, 6, 6], "Row major linear FP32")],
     "Outputs": [_tensor("z", [1, 4, 1, 1], "Row major linear FP32")], "Metadata": "[ONNX Layer: squeeze]"},
    {"Name": "fc1 + act", "LayerType": "CaskConvolution", "Inputs": [_tensor("z", [1, 4, 1, 1], "Row major linear FP32")],
     "Outputs": [_tensor("hr", [1, 2, 1, 1], "Row major linear FP32")],
     "Metadata": "[ONNX Layer: fc1]\x1f[ONNX Layer: act]"},
    {"Name": "Reformatting CopyNode for Input Tensor 0 to fc2", "LayerType": "Reformat",
     "Inputs": [_tensor("hr", [1, 2, 1, 1], "Row major linear FP32")],
     "Outputs": [_tensor("hr'", [1, 2, 1, 1], "Channel major FP32 format")]},
    {"Name": "fc2", "LayerType": "CaskConvolution", "Inputs": [], "Outputs": [_tensor("e", [1, 4, 1, 1], "FP32")],
     "Metadata": "[ONNX Layer: fc2]"},
    {"Name": "PWN(gate, scale)", "LayerType": "PointWiseV2", "Inputs": [],
     "Outputs": [_tensor("y", [1, 4, 6, 6], "Row major linear FP32")]}]}
INSPECTOR_11 = {"I/O Tensors": [{"Name": "x"}, {"Name": "y"}], "Layers": [
    {"Name": "{ForeignNode[squeeze...scale]}", "LayerType": "Myelin", "Inputs": [],
     "Outputs": [_tensor("y", [1, 4, 6, 6], dtype_11="FP16")]}]}


def test_onnx_nodes_in_layer_names():
    assert onnx_nodes_in_name("fc1 + act", ORDER) == ["fc1", "act"]
    assert onnx_nodes_in_name("PWN(gate, scale)", ORDER) == ["gate", "scale"]
    assert onnx_nodes_in_name("{ForeignNode[fc1...gate]}", ORDER) == ["fc1", "act", "fc2", "gate"]
    assert onnx_nodes_in_name("Reformatting CopyNode for Input Tensor 0 to fc2", ORDER) == ["fc2"]
    assert onnx_nodes_in_name("unrelated", ORDER) == []


def test_aggregate_layer_times_medians_per_run():
    reports = [("A", 1.0), ("B", 0.5), ("A", 1.2), ("B", 0.7), ("A", 1.1), ("B", 0.6)]
    agg = aggregate_layer_times(reports, runs=3).set_index("layer")
    assert agg.loc["A", "time_ms"] == pytest.approx(1.1) and agg.loc["B", "mean_ms"] == pytest.approx(0.6)
    looped = aggregate_layer_times([("L", 1.0), ("L", 2.0), ("L", 3.0), ("L", 4.0)], runs=2)  # 2 reports per run
    assert looped.loc[0, "time_ms"] == pytest.approx(5.0)


@pytest.mark.parametrize("inspector", [INSPECTOR_10, INSPECTOR_11])
def test_trt_rows_map_layers_to_modules_and_roles(graphs, inspector):
    nodes = node_info(graphs.se_block(module="blk.se"), batch=1)
    parsed = parse_inspector_json(json.dumps(inspector), nodes.index)
    names = [layer.name for layer in parsed["layers"]]
    times = aggregate_layer_times([(n, 0.1 * (i + 1)) for i, n in enumerate(names)], runs=1)
    rows, covered = trt_rows(times, parsed["layers"], nodes)
    rows = rows.set_index("layer")
    if inspector is INSPECTOR_10:
        assert rows.loc["fc1 + act", "onnx_node"] == "fc1" and covered["fc1 + act"] == ["fc1", "act"]
        assert rows.loc["PWN(gate, scale)", "onnx_node"] == "gate"
        assert covered["Reformatting CopyNode for Input Tensor 0 to fc2"] == []
        assert rows.loc["squeeze", "out_shape"] == "1x4x1x1" and rows.loc["squeeze", "precision_layer"] == "fp32"

        full = attach_nodes(rows.reset_index(), nodes, covered).set_index("layer")
        assert full.loc["squeeze", "role"] == "attention.squeeze" and full.loc["PWN(gate, scale)", "role"] == \
            "attention.gate" and full.loc["fc1 + act", "role"] == "attention.excite"
        assert full["params"].sum() == nodes["params"].sum()  # the reformat copy adds no parameters
    else:
        (name,) = covered
        assert covered[name] == ORDER and rows.loc[name, "onnx_node"] == "fc1"  # first compute node of the span
        assert rows.loc[name, "precision_layer"] == "fp16"


@pytest.mark.trt
@pytest.mark.gpu
def test_trt_engine_layers_and_stage_latency(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    build_engine(run / "model.onnx", run, EngineConfig(precision="fp32", max_batch=8))
    prof = profile_layers(run, ["trt"], batch=2, runs=5, warmup_runs=2, duration_s=0.2)
    frame = prof.frame
    assert (frame["backend"] == "trt").all() and frame["onnx_node"].notna().mean() > 0.8
    assert frame["engine_device_memory"].iloc[0] > 0 and frame["role"].str.startswith("attention").any()
    lat = benchmark_latency(run, ["trt"], [1, 2], warmup_s=0.1, duration_s=0.2).to_frame()
    assert set(lat["metric"]) == {"latency", "enqueue", "h2d", "gpu_compute", "d2h"}
    assert (lat["median_ms"] > 0).all()
