"""``python -m seadeploy.export`` end to end on resnet20_cifar (small sample counts to keep CPU time low)."""

import importlib.util
import json

import numpy as np
import pytest
import torch

from seadeploy.backends.ort import plain_session
from seadeploy.errors import ParityFailure
from seadeploy.export.__main__ import main
from seadeploy.export.runner import export_run
from seadeploy.export.steps import ExportOptions, load_source, source_checkpoint
from seadeploy.fileio import sha256
from seadeploy.models.build import load_model
from seadeploy.models.source import ModelSource
from seadeploy.parity import RuleSet
from seadeploy.runfolder import Checkpoint, ModelSpec, read_manifest

SMALL = ["--eval-samples", "24", "--calib-samples", "16"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    code = main(["--model", "resnet20_cifar", "--attn", "tse", "--attn-arg", "tile=2", "--precision",
                 "fp32,fp16,int8", "--out", str(out), *SMALL])
    assert code == 0
    return out


def test_flags_export_writes_files_and_manifest(run):
    names = sorted(p.name for p in run.iterdir())
    assert names == ["checkpoint.safetensors", "manifest.json", "model.fp16.onnx", "model.int8.onnx", "model.onnx"]
    m = read_manifest(run)
    assert m.spec.model == "resnet20_cifar" and m.spec.attn_kwargs == {"tile": 2} and m.seed == 0
    assert m.dataset == "digits" and len(m.mean) == 3 and m.opset == 18
    for precision in ("fp32", "fp16", "int8"):
        entry = m.files[precision]
        assert entry.sha256 == sha256(run / entry.path)
        rows = {r["inputs"]: r for r in entry.parity["comparisons"]}  # the rows validate writes, same rules
        assert entry.parity["passed"] and rows["data"]["n"] == 24 and rows["random"]["n"] == 4
        assert {"max_abs", "mean_abs", "top1", "cosine", "rule"} <= set(rows["data"])
    assert m.files["int8"].quantization["calib_samples"] == 16
    assert m.files["fp16"].policy["name"] == "attention-fp32"
    names = {c.name for c in m.checks}
    assert {"onnx.checker.full_check", "shape_inference.strict", "declared_vs_runtime_shapes", "parity.fp32.random",
            "parity.fp32.data", "parity.fp16.data", "parity.int8.data", "lint"} <= names
    assert m.files["fp32"].parity["comparisons"][0]["batches"] == [1, 3]  # not the export example batch (2)
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no staging leftovers


def test_run_folder_alone_rebuilds_the_reference(run):
    model = load_model(Checkpoint.load(run))
    x = np.random.default_rng(3).standard_normal((2, 3, 32, 32)).astype(np.float32)
    ort_out = plain_session(run / "model.onnx").run(None, {"x": x})[0]
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(ort_out), model(torch.from_numpy(x)), atol=1e-4, rtol=1e-3)


def test_reexport_run_dir_static_batch_simplified(run, tmp_path, capsys):
    out = tmp_path / "static"
    assert main([str(run), "--out", str(out), "--no-dynamic-batch", "--batch", "2", "--simplify", "--json", *SMALL]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["files"]["fp32"]["passed"] and summary["out"] == str(out)
    m = read_manifest(out)
    assert m.input["shape"] == [2, 3, 32, 32] and m.files["fp32"].simplified["tool"] == "onnxslim"
    assert (out / "checkpoint.safetensors").read_bytes() == (run / "checkpoint.safetensors").read_bytes()
    assert m.checkpoint_sha256 == read_manifest(run).checkpoint_sha256 and m.seed is None  # weights not from flags


def test_checkpoint_that_does_not_fit_is_exit_2(run, tmp_path, capsys):
    ckpt = Checkpoint.load(run)
    bad = Checkpoint(ModelSpec("resnet20_cifar", attn="se"), ckpt.state_dict, ckpt.mean, ckpt.std, "digits")
    bad.save(tmp_path / "bad.safetensors")
    out = tmp_path / "out"
    assert main(["--checkpoint", str(tmp_path / "bad.safetensors"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: checkpoint weights do not fit") and "\n" not in err
    assert not out.exists()


def test_unwritable_output_is_exit_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["--model", "resnet20_cifar", "--attn", "se", "--out", str(blocker / "run"), *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert "lies under the file" in err and "\n" not in err
    assert blocker.read_text() == "x"


# Single bad flag values (--precision fp8, --batch 0, --int8-activations u4, ...) are the fault suite's
# (tests/test_faults.py, every flag of every stage); here only the export's own combinations and names.
@pytest.mark.parametrize("argv", [["--model", "resnet20_cifar", "--checkpoint", "x"], ["--model", "nope"],
                                  ["--precision", "fp32,int8", "--int8-activations", "u8", "--engine"]])
def test_bad_usage_is_exit_2(tmp_path, argv, capsys):
    full = argv if "--model" in argv or "--checkpoint" in argv else ["--model", "resnet20_cifar", *argv]
    assert main([*full, "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert not (tmp_path / "o").exists()


def test_engine_without_tensorrt_is_exit_3(tmp_path, capsys):
    if importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available():
        pytest.skip("TensorRT and a GPU are present")
    assert main(["--model", "resnet20_cifar", "--engine", "--out", str(tmp_path / "o")]) == 3
    assert "pip install" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_parity_failure_writes_nothing(run, tmp_path):
    ckpt, src = load_source(run)
    opts = ExportOptions(eval_samples=8, rules=RuleSet(atol=0.0, rtol=0.0))  # demand bit equality
    out = tmp_path / "strict"
    with pytest.raises(ParityFailure, match="does not match PyTorch"):
        export_run(ckpt, out, opts, source_file=src)
    assert not out.exists()


def test_reexport_in_place_keeps_the_checkpoint(run):
    before = (run / "checkpoint.safetensors").stat().st_mtime_ns
    assert main([str(run), *SMALL, "--precision", "fp32,fp16,int8"]) == 0  # --out defaults to RUN_DIR
    assert (run / "checkpoint.safetensors").stat().st_mtime_ns == before
    assert sorted(read_manifest(run).files) == ["fp16", "fp32", "int8"]
    assert not [p for p in run.iterdir() if p.name.startswith(".")]


def test_models_from_flags_are_seeded():
    spec = ModelSpec("resnet20_cifar", attn="se")
    torch.manual_seed(123)  # the caller's RNG state must not matter, nor be consumed
    a = source_checkpoint(ModelSource.from_spec(spec), ExportOptions(seed=0))
    state = torch.random.get_rng_state()
    b = source_checkpoint(ModelSource.from_spec(spec), ExportOptions(seed=0))
    c = source_checkpoint(ModelSource.from_spec(spec), ExportOptions(seed=1))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert not torch.equal(a.state_dict["fc.weight"], c.state_dict["fc.weight"])
    assert a.extra["seed"] == 0 and c.extra["seed"] == 1
