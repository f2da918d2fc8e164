"""The fault suite: every stage given bad input as a hostile user would (docs/promises.md).

Each case runs in-process through the stage's ``main(argv)`` (``seadeploy.cli.run_main``) and must give the
documented exit code, exactly one stderr line starting with ``error:``, no traceback, and leave every file of
the case folder untouched (nothing created, changed or removed). Most cases are flag parsing and cost
milliseconds; the file cases share one exported and one trained run folder, copied per case.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from seadeploy.cli import run_main
from seadeploy.export.__main__ import main
from tests.faults_helpers import (
    assert_one_line_error,
    edit_json,
    killed_run,
    make_fifo,
    rewrite_checkpoint,
    run_stage,
    snapshot,
    stage_main,
)

# Small and fast: one thread, the smallest backbone, few samples.
TRAIN_FAST = ["--model", "resnet20_cifar", "--attn", "none", "--dataset", "digits", "--limit-train", "64",
              "--limit-test", "32", "--batch-size", "32", "--epochs", "1"]


@pytest.fixture(autouse=True, scope="module")
def _single_thread(single_thread):
    """One intra-op thread (tests/conftest.py)."""


EXPORT_ARGS = ["--model", "resnet20_cifar", "--attn", "se", "--precision", "fp32", "--dataset", "digits",
               "--eval-samples", "16", "--calib-samples", "8"]
STAGING_LEFT: dict[str, list[str]] = {}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """An exported run folder (resnet20_cifar + SE, random weights, fp32), made through the export CLI — after an
    export into the same folder was killed with its staging folder on disk (``test_killed_export_...``)."""
    out = tmp_path_factory.mktemp("faults") / "exported"
    assert killed_run("export", "staging", 1, [*EXPORT_ARGS, "--out", str(out)]) == -signal.SIGKILL
    STAGING_LEFT["killed"] = sorted(p.name for p in out.glob(".export-*"))
    (out / f".manifest.json.{2**22 + 7}-x1.tmp").write_bytes(b"")  # a killed atomic write (pid above pid_max)
    assert stage_main("export")([*EXPORT_ARGS, "--out", str(out)]) == 0
    STAGING_LEFT["after"] = sorted(p.name for p in out.glob(".export-*")) + sorted(p.name for p in out.glob(".*.tmp"))
    return out


def test_killed_export_leaves_nothing_after_the_next_export(exported):
    """An export killed before its commit leaves its ``.export-<pid>-*`` staging folder (with a half-written
    file), a killed atomic write its ``.<name>.<pid>-*.tmp``; the next export of that folder removes both and
    leaves no staging or temp file of its own."""
    assert STAGING_LEFT["killed"], "the killed export should have left its staging folder"
    assert STAGING_LEFT["after"] == []


def test_profiling_layers_leaves_no_system_temp_folders(exported, tmp_path, monkeypatch):
    """``profiling layers`` removes its ORT trace folders (``seadeploy-ort-*``) from the system temp dir."""
    run = tmp_path / "run"
    shutil.copytree(exported, run)
    sys_tmp = tmp_path / "systmp"
    sys_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(sys_tmp))
    code = stage_main("profiling")(["layers", str(run), "--runs", "1", "--warmup-runs", "0", "--threads", "1",
                                    "--duration-s", "0.05"])
    assert code == 0
    assert [p.name for p in sys_tmp.iterdir()] == []


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run folder after one short epoch of training (checkpoint, last, train_state.pt, metrics, curves)."""
    out = tmp_path_factory.mktemp("faults") / "trained"
    assert stage_main("train")([*TRAIN_FAST, "--out", str(out)]) == 0
    return out


# ------------------------------------------------------------------------------------------- the table
@dataclasses.dataclass
class Case:
    """One bad input: ``argv`` may use ``{run}`` (the case's copy of the base run) and ``{tmp}`` (the case folder)."""

    id: str
    stage: str
    argv: list[str]
    code: int = 2
    match: str | None = None
    base: str = "exported"  # "exported", "trained" or "none"
    setup: Callable[[Path, Path], None] | None = None
    warnings: int = 0  # "warning:" lines expected before the error line (a file changed since export)


BAD_POS_INT = ["0", "-1", "abc", "1.5"]
BAD_NONNEG_INT = ["-1", "abc", "2.5"]
BAD_POS_FLOAT = ["0", "-1", "nan", "inf", "abc"]
BAD_NONNEG_FLOAT = ["-1", "nan", "inf", "abc"]
BAD_FINITE = ["nan", "inf", "-inf", "abc"]
BAD_DEVICE = ["bogus", "cuda:x", "gpu0", ""]


