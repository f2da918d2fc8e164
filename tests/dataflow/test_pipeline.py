"""Streaming-pipeline timing: analytic model (dataflow/pipeline.py) against the buffer model, hand-derived
figures and the discrete-event simulator (dataflow/simulate_rows.py), on the tiny graphs of conftest.py."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from onnx import helper, numpy_helper

from seadeploy.dataflow.analysis import SWEEP_COLUMNS, plot_tile_sweep
from seadeploy.dataflow.bounded import bounded_fifos, resolve_depths
from seadeploy.dataflow.buffers import analyse_buffers
from seadeploy.dataflow.hardware import Graph, Hardware, load_folding
from seadeploy.dataflow.pipeline import analyse_pipeline
from seadeploy.dataflow.simulate_rows import simulate
from seadeploy.errors import ConfigError, InputError
from seadeploy.profiling.__main__ import main as profiling_main

BUILDERS = ["conv_chain", "se_block", "tse_block", "tse_pool_block", "residual", "se_residual"]


@pytest.mark.parametrize("name", BUILDERS)
def test_zero_service_time_gives_the_buffer_model(graphs, name):
    # service_scale=0: every stage infinitely fast → the pipeline's single-frame held amounts are exactly
    # the buffer model's (per join operand, attention share and line buffers).
    model = getattr(graphs, name)()
    b = analyse_buffers(model)
    r = analyse_pipeline(model, service_scale=0.0)
    joins = r.fifos[r.fifos["kind"] == "join"]
    got = {(n, o): e for n, o, e in zip(joins["node"], joins["operand"], joins["buffer_elements"]) if e}
    assert got == {(n, o): e for n, o, e in zip(b.joins["node"], b.joins["operand"], b.joins["total_elements"]) if e}
    assert r.figures["attention_buffer_elements"] == b.attention_buffer_elements
    assert r.summary()["line_buffer_elements"] == int(b.line_buffers["elements"].sum())


@pytest.mark.parametrize("name", BUILDERS)
def test_attention_buffer_is_the_squeeze_lags_alone_at_any_service_time(graphs, name):
    # with real service times the branches of a residual are skewed (that is in the FIFO depths), but only the
    # squeeze lags count as attention buffering: 0 without attention, the buffer model's figure with it
    model = getattr(graphs, name)()
    timed = analyse_pipeline(model)
    assert timed.figures["attention_buffer_elements"] == analyse_buffers(model).attention_buffer_elements


def test_folding_sets_the_bottleneck_and_initiation_interval(graphs, tmp_path):
    # conv1 of the conv chain: 64 output elements (2×8×4) × 18 MACs (2 in-channels × 3×3) = 1152 MACs.
    # FINN-style PE=2, SIMD=3 → 6 MACs/cycle → 192 cycles per frame; every other node gets 1000 MACs/cycle
    # from "Defaults", so conv1 is the bottleneck: II = 192 cycles, FPS = 200 MHz / 192.
    path = tmp_path / "folding.json"
    path.write_text(json.dumps({"Defaults": {"PE": 1000}, "conv1": {"PE": 2, "SIMD": 3}}))
    r = analyse_pipeline(graphs.conv_chain(), hardware=Hardware(folding=load_folding(path), clock_mhz=200))
    assert r.figures["initiation_interval_cycles"] == 192
    assert r.figures["bottleneck"] == "conv1"
    assert r.figures["fps"] == pytest.approx(200e6 / 192)
    # overlapped rows: the frame leaves long before the no-overlap bound (frame in, then stage after stage)
    assert r.figures["frame_latency_cycles"] < r.figures["no_overlap_latency_cycles"]
    assert r.figures["fill_latency_cycles"] <= r.figures["frame_latency_cycles"]


def test_folding_errors_are_one_line(graphs, tmp_path):
    bad = tmp_path / "f.json"
    bad.write_text(json.dumps({"conv1": {"lanes": 3}}))
    with pytest.raises(InputError, match="PE/SIMD"):
        load_folding(bad)
    bad.write_text(json.dumps({"nope": 4}))
    with pytest.raises(ConfigError, match="not in the graph"):
        analyse_pipeline(graphs.conv_chain(), hardware=Hardware(folding=load_folding(bad)))


@pytest.mark.parametrize("name", ["tse_block", "se_residual", "residual"])
def test_simulator_agrees_with_the_analytic_model(graphs, name):
    # unbounded FIFOs: II, fill and frame latency within one input-row period, steady-state FIFO rows equal.
    g = Graph.load(getattr(graphs, name)())
    hw = Hardware(latency={"mac": 5, "reduce": 3, "elementwise": 1, "move": 0})
    r = analyse_pipeline(g, hardware=hw)
    s = simulate(g, hw)
    f, period = r.figures, r.figures["input_row_period_cycles"]
    assert not s.deadlock
    for key in ("initiation_interval_cycles", "fill_latency_cycles", "frame_latency_cycles"):
        assert abs(f[key] - getattr(s, key)) <= period, key
    assert dict(r.auto_depths()) == {k: s.fifo_rows[k] for k in r.auto_depths()}


def _cropped_se(graphs):
    """x(1,4,12,4) → Slice(rows 0..5) → SE: the crop's 6 rows stream one input-row period apart, half the
    natural period of a 6-row map (12 / 6), as after a floor-mode crop or a Pad's padding rows."""
    inits = [numpy_helper.from_array(np.array(v, dtype=np.int64), n)
             for n, v in (("st", [0]), ("en", [6]), ("sax", [2]), ("axes", [2, 3]))]
    nodes = [helper.make_node("Slice", ["x", "st", "en", "sax"], ["xs"], name="crop"),
             helper.make_node("ReduceMean", ["xs", "axes"], ["z"], name="squeeze")]
    nodes += [helper.make_node("Conv", ["z", "w1"], ["h"], name="fc1"), helper.make_node("Relu", ["h"], ["hr"], name="act"),
              helper.make_node("Conv", ["hr", "w2"], ["e"], name="fc2"), helper.make_node("Sigmoid", ["e"], ["gt"], name="gate"),
              helper.make_node("Mul", ["xs", "gt"], ["y"], name="scale")]
    inits += [numpy_helper.from_array(np.full(s, 0.1, dtype=np.float32), n) for n, s in (("w1", (2, 4, 1, 1)),
                                                                                            ("w2", (4, 2, 1, 1)))]
    return graphs.make_model(nodes, inits, (1, 4, 12, 4), "y")


