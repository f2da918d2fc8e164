"""Fault suite, part 2: kill -9 during training, then resume; the sweep of dead runs' temp files.

The kills are placed deterministically (``tests/faults_helpers.killed_run``): the process SIGKILLs itself at
the Nth final rename of ``train_state.pt``, so it dies with its temp files on disk exactly as ``kill -9``
would leave them. The killed-export case shares the suite's export (tests/test_faults.py).
"""

from __future__ import annotations

import os
import signal

import pytest
import torch
from safetensors.torch import load_file

from seadeploy.fileio import sweep_stale
from tests.faults_helpers import killed_run, stage_main

TRAIN = ["--model", "resnet20_cifar", "--attn", "none", "--dataset", "digits", "--limit-train", "32",
         "--limit-test", "16", "--batch-size", "16", "--epochs", "2", "--threads", "1"]


@pytest.fixture(autouse=True, scope="module")
def _single_thread(single_thread):
    """One intra-op thread (tests/conftest.py)."""


@pytest.mark.slow  # trains three times in subprocesses; the fast representative of "resume after a kill gives the
# uninterrupted weights" is tests/train/test_train_loop.py (in-process); this one adds the real SIGKILL and the sweep
def test_kill_during_training_then_resume(tmp_path):
    """SIGKILL inside epoch 2's save (its checkpoints renamed, its state only a temp file): ``--resume`` continues
    from epoch 1, sweeps the dead temp file, and ends with exactly the weights of an uninterrupted run.

    (A kill inside the first epoch's save leaves the folder of the ``resume-after-kill-in-first-save`` and
    ``restart-after-kill-in-first-save`` cases of tests/test_faults.py: checkpoints, no state.)
    """
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    assert killed_run("train", "train_state", 2, [*TRAIN, "--out", str(killed)]) == -signal.SIGKILL
    assert list(killed.glob(".train_state.pt.*.tmp")), "the kill should leave the state's temp file behind"
    assert torch.load(killed / "train_state.pt", weights_only=True)["epoch"] == 1
    assert stage_main("train")(["--resume", str(killed)]) == 0
    assert not list(killed.glob(".*.tmp")), "resume must sweep the temp files of the killed run"
    assert stage_main("train")([*TRAIN, "--out", str(clean)]) == 0
    a, b = load_file(str(killed / "last.safetensors")), load_file(str(clean / "last.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sweep_keeps_live_runs_and_removes_dead_ones(tmp_path):
    """Only temp names whose process is gone (or that carry no process id) are removed."""
    dead = 2**22 + 12345  # above Linux's pid_max limit: never a live process
    (tmp_path / f".export-{dead}-abc").mkdir()
    (tmp_path / f".export-{dead}-abc" / "model.onnx").write_bytes(b"x")
    (tmp_path / ".export-legacy").mkdir()
    (tmp_path / f".model.onnx.{dead}-x1.tmp").write_bytes(b"")
    live = [tmp_path / f".export-{os.getpid()}-live", tmp_path / f".model.onnx.{os.getpid()}-x2.tmp"]
    live[0].mkdir()
    live[1].write_bytes(b"")
    (tmp_path / "model.onnx").write_bytes(b"keep")
    removed = sweep_stale(tmp_path, (".export-*", ".*.tmp"))
    assert sorted(p.name for p in removed) == sorted([f".export-{dead}-abc", ".export-legacy",
                                                       f".model.onnx.{dead}-x1.tmp"])
    assert all(p.exists() for p in live) and (tmp_path / "model.onnx").read_bytes() == b"keep"