def _flag_cases(stage: str, base: list[str], flags: dict[str, list[str]], prefix: str = "", base_run: str = "none"):
    for flag, values in flags.items():
        for v in values:
            yield Case(f"{stage}{prefix}{flag}={v or 'empty'}", stage, [*base, flag, v], base=base_run, match=None)


TRAIN_BASE = [*TRAIN_FAST, "--out", "{tmp}/new"]
TRAIN_FLAGS = {
    "--threads": BAD_POS_INT, "--epochs": BAD_POS_INT, "--batch-size": BAD_POS_INT,
    "--eval-batch-size": BAD_POS_INT, "--limit-train": BAD_POS_INT, "--limit-test": BAD_POS_INT,
    "--input-size": [*BAD_POS_INT, "100000"], "--num-classes": BAD_POS_INT, "--cycle-epochs": ["0", "-1", "abc"],
    "--lr": BAD_POS_FLOAT, "--weight-decay": BAD_NONNEG_FLOAT, "--label-smoothing": ["1", "-0.1", "nan"],
    "--cutmix": ["2", "-1", "nan"], "--random-erasing": ["1.5", "-1"], "--warmup-epochs": ["-1", "nan"],
    "--crop-padding": ["-1", "abc"], "--momentum": ["-1", "nan"], "--eps": ["0", "nan"], "--gamma": ["0", "nan"],
    "--min-lr": ["-1", "inf"], "--clip-grad": ["-1", "nan"], "--seed": ["-1", "abc"], "--device": BAD_DEVICE,
    "--optimizer": ["bogus"], "--scheduler": ["bogus"], "--normalize": ["bogus"], "--sched-step": ["bogus"],
    "--clip-mode": ["bogus"], "--recipe": ["bogus"], "--attn": ["bogus"], "--model": ["bogus"],
    "--dataset": ["bogus"], "--attn-arg": ["noequals", "=3"], "--rotation": ["nan"], "--target-acc": ["nan"],
}
EXPORT_BASE = ["{run}", "--precision", "fp32", "--eval-samples", "8", "--calib-samples", "8"]
EXPORT_FLAGS = {
    "--batch": BAD_POS_INT, "--max-batch": BAD_POS_INT, "--opset": BAD_POS_INT, "--calib-samples": BAD_POS_INT,
    "--eval-samples": BAD_NONNEG_INT, "--workspace-mb": BAD_POS_INT, "--precision": ["bogus", "fp64"],
    "--fp16-policy": ["bogus"], "--int8-target": ["bogus"], "--int8-activations": ["bogus"], "--device": BAD_DEVICE,
}
EXPORT_MODEL_BASE = ["--model", "resnet20_cifar", "--out", "{tmp}/new", "--precision", "fp32"]
EXPORT_MODEL_FLAGS = {"--input-size": [*BAD_POS_INT, "100000"], "--num-classes": BAD_POS_INT, "--attn": ["bogus"],
                      "--attn-arg": ["noequals"]}
VALIDATE_BASE = ["{run}", "--samples", "4", "--random", "2"]
VALIDATE_FLAGS = {
    "--batch": BAD_POS_INT, "--samples": BAD_NONNEG_INT, "--random": BAD_NONNEG_INT, "--threads": BAD_POS_INT,
    "--atol": BAD_FINITE, "--rtol": BAD_FINITE, "--seed": BAD_NONNEG_INT, "--device": BAD_DEVICE,
    "--backends": ["bogus", "ort:bogus"], "--precision": ["bogus"],
}
LATENCY_BASE = ["latency", "{run}", "--duration-s", "0.05", "--warmup-s", "0"]
LATENCY_FLAGS = {
    "--duration-s": BAD_POS_FLOAT, "--warmup-s": BAD_NONNEG_FLOAT, "--batch": ["0", "-1", "abc", "1,0"],
    "--threads": BAD_POS_INT, "--device": BAD_DEVICE, "--backends": ["bogus"], "--precision": ["bogus"],
}
LAYERS_BASE = ["layers", "{run}", "--runs", "1", "--warmup-runs", "0", "--duration-s", "0.05"]
LAYERS_FLAGS = {"--runs": BAD_POS_INT, "--warmup-runs": BAD_NONNEG_INT, "--duration-s": BAD_POS_FLOAT,
                "--batch": ["0", "-1", "abc"], "--threads": BAD_POS_INT}
