"""The row-streaming buffer model on tiny graphs whose buffers are derived by hand in the comments.

Conventions of the model (docs/architecture.md §5, seadeploy.dataflow.arrival): time is counted in input
rows; row r of the input arrives at time r; a k×k/s window emits output row o when input row
min(H−1, s·o − pad + k − 1) has arrived; a reduction over rows emits ε after its last input row; no
tensor emits rows faster than its row period (H_input / H); a row is held from its arrival until its
consumer emits, and the held amount is the largest number of elements resident at once.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper, numpy_helper

from seadeploy.dataflow.buffers import analyse_buffers, held_elements
from seadeploy.errors import ConfigError


def test_held_elements_counts_overlapping_residency():
    # rows 0,1,2 arrive at 0,1,2 and are all consumed at 3: at τ=2 all three are resident.
    assert held_elements(np.array([0.0, 1, 2]), np.array([3.0, 3, 3])) == 3
    # consumed the moment they arrive: nothing is held.
    assert held_elements(np.array([0.0, 1, 2]), np.array([0.0, 1, 2])) == 0
    # each row waits 2 steps: at any τ two rows are resident; multiplicity scales to elements.
    assert held_elements(np.arange(5.0), np.arange(5.0) + 2, multiplicity=10) == 20


def test_conv_chain_has_only_line_buffers(graphs):
    # x(1,2,8,4) → conv1 3×3/1 → conv2 3×3/2 → conv3 1×1.
    # conv1 emits row o at min(o+1,7), rate-limited to 1 row per step: [1..7, 8]. Input row ρ is last read by
    #   output min(ρ+1, 7), so it is held over [ρ, ρ+2): 2 rows × W 4 × C 2 = 16 elements.
    # conv2 (stride 2, period 2) emits row o when conv1 row min(2o+1,7) arrived: [2,4,6,8]. conv1 row ρ is last
    #   read by output ⌊(ρ+1)/2⌋: held over [1,2) [2,4) [3,4) [4,6) [5,6) [6,8) [7,8): 2 rows → 16.
    # conv3 is 1×1: no buffer. No joins: attention buffering 0, total 32.
    r = analyse_buffers(graphs.conv_chain())
    assert r and r.input_shape == (1, 2, 8, 4)
    assert r.joins.empty
    assert dict(zip(r.line_buffers["node"], r.line_buffers["held_rows"])) == {"conv1": 2, "conv2": 2}
    assert r.attention_buffer_elements == 0
    assert r.total_buffer_elements == 32


def test_se_holds_the_whole_map(graphs):
    # SE on x(1,4,6,6): the gate exists only after the last row (time 5+ε), so every row of x waits for it:
    # 6 rows × W 6 × C 4 = 144 elements, all caused by the squeeze (no windows).
    r = analyse_buffers(graphs.se_block())
    (join,) = r.joins.to_dict("records")
    assert (join["node"], join["operand"], join["block"]) == ("scale", "x", "se")
    assert (join["held_rows"], join["W"], join["C"], join["attention_elements"]) == (6, 6, 4, 144)
    assert r.attention_buffer_elements == r.total_buffer_elements == 144
    assert r.blocks.set_index("block").loc["se", "attention_elements"] == 144
    assert r.summary()["attention_buffer_bytes"] == 144 * 4  # float32 tensors by default


def test_tse_holds_a_band_of_tile_rows(graphs):
    # TSE tile 2 (Reshape→ReduceMean over tile axes) on x(1,4,6,6): tile row t emits after input row 2t+1
    # (1+ε, 3+ε, 5+ε); Resize back maps row r to tile ⌊r/2⌋ and streams 1 row per step: r+1+ε. x row ρ is held
    # over [ρ, ρ+1+ε): 2 rows resident → 2 × 6 × 4 = 48 elements.
    r = analyse_buffers(graphs.tse_block(tile=2))
    assert r.joins["held_rows"].tolist() == [2]
    assert r.attention_buffer_elements == r.total_buffer_elements == 48
    # with dtype_bytes=1 (an int8 accelerator) bytes equal elements
    assert analyse_buffers(graphs.tse_block(tile=2), dtype_bytes=1).summary()["attention_buffer_bytes"] == 48


def test_tse_as_averagepool_without_module_metadata(graphs):
    # AveragePool kernel = stride = 3 on x(1,4,6,6), no module names: tile t emits after row 3t+2 (2+ε, 5+ε);
    # Resize(nearest, half_pixel) maps rows 0-2 → tile 0, 3-5 → tile 1, streamed 1 per step: r+2+ε.
    # x row ρ held over [ρ, ρ+2+ε): 3 rows → 3 × 6 × 4 = 72. The block is named after the reduction node.
    r = analyse_buffers(graphs.tse_pool_block(tile=3))
    (join,) = r.joins.to_dict("records")
    assert (join["held_rows"], join["attention_elements"], join["block"]) == (3, 72, "pool")
    # kernel = stride pooling accumulates in place: no line buffer
    assert r.line_buffers.empty and r.total_buffer_elements == 72


def test_residual_window_lag_is_not_attention(graphs):
    # x(1,2,8,5) → conv 3×3 → ReLU → conv 3×3 → Add(x, ·). Main path row r arrives at r+2 (two window lags of
    # one row), so x row r is held over [r, r+2): 2 rows × 5 × 2 = 20 at the join; each conv keeps 2 input rows
    # (2 × 5 × 2 = 20 each). Total 20 + 40 = 60; no squeeze anywhere → attention buffering 0.
    r = analyse_buffers(graphs.residual())
    (join,) = r.joins.to_dict("records")
    assert (join["held_rows"], join["total_elements"], join["attention_elements"]) == (2, 20, 0)
    assert join["block"] is None
    assert r.line_buffers["elements"].tolist() == [20, 20]
    assert (r.attention_buffer_elements, r.total_buffer_elements) == (0, 60)


def test_squeeze_lag_reaches_the_residual_join(graphs):
    # x(1,4,6,6) → conv1×1 → SE → Add(x, ·): the scale holds the conv output (6 rows, 144) and the residual join
    # holds x for the same squeeze lag (6 rows, 144), both attributed to the block "block.se".
    r = analyse_buffers(graphs.se_residual())
    assert r.joins.set_index("node")["attention_elements"].to_dict() == {"scale": 144, "add": 144}
    assert set(r.joins["block"]) == {"block.se"}
    assert r.attention_buffer_elements == r.total_buffer_elements == 288
    assert r.node_elements() == {"scale": 144.0, "add": 144.0}


def test_dynamic_spatial_dims_need_input_size(graphs):
    dynamic = graphs.with_dynamic_spatial(graphs.se_block())
    with pytest.raises(ConfigError, match="--input-size"):
        analyse_buffers(dynamic)
    # at 10×10 the SE holds 10 rows × 10 × 4
    assert analyse_buffers(dynamic, input_size=10).attention_buffer_elements == 400


def test_input_size_must_match_a_fixed_input(graphs):
    with pytest.raises(ConfigError, match="does not match"):
        analyse_buffers(graphs.se_block(), input_size=12)


def test_fusion_conv_over_squeezed_tiles_keeps_its_window(graphs):
    # RGSE-like: x(1,2,8,4) → AveragePool 2×2/2 (tiles emit after rows 1,3,5,7 +ε) → Conv 4×2 "valid" over the
    # whole 4×2 grid (the learned fusion) → Sigmoid → Mul(x, gate). The fusion reads the last tile row, so the
    # gate exists after row 7: x is held whole, 8 rows × 4 × 2 = 64 elements. Its window lag belongs to the
    # squeeze, so attention buffering counts it too (a lag-free fusion would have let the gate out after row 3).

    w = numpy_helper.from_array(np.full((2, 2, 4, 2), 0.1, dtype=np.float32), "wf")
    nodes = [helper.make_node("AveragePool", ["x"], ["z"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["z", "wf"], ["f"], name="fusion", kernel_shape=[4, 2]),
             helper.make_node("Sigmoid", ["f"], ["g"], name="gate"), helper.make_node("Mul", ["x", "g"], ["y"], name="scale")]
    r = analyse_buffers(graphs.make_model(nodes, [w], (1, 2, 8, 4), "y"))
    assert r.joins.set_index("operand").loc["x", "attention_elements"] == 64
    assert r.attention_buffer_elements == 64 and r.blocks["block"].tolist() == ["pool"]
