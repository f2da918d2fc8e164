"""Bring your own model end to end: a model defined in tests/fixtures/user_model.py (not in the zoo, attention not
named ``attn``) through train → export fp32/fp16/int8 → validate → profiling layers → convert → compare, and its
bare ONNX file through validate --onnx and every profiling command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from seadeploy.compare import CompareOptions, run_compare
from seadeploy.convert.__main__ import main as convert_main
from seadeploy.export.__main__ import main as export_main
from seadeploy.profiling.__main__ import main as profiling_main
from seadeploy.train.__main__ import main as train_main
from seadeploy.validate.__main__ import main as validate_main

SRC = f"{Path(__file__).parent / 'fixtures' / 'user_model.py'}:build"


def _json(capsys, code: int) -> dict:
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, single_thread) -> Path:
    """Trained on one intra-op thread, as in the whole suite (tests/data and tests/models set it for the session
    first): with the default 2 threads the weights differ and this file alone gave another int8 verdict."""
    run = tmp_path_factory.mktemp("byom") / "run"
    code = train_main(["--model", SRC, "--model-arg", "width=16", "--input-size", "32", "--dataset", "digits",
                       "--epochs", "4", "--limit-train", "1024", "--limit-test", "64", "--batch-size", "32", "--lr", "0.01",
                       "--out", str(run), "--json"])
    assert code == 0
    return run


@pytest.mark.slow  # train, convert and a two-variant study: the slow set (CI runs it once)
def test_pytorch_route(trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    capsys.readouterr()
    assert export_main([str(run), "--precision", "fp32,fp16,int8", "--eval-samples", "64", "--calib-samples", "64"]) == 0
    capsys.readouterr()
    v = _json(capsys, validate_main([str(run), "--backends", "torch,ort", "--samples", "32", "--random", "4",
                                     "--json"]))
    assert v["passed"]
    layers = _json(capsys, profiling_main(["layers", str(run), "--batch", "2", "--runs", "2", "--warmup-runs", "1",
                                           "--json"]))
    assert layers["attention_blocks"] == 3 and layers["attention_share"] > 0
    rep = _json(capsys, convert_main([str(run), "--to", "tse", "--tile", "4", "--dataset", "digits", "--samples", "32",
                                      "--latency-rounds", "1", "--latency-runs", "1", "--out", str(tmp_path / "tse"),
                                      "--json"]))
    assert rep["attention_blocks"] == 3
    assert rep["attention_buffer_elements_after"] < rep["attention_buffer_elements_before"]
    assert rep["top1_before"] is not None and rep["top1_after"] is not None
    assert [b["tile"] for b in rep["blocks"]] == [[4, 4]] * 3
    assert sorted(p.name for p in (tmp_path / "tse").iterdir()) == ["checkpoint.safetensors", "convert.json",
                                                                      "model.onnx"]
    o = CompareOptions(model=SRC, model_args=("width=16",), input_size=32, weights=str(run / "checkpoint.safetensors"),
                       attn=("original", "tse:tile=4"), epochs=0, backends=("ort",), batches=(1,),
                       precisions=("fp32",), latency_precisions=("fp32",), duration_s=0.05, warmup_s=0.0,
                       layer_runs=2, parity_samples=32, baseline="original", out=str(tmp_path / "study"))
    summary = run_compare(o)
    rows = {r["variant"]: r for r in summary["variants"]}
    assert set(rows) == {"original", "tse_tile4"} and summary["baseline"] == "original"
    assert rows["tse_tile4"]["attention_buffer_elements"] < rows["original"]["attention_buffer_elements"]
    assert rows["original"]["acc_ort_fp32"] is not None  # --epochs 0: evaluated, not trained
    assert all(rows[v]["accuracy"] > 50 for v in rows)  # the trained weights' test accuracy (chance: 10 %)
    assert (tmp_path / "study" / "report.md").is_file()


def test_onnx_route(trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    assert export_main([str(run), "--precision", "fp32", "--eval-samples", "16", "--no-dynamic-batch", "--batch",
                        "4"]) == 0
    onnx_file = tmp_path / "user.onnx"
    shutil.copy(run / "model.onnx", onnx_file)  # a bare file with a static batch of 4
    capsys.readouterr()
    v = _json(capsys, validate_main(["--onnx", str(onnx_file), "--dataset", "digits", "--samples", "64", "--json"]))
    assert set(v["files"]) == {"fp32", "fp16", "int8"} and v["files"]["int8"]["comparisons"][0]["accuracy"] is not None
    for cmd in (["latency", str(onnx_file), "--duration-s", "0.05", "--warmup-s", "0"],
                ["memory", str(onnx_file)], ["buffers", "--onnx", str(onnx_file)],
                ["layers", "--onnx", str(onnx_file), "--runs", "2", "--warmup-runs", "1"]):
        out = _json(capsys, profiling_main([*cmd, "--json"]))
        if cmd[0] in ("memory", "buffers", "layers"):
            assert out["attention_blocks"] == 3, cmd
    rep = _json(capsys, convert_main(["--onnx", str(onnx_file), "--tile", "4", "--latency-rounds", "1",
                                      "--latency-runs", "1", "--out", str(tmp_path / "otse"), "--json"]))
    assert rep["attention_blocks"] == 3 and rep["route"] == "onnx"
