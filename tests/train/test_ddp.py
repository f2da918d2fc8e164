"""DistributedDataParallel: a real 2-process gloo run through torchrun matches a 1-process run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from seadeploy.models.build import load_model
from seadeploy.runfolder import CHECKPOINT, LAST_CHECKPOINT, METRICS_CSV, TRAIN_STATE, Checkpoint
from seadeploy.train import make_config, train

# Same global batch (32 = 2 × 16) and sample order in both runs; no random augmentation, so the runs
# differ only in BatchNorm statistics (per-rank half batches) and reduction order.
ARGS = {"model": "resnet20_cifar", "attn": "se", "epochs": 2, "batch_size": 32, "warmup_epochs": 0.25,
        "crop_padding": 0}


def _flags(cfg: dict) -> list[str]:
    return [x for k, v in cfg.items() for x in (f"--{k.replace('_', '-')}", str(v))]


@pytest.mark.slow
def test_two_process_gloo_matches_single_process(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CI": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "seadeploy.train", *_flags(ARGS), "--out", str(tmp_path / "ddp"), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = json.loads(proc.stdout)  # only rank 0 prints: exactly one JSON document
    assert ddp["passed"] and ddp["epochs"] == 2

    single = train(make_config(**ARGS, out=str(tmp_path / "one")))  # single-threaded (tests/train/conftest.py)
    assert abs(ddp["best_top1"] - single.best_top1) <= 1.0, (ddp["best_top1"], single.best_top1)
    assert ddp["best_top1"] >= 90.0
    # rank 0 alone wrote a complete run folder, with the global step count of a single process
    for name in (CHECKPOINT, LAST_CHECKPOINT, TRAIN_STATE, METRICS_CSV):
        assert (tmp_path / "ddp" / name).is_file()
    state = torch.load(tmp_path / "ddp" / TRAIN_STATE, weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2 and state["steps_per_epoch"] == 1437 // 32
    assert load_model(Checkpoint.load(tmp_path / "ddp")) is not None
    # the training loss is averaged over all samples of both ranks: close to the single run's
    assert abs(ddp["final"]["train_loss"] - single.history[-1]["train_loss"]) < 0.15
