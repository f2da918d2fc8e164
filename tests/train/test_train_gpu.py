"""CUDA path: AMP (autocast + GradScaler), CutMix, per-parameter clipping; the checkpoint reloads on CPU."""

from __future__ import annotations

import math

import pytest
import torch

from seadeploy.data import get_dataset
from seadeploy.data.augment import BatchTransform
from seadeploy.models.build import load_model
from seadeploy.runfolder import LAST_CHECKPOINT, TRAIN_STATE, Checkpoint
from seadeploy.train import evaluate, make_config, resume_config, train


@pytest.mark.gpu
def test_amp_training_on_cuda_and_resume(tmp_path):
    kw = {"model": "resnet20_cifar", "attn": "se", "epochs": 2, "limit_train": 512, "limit_test": 128, "batch_size": 64,
          "amp": True, "cutmix": 1.0, "label_smoothing": 0.1, "clip_grad": 3.0, "clip_mode": "param",
          "trivial_augment": True, "device": "cuda"}
    result = train(make_config(**kw, out=str(tmp_path / "run")))
    assert result and all(math.isfinite(r["train_loss"]) for r in result.history)
    state = torch.load(tmp_path / "run" / TRAIN_STATE, weights_only=True)
    assert state["scaler"], "the GradScaler state must be saved when AMP is on"
    ckpt = Checkpoint.load(tmp_path / "run" / LAST_CHECKPOINT)
    test = get_dataset("digits", split="test").subset(128)
    cpu = evaluate(load_model(ckpt), test, BatchTransform(32, ckpt.mean, ckpt.std))
    assert abs(cpu["top1"] - result.history[-1]["test_top1"]) <= 1.0  # fp16 autocast vs fp32 on CPU
    resumed = train(resume_config(tmp_path / "run", epochs=3, device="cuda"))
    assert resumed.start_epoch == 2 and len(resumed.history) == 3
