"""What export puts in a new manifest (the schema itself is tested in tests/test_runfolder.py)."""

from seadeploy.export.steps import commit, new_manifest
from seadeploy.runfolder import MANIFEST_VERSION, ModelSpec, read_manifest, write_manifest


def _manifest(dynamic=True, seed=None):
    spec = ModelSpec("resnet20_cifar", attn="tse", attn_kwargs={"tile": (2, 2)})
    return new_manifest(spec, mean=(0.5, 0.5, 0.5), std=(0.25,) * 3, dataset="digits", opset=18,
                        dynamic_batch=dynamic, batch=4, seed=seed)


def test_new_manifest_records_io_exporter_and_seed(run_dir):
    m = _manifest(seed=3)
    write_manifest(run_dir, m)
    back = read_manifest(run_dir)
    assert back == m and back.format_version == MANIFEST_VERSION and back.seed == 3
    assert back.exporter == "torch.onnx.export(dynamo=True)"
    assert back.input == {"name": "x", "shape": ["batch", 3, 32, 32], "dtype": "float32"}
    assert back.output == {"name": "logits", "shape": ["batch", 10]}
    assert back.dynamic_axes["x"] == {"0": "batch"} and back.spec.attn_kwargs == {"tile": (2, 2)}
    assert "torch" in back.versions and back.checkpoint == "checkpoint.safetensors"


def test_static_batch_shapes():
    m = _manifest(dynamic=False)
    assert m.input["shape"][0] == 4 and m.dynamic_axes == {}


def test_commit_removes_the_export_files_it_did_not_write(tmp_path):
    """A re-export with fewer precisions leaves no file that its manifest does not vouch for."""
    out, stage = tmp_path / "run", tmp_path / "run" / ".export-stage"
    stage.mkdir(parents=True)
    for name in ("checkpoint.safetensors", "model.onnx", "model.fp16.onnx", "model.int8.onnx", "model.int8.engine",
                 "latency.csv"):
        (out / name).write_text("old")
    for name in ("model.onnx", "manifest.json"):
        (stage / name).write_text("new")
    commit(stage, out, ["model.onnx", "manifest.json"])
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == ["checkpoint.safetensors", "latency.csv",
                                                                    "manifest.json", "model.onnx"]
    assert (out / "model.onnx").read_text() == "new"
