"""ONNX Runtime per-node profiles: trace parsing and fused-node mapping on handwritten samples, then a real run."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from seadeploy.profiling import schema
from seadeploy.profiling.layers_ort import aggregate_nodes, map_optimized_nodes, parse_node_events
from seadeploy.profiling.per_layer import profile_layers
from tests.profiling.conftest import make_run


def _event(name, ts, dur, op="Conv", **args):
    return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur, "ph": "X",
            "args": {"op_name": op, "provider": "CPUExecutionProvider", "output_type_shape": [{"float": [1, 8, 4, 4]}],
                     "output_size": "512", **args}}


def _run(ts, dur):
    return {"cat": "Session", "name": "model_run", "ts": ts, "dur": dur}


def test_parse_and_aggregate_handwritten_trace():
    # three runs; the first is warm-up. Node "a" takes 100/300/500 µs, "b" runs twice per run (10 + 20 µs).
    events = [_run(0, 1000), _event("a", 10, 100), _event("b", 200, 10, "Relu"), _event("b", 300, 20, "Relu"),
              _run(2000, 1000), _event("a", 2010, 300, mem_in_use_peak="4096"), _event("b", 2400, 10, "Relu"),
              _event("b", 2500, 20, "Relu"),
              _run(4000, 1000), _event("a", 4010, 500), _event("b", 4600, 10, "Relu"), _event("b", 4700, 20, "Relu"),
              {"cat": "Node", "name": "a_fence_before", "ts": 5, "dur": 1}]
    frame, model_run = parse_node_events(events, skip_runs=1)
    assert sorted(frame["run"].unique()) == [1, 2] and model_run.tolist() == [1.0, 1.0]
    agg = aggregate_nodes(frame).set_index("node")
    assert agg.loc["a", "time_ms"] == pytest.approx(0.4)  # median of 0.3 and 0.5
    assert agg.loc["b", "time_ms"] == pytest.approx(0.03)  # two calls summed per run
    assert agg.loc["a", "out_shape"] == "1x8x4x4" and agg.loc["a", "mem_in_use_peak"] == 4096
    assert np.isnan(agg.loc["b", "mem_in_use_peak"])


def test_map_optimized_nodes_follows_tensors_and_names():
    # original: x → conv → c → relu → r → conv2 → y ; h = fc(r2d) → fr → out
    orig = helper.make_graph(
        [helper.make_node("Conv", ["x", "w1"], ["c"], name="conv"), helper.make_node("Relu", ["c"], ["r"], name="relu"),
         helper.make_node("Conv", ["r", "w2"], ["y"], name="conv2"),
         helper.make_node("Gemm", ["y", "wf"], ["h"], name="fc"), helper.make_node("Relu", ["h"], ["fo"], name="fr")],
        "o", [helper.make_tensor_value_info("x", 1, None)], [helper.make_tensor_value_info("fo", 1, None)])
    # ORT: Conv+Relu in NCHWc named after tensor "r", conv2 named after "y", a layout node back to "y",
    # and FusedGemm "fused fc" (Gemm+Relu) writing the original tensor "fo".
    opt = helper.make_graph(
        [helper.make_node("Conv", ["x", "wr"], ["tok1"], name="r_nchwc", domain="com.microsoft.nchwc"),
         helper.make_node("Conv", ["tok1", "wr2"], ["tok2"], name="y_nchwc", domain="com.microsoft.nchwc"),
         helper.make_node("ReorderOutput", ["tok2"], ["y"], name="ReorderOutput_token_3", domain="com.microsoft.nchwc"),
         helper.make_node("FusedGemm", ["y", "wf"], ["fo"], name="fused fc", domain="com.microsoft")],
        "p", [helper.make_tensor_value_info("x", 1, None)], [helper.make_tensor_value_info("fo", 1, None)])
    mapping = map_optimized_nodes(helper.make_model(orig), helper.make_model(opt))
    assert mapping == {"r_nchwc": ("conv", ["conv", "relu"]), "y_nchwc": ("conv2", ["conv2"]),
                       "ReorderOutput_token_3": ("conv2", []), "fused fc": ("fc", ["fc", "fr"])}


def test_profile_ort_maps_every_node(tiny_run):
    prof = profile_layers(tiny_run, ["ort"], batch=2, threads=1, runs=3, warmup_runs=1, duration_s=0.1)
    frame = schema.check_frame(prof.frame)
    assert set(frame["backend"]) == {"ort", "ort-noopt"}

    nodes = {n.name for n in onnx.load(str(tiny_run / "model.onnx")).graph.node}
    noopt = frame[frame["backend"] == "ort-noopt"]
    # one-to-one graph: every executed node is an exported node with its module and role
    assert set(noopt["layer"]) <= nodes and (noopt["layer"] == noopt["onnx_node"]).all()
    assert noopt["live_bytes"].notna().all() and (noopt["out_bytes"] > 0).any()  # memory per layer
    att = noopt[noopt["role"].map(schema.is_attention_role)]
    assert set(att["role"]) == set(schema.ATTENTION_ROLES) and att["block"].str.endswith(".attn").all()
    assert att["block"].nunique() == 9  # resnet20: 3 stages × 3 blocks, one SE each
    # the optimised graph computes the same parameters through its fused nodes
    opt = frame[frame["backend"] == "ort"]
    assert opt["params"].sum() == pytest.approx(noopt["params"].sum())
    assert opt["onnx_node"].notna().mean() > 0.9
    assert set(prof.gaps["backend"]) == {"ort", "ort-noopt"} and (prof.gaps["end_to_end_ms"] > 0).all()
    share = prof.attention()
    assert (share[share["block"] == "TOTAL"]["attention"] > 0).all()
    paths = prof.write(tiny_run)
    assert [p.name for p in paths] == ["layers_ort.csv"]


def test_fused_conv_relu_is_charged_to_its_own_conv_not_an_attention_conv(tmp_path):
    """TSE's excitation is 1x1 Convs; a fused Conv+Relu after it must still map to the backbone conv."""
    make_run(tmp_path, "tse", {"tile": 4})
    frame = profile_layers(tmp_path, ["ort"], batch=2, threads=1, runs=2, warmup_runs=1, duration_s=0.1).frame
    convs = {b: set(f.loc[f["role"] == "conv", "module"]) for b, f in frame.groupby("backend")}
    assert convs["ort"] == convs["ort-noopt"]  # every backbone conv is found in the optimised graph too
    excite = frame[(frame["backend"] == "ort") & (frame["role"] == "attention.excite")]
    assert excite["module"].str.contains(r"\.attn\.").all()
