"""``python -m seadeploy.validate RUN_DIR``: pass/fail exit codes, artifacts, replay, and clear errors."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from seadeploy.errors import InputError
from seadeploy.export.__main__ import main as export_main
from seadeploy.export.runner import export_run
from seadeploy.export.steps import ExportOptions, load_source
from seadeploy.fileio import sha256
from seadeploy.models.build import build_model
from seadeploy.profiling.sources import plan
from seadeploy.runfolder import Checkpoint, ModelSpec, RunFolder
from seadeploy.validate.__main__ import main
from seadeploy.validate.judge import validate_run

FAST = ["--threads", "1", "--samples", "24", "--random", "8"]


def _alter(run, initializer: str, factor: float = 1.5) -> str:
    """Scale one initializer of model.onnx in place; returns the node that consumes it."""
    proto = onnx.load(str(run / "model.onnx"))
    init = next(i for i in proto.graph.initializer if i.name == initializer)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(factor), initializer))
    onnx.save(proto, str(run / "model.onnx"))
    return next(n.name for n in proto.graph.node if initializer in n.input)


def test_passing_run_writes_json_csv_npz_and_junit(run_copy, tmp_path, capsys):
    junit = tmp_path / "ci" / "parity.xml"
    assert main([str(run_copy), *FAST, "--junit", str(junit), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is True and len(report["comparisons"]) == 6  # 3 precisions × random/data
    assert {c["precision"] for c in report["comparisons"]} == {"fp32", "fp16", "int8"}
    fp32 = [c for c in report["comparisons"] if c["precision"] == "fp32"]
    assert all(c["max_abs"] <= 1e-4 and c["top1"] == 1.0 for c in fp32)
    assert report["reference"]["tf32"] is False and report["settings"]["trained"] is False
    on_disk = json.loads((run_copy / "parity.json").read_text())
    assert on_disk["comparisons"] == report["comparisons"]
    assert (run_copy / "parity.csv").read_text().splitlines()[0].startswith("backend,precision,inputs,n,passed")
    with np.load(run_copy / "parity.npz") as z:
        assert {"x_random", "x_data", "y_data", "ref_data", "out_ort_int8_data"} <= set(z.files)
        assert z["x_data"].shape == (24, 3, 32, 32)
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("tests") == "6" and suite.get("failures") == "0"
    assert not [p for p in run_copy.iterdir() if p.name.endswith(".tmp")]  # atomic writes leave no temp files


def test_replay_reproduces_the_numbers(run_copy, capsys):
    assert main([str(run_copy), *FAST, "--precision", "fp32", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)["comparisons"]
    saved = run_copy / "replay.npz"
    shutil.copy(run_copy / "parity.npz", saved)
    assert main([str(run_copy), "--threads", "1", "--precision", "fp32", "--inputs", str(saved), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)["comparisons"]
    assert [(c["inputs"], c["max_abs"], c["top1"]) for c in again] == [(c["inputs"], c["max_abs"], c["top1"])
                                                                      for c in first]


@pytest.mark.parametrize(("initializer", "module"), [
    ("layer2.1.attn.fc1.weight", "layer2.1.attn.fc1"),      # an attention layer
    ("layer2.0.conv2.weight", "layer2.0.conv2+bn2"),        # a convolution with its BatchNorm folded in
])
def test_altered_layer_fails_and_layerwise_names_it(run_copy, capsys, initializer, module):
    node = _alter(run_copy, initializer)
    assert main([str(run_copy), *FAST, "--precision", "fp32", "--layerwise"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and re.search(rf"first divergence at {re.escape(module)}[+\w]* \(ONNX node {node}\b", out)
    report = json.loads((run_copy / "parity.json").read_text())
    assert report["passed"] is False
    first = report["layerwise"][0]["first_divergence"]
    assert first["module"].startswith(module) and first["onnx_node"] == node
    layers = (run_copy / "parity_layers.csv").read_text().splitlines()
    assert len(layers) > 30 and layers[0].startswith("backend,precision,index,module,onnx_node")


def test_layerwise_on_a_clean_run_finds_no_divergence(run_copy, capsys):
    assert main([str(run_copy), *FAST, "--precision", "fp32,fp16", "--layerwise"]) == 0
    out = capsys.readouterr().out
    assert "ort/fp32: no layer diverges" in out and "ort/fp16: no layer diverges" in out


def test_missing_files_and_folders_exit_2(run_copy, tmp_path, capsys):
    (run_copy / "model.int8.onnx").unlink()
    assert main([str(run_copy), *FAST, "--precision", "int8"]) == 2
    assert "model.int8.onnx' does not exist; run python -m seadeploy.export" in capsys.readouterr().err
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (run_copy / "checkpoint.safetensors").unlink()
    assert main([str(run_copy)]) == 2
    assert "has no checkpoint.safetensors" in capsys.readouterr().err


def test_files_of_another_model_exit_2(run_copy, exported_run, tmp_path, capsys):
    torch.manual_seed(0)
    other = ModelSpec("resnet20_cifar", attn="se", num_classes=5, input_size=32)
    Checkpoint(other, build_model(other).state_dict()).save(run_copy / "checkpoint.safetensors")
    assert main([str(run_copy), *FAST]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mixes runs" in err and "classes=5" in err

    (run_copy / "manifest.json").unlink()  # without a manifest the ONNX file itself is checked
    assert main([str(run_copy), *FAST]) == 2
    assert "returns logits with 10 classes but the checkpoint's model has 5" in capsys.readouterr().err


def test_bad_inputs_exit_2(run_copy, tmp_path, capsys):
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    x[2, 1, 0, 5] = np.nan
    np.savez(tmp_path / "nan.npz", x=x)
    assert main([str(run_copy), "--threads", "1", "--inputs", str(tmp_path / "nan.npz")]) == 2
    assert "random inputs hold NaN/Inf" in capsys.readouterr().err
    np.savez(tmp_path / "shape.npz", x=np.zeros((4, 3, 28, 28), np.float32))
    assert main([str(run_copy), "--threads", "1", "--inputs", str(tmp_path / "shape.npz")]) == 2
    assert "has shape (4, 3, 28, 28), expected (batch, 3, 32, 32)" in capsys.readouterr().err
    assert main([str(run_copy), "--inputs", str(tmp_path / "missing.npz")]) == 2
    assert main([str(run_copy), "--samples", "0", "--random", "0"]) == 2
    assert main([str(run_copy), "--batch", "0"]) == 2 and "--batch: must be an integer ≥ 1" in capsys.readouterr().err
    assert main([str(run_copy), "--backends", ","]) == 2 and "no backend given" in capsys.readouterr().err


def test_an_altered_weight_fails_at_every_precision(run_copy):
    """The files stay as exported; the reference gets one 3x3 kernel transposed (a layout bug)."""
    ckpt = Checkpoint.load(run_copy)
    w = ckpt.state_dict["layer2.0.conv1.weight"]
    ckpt.state_dict["layer2.0.conv1.weight"] = w.transpose(2, 3).contiguous()
    ckpt.save(run_copy / "checkpoint.safetensors")
    report = validate_run(run_copy, samples=24, random=8, threads=1, write=False)
    failed = {c.precision for c in report.comparisons if not c}
    assert failed == {"fp32", "fp16", "int8"}, report.text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the exit code on a machine without a GPU")
def test_unavailable_backend_exits_3(run_copy, capsys):
    assert main([str(run_copy), *FAST, "--backends", "ort:cuda", "--precision", "fp32"]) == 3
    assert "onnxruntime-gpu" in capsys.readouterr().err
    assert main([str(run_copy), *FAST, "--backends", "torch:cuda", "--precision", "fp32"]) == 3


def test_torch_backend_and_trained_tolerances_through_the_api(exported_run, tmp_path):
    report = validate_run(exported_run, backends=("torch", "ort"), precisions=("fp32", "int8"), samples=24,
                          random=8, threads=1, trained=True, out_dir=tmp_path)
    rows = report.to_frame().set_index(["backend", "precision", "inputs"])
    assert rows.loc[("torch", "fp32", "data"), "max_abs"] == 0.0
    assert ("torch", "int8", "data") not in rows.index and any("torch runs fp32 only" in w for w in report.warnings)
    assert report.comparisons[-1].rule.min_top1 == 0.99 and (tmp_path / "parity.json").is_file()


@pytest.mark.gpu
@pytest.mark.trt
def test_trt_backend_and_layerwise_on_gpu(exported_run, tmp_path):
    run = tmp_path / "run"
    ckpt, src = load_source(exported_run)
    export_run(ckpt, run, ExportOptions(precisions=("fp32", "fp16"), engine=True, calib_samples=16, eval_samples=32),
               source_file=src)
    report = validate_run(run, backends=("trt", "ort:cuda"), precisions=("fp32", "fp16"), samples=64, random=8,
                          layerwise=True)
    assert report, report.text()
    trt_lw = [lw for lw in report.layerwise if lw.backend == "trt"]
    assert trt_lw and all(r["engine_layer"] for r in trt_lw[0].rows) and len(trt_lw[0].rows) >= 9


def test_engine_of_another_run_is_rejected_before_tensorrt_loads(run_copy):
    engine = run_copy / "model.fp16.engine"
    engine.write_bytes(b"engine bytes of this run")
    manifest = json.loads((run_copy / "manifest.json").read_text())
    manifest["engines"] = {"fp16": {"path": engine.name, "sha256": sha256(engine)}}
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    assert RunFolder.load(run_copy).engine_path("fp16") == engine
    engine.write_bytes(b"an engine copied from another run")
    with pytest.raises(InputError, match="not the engine export built for this run"):
        RunFolder.load(run_copy).engine_path("fp16")
    (run_copy / "model.fp16.engine.json").write_text(json.dumps({"onnx": "model.fp16.onnx", "onnx_sha256": "0" * 64}))
    manifest["engines"] = {}
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="was built from another model.fp16.onnx"):
        RunFolder.load(run_copy).engine_path("fp16")
    with pytest.raises(InputError, match="model.int8.engine' does not exist"):
        RunFolder.load(run_copy).engine_path("int8")


def test_only_the_files_the_manifest_lists_are_judged_and_timed(run_copy):
    """A file left by an earlier export (``model.int8.onnx`` with a manifest that lists fp32/fp16) is no file of
    this run: validate and profiling skip it and say so."""
    manifest = json.loads((run_copy / "manifest.json").read_text())
    del manifest["files"]["int8"]
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    report = validate_run(run_copy, precisions=None, samples=8, random=4, write=False)
    assert {c.precision for c in report.comparisons} == {"fp32", "fp16"}
    assert any("model.int8.onnx" in w and "not judged" in w for w in report.warnings)
    assert [s.precision for s in plan(run_copy, ["ort"])] == ["fp32", "fp16"]
    with pytest.raises(InputError, match="lists no int8 file"):
        RunFolder.load(run_copy).onnx_path("int8")


def test_an_onnx_only_run_is_judged_as_it_is(tiny_onnx, tmp_path, capsys):
    """``validate RUN`` on a folder that ``export --onnx`` wrote with fp32 only judges what its manifest lists (nothing
    to judge: fp32 is the reference) and names what it skipped; it re-creates no fp16/int8 files."""
    run = tmp_path / "run"
    assert export_main(["--onnx", str(tiny_onnx), "--precision", "fp32", "--dataset", "synthetic",
                        "--eval-samples", "8", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main([str(run), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["comparisons"] == [] and sorted(p.name for p in run.glob("*.onnx")) == ["model.onnx"]
    assert main([str(run), "--precision", "int8", "--json"]) == 0
    assert any("no model.int8.onnx in the manifest" in n for n in json.loads(capsys.readouterr().out)["skipped"])
