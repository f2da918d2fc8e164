"""Every attention × {vgg16_cifar, resnet56_cifar, efficientnet_b0 at 224} goes through the export checks.

One ``export_model`` per combination: checker (full), strict shape inference with data propagation,
declared-vs-runtime shapes, ONNX Runtime vs PyTorch at batch 1 and 3 (the export example is batch 2) and on
seeded samples, lint. Random weights, fp32. The dynamo export (~5–25 s of CPU each) is the cost, so the
selected combinations are exported in a process pool with one worker per CPU, started with the first test of
tests/export (conftest.py ``zoo_exports``), and each test checks its own.
"""

import pytest

from seadeploy.models import list_attention
from seadeploy.runfolder import read_manifest

BACKBONES = [("vgg16_cifar", 32, []), ("resnet56_cifar", 32, []), ("efficientnet_b0", 224, [pytest.mark.slow])]
#: Several seeds across the cases (seed = attention index mod 3): fp32 parity, relative to the output scale, holds
#: for whatever random weights a seed draws (docs/parity.md); the seed is recorded in the manifest.
CASES = [pytest.param(model, size, attn, i % 3, id=f"{model}-{attn}-seed{i % 3}", marks=marks)
         for model, size, marks in BACKBONES for i, attn in enumerate(list_attention())]
REQUIRED = {"onnx.checker.full_check", "shape_inference.strict", "declared_vs_runtime_shapes", "parity.fp32.random",
            "parity.fp32.data"}


@pytest.mark.parametrize("model,size,attn,seed", CASES)
def test_export_passes_checks(model, size, attn, seed, zoo_exports):
    out, job = zoo_exports[(model, size, attn)]
    manifest = job.result(timeout=1800)  # re-raises the export's own error (ParityFailure, ConfigError, ...)
    assert read_manifest(out) == manifest
    passed = {c["name"] for c in manifest.checks if c["passed"]}
    assert passed >= REQUIRED, [c for c in manifest.checks if not c["passed"]]
    lint = next(c for c in manifest.checks if c["name"] == "lint")
    assert lint["passed"], lint["detail"]  # no error-level deployment trap in any zoo model
    assert manifest.input["shape"] == ["batch", 3, size, size] and manifest.seed == seed
    assert manifest.files["fp32"]["parity"]["comparisons"][0]["batches"] == [1, 3]
