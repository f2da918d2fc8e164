"""One exported run folder (resnet20_cifar + SE, random weights, fp32/fp16/int8) shared by the validate tests."""

from __future__ import annotations

import shutil

import pytest
import torch

from seadeploy.export.runner import export_model
from seadeploy.export.steps import ExportOptions
from seadeploy.models.source import ModelSource


@pytest.fixture(scope="session")
def exported_run(tmp_path_factory):
    """Read-only: tests that modify files work on ``run_copy``."""
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("validate") / "run"
    export_model(ModelSource("resnet20_cifar", attn="se", num_classes=10, input_size=32), out,
                 ExportOptions(precisions=("fp32", "fp16", "int8"), calib_samples=16, eval_samples=32, dataset="digits"))
    return out


@pytest.fixture
def run_copy(exported_run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(exported_run, dst)
    return dst