MEMORY_FLAGS = {"--batch": BAD_POS_INT, "--input-size": BAD_POS_INT}
BUFFERS_FLAGS = {"--dtype-bytes": ["3", "0", "abc"], "--input-size": [*BAD_POS_INT, "100000"],
                 "--num-classes": BAD_POS_INT, "--model": ["bogus"]}
COMPARE_BASE = ["--out", "{tmp}/study", "--attn", "none", "--epochs", "1", "--limit-train", "32", "--limit-test", "16"]
COMPARE_FLAGS = {
    "--epochs": BAD_NONNEG_INT, "--train-batch-size": BAD_POS_INT, "--lr": BAD_POS_FLOAT,
    "--warmup-epochs": BAD_NONNEG_FLOAT, "--threads": BAD_POS_INT, "--duration-s": BAD_POS_FLOAT,
    "--parity-samples": BAD_POS_INT, "--calib-samples": BAD_POS_INT, "--limit-train": BAD_POS_INT,
    "--limit-test": BAD_POS_INT, "--device": BAD_DEVICE, "--batch": ["0", "abc", "-1"],
    "--attn": ["bogus", "se,se", ""], "--attn-arg": ["noequals", "bogus:tile=4"], "--backends": ["bogus"],
}


def flag_cases() -> list[Case]:
    return [
        *_flag_cases("train", TRAIN_BASE, TRAIN_FLAGS),
        *_flag_cases("export", EXPORT_BASE, EXPORT_FLAGS, base_run="exported"),
        *_flag_cases("export", EXPORT_MODEL_BASE, EXPORT_MODEL_FLAGS, prefix="-model"),
        *_flag_cases("validate", VALIDATE_BASE, VALIDATE_FLAGS, base_run="exported"),
        *_flag_cases("profiling", LATENCY_BASE, LATENCY_FLAGS, prefix="-latency", base_run="exported"),
        *_flag_cases("profiling", LAYERS_BASE, LAYERS_FLAGS, prefix="-layers", base_run="exported"),
        *_flag_cases("profiling", ["memory", "{run}"], MEMORY_FLAGS, prefix="-memory", base_run="exported"),
        *_flag_cases("profiling", ["buffers", "--model", "resnet20_cifar", "--out", "{tmp}/b"], BUFFERS_FLAGS,
                     prefix="-buffers"),
        *_flag_cases("compare", COMPARE_BASE, COMPARE_FLAGS),
    ]


# ------------------------------------------------------------------------------------- bad files
def _meta(change):
    return lambda run, tmp: rewrite_checkpoint(run / "checkpoint.safetensors", meta=change)


def _spec(key, value):
    return _meta(lambda m: {**m, "spec": {**m["spec"], key: value}})


def _write(name: str, data: bytes | str):
    def setup(run: Path, tmp: Path) -> None:
        p = run / name
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return setup


def _manifest_path(value):
    return lambda run, tmp: edit_json(run / "manifest.json", lambda m: {**m, "files": {**m["files"],
                                                                       "fp32": {**m["files"]["fp32"], "path": value}}})


def _outside_copy(run: Path, tmp: Path) -> None:
    (tmp / "outside").mkdir()
    shutil.copy(run / "model.onnx", tmp / "outside" / "model.onnx")
    _manifest_path("../outside/model.onnx")(run, tmp)


def _absolute_outside(run: Path, tmp: Path) -> None:
    (tmp / "outside").mkdir()
    shutil.copy(run / "model.onnx", tmp / "outside" / "model.onnx")
    _manifest_path(str((tmp / "outside" / "model.onnx").resolve()))(run, tmp)


def _symlink_outside(run: Path, tmp: Path) -> None:
    (tmp / "outside").mkdir()
    shutil.copy(run / "model.onnx", tmp / "outside" / "model.onnx")
    (run / "link.onnx").symlink_to(tmp / "outside" / "model.onnx")
    _manifest_path("link.onnx")(run, tmp)


