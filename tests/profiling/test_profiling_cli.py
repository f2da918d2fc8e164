"""``python -m seadeploy.profiling``: exit codes, files written, JSON summaries."""

from __future__ import annotations

import json

import onnx
import pytest
import torch

from seadeploy.profiling.__main__ import main


def test_buffers_on_an_onnx_file_and_dynamic_dims(graphs, tmp_path, capsys):
    path = tmp_path / "se.onnx"
    onnx.save(graphs.se_block(), str(path))
    assert main(["buffers", "--onnx", str(path), "--json", "--dtype-bytes", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["attention_buffer_elements"] == 144 and out["attention_buffer_bytes"] == 144
    dyn = tmp_path / "dyn.onnx"
    onnx.save(graphs.with_dynamic_spatial(graphs.se_block()), str(dyn))
    assert main(["buffers", "--onnx", str(dyn)]) == 2
    assert "--input-size" in capsys.readouterr().err
    assert main(["buffers", "--onnx", str(dyn), "--input-size", "10", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "buffers.json").read_text())["attention_buffer_elements"] == 400
    assert "per attention block" in capsys.readouterr().out


def test_buffers_usage_errors(tmp_path, capsys):
    assert main(["buffers"]) == 2
    assert main(["buffers", "--onnx", str(tmp_path / "missing.onnx")]) == 2
    assert main(["buffers", "--model", "resnet20_cifar", "--dtype-bytes", "3"]) == 2
    assert "exactly one" in capsys.readouterr().err


def test_buffers_for_zoo_models_global_vs_tiled(capsys):
    results = {}
    for attn, extra in (("se", []), ("tse", ["--attn-arg", "tile=2"])):
        assert main(["buffers", "--model", "resnet20_cifar", "--attn", attn, *extra, "--json"]) == 0
        results[attn] = json.loads(capsys.readouterr().out)
    se, tse = results["se"], results["tse"]
    assert len(se["blocks"]) == len(tse["blocks"]) == 9
    # the SE scale joins hold whole maps (32, 16, 8 rows), TSE tile 2 holds two rows
    assert {b["attention_rows"] for b in se["blocks"]} == {32.0, 16.0, 8.0}
    assert {b["attention_rows"] for b in tse["blocks"]} == {2.0}
    assert se["attention_buffer_elements"] > 4 * tse["attention_buffer_elements"] > 0
    assert se["total_buffer_elements"] > tse["total_buffer_elements"]


def test_run_dir_commands_write_their_files(tiny_run, capsys):
    assert main(["buffers", str(tiny_run)]) == 0
    assert (tiny_run / "buffers.json").is_file() and "attention_buffer_elements" in capsys.readouterr().out
    assert main(["latency", str(tiny_run), "--backends", "ort", "--batch", "1,2", "--duration-s", "0.05",
                 "--warmup-s", "0", "--threads", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert (tiny_run / "latency.csv").is_file() and (tiny_run / "latency.json").is_file()
    assert [(r["backend"], r["batch"]) for r in rows] == [("ort", 1), ("ort", 2)]
    assert main(["memory", str(tiny_run), "--batch", "2", "--json"]) == 0
    mem = json.loads(capsys.readouterr().out)
    assert mem["peak_live_bytes"] > mem["input_bytes"] > 0 and mem["batch"] == 2
    assert main(["layers", str(tiny_run), "--backends", "ort", "--batch", "2", "--runs", "2", "--warmup-runs", "1",
                 "--duration-s", "0.05", "--threads", "1"]) == 0
    text = capsys.readouterr().out
    assert "per-layer sum vs end-to-end" in text and "attention share" in text and "ort-noopt" in text
    assert (tiny_run / "layers_ort.csv").is_file()


def test_missing_backend_exits_3(tiny_run, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["latency", str(tiny_run), "--backends", "trt"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error:") and "pip install" in err and "Traceback" not in err
    assert main(["layers", str(tiny_run), "--backends", "ort,trt"]) == 3
