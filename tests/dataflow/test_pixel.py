"""Pixel (position) granularity: FINN's cycle formulas, hand-derived buffers, agreement with the independent
simulator, the failure modes (stall, deadlock, none at the computed depths) and the command line."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from onnx import helper, numpy_helper

import seadeploy.dataflow.simulate_pixel as sim_module
from seadeploy.dataflow.fifo_memory import blocks, bram18, uram
from seadeploy.dataflow.pixel_check import compare_pixel, simulate_report
from seadeploy.dataflow.pixel_fifos import bounded_table
from seadeploy.dataflow.pixel_pipeline import analyse_pixel, bound
from seadeploy.errors import ConfigError
from seadeploy.profiling.__main__ import main as profiling_main

AGREE = ["conv_chain", "se_block", "tse_block", "tse_pool_block", "residual", "se_residual"]


def test_cycles_per_frame_are_finn_get_exp_cycles(graphs):
    # conv_chain (2 ch, 8×4): conv1 3×3 → MVAU MH=2, MW=2·9=18; PE=2, SIMD=3 → (2/2)·(18/3)·32 positions = 192.
    # conv2 3×3/2 → 4×2 = 8 positions, PE=1, SIMD=9 → (2/1)·(18/9)·8 = 32. conv3 1×1: MW=2, PE=SIMD=1 → 2·2·8 = 32.
    folding = {"conv1": {"PE": 2, "SIMD": 3}, "conv2": {"PE": 1, "SIMD": 9}, "conv3": {"PE": 1, "SIMD": 1}}
    r = analyse_pixel(graphs.conv_chain(), folding=folding)
    cycles = dict(zip(r.nodes["node"], r.nodes["cycles_per_frame"]))
    assert cycles == {"conv1": 192, "conv2": 32, "conv3": 32}
    assert r.figures["initiation_interval_cycles"] == 192 and r.figures["bottleneck"] == "conv1"
    # se_block (4 ch, 6×6): GlobalAccPool-style squeeze C/PE per input position + C/PE out: PE=2 → 2·36 + 2 = 74;
    # the scale (elementwise, PE=1): 4 per position → 144.
    r = analyse_pixel(graphs.se_block(), folding={"squeeze": {"PE": 2}, "scale": {"PE": 1}})
    cycles = dict(zip(r.nodes["node"], r.nodes["cycles_per_frame"]))
    assert cycles["squeeze"] == 74 and cycles["scale"] == 144
    # a per-kind default is an upper bound: the largest divisor of the channels not above it (4 ch: PE 3 → 2)
    r = analyse_pixel(graphs.se_block(), folding={"Defaults": {"eltwise": {"PE": 3}}, "squeeze": {"PE": 4}})
    pe = dict(zip(r.nodes["node"], r.nodes["PE"]))
    assert pe["scale"] == 2 and pe["squeeze"] == 4


def test_a_folding_that_does_not_divide_is_a_one_line_error(graphs, tmp_path, capsys):
    with pytest.raises(ConfigError, match="does not divide"):
        analyse_pixel(graphs.conv_chain(), folding={"conv1": {"PE": 3, "SIMD": 1}})
    f = tmp_path / "f.json"
    f.write_text(json.dumps({"conv1": {"PE": 1, "SIMD": 4}}))
    m = tmp_path / "m.onnx"
    m.write_bytes(graphs.conv_chain().SerializeToString())
    assert profiling_main(["pipeline", "--onnx", str(m), "--granularity", "pixel", "--folding", str(f)]) == 2
    err = capsys.readouterr().err.strip()
    assert "SIMD=4 does not divide" in err and "\n" not in err


def test_hand_derived_window_buffer_and_leads(graphs):
    # residual (2 ch, 8×5): add(r, c) needs conv2(r, c) ← relu/conv1(r+1, c+1) ← x(r+2, c+2): at infinite speed the
    # skip holds x (r, c) … (r+2, c+2) = 2·W + 3 = 13 positions; each 3×3 window buffer is (k−1)·W + k = 13.
    r = analyse_pixel(graphs.residual())
    f = r.fifos.set_index(["node", "input_index"])
    assert f.loc[("conv1", 0), "window_positions"] == 13 and f.loc[("conv2", 0), "window_positions"] == 13
    assert f.loc[("add", 0), "lead_positions"] == 13 and f.loc[("add", 1), "lead_positions"] == 1
    assert f.loc[("add", 0), "fifo_rows"] == pytest.approx(f.loc[("add", 0), "fifo_positions"] / 5)  # fractional
    # SE (6×6): the gate needs the frame's last position, so the bypass must hold the whole frame first.
    s = analyse_pixel(graphs.se_block()).fifos.set_index(["node", "input_index"])
    assert s.loc[("scale", 0), "lead_positions"] == 36


def _pad_pool_crop(graphs):
    """x(1,2,5,5) → Pad to 6×6 → 3×3/3 AveragePool → Resize ×3 → Slice back to 5×5 → Mul(x, ·): a TSE whose tile
    does not divide the map, lowered the way the zoo's export does it (padding, pooling, crop)."""
    cst = {"pads": [0, 0, 0, 0, 0, 0, 1, 1], "st": [0, 0], "en": [5, 5], "ax": [2, 3]}
    inits = [numpy_helper.from_array(np.array(v, dtype=np.int64), k) for k, v in cst.items()]
    inits.append(numpy_helper.from_array(np.array([1, 1, 3, 3], dtype=np.float32), "scales"))
    nodes = [helper.make_node("Pad", ["x", "pads"], ["xp"], name="pad"),
             helper.make_node("AveragePool", ["xp"], ["z"], name="pool", kernel_shape=[3, 3], strides=[3, 3]),
             helper.make_node("Sigmoid", ["z"], ["g"], name="gate"),
             helper.make_node("Resize", ["g", "", "scales"], ["gu"], name="up", mode="nearest"),
             helper.make_node("Slice", ["gu", "st", "en", "ax"], ["gc"], name="crop"),
             helper.make_node("Mul", ["x", "gc"], ["y"], name="scale")]
    return graphs.make_model(nodes, inits, (1, 2, 5, 5), "y")