def unrelated_graph(classes_out: bool = False) -> onnx.ModelProto:
    """An image-shaped graph that is not the run's model: x(N,3,32,32) → Conv 3→8 → y(N,8,32,32)."""
    w = numpy_helper.from_array(np.full((8, 3, 1, 1), 0.1, np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv")
    g = helper.make_graph([node], "other", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8, 32, 32])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 9
    return m


def _swap_graph(run: Path, tmp: Path) -> None:
    onnx.save(unrelated_graph(), str(run / "model.onnx"))


def _failing_graph(run: Path, tmp: Path) -> None:
    """Shaped like the run's model, (N,3,32,32) → (N,10), but its Conv expects 4 channels: ORT fails at run time
    (and would print its own error line first unless its log is silenced)."""
    w = numpy_helper.from_array(np.full((10, 4, 1, 1), 0.1, np.float32), "w")
    shape = numpy_helper.from_array(np.array([0, 10], np.int64), "shape")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("GlobalAveragePool", ["c"], ["p"]),
             helper.make_node("Reshape", ["p", "shape"], ["y"])]
    g = helper.make_graph(nodes, "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], [w, shape])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 9
    onnx.save(m, str(run / "model.onnx"))


def _int32_weights(state: dict) -> dict:
    key = next(k for k, v in state.items() if v.is_floating_point() and v.dim() == 4)
    return {**state, key: (state[key] * 100).to(torch.int32)}


def _nan_weights(state: dict) -> dict:
    key = next(k for k, v in state.items() if v.is_floating_point() and v.dim() == 4)
    bad = state[key].clone()
    bad.view(-1)[0] = float("nan")
    return {**state, key: bad}


def _npz(**arrays):
    def setup(run: Path, tmp: Path) -> None:
        np.savez(tmp / "inputs.npz", **arrays)
    return setup


X4 = np.zeros((4, 3, 32, 32), np.float32)


class Crafted:
    """Not a tensor: a pickled instance of a test class, which ``weights_only=True`` must refuse."""

    def __reduce__(self):
        return (print, ("this must never run",))


def _state(change):
    def setup(run: Path, tmp: Path) -> None:
        state = torch.load(run / "train_state.pt", weights_only=True)
        torch.save(change(state), run / "train_state.pt")
    return setup


def _file_under_file(tmp: Path) -> None:
    (tmp / "afile").write_text("x")


def file_cases() -> list[Case]:
    ckpt = "checkpoint.safetensors"
    return [
        # checkpoint metadata of the wrong types, and broken checkpoint files (export reads the run's checkpoint)
        Case("export-spec-string", "export", EXPORT_BASE, match="metadata", setup=_meta(lambda m: {**m, "spec": "x"})),
        Case("export-input-size-abc", "export", EXPORT_BASE, match="input_size", setup=_spec("input_size", "abc")),
        Case("export-num-classes-0", "export", EXPORT_BASE, match="num_classes", setup=_spec("num_classes", 0)),
        Case("export-attn-kwargs-list", "export", EXPORT_BASE, match="attn_kwargs", setup=_spec("attn_kwargs", [1])),
        Case("export-spec-missing-model", "export", EXPORT_BASE, match="metadata",
             setup=_meta(lambda m: {**m, "spec": {k: v for k, v in m["spec"].items() if k != "model"}})),
        Case("export-mean-abc", "export", EXPORT_BASE, match="mean", setup=_meta(lambda m: {**m, "mean": "abc"})),
        Case("export-mean-nan", "export", EXPORT_BASE, match="mean",
             setup=_meta(lambda m: {**m, "mean": [float("nan"), 0.5, 0.5]})),
        Case("export-mean-short", "export", EXPORT_BASE, match="mean", setup=_meta(lambda m: {**m, "mean": [0.5]})),
        Case("export-std-zero", "export", EXPORT_BASE, match="std", setup=_meta(lambda m: {**m, "std": [0, 0, 0]})),
        Case("export-metrics-list", "export", EXPORT_BASE, match="metrics", setup=_meta(lambda m: {**m, "metrics": []})),
        Case("export-meta-not-json", "export", EXPORT_BASE, match="metadata",
             setup=lambda run, tmp: rewrite_checkpoint(run / ckpt, raw_meta="{not json")),
        Case("export-meta-list", "export", EXPORT_BASE, match="metadata",
             setup=lambda run, tmp: rewrite_checkpoint(run / ckpt, raw_meta="[1, 2]")),
        Case("export-ckpt-empty", "export", EXPORT_BASE, match="corrupt", setup=_write(ckpt, b"")),
        Case("export-ckpt-garbage", "export", EXPORT_BASE, match="corrupt", setup=_write(ckpt, os.urandom(300))),
        Case("export-ckpt-int32", "export", EXPORT_BASE, match="refused rather than cast",
             setup=lambda run, tmp: rewrite_checkpoint(run / ckpt, tensors=_int32_weights)),
        Case("export-ckpt-nan", "export", EXPORT_BASE, match="NaN/Inf in tensor",
             setup=lambda run, tmp: rewrite_checkpoint(run / ckpt, tensors=_nan_weights)),
        Case("validate-ckpt-nan", "validate", VALIDATE_BASE, match="NaN/Inf in tensor",
             setup=lambda run, tmp: rewrite_checkpoint(run / ckpt, tensors=_nan_weights)),
        Case("validate-ckpt-int32", "validate", VALIDATE_BASE, match="refused rather than cast",
             setup=lambda run, tmp: rewrite_checkpoint(run / ckpt, tensors=_int32_weights)),
        Case("export-out-under-file", "export", [*EXPORT_BASE, "--out", "{tmp}/afile/sub"], match="--out",
             setup=lambda run, tmp: _file_under_file(tmp)),
        Case("export-no-source", "export", ["--precision", "fp32"], base="none"),
        Case("export-missing-run", "export", ["{tmp}/nothere", "--out", "{tmp}/o"], base="none"),
        Case("export-checkpoint-missing", "export", ["--checkpoint", "{tmp}/x.safetensors", "--out", "{tmp}/o"],
             base="none"),
        # lint
        Case("lint-missing", "export", ["lint", "{tmp}/nothere.onnx"], base="none", match="does not exist"),
        Case("lint-dir", "export", ["lint", "{run}"], match="is a folder"),
        Case("lint-fifo", "export", ["lint", "{tmp}/pipe"], base="none", match="not a regular file",
             setup=lambda run, tmp: make_fifo(tmp / "pipe")),
        Case("lint-empty", "export", ["lint", "{run}/model.onnx"], setup=_write("model.onnx", b"")),
        Case("lint-garbage", "export", ["lint", "{run}/model.onnx"], setup=_write("model.onnx", os.urandom(200))),
        # validate: outputs checked before anything is written; inputs checked before use
        Case("validate-junit-under-file", "validate", [*VALIDATE_BASE, "--junit", "{tmp}/afile/j.xml"],
             match="--junit", setup=lambda run, tmp: _file_under_file(tmp)),
        Case("validate-junit-is-dir", "validate", [*VALIDATE_BASE, "--junit", "{run}"], match="--junit"),
        Case("validate-out-under-file", "validate", [*VALIDATE_BASE, "--out", "{tmp}/afile/o"], match="--out",
             setup=lambda run, tmp: _file_under_file(tmp)),
        Case("validate-missing-run", "validate", ["{tmp}/nothere"], base="none"),
        Case("validate-nothing-to-compare", "validate", ["{run}", "--samples", "0", "--random", "0"]),
        Case("validate-inputs-missing", "validate", [*VALIDATE_BASE, "--inputs", "{tmp}/none.npz"]),
        Case("validate-inputs-garbage", "validate", [*VALIDATE_BASE, "--inputs", "{tmp}/inputs.npz"],
             setup=lambda run, tmp: (tmp / "inputs.npz").write_bytes(os.urandom(100))),
        Case("validate-inputs-0-samples", "validate", [*VALIDATE_BASE, "--inputs", "{tmp}/inputs.npz"],
             match="N ≥ 1", setup=_npz(x=np.zeros((0, 3, 32, 32), np.float32))),
        Case("validate-inputs-nan", "validate", [*VALIDATE_BASE, "--inputs", "{tmp}/inputs.npz"], match="NaN",
             setup=_npz(x=np.full((2, 3, 32, 32), np.nan, np.float32))),
        Case("validate-inputs-int", "validate", [*VALIDATE_BASE, "--inputs", "{tmp}/inputs.npz"],
             setup=_npz(x=np.zeros((2, 3, 32, 32), np.int64))),
        Case("validate-labels-999", "validate", [*VALIDATE_BASE, "--inputs", "{tmp}/inputs.npz"], match="labels",
             setup=_npz(x=X4, y=np.array([0, 1, 2, 999]))),
        Case("validate-labels-neg", "validate", [*VALIDATE_BASE, "--inputs", "{tmp}/inputs.npz"], match="labels",
             setup=_npz(x=X4, y=np.array([0, 1, 2, -1]))),
        Case("validate-labels-float", "validate", [*VALIDATE_BASE, "--inputs", "{tmp}/inputs.npz"], match="labels",
             setup=_npz(x=X4, y=np.array([0, 1, 2, 0.5]))),
        Case("validate-labels-count", "validate", [*VALIDATE_BASE, "--inputs", "{tmp}/inputs.npz"], match="labels",
             setup=_npz(x=X4, y=np.array([0, 1]))),
        Case("validate-unrelated-graph", "validate", VALIDATE_BASE, match="belongs to another model",
             setup=_swap_graph),
        # profiling: nothing read outside the run folder, the graph must belong to the run
        Case("latency-manifest-abs", "profiling", LATENCY_BASE, match="absolute", setup=_absolute_outside),
        Case("latency-manifest-etc-passwd", "profiling", LATENCY_BASE, match="absolute",
             setup=_manifest_path("/etc/passwd")),
        Case("latency-manifest-dotdot", "profiling", LATENCY_BASE, match="leaves the run folder",
             setup=_outside_copy),
        Case("latency-manifest-symlink-out", "profiling", LATENCY_BASE, match="leaves the run folder",
             setup=_symlink_outside),
        Case("latency-manifest-path-int", "profiling", LATENCY_BASE, match="manifest", setup=_manifest_path(5)),
        Case("latency-manifest-files-str", "profiling", LATENCY_BASE, match="manifest",
             setup=lambda run, tmp: edit_json(run / "manifest.json", lambda m: {**m, "files": "abc"})),
        Case("latency-manifest-not-json", "profiling", LATENCY_BASE, match="manifest",
             setup=_write("manifest.json", "{not json")),
        Case("validate-manifest-list", "validate", VALIDATE_BASE, match="manifest", setup=_write("manifest.json", "[]")),
        Case("layers-manifest-dotdot", "profiling", LAYERS_BASE, match="leaves the run folder", setup=_outside_copy),
        Case("layers-manifest-abs", "profiling", LAYERS_BASE, match="absolute", setup=_absolute_outside),
        Case("latency-unrelated-graph", "profiling", LATENCY_BASE, match="belongs to another model",
             setup=_swap_graph),
        Case("layers-unrelated-graph", "profiling", LAYERS_BASE, match="belongs to another model", setup=_swap_graph),
        Case("latency-onnx-empty", "profiling", LATENCY_BASE, setup=_write("model.onnx", b"")),
        Case("latency-ort-fails-at-run", "profiling", LATENCY_BASE, match="onnxruntime", setup=_failing_graph,
             warnings=1),
        Case("validate-ort-fails-at-run", "validate", VALIDATE_BASE, match="onnxruntime", setup=_failing_graph),
        Case("latency-missing-run", "profiling", ["latency", "{tmp}/nothere"], base="none"),
        Case("memory-onnx-empty", "profiling", ["memory", "--onnx", "{tmp}/e.onnx"], base="none",
             setup=lambda run, tmp: (tmp / "e.onnx").write_bytes(b"")),
        Case("memory-onnx-garbage", "profiling", ["memory", "--onnx", "{tmp}/e.onnx"], base="none",
             setup=lambda run, tmp: (tmp / "e.onnx").write_bytes(os.urandom(100))),
        Case("memory-onnx-missing", "profiling", ["memory", "--onnx", "{tmp}/e.onnx"], base="none"),
        Case("memory-onnx-dir", "profiling", ["memory", "--onnx", "{tmp}"], base="none"),
        Case("buffers-onnx-empty", "profiling", ["buffers", "--onnx", "{tmp}/e.onnx"], base="none",
             setup=lambda run, tmp: (tmp / "e.onnx").write_bytes(b"")),
        Case("buffers-onnx-garbage", "profiling", ["buffers", "--onnx", "{tmp}/e.onnx"], base="none",
             setup=lambda run, tmp: (tmp / "e.onnx").write_bytes(os.urandom(100))),
        # reports: malformed inputs → one line
        Case("reports-missing", "reports", ["{tmp}/nothere"], base="none"),
        Case("reports-parity-json-garbage", "reports", ["{run}"], match="parity.json",
             setup=_write("parity.json", "{not json")),
        Case("reports-parity-json-list", "reports", ["{run}"], match="parity.json", setup=_write("parity.json", "[1]")),
        Case("reports-parity-json-types", "reports", ["{run}"], match="parity.json",
             setup=_write("parity.json", '{"comparisons": 5, "reference": "x"}')),
        Case("reports-latency-csv-garbage", "reports", ["{run}"], match="latency.csv",
             setup=_write("latency.csv", b"\x00\xff\x10garbage\n\x01,\x02\n")),
        Case("reports-latency-csv-columns", "reports", ["{run}"], match="latency.csv",
             setup=_write("latency.csv", "a,b\n1,2\n")),
        Case("reports-several-no-out", "reports", ["{run}", "{run}"]),
        # train: resume states with missing/mistyped fields, a crafted file, the recovery loop
        Case("train-out-under-file", "train", [*TRAIN_FAST, "--out", "{tmp}/afile/sub"], base="none", match="--out",
             setup=lambda run, tmp: _file_under_file(tmp)),
        Case("train-existing-run", "train", [*TRAIN_FAST, "--out", "{run}"], base="trained", match="--resume"),
        Case("resume-missing-folder", "train", ["--resume", "{tmp}/nothere"], base="none"),
        Case("resume-no-config", "train", ["--resume", "{run}"], base="trained", match="config",
             setup=_state(lambda s: {k: v for k, v in s.items() if k != "config"})),
        Case("resume-no-steps", "train", ["--resume", "{run}"], base="trained", match="steps_per_epoch",
             setup=_state(lambda s: {k: v for k, v in s.items() if k != "steps_per_epoch"})),
        Case("resume-steps-str", "train", ["--resume", "{run}"], base="trained", match="steps_per_epoch",
             setup=_state(lambda s: {**s, "steps_per_epoch": "2"})),
        Case("resume-epochs-abc", "train", ["--resume", "{run}"], base="trained", match="epochs",
             setup=_state(lambda s: {**s, "config": {**s["config"], "epochs": "abc"}})),
        Case("resume-config-model-missing", "train", ["--resume", "{run}"], base="trained", match="model",
             setup=_state(lambda s: {**s, "config": {k: v for k, v in s["config"].items() if k != "model"}})),
        Case("resume-config-list", "train", ["--resume", "{run}"], base="trained", match="config",
             setup=_state(lambda s: {**s, "config": [1, 2]})),
        Case("resume-history-str", "train", ["--resume", "{run}"], base="trained", match="history",
             setup=_state(lambda s: {**s, "history": "x"})),
        Case("resume-version", "train", ["--resume", "{run}"], base="trained", match="format version",
             setup=_state(lambda s: {**s, "format_version": 99})),
        Case("resume-empty-state", "train", ["--resume", "{run}"], base="trained", match="corrupt",
             setup=_write("train_state.pt", b"")),
        Case("resume-garbage-state", "train", ["--resume", "{run}"], base="trained", match="not a readable tensor file",
             setup=_write("train_state.pt", b"garbage")),
        Case("resume-crafted-pickle", "train", ["--resume", "{run}"], base="trained",
             match="refused: it contains non-tensor objects",
             setup=lambda run, tmp: torch.save({"format_version": 1, "x": Crafted()}, run / "train_state.pt")),
        Case("resume-after-kill-in-first-save", "train", ["--resume", "{run}"], base="trained", match="--overwrite",
             setup=lambda run, tmp: (run / "train_state.pt").unlink()),
        Case("restart-after-kill-in-first-save", "train", [*TRAIN_FAST, "--out", "{run}"], base="trained",
             match="--overwrite", setup=lambda run, tmp: (run / "train_state.pt").unlink()),
        Case("resume-change-model", "train", ["--resume", "{run}", "--model", "vgg16_cifar"], base="trained",
             match="cannot change"),
        Case("eval-missing", "train", ["eval", "{tmp}/nothere"], base="none"),
        Case("eval-limit-0", "train", ["eval", "{run}", "--limit", "0"], base="trained"),
        # compare: checked up front, so no status line precedes the error
        Case("compare-out-under-file", "compare", [*COMPARE_BASE, "--out", "{tmp}/afile/s"], base="none", match="--out",
             setup=lambda run, tmp: _file_under_file(tmp)),
        Case("compare-skip-train-missing", "compare", [*COMPARE_BASE, "--skip-train"], base="none"),
        Case("models-stats-bogus", "models", ["stats", "--model", "bogus"], base="none"),
    ]


ALL_CASES = flag_cases() + file_cases()


def _prepare(case: Case, tmp: Path, request) -> Path:
    run = tmp / "run"
    if case.base != "none":
        shutil.copytree(request.getfixturevalue(case.base), run)
    if case.setup is not None:
        case.setup(run, tmp)
    return run


def _argv(case: Case, run: Path, tmp: Path) -> list[str]:
    return [a.replace("{run}", str(run)).replace("{tmp}", str(tmp)) for a in case.argv]


@pytest.mark.parametrize("case", ALL_CASES, ids=[c.id for c in ALL_CASES])
def test_bad_input(case: Case, tmp_path: Path, request, capfd, monkeypatch):
    """Exit code, one ``error:`` line, no traceback, and no file of the case folder created or changed."""
    monkeypatch.chdir(tmp_path)
    run = _prepare(case, tmp_path, request)
    before = snapshot(tmp_path)
    outcome = run_stage(case.stage, _argv(case, run, tmp_path), capfd)
    assert_one_line_error(outcome, case.code, case.match, case.warnings)
    assert snapshot(tmp_path) == before, "a refused input must not create, change or remove any file"


# ---------------------------------------------------------------------------------- disk full and memory
def _enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


RESOURCE_CASES = {
    "train": ("train", [*TRAIN_FAST, "--out", "{tmp}/new"], "none"),
    "resume": ("train", ["--resume", "{run}", "--epochs", "2"], "trained"),
    "export": ("export", ["--model", "resnet20_cifar", "--out", "{tmp}/new"], "none"),
    "validate": ("validate", [*VALIDATE_BASE, "--dataset", "none"], "exported"),
    "latency": ("profiling", LATENCY_BASE, "exported"),
    "layers": ("profiling", LAYERS_BASE, "exported"),
    "buffers": ("profiling", ["buffers", "{run}"], "exported"),
    "reports": ("reports", ["{run}"], "exported"),
}


@pytest.mark.parametrize(("stage", "argv", "base"), RESOURCE_CASES.values(), ids=RESOURCE_CASES.keys())
def test_disk_full(stage, argv, base, tmp_path, request, capfd, monkeypatch):
    """ENOSPC at the final rename (every run file goes through atomic_path/commit): one line, exit 2, no file
    changed and no temp file left behind."""
    case = Case("disk-full", stage, argv, base=base)
    run = _prepare(case, tmp_path, request)
    before = snapshot(tmp_path)
    # export stages into a new folder first (so it fails there, before minutes of work); the rest at the rename
    monkeypatch.setattr(*(tempfile, "mkdtemp") if stage == "export" else (os, "replace"), _enospc)
    outcome = run_stage(stage, _argv(case, run, tmp_path), capfd)
    monkeypatch.undo()
    assert_one_line_error(outcome, 2, "no space left on device")
    assert snapshot(tmp_path) == before


def test_unwritable_folder(tmp_path, request, capfd, monkeypatch):
    """A folder where no temp file can be created (chmod does not stop root, so mkstemp is made to fail)."""
    def denied(*_a, **_k):
        raise PermissionError(errno.EACCES, "Permission denied")

    case = Case("unwritable", "profiling", ["buffers", "{run}"])
    run = _prepare(case, tmp_path, request)
    before = snapshot(tmp_path)
    monkeypatch.setattr(tempfile, "mkstemp", denied)
    outcome = run_stage("profiling", _argv(case, run, tmp_path), capfd)
    monkeypatch.undo()
    assert_one_line_error(outcome, 2, "cannot write")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("exc", [
    RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried "
                 "to allocate 120000000000 bytes. Error code 12 (Cannot allocate memory)"),
    RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 15.90 GiB total capacity)"),
    MemoryError("Unable to allocate 72.8 TiB for an array with shape (10000000000000,) and data type float64"),
], ids=["cpu-allocator", "cuda", "numpy"])
def test_out_of_memory_is_one_line(exc, capfd):
    """run_main's safety net: the size asked for appears in the one line, exit 2."""
    def work(_argv):
        raise exc

    code = run_main(work, [])
    err = capfd.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: out of memory"), err
    assert "requested" in err


def test_other_errors_still_raise():
    """The safety net handles resources only: a programming error keeps its traceback."""
    def work(_argv):
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        run_main(work, [])


def test_input_size_refused_before_allocation(capfd):
    """--input-size 100000 names the bound (16x the model's default) instead of trying a 120 GB allocation."""
    code = main(["--model", "resnet20_cifar", "--input-size", "100000", "--out", "/nonexistent/x"])
    err = capfd.readouterr().err
    assert code == 2 and "at most 512" in err, err
