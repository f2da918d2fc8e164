"""``seadeploy doctor``: every component reported, failures reported instead of raised, exit 0."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import sys
import types
from pathlib import Path

import onnxruntime as ort
import pytest
import torch

from seadeploy import doctor
from seadeploy.cli import entry_point


def test_json_report_covers_every_component(capsys):
    assert entry_point(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    names = [c["name"] for c in report["checks"]]
    assert names == ["python", "torch", "torch-cuda", "onnxruntime", "onnxruntime-gpu", "tensorrt", "pycuda", "openvino",
                     "timm", "torchvision", "kornia"]
    by = {c["name"]: c for c in report["checks"]}
    assert by["python"]["ok"] and by["torch"]["ok"] and "cuda_available" in by["torch"]["detail"]
    assert "CPUExecutionProvider" in by["onnxruntime"]["detail"]["providers"]
    assert report["gpu"] == by["torch-cuda"]["ok"]
    for c in report["checks"]:  # every missing piece says what it disables and how to install it
        assert c["ok"] or (c["problem"] and c["disables"] and c["install"]), c["name"]


def test_text_report_and_install_lines(capsys):
    assert entry_point(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "[ok ] python" in out and 'pip install -e ".[gpu,tensorrt,dev]"' in out and "GPU:" in out


def test_a_crashing_check_is_a_finding_not_a_crash(monkeypatch):
    def broken():
        raise OSError("libcudart.so.12: cannot open shared object file")

    monkeypatch.setattr(doctor, "CHECKS", (("python", doctor.check_python), ("torch-cuda", broken)))
    checks = doctor.collect()
    assert checks[0].ok and not checks[1].ok and "libcudart" in checks[1].problem


def test_both_onnxruntime_wheels_are_flagged(monkeypatch):
    monkeypatch.setattr(doctor, "_dist_version", lambda name: "1.31.0" if name.startswith("onnxruntime") else None)
    check = doctor.check_onnxruntime()
    assert not check.ok and check.required and "both" in check.problem and "uninstall" in check.install


def test_tensorrt_without_a_gpu_reports_no_builder(monkeypatch):
    fake = types.ModuleType("tensorrt")
    fake.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    fake.__version__ = "10.16.1.11"
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    check = doctor.check_tensorrt()
    assert not check.ok and check.version == "10.16.1.11" and check.detail["builder"] is False
    assert "no CUDA GPU" in check.problem


@pytest.mark.gpu
def test_gpu_machine_reports_devices():
    check = doctor.check_torch_cuda()
    assert check.ok and check.detail["devices"]


def test_ort_tensorrt_provider_without_libnvinfer_is_flagged(monkeypatch):
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(doctor, "_loadable", lambda lib: False)
    check = doctor.check_ort_gpu()
    assert not check.ok and "libnvinfer.so.10" in check.problem and "LD_LIBRARY_PATH" in check.install
    monkeypatch.setattr(doctor, "_loadable", lambda lib: True)
    assert doctor.check_ort_gpu().ok


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the no-GPU exit")
def test_gpu_check_exits_3_without_a_gpu(tmp_path, capsys):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    assert gpu_check.main(["--out", str(tmp_path / "out")]) == 3
    assert "no GPU" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["exit"] == 3
    assert json.loads((tmp_path / "out" / "doctor.json").read_text())["gpu"] is False
