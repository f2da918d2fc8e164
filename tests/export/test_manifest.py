import json

import pytest

from seadeploy.artifacts import ModelSpec
from seadeploy.errors import InputError
from seadeploy.export.manifest import load_manifest, manifest_file, new_manifest, write_manifest


def _manifest(dynamic=True):
    spec = ModelSpec("resnet20_cifar", attn="tse", attn_kwargs={"tile": (2, 2)})
    return new_manifest(spec, mean=(0.5, 0.5, 0.5), std=(0.25,) * 3, dataset="digits", opset=18,
                        dynamic_batch=dynamic, batch=4)


def test_schema_round_trip(run_dir):
    m = _manifest()
    (run_dir / "model.onnx").write_bytes(b"x")
    m["files"]["fp32"] = {"path": "model.onnx", "sha256": "0" * 64, "parity": {"max_abs": 0.0}}
    write_manifest(run_dir, m)
    back = load_manifest(run_dir)
    assert back["format_version"] == 1 and back["exporter"] == "torch.onnx.export(dynamo=True)"
    assert back["input"] == {"name": "x", "shape": ["batch", 3, 32, 32], "dtype": "float32"}
    assert back["output"] == {"name": "logits", "shape": ["batch", 10]}
    assert back["dynamic_axes"]["x"] == {"0": "batch"}
    assert ModelSpec.from_dict(back["spec"]).attn_kwargs == {"tile": (2, 2)}
    assert "torch" in back["versions"] and back["checkpoint"] == "checkpoint.safetensors"
    assert manifest_file(back, run_dir, "fp32") == run_dir / "model.onnx"
    assert load_manifest(run_dir / "manifest.json") == back


def test_static_batch_shapes():
    m = _manifest(dynamic=False)
    assert m["input"]["shape"][0] == 4 and m["dynamic_axes"] == {}


@pytest.mark.parametrize("text", ["", "{not json", "[1, 2]", json.dumps({"format_version": 1}),
                                  json.dumps({**_manifest(), "format_version": 99})])
def test_corrupt_manifest_is_an_input_error(run_dir, text):
    (run_dir / "manifest.json").write_text(text)
    with pytest.raises(InputError):
        load_manifest(run_dir)


def test_missing_manifest_and_missing_entries(run_dir):
    with pytest.raises(InputError, match="run `python -m seadeploy.export"):
        load_manifest(run_dir)
    m = _manifest()
    with pytest.raises(InputError, match="--precision int8"):
        manifest_file(m, run_dir, "int8")
    m["files"]["fp32"] = {"path": "model.onnx"}
    with pytest.raises(InputError, match="does not exist"):
        manifest_file(m, run_dir, "fp32")