def test_bunched_rows_queue_for_the_accumulator(graphs):
    # The squeeze is the bottleneck (1 MAC/cycle, 96 cycles a frame → 16 cycles per accumulated row, 2 input-row
    # periods) and its 6 rows arrive 1 period apart: they queue, the last is accumulated 5 periods after it arrives
    # (not 2), and 3 rows wait in its input FIFO. The analytic model must carry both, or the simulator blocks at the
    # analytic depths. Exact, not within a row: the squeeze is timed, not given a fixed row offset.
    g = Graph.load(_cropped_se(graphs))
    hw = Hardware(folding={"Defaults": 1000, "squeeze": 1})
    r, s = analyse_pipeline(g, hardware=hw), simulate(g, hw)
    f, period = r.figures, r.figures["input_row_period_cycles"]
    assert f["bottleneck"] == "squeeze" and period == 8
    for key, got in (("fill_latency_cycles", s.fill_latency_cycles), ("frame_latency_cycles", s.frame_latency_cycles),
                     ("first_frame_latency_cycles", s.first_frame[1])):
        assert f[key] == pytest.approx(got, abs=1e-3 * period), key
    # 3 = the rows queued at the squeeze (above); 11 = the skip rows the scale holds until the late gate arrives —
    # both are what the discrete-event simulator measures on its own (the next line)
    assert r.auto_depths() == {("squeeze", 0): 3, ("scale", 0): 11}
    assert all(s.fifo_rows[k] == v for k, v in r.auto_depths().items())
    bounded = simulate(g, hw, resolve_depths(r, "auto"))
    assert sum(v["blocked"] for v in bounded.stalls.values()) == 0


def _skip_key(report):
    """The SE skip FIFO: the scale join's feature-map operand."""
    row = report.fifos[(report.fifos["node"] == "scale") & (report.fifos["kind"] == "join")]
    row = row.sort_values("fifo_rows").iloc[-1]
    return (row["node"], int(row["input_index"])), int(row["fifo_rows"]), float(row["lead_rows"])


def test_computed_depths_neither_stall_nor_deadlock(graphs):
    g = Graph.load(graphs.se_residual())
    hw = Hardware()
    r = analyse_pipeline(g, hardware=hw)
    depths = resolve_depths(r, "auto")
    assert not bounded_fifos(r, depths)[["stall", "deadlock"]].any().any()
    free, bounded = simulate(g, hw), simulate(g, hw, depths)
    assert not bounded.deadlock
    assert free.initiation_interval_cycles / bounded.initiation_interval_cycles >= 0.999
    assert sum(s["blocked"] for s in bounded.stalls.values()) == 0


