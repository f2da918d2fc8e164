"""The run-folder module: one writer and one reader per file, schema versions, paths kept inside the folder."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from seadeploy.errors import InputError
from seadeploy.parity import compare, default_rule
from seadeploy.runfolder import (
    MANIFEST_VERSION,
    STAGE_FILES,
    FileEntry,
    Manifest,
    ModelSpec,
    read_buffers,
    read_latency,
    read_layers,
    read_manifest,
    read_parity,
    read_parity_inputs,
    read_pipeline,
    read_training,
    stage_files,
    write_buffers,
    write_manifest,
    write_parity,
    write_pipeline,
)
from seadeploy.validate.report import ParityReport


def _manifest(**files) -> Manifest:
    spec = ModelSpec("resnet20_cifar", attn="se")
    return Manifest(spec=spec, input={"name": "x", "shape": ["batch", 3, 32, 32]}, output={"name": "logits"},
                    opset=18, files={p: FileEntry(path) for p, path in files.items()})


def test_manifest_round_trip_and_files(run_dir):
    (run_dir / "model.onnx").write_bytes(b"x")
    write_manifest(run_dir, _manifest(fp32="model.onnx"))
    m = read_manifest(run_dir)
    assert m == _manifest(fp32="model.onnx") and read_manifest(run_dir / "manifest.json") == m
    assert json.loads((run_dir / "manifest.json").read_text())["format_version"] == MANIFEST_VERSION
    assert m.file(run_dir, "fp32") == run_dir / "model.onnx"
    with pytest.raises(InputError, match="--precision int8"):
        m.file(run_dir, "int8")
    (run_dir / "model.onnx").unlink()
    with pytest.raises(InputError, match="does not exist"):
        m.file(run_dir, "fp32")


@pytest.mark.parametrize("path", ["/etc/passwd", "../other/model.onnx", "sub/../../model.onnx", "C:\\model.onnx",
                                  "", 7])
def test_manifest_paths_must_stay_inside_the_run_folder(run_dir, path):
    with pytest.raises(InputError, match="relative|leaves the run folder|not a file name"):
        write_manifest(run_dir, _manifest(fp32=path))
    data = _manifest(fp32="model.onnx").to_dict()
    data["files"]["fp32"]["path"] = path
    (run_dir / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match="relative|leaves the run folder|not a file name"):
        read_manifest(run_dir)


def test_manifest_path_through_a_link_out_of_the_folder_is_refused(run_dir, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (run_dir / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(InputError, match="leaves the run folder"):
        write_manifest(run_dir, _manifest(fp32="link/model.onnx"))


def test_version_1_manifest_is_still_read(run_dir):
    old = {"format_version": 1, "spec": ModelSpec("resnet20_cifar").to_dict(), "checkpoint": "checkpoint.safetensors",
           "input": {"name": "x", "shape": ["batch", 3, 32, 32]}, "output": {"name": "logits", "shape": ["batch", 10]},
           "opset": 18, "files": {"fp32": {"path": "model.onnx", "parity": {"max_abs": 0.0, "top1_agreement": 1.0}}},
           "engines": {}, "checks": [], "versions": {}}
    (run_dir / "manifest.json").write_text(json.dumps(old))
    m = read_manifest(run_dir)
    assert m.format_version == 1 and m.seed is None and m.files["fp32"].parity["top1_agreement"] == 1.0


@pytest.mark.parametrize("text", ["", "{not json", "[1, 2]", json.dumps({"format_version": 1}),
                                  json.dumps({**_manifest().to_dict(), "format_version": 99}),
                                  json.dumps({**_manifest().to_dict(), "files": {"fp32": "model.onnx"}})])
def test_corrupt_manifest_is_an_input_error(run_dir, text):
    (run_dir / "manifest.json").write_text(text)
    with pytest.raises(InputError):
        read_manifest(run_dir)


def test_missing_manifest(run_dir):
    with pytest.raises(InputError, match="run `python -m seadeploy.export"):
        read_manifest(run_dir)


def _report() -> ParityReport:
    ref = np.random.default_rng(0).standard_normal((8, 10)).astype(np.float32)
    rows = [compare(ref, ref + 1e-6, default_rule(p, k), backend="ort", precision=p, inputs=k,
                    labels=ref.argmax(1) if k == "data" else None) for p in ("fp32", "int8") for k in ("random", "data")]
    return ParityReport(rows, "runs/x")


def test_read_parity_uses_the_real_writer_with_and_without_the_csv(run_dir):
    report = _report()
    x = np.zeros((2, 3, 4, 4), np.float32)
    write_parity(run_dir, report.to_dict(), report.to_frame(), {"x_data": x, "y_data": np.array([1, 2])})
    from_csv = read_parity(run_dir)
    (run_dir / "parity.csv").unlink()
    from_json = read_parity(run_dir)  # parity.json alone: its "comparisons" are the rows
    cols = ["backend", "precision", "inputs", "n", "passed", "max_abs", "cosine", "top1", "accuracy"]
    pd.testing.assert_frame_equal(from_csv[cols], from_json[cols], check_dtype=False)
    assert len(from_json) == 4 and from_json["passed"].all()
    assert json.loads((run_dir / "parity.json").read_text())["format_version"] == 2
    sets = read_parity_inputs(run_dir / "parity.npz")
    assert sets["data"][0].shape == x.shape and list(sets["data"][1]) == [1, 2]
    (run_dir / "parity.json").write_text(json.dumps({"format_version": 2, "comparisons": []}))
    with pytest.raises(InputError, match="holds no comparisons"):
        read_parity(run_dir)


def test_buffers_round_trip_and_stage_files(run_dir):
    with pytest.raises(InputError, match="no buffers.json"):
        read_buffers(run_dir)
    write_buffers(run_dir, {"attention_buffer_elements": 5, "total_buffer_elements": 9, "blocks": []})
    assert read_buffers(run_dir)["format_version"] == 1
    assert "parity_layers.csv" in STAGE_FILES["validate"] and "manifest.json" in STAGE_FILES["export"]


@pytest.mark.parametrize(("field", "value", "named"), [
    ("mean", "0.5", "mean"), ("mean", [0.5, "x"], "mean[1]"), ("opset", "18", "opset"), ("seed", 1.5, "seed"),
    ("checks", {"a": 1}, "checks"), ("files", {"fp32": {"path": "model.onnx", "sha256": 7}}, "sha256"),
    ("files", {"fp32": {"path": "model.onnx", "parity": {"passed": "yes"}}}, "passed"),
])
def test_every_manifest_field_is_type_checked_on_read(run_dir, field, value, named):
    data = {**_manifest(fp32="model.onnx").to_dict(), field: value}
    (run_dir / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match=f"has {re.escape(named)} = .*expected"):
        read_manifest(run_dir)


@pytest.mark.parametrize(("name", "text", "column"), [
    ("latency.csv", "backend,precision,batch,median_ms\nort,fp32,1,fast\n", "median_ms"),
    ("latency.csv", "backend,precision,batch,median_ms,stable\nort,fp32,1,2.0,maybe\n", "stable"),
    ("parity.csv", "backend,precision,passed,max_abs\nort,fp32,True,big\n", "max_abs"),
    ("metrics.csv", "epoch,test_top1\n1,ninety\n", "test_top1"),
    ("layers_ort.csv", "backend,layer,time_ms\nort,conv1,slow\n", "time_ms"),
])
def test_text_in_a_numeric_column_is_one_input_error(run_dir, name, text, column):
    (run_dir / name).write_text(text)
    reader = {"latency.csv": read_latency, "parity.csv": read_parity, "metrics.csv": read_training,
              "layers_ort.csv": read_layers}[name]
    with pytest.raises(InputError, match=f"'{column}'"):
        reader(run_dir)


def test_results_json_fields_are_type_checked(run_dir):
    write_buffers(run_dir, {"attention_buffer_elements": "many", "blocks": []})
    with pytest.raises(InputError, match="attention_buffer_elements"):
        read_buffers(run_dir)
    write_pipeline(run_dir, {"fps": "fast"})
    with pytest.raises(InputError, match="fps"):
        read_pipeline(run_dir)


def test_per_backend_files_of_the_layers_stage_come_from_the_names_given():
    assert stage_files("layers", ["ort", "openvino"])[:2] == ("layers_ort.csv", "layers_openvino.csv")
    assert "layers_summary.json" in stage_files("layers", [])
