"""The training loop on real digits: run folder, checkpoints, metrics, determinism, resume, CLI output."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from seadeploy.data import get_dataset
from seadeploy.data.augment import BatchTransform
from seadeploy.errors import ConfigError, InputError
from seadeploy.models.build import load_model
from seadeploy.models.source import ModelSource
from seadeploy.runfolder import CHECKPOINT, CURVES_PNG, LAST_CHECKPOINT, METRICS_CSV, TRAIN_STATE, Checkpoint
from seadeploy.train import evaluate, make_config, resume_config, train
from seadeploy.train.__main__ import main
from seadeploy.train.loop import _Trainer
from seadeploy.train.setup import classifier_head_misfits

# Small but real: ResNet-20 on 128 digits, 4 steps of 32 per epoch; CutMix and rotation exercise the RNG.
SMALL = {"model": "resnet20_cifar", "attn": "se", "limit_train": 128, "limit_test": 96, "batch_size": 32}


def test_run_folder_files_and_checkpoint_round_trip(tmp_path):
    out = tmp_path / "run"
    result = train(make_config(**SMALL, epochs=2, out=str(out)))
    assert result and len(result.history) == 2 and result.spec["attn"] == "se"
    for name in (CHECKPOINT, LAST_CHECKPOINT, TRAIN_STATE, METRICS_CSV, CURVES_PNG):
        assert (out / name).is_file(), name
    assert not list(out.glob(".*.tmp")), "no temporary files may remain"
    frame = pd.read_csv(out / METRICS_CSV)
    assert list(frame.columns) == ["epoch", "lr", "train_loss", "train_top1", "test_loss", "test_top1", "test_top5",
                                   "epoch_time_s"]
    assert frame.epoch.tolist() == [1, 2] and frame.test_top5.notna().all()
    pd.testing.assert_frame_equal(frame.drop(columns="epoch_time_s"), result.to_frame().drop(columns="epoch_time_s"),
                                  check_exact=False, rtol=1e-5)
    best, last = Checkpoint.load(out), Checkpoint.load(out / LAST_CHECKPOINT)
    assert best.metrics["epoch"] == result.best_epoch and last.metrics["epoch"] == 2
    assert best.dataset == "digits" and best.spec.model == "resnet20_cifar" and best.extra["recipe"] == "digits"
    info = get_dataset("digits").info
    assert best.mean == info.mean and best.std == info.std
    # the saved weights reproduce the recorded accuracy exactly
    test = get_dataset("digits", split="test").subset(96)
    again = evaluate(load_model(last), test, BatchTransform(32, last.mean, last.std))
    assert again["top1"] == pytest.approx(result.history[-1]["test_top1"])
    assert again["n"] == 96 and 0 <= again["top1"] <= 100
    state = torch.load(out / TRAIN_STATE, weights_only=True)
    assert state["epoch"] == 2 and set(state) >= {"model", "optimizer", "scheduler", "scaler", "rng", "history"}

    with Image.open(out / CURVES_PNG) as im:
        assert im.format == "PNG" and im.size[0] > 500


def test_same_seed_same_weights_and_other_seed_differs(tmp_path):
    kw = {**SMALL, "epochs": 1, "limit_train": 64, "cutmix": 0.5, "rotation": 10.0}
    a = train(make_config(**kw, out=str(tmp_path / "a")))
    b = train(make_config(**kw, out=str(tmp_path / "b")))
    c = train(make_config(**kw, seed=1, out=str(tmp_path / "c")))
    wa, wb, wc = (Checkpoint.load(tmp_path / n / LAST_CHECKPOINT).state_dict for n in "abc")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
    assert a.history[0]["train_loss"] == b.history[0]["train_loss"] != c.history[0]["train_loss"]


def test_resume_after_kill_mid_epoch_gives_identical_weights(tmp_path, monkeypatch):
    kw = {**SMALL, "epochs": 4, "cutmix": 0.5, "rotation": 10.0}
    full = train(make_config(**kw, out=str(tmp_path / "full")))

    step, calls = _Trainer._step, {"n": 0}

    def killed_in_epoch_3(self, x, y):  # dies at the 2nd step of epoch 3, after epochs 1-2 completed
        calls["n"] += 1
        if calls["n"] == 2 * self.data.steps_per_epoch + 2:
            raise KeyboardInterrupt
        return step(self, x, y)

    monkeypatch.setattr(_Trainer, "_step", killed_in_epoch_3)
    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        train(make_config(**kw, out=str(part)))
    monkeypatch.setattr(_Trainer, "_step", step)
    assert torch.load(part / TRAIN_STATE, weights_only=True)["epoch"] == 2
    assert pd.read_csv(part / METRICS_CSV).epoch.tolist() == [1, 2] and not list(part.glob(".*.tmp"))

    assert main(["--resume", str(part), "--json"]) == 0
    a = Checkpoint.load(tmp_path / "full" / LAST_CHECKPOINT).state_dict
    b = Checkpoint.load(part / LAST_CHECKPOINT).state_dict
    mismatched = [k for k in a if not torch.equal(a[k], b[k])]
    assert not mismatched, f"resumed weights differ: {mismatched[:3]}"
    resumed = pd.read_csv(part / METRICS_CSV)
    pd.testing.assert_frame_equal(resumed.drop(columns="epoch_time_s"), full.to_frame().drop(columns="epoch_time_s"),
                                  check_exact=False, rtol=1e-5)  # metrics.csv keeps 6 significant digits
    assert Checkpoint.load(part).metrics["epoch"] == full.best_epoch


def test_resume_rules(tmp_path, capsys):
    out, kw = tmp_path / "run", {**SMALL, "epochs": 1, "limit_train": 32}
    train(make_config(**kw, out=str(out)))
    with pytest.raises(ConfigError, match="already holds a training run"):
        train(make_config(**kw, out=str(out)))
    with pytest.raises(ConfigError, match="--lr cannot change"):
        resume_config(out, lr=0.5)
    cfg = resume_config(out, epochs=2)
    assert (cfg.epochs, cfg.resume, cfg.limit_train) == (2, str(out), 32)
    assert train(cfg).start_epoch == 1
    (out / TRAIN_STATE).write_bytes(b"garbage")
    assert main(["--resume", str(out)]) == 2
    assert "corrupt" in capsys.readouterr().err
    with pytest.raises(InputError, match="does not exist"):
        resume_config(tmp_path / "nothing")


def test_cli_json_is_quiet_and_target_acc_fails(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    args = ["--model", "resnet20_cifar", "--attn", "tse", "--attn-arg", "tile=4", "--limit-train", "64",
            "--limit-test", "32", "--epochs", "1"]
    assert main([*args, "--out", str(tmp_path / "a"), "--json"]) == 0
    cap = capsys.readouterr()
    summary = json.loads(cap.out)
    assert cap.err == "" and summary["passed"] is True and summary["attn_kwargs"] == {"tile": 4}
    assert summary["epochs"] == 1 and summary["final"]["test_top1"] == summary["best_top1"]
    assert Checkpoint.load(tmp_path / "a").spec.attn_kwargs == {"tile": 4}
    assert main([*args, "--out", str(tmp_path / "b"), "--target-acc", "100.5"]) == 1
    out = capsys.readouterr().out
    assert "epoch   1/1" in out and "FAILED" in out


def test_head_misfits_are_only_a_classifier_sized_for_other_classes():
    own = {"conv.weight": torch.zeros(8, 3, 3, 3), "fc.weight": torch.zeros(10, 16), "fc.bias": torch.zeros(10)}
    imagenet = {**own, "fc.weight": torch.zeros(1000, 16), "fc.bias": torch.zeros(1000)}
    assert classifier_head_misfits(own, imagenet, 10) == ["fc.weight", "fc.bias"]
    assert classifier_head_misfits(own, own, 10) == []  # nothing to re-initialise
    assert classifier_head_misfits(own, {**imagenet, "conv.weight": torch.zeros(8, 3, 5, 5)}, 10) == []  # a body misfit
    assert classifier_head_misfits(own, {**imagenet, "fc.weight": torch.zeros(1000, 32)}, 10) == []  # other features
    assert classifier_head_misfits(own, {**imagenet, "fc.bias": torch.zeros(100)}, 10) == []  # two class counts
    assert classifier_head_misfits(own, {k: v for k, v in imagenet.items() if k != "fc.bias"}, 10) == []  # missing


def test_fine_tuning_weights_with_another_head_reinitialises_it(tmp_path, capsys):
    """--weights trained for 12 classes fine-tune a 10-class digits model: the body loads, the head starts fresh
    with a note; a body tensor that does not fit is still the one-line error (exit 2)."""
    src = f"{Path(__file__).parents[1] / 'fixtures' / 'user_model.py'}:build"
    donor = ModelSource(src, model_kwargs={"width": 8, "num_classes": 12}).build().state_dict()
    save_file({k: v.contiguous() for k, v in donor.items()}, str(tmp_path / "w12.safetensors"))
    args = ["--model", src, "--model-arg", "width=8", "--input-size", "32", "--dataset", "digits", "--epochs", "1",
            "--limit-train", "64", "--limit-test", "32", "--batch-size", "32", "--json"]
    assert main([*args, "--weights", str(tmp_path / "w12.safetensors"), "--out", str(tmp_path / "ok")]) == 0
    err = capsys.readouterr().err
    assert "12-class head; head.2.weight, head.2.bias start from fresh initialisation for 10 classes" in err
    state = Checkpoint.load(tmp_path / "ok").state_dict
    assert state["head.2.weight"].shape == (10, 16)
    donor["recal.0.conv.0.weight"] = torch.zeros(8, 3, 5, 5)
    save_file({k: v.contiguous() for k, v in donor.items()}, str(tmp_path / "bad.safetensors"))
    assert main([*args, "--weights", str(tmp_path / "bad.safetensors"), "--out", str(tmp_path / "bad")]) == 2
    assert "recal.0.conv.0.weight" in capsys.readouterr().err and not (tmp_path / "bad").exists()