def test_skip_fifo_one_row_below_zero_stall_stalls(graphs):
    # One row less than the computed depth: the input (producer of x) is blocked until the scale frees a row.
    g = Graph.load(graphs.se_block())
    hw = Hardware()
    r = analyse_pipeline(g, hardware=hw)
    key, need, _lead = _skip_key(r)
    depths = {**resolve_depths(r, "auto"), key: need - 1}
    table = bounded_fifos(r, depths).set_index("node")
    assert table.loc["scale", "stall"].any() and not table["deadlock"].any()
    free, small = simulate(g, hw), simulate(g, hw, depths)
    assert not small.deadlock
    assert small.stalls["__input__"]["blocked"] > 0 and free.stalls["__input__"]["blocked"] == 0


def test_skip_fifo_one_row_below_the_lead_deadlocks(graphs):
    # SE on a 6-row map: the gate needs all 6 rows of x while the skip FIFO must keep them (lead = 6 rows).
    # A 5-row skip FIFO fills, the input blocks, the squeeze never sees row 5: deadlock, found both ways.
    g = Graph.load(graphs.se_block())
    hw = Hardware()
    r = analyse_pipeline(g, hardware=hw)
    key, _, lead = _skip_key(r)
    assert lead == 6
    depths = {**resolve_depths(r, "auto"), key: int(lead) - 1}
    assert bounded_fifos(r, depths)["deadlock"].any()
    s = simulate(g, hw, depths)
    assert s.deadlock and "scale" in s.reason


def test_depth_cap_and_file(graphs, tmp_path):
    r = analyse_pipeline(graphs.se_block())
    assert set(resolve_depths(r, 3).values()) <= {1, 3}
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"scale/x": 7}))
    assert resolve_depths(r, str(path))[("scale", 0)] == 7
    path.write_text(json.dumps({"nowhere/x": 7}))
    with pytest.raises(InputError, match="node/operand"):
        resolve_depths(r, str(path))


def test_cli_json_summary(graphs, tmp_path, capsys):
    onnx_path = tmp_path / "se.onnx"
    onnx_path.write_bytes(graphs.se_residual().SerializeToString())
    assert profiling_main(["pipeline", "--onnx", str(onnx_path), "--simulate", "--fifo-depths", "auto", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("fps", "initiation_interval_cycles", "fill_latency_cycles", "frame_latency_cycles", "bottleneck"):
        assert key in out
    assert out["deadlock"] is False and out["simulation"]["bounded"]["deadlock"] is False
    assert {j["node"] for j in out["joins"]} >= {"scale", "add"}
    assert all("buffer_rows" in j and "buffer_elements" in j for j in out["joins"])
    assert out["simulation"]["fill_latency_diff_rows"] <= 1
    assert profiling_main(["pipeline", "--onnx", str(onnx_path), "--fifo-depths", "nonsense"]) == 2
    assert "neither auto" in capsys.readouterr().err


def test_sweep_tile_on_an_onnx_file_goes_through_the_se_to_tse_rewrite(graphs, tmp_path, capsys):
    # a user's SE graph: each tile rewritten by convert's ONNX SE→TSE lowering, "global" is the file itself
    se = tmp_path / "se.onnx"
    se.write_bytes(graphs.se_residual().SerializeToString())
    assert profiling_main(["pipeline", "--onnx", str(se), "--sweep-tile", "2,4,global", "--json"]) == 0
    rows = {r["tile"]: r for r in json.loads(capsys.readouterr().out)["tile_sweep"]}
    assert list(rows) == ["2", "4", "global"]
    assert rows["global"]["attention_buffer_elements"] == analyse_buffers(graphs.se_residual()).attention_buffer_elements
    assert rows["2"]["attention_buffer_elements"] < rows["4"]["attention_buffer_elements"] < \
        rows["global"]["attention_buffer_elements"]
    plain = tmp_path / "plain.onnx"
    plain.write_bytes(graphs.conv_chain().SerializeToString())
    assert profiling_main(["pipeline", "--onnx", str(plain), "--sweep-tile", "2,global"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no squeeze-excite" in err and "\n" not in err


def test_tile_sweep_plot_is_a_figure():
    sweep = pd.DataFrame([[t, 10 * i, 100 * i, 400 * i, 30.0, 6.6e6, 1e6 * i, 2e6 * i, "conv"]
                          for i, t in enumerate(["2", "7", "global"], 1)], columns=SWEEP_COLUMNS)
    fig = plot_tile_sweep(sweep, "x")
    bars = fig.axes[0].patches
    assert [round(b.get_height() * 1e6) for b in bars] == [100, 200, 300]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["2", "7", "global"]