@pytest.mark.parametrize("name", [*AGREE, "pad_pool_crop"])
def test_analytic_model_agrees_with_the_simulator(graphs, name):
    r = analyse_pixel(_pad_pool_crop(graphs) if name == "pad_pool_crop" else getattr(graphs, name)())
    out, sim = compare_pixel(r)
    assert not sim.deadlock
    assert out["initiation_interval_diff_cycles"] == 0
    for key in ("fill_latency_diff_positions", "frame_latency_diff_positions", "first_frame_latency_diff_positions"):
        assert out[key] <= 1, key
    assert out["fifo_max_diff_positions"] <= 1  # within one position's words


@pytest.mark.parametrize("name", ["residual", "se_residual", "tse_block"])
def test_computed_depths_stall_never_and_one_below_the_lead_deadlocks(graphs, name):
    r = analyse_pixel(getattr(graphs, name)())
    auto = bound(r, "auto")
    assert not r.deadlock
    free = simulate_report(r, auto)
    assert not free.deadlock and sum(free.blocked.values()) == 0
    bypasses = r.fifos[(r.fifos["kind"] == "join") & (r.fifos["lead_positions"] > 1)]
    assert len(bypasses)
    for row in bypasses.itertuples():
        key = (row.node, int(row.input_index))
        short = simulate_report(r, {**auto, key: int(row.lead_positions) - 1})
        assert short.deadlock, key
        assert "deadlock" in short.reason
        at_lead = simulate_report(r, {**auto, key: int(row.lead_positions)})
        assert not at_lead.deadlock and sum(at_lead.blocked.values()) > 0, key  # below zero-stall: it stalls
    # the analytic bounded table says the same without simulating
    first = bypasses.iloc[0]
    table = bounded_table(r.fifos, {**auto, (first["node"], int(first["input_index"])): int(first["lead_positions"]) - 1},
                          {})
    assert table["deadlock"].sum() == 1 and table["stall"].sum() == 1
    bound(r, {first["node"]: {"inFIFODepths": [0] * int(first["input_index"]) + [1]}})
    assert r.deadlock and r.bounded["est_blocked_cycles_per_frame"].sum() > 0


def _two_se(graphs):
    """x(1,4,6,6) → SE → SE: the second squeeze's input arrives in one burst when the first gate is out."""
    axes = numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes")
    nodes, inits, src = [], [axes], "x"
    for k in (1, 2):
        w = numpy_helper.from_array(np.full((4, 4, 1, 1), 0.1, dtype=np.float32), f"w{k}")
        nodes += [helper.make_node("ReduceMean", [src, "axes"], [f"z{k}"], name=f"squeeze{k}"),
                  helper.make_node("Conv", [f"z{k}", f"w{k}"], [f"e{k}"], name=f"fc{k}"),
                  helper.make_node("Sigmoid", [f"e{k}"], [f"g{k}"], name=f"gate{k}"),
                  helper.make_node("Mul", [src, f"g{k}"], [f"y{k}"], name=f"scale{k}")]
        inits.append(w)
        src = f"y{k}"
    return graphs.make_model(nodes, inits, (1, 4, 6, 6), "y2")


