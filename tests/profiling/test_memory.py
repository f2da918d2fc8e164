"""Activation memory under liveness, derived by hand on tiny graphs."""

from __future__ import annotations

import pytest

from seadeploy.errors import ConfigError
from seadeploy.profiling.memory import activation_memory, engine_memory


def test_residual_liveness(graphs):
    # residual(c=2,h=8,w=5): every tensor is 2·8·5 floats = 320 bytes.
    # step 0 conv1: x, a live → 640; step 1 relu: x, a, ar → 960; step 2 conv2: x, ar, b → 960;
    # step 3 add: x, b, y → 960. Peak 960 first reached at "relu"; no reuse: 5 tensors = 1600 bytes.
    r = activation_memory(graphs.residual())
    assert r.frame["live_bytes"].tolist() == [640, 960, 960, 960]
    assert r.totals["peak_live_bytes"] == 960 and r.totals["peak_at_node"] == "relu"
    assert r.totals["activation_bytes_no_reuse"] == 1600 and r.totals["input_bytes"] == 320
    assert r.totals["weight_bytes"] == 2 * (2 * 2 * 3 * 3 * 4)
    assert r


def test_batch_scales_and_reshape_aliases(graphs):
    # TSE block x(1,4,6,6) = 576 bytes: the Reshape to tiles aliases x (0 new bytes), so at the final Mul
    # x, the upsampled gate and y are live: 3 × 576 = 1728.
    one = activation_memory(graphs.tse_block(tile=2))
    assert one.frame.set_index("onnx_node").loc["tiles", "out_bytes"] == 0
    assert one.totals["peak_live_bytes"] == 1728 and one.totals["peak_at_node"] == "scale"
    # the residual graph with dynamic dims at batch 2 and 8×8: tensors are 2·2·8·8·4 = 1024 bytes, peak 3 × 1024
    dynamic = graphs.with_dynamic_spatial(graphs.residual())
    assert activation_memory(dynamic, batch=2, input_size=8).totals["peak_live_bytes"] == 3072
    with pytest.raises(ConfigError, match="fixed batch of 1"):
        activation_memory(graphs.residual(), batch=2)


def test_engine_memory_reads_sidecars(tmp_path):
    (tmp_path / "model.fp16.engine.json").write_text('{"device_memory_size_v2": 123456}')
    assert engine_memory(tmp_path) == {"fp16": 123456.0}
    assert engine_memory(tmp_path / "missing") == {}


def test_dynamic_input_needs_size(graphs):
    with pytest.raises(ConfigError, match="--input-size"):
        activation_memory(graphs.with_dynamic_spatial(graphs.residual()))
    assert activation_memory(graphs.with_dynamic_spatial(graphs.residual()), input_size=4).totals["input_bytes"] == 128
