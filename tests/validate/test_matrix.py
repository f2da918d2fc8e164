"""The CI numerics gate's machinery (the real exports run in CI via `python -m seadeploy.validate matrix`)."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from seadeploy.errors import ConfigError, InputError
from seadeploy.validate import matrix
from seadeploy.validate.__main__ import main


@pytest.fixture
def fake_export(monkeypatch, exported_run):
    """Replace the (slow) export with a copy of the session's exported run; 'cbam' fails like a broken export."""
    calls = []

    def export(model, attn, out, precisions, calib, samples):
        calls.append((model, attn, tuple(precisions)))
        if attn == "cbam":
            raise InputError("TensorRT-unfriendly op in cbam (simulated export failure)")
        shutil.copytree(exported_run, out)

    monkeypatch.setattr(matrix, "_export", export)
    return calls


def test_matrix_reports_every_case_and_fails_on_one_bad_case(fake_export, tmp_path, capsys):
    out = tmp_path / "matrix"
    code = main(["matrix", "--models", "resnet20_cifar", "--attn", "se,cbam", "--out", str(out), "--threads", "1",
                 "--samples", "16", "--random", "4", "--junit", str(tmp_path / "m.xml")])
    assert code == 1 and fake_export == [("resnet20_cifar", "se", ("fp32", "fp16", "int8")),
                                         ("resnet20_cifar", "cbam", ("fp32", "fp16", "int8"))]
    text = capsys.readouterr().out
    assert "FAIL resnet20_cifar-cbam: InputError in export: TensorRT-unfriendly op" in text
    assert "FAILED: 1/2 cases" in text
    summary = json.loads((out / "matrix.json").read_text())
    assert [c["passed"] for c in summary["cases"]] == [True, False] and summary["passed"] is False
    assert {c["precision"] for c in summary["comparisons"]} == {"fp32", "fp16", "int8"}
    assert (out / "matrix.csv").read_text().startswith("case,backend,precision")
    cases = ET.parse(tmp_path / "m.xml").getroot().find("testsuite").findall("testcase")
    assert len(cases) == 7 and cases[0].get("classname") == "parity.resnet20_cifar-se.ort.fp32"
    assert cases[-1].get("classname") == "parity.resnet20_cifar-cbam" and cases[-1].find("failure") is not None


def test_matrix_passes_and_cleans_up_its_temporary_folder(fake_export, monkeypatch, capsys):
    folders, export = [], matrix._export

    def recording(model, attn, out, *args):
        folders.append(Path(out))
        export(model, attn, out, *args)

    monkeypatch.setattr(matrix, "_export", recording)
    report = matrix.run_matrix(models=["resnet20_cifar"], attns=["se"], samples=16, random=4, threads=1)
    assert report and report.out_dir == "" and len(folders) == 1 and not folders[0].exists()
    assert report.to_frame()["case"].unique().tolist() == ["resnet20_cifar-se"]


def test_unknown_cases_are_config_errors():
    with pytest.raises(ConfigError, match="unknown model 'resnet21_cifar'"):
        matrix.matrix_cases(["resnet21_cifar"], None)
    with pytest.raises(ConfigError, match="unknown attention 'sse'"):
        matrix.matrix_cases(None, ["sse"])
    cases = matrix.matrix_cases(None, None)
    assert ("efficientnet_b0", "se") in cases and len({a for _, a in cases}) >= 6
    with pytest.raises(ConfigError, match="--jobs must be"):
        matrix.run_matrix(models=["resnet20_cifar"], attns=["se"], jobs=0)


def test_a_zoo_export_with_a_deployment_trap_fails_its_case(exported_run, monkeypatch):
    def export(model, attn, out, *args):
        shutil.copytree(exported_run, out)
        manifest = json.loads((out / "manifest.json").read_text())
        lint = next(c for c in manifest["checks"] if c["name"] == "lint")
        lint.update(passed=False, detail="1 errors, 0 warnings; first: gathernd at /attn/GatherND")
        (out / "manifest.json").write_text(json.dumps(manifest))

    monkeypatch.setattr(matrix, "_export", export)
    report = matrix.run_matrix(models=["resnet20_cifar"], attns=["se"], samples=16, random=4, threads=1)
    assert not report and "lint of model.onnx: 1 errors" in report.cases[0]["error"]
