"""``python -m seadeploy.train eval``: accuracy before/after SE→TSE, TSE→SE and the module swap, no retraining."""

from __future__ import annotations

import json

import pytest
import torch

from seadeploy.errors import ConfigError
from seadeploy.runfolder import CHECKPOINT, Checkpoint
from seadeploy.train import evaluate_run, make_config, train
from seadeploy.train.__main__ import main

LIMITS = {"limit_train": 256, "limit_test": 96, "batch_size": 32, "epochs": 2}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two small trained ResNet-20 runs on digits: SE in the VGG repos' form (BatchNorm1d in the MLP), TSE (tile 4)."""
    root = tmp_path_factory.mktemp("transfer")
    train(make_config(model="resnet20_cifar", attn="se", attn_kwargs={"bn": True}, out=str(root / "se"), **LIMITS))
    train(make_config(model="resnet20_cifar", attn="tse", attn_kwargs={"tile": 4}, out=str(root / "tse"), **LIMITS))
    return root


def test_plain_eval_reproduces_the_recorded_accuracy(runs, capsys):
    assert main(["eval", str(runs / "se"), "--limit", "96", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["before"]["top1"] == pytest.approx(Checkpoint.load(runs / "se").metrics["top1"])
    assert summary["after"] is None and summary["passed"] and summary["before"]["n"] == 96


def test_se_to_tse_with_a_covering_tile_is_exact_and_round_trips(runs, tmp_path):
    same = evaluate_run(runs / "se", convert="se-to-tse", attn_kwargs={"tile": 32}, limit=96)
    assert same.after["top1"] == same.before["top1"] and same.drop == 0
    assert same.after["loss"] == pytest.approx(same.before["loss"], abs=1e-5)
    tiled = evaluate_run(runs / "se", convert="se-to-tse", attn_kwargs={"tile": 2}, limit=96, save=tmp_path / "conv")
    assert tiled.spec_after["attn"] == "tse" and tiled.spec_after["attn_kwargs"]["tile"] == 2
    assert 0 <= tiled.after["top1"] <= 100 and tiled.before == same.before
    saved = Checkpoint.load(tmp_path / "conv" / CHECKPOINT)
    assert saved.spec.attn == "tse" and saved.extra["conversion"] == "se-to-tse"
    assert evaluate_run(tmp_path / "conv", limit=96).before["top1"] == pytest.approx(tiled.after["top1"])
    back = evaluate_run(tmp_path / "conv", convert="tse-to-se", limit=96, save=tmp_path / "back")
    assert back.after["top1"] == pytest.approx(same.before["top1"])
    original, restored = Checkpoint.load(runs / "se").state_dict, Checkpoint.load(tmp_path / "back").state_dict
    assert all(torch.equal(original[k], restored[k]) for k in original)


def test_swap_uses_the_donor_attention(runs, capsys):
    res = evaluate_run(runs / "tse", convert="swap", donor=runs / "se", limit=96)
    assert res.spec_before["attn"] == "tse" and res.spec_after["attn"] == "se" and res.donor == str(runs / "se")
    assert 0 <= res.after["top1"] <= 100 and res.to_frame().shape[0] == 2
    repo = evaluate_run(runs / "tse", convert="swap", donor=runs / "se", limit=96, donor_train_mode=True)
    assert repo.after["loss"] != res.after["loss"]  # train-mode BatchNorm in the donor modules changes the outputs
    assert main(["eval", str(runs / "tse"), "--convert", "swap", "--donor", str(runs / "se"), "--limit", "32"]) == 0
    text = capsys.readouterr().out
    assert "as trained" in text and "after swap" in text
    assert main(["eval", str(runs / "se"), "--convert", "tse-to-se", "--limit", "8", "--max-drop", "-1"]) == 2


@pytest.mark.parametrize(("argv", "match"), [
    (["--convert", "swap"], "needs --donor"),
    (["--convert", "se-to-tse", "--attn-arg", "ratio=2"], "takes no option 'ratio'"),
    (["--convert", "tse-to-se"], "attn='tse'"),
    (["--convert", "shuffle"], "invalid choice"),
])
def test_eval_errors_are_one_line_exit_2(runs, capsys, argv, match):
    assert main(["eval", str(runs / "se"), *argv, "--limit", "8"]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1


def test_max_drop_and_missing_run(runs, tmp_path):
    res = evaluate_run(runs / "se", convert="se-to-tse", attn_kwargs={"tile": 32}, limit=96, max_drop=0.0)
    assert res  # a covering tile loses nothing
    with pytest.raises(ConfigError, match="attn='tse'"):
        evaluate_run(runs / "tse", convert="se-to-tse", limit=8)
    assert main(["eval", str(tmp_path / "none")]) == 2
