"""Every attention × {vgg16_cifar, resnet56_cifar, efficientnet_b0 at 224} goes through the export checks.

One ``export_run`` per combination (the dynamo export is the expensive part): checker (full), strict shape
inference with data propagation, declared-vs-runtime shapes, ONNX Runtime vs PyTorch at batch 1 and 3 (the
export example is batch 2) and on real-shaped samples, lint. Random weights, fp32.
"""

import pytest

from seadeploy.artifacts import ModelSpec
from seadeploy.export.manifest import load_manifest
from seadeploy.export.pipeline import ExportOptions, load_source
from seadeploy.export.runner import export_run
from seadeploy.models import list_attention

BACKBONES = [("vgg16_cifar", 32, []), ("resnet56_cifar", 32, []), ("efficientnet_b0", 224, [pytest.mark.slow])]
CASES = [pytest.param(model, size, attn, id=f"{model}-{attn}", marks=marks)
         for model, size, marks in BACKBONES for attn in list_attention()]
REQUIRED = {"onnx.checker.full_check", "shape_inference.strict", "declared_vs_runtime_shapes", "parity.ort_vs_torch",
            "parity.ort_vs_torch.dataset"}


@pytest.mark.parametrize("model,size,attn", CASES)
def test_export_passes_checks(model, size, attn, tmp_path):
    ckpt, src = load_source(spec=ModelSpec(model, attn=attn, input_size=size), dataset="synthetic")
    manifest = export_run(ckpt, tmp_path / "run", ExportOptions(dataset="synthetic", eval_samples=2), source_file=src)
    assert load_manifest(tmp_path / "run") == manifest
    passed = {c["name"] for c in manifest["checks"] if c["passed"]}
    assert REQUIRED <= passed, [c for c in manifest["checks"] if not c["passed"]]
    lint = next(c for c in manifest["checks"] if c["name"] == "lint")
    assert lint["passed"], lint["detail"]  # no error-level deployment trap in any zoo model
    assert manifest["input"]["shape"] == ["batch", 3, size, size]
    assert manifest["files"]["fp32"]["parity"]["seeded"]["batches"] == [1, 3]