def test_an_se_behind_an_se_still_holds_its_whole_frame(graphs):
    # the second block's map arrives in a burst (everything waits for the first gate), but its squeeze still reads
    # the positions one after the other: its bypass must hold all 36 before the second gate exists
    r = analyse_pixel(_two_se(graphs))
    f = r.fifos.set_index(["node", "input_index"])
    assert f.loc[("scale1", 0), "lead_positions"] == 36 and f.loc[("scale2", 0), "lead_positions"] == 36
    auto = bound(r, "auto")
    assert simulate_report(r, {**auto, ("scale2", 0): 35}).deadlock


def test_tse_fills_sooner_with_a_smaller_bypass_than_se(graphs):
    se, tse = analyse_pixel(graphs.se_block(h=12, w=12)), analyse_pixel(graphs.tse_block(h=12, w=12, tile=3))
    assert tse.figures["fill_latency_cycles"] < se.figures["fill_latency_cycles"]
    assert tse.figures["attention_bypass_elements"] < se.figures["attention_bypass_elements"]
    assert len(se.attention) == 1 and se.attention.iloc[0]["bypass_positions"] >= 144  # a whole 12×12 frame


def test_memory_blocks_follow_finn_fifo_estimates():
    assert bram18(1024, 36) == 2 and bram18(512, 36) == 1 and bram18(2048, 8) == 1 and bram18(600, 1) == 1
    assert uram(4096, 72) == 1 and uram(4097, 73) == 4
    assert blocks(256, 64) == (0, 0) and blocks(257, 64) == (2, 1)  # 512×36 blocks; shallow FIFOs are shift registers


def test_the_simulator_imports_no_analytic_timing_code():
    tree = ast.parse(Path(sim_module.__file__).read_text())
    mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    ours = {m for m in mods if m and m.startswith("seadeploy")}
    # only the ONNX loading, index and shapes (the graph home, and the runtime that measures a shape inference
    # leaves open) besides its own rules
    graph_only = {"seadeploy.graphs.index", "seadeploy.graphs.shapes", "seadeploy.graphs.load", "seadeploy.backends.ort"}
    assert ours <= graph_only | {"seadeploy.dataflow.sim_rules"} and "seadeploy.dataflow.sim_rules" in ours
    rules = ast.parse(Path(sim_module.__file__).with_name("sim_rules.py").read_text())
    assert {n.module for n in ast.walk(rules) if isinstance(n, ast.ImportFrom) and n.module.startswith("seadeploy")} \
        <= graph_only


def test_cli_pixel_json_and_fifo_depth_file(graphs, tmp_path, capsys):
    m = tmp_path / "m.onnx"
    m.write_bytes(graphs.se_residual().SerializeToString())
    depths = tmp_path / "depths.json"
    argv = ["pipeline", "--onnx", str(m), "--granularity", "pixel", "--clock-mhz", "250", "--dtype-bits", "4",
            "--write-fifo-depths", str(depths), "--json"]
    assert profiling_main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("initiation_interval_cycles", "fps", "fill_latency_cycles", "frame_latency_cycles", "deadlock",
                "bottleneck", "fifo_memory", "attention_bypass"):
        assert key in out, key
    assert [j["node"] for j in out["joins"]] == ["scale", "scale", "add", "add"]  # graph order
    for j in out["joins"]:
        assert {"node", "operand", "buffer_rows", "buffer_elements", "fifo_words", "fifo_bits"} <= set(j)
    assert out["fifo_memory"]["fifo_bits"] > 0 and out["hardware"]["dtype_bits"] == 4
    written = json.loads(depths.read_text())
    assert len(written["add"]["inFIFODepths"]) == 2 and written["add"]["inFIFODepths"][0] > 1
    # the written depths read back as --fifo-depths: zero stall, no deadlock
    argv = ["pipeline", "--onnx", str(m), "--granularity", "pixel", "--fifo-depths", str(depths), "--simulate", "--json"]
    assert profiling_main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["deadlock"] is False and out["simulation"]["bounded"]["deadlock"] is False
    assert out["simulation"]["bounded"]["stalls"] == {}
    assert profiling_main(["pipeline", "--onnx", str(m), "--dtype-bits", "8"]) == 2
    assert "--granularity pixel" in capsys.readouterr().err


def test_pixel_tile_sweep_gives_the_bypass_fifos(graphs, tmp_path, capsys):
    se = tmp_path / "se.onnx"
    se.write_bytes(graphs.se_block(h=12, w=12).SerializeToString())
    assert profiling_main(["pipeline", "--onnx", str(se), "--granularity", "pixel", "--sweep-tile", "3,global",
                           "--json"]) == 0
    rows = {r["tile"]: r for r in json.loads(capsys.readouterr().out)["tile_sweep"]}
    assert rows["3"]["attention_bypass_elements"] < rows["global"]["attention_bypass_elements"]
    assert rows["3"]["fill_latency_cycles"] < rows["global"]["fill_latency_cycles"]
    assert {"attention_bypass_bits", "attention_bypass_bram18", "attention_bypass_uram"} <= set(rows["3"])
