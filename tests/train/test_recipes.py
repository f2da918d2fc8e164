"""Recipes (docs/models.md §4), flag-by-flag overrides, LR schedules, gradient clipping, CLI errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from seadeploy.errors import ConfigError
from seadeploy.train import make_config
from seadeploy.train.__main__ import main
from seadeploy.train.optim import build_optimizer, build_scheduler, clip_gradients, lr_factor_fn, param_groups
from seadeploy.train.recipes import RECIPES, list_recipes


def test_published_recipes_match_models_md():
    assert set(list_recipes()) == {"digits", "tse-vgg-cifar", "sb-vgg-cifar", "seresnet-cifar", "sse-imagenet",
                                   "rgse-imagenet"}
    for name in ("tse-vgg-cifar", "sb-vgg-cifar"):
        c = make_config(name)
        assert (c.optimizer, c.lr, c.momentum, c.nesterov, c.weight_decay) == ("sgd", 0.1, 0.9, True, 9e-6)
        assert (c.batch_size, c.epochs, c.milestones, c.gamma, c.sched_step) == (64, 80, [40, 60, 80], 0.2, "epoch")
        assert (c.crop_padding, c.hflip, c.rotation, c.normalize, c.dataset) == (4, True, 15.0, "half", "cifar10")
    assert make_config("tse-vgg-cifar").attn_kwargs == {"tile": 2, "ratio": 0.5, "bn": "hidden"}
    s = make_config("seresnet-cifar")
    assert (s.optimizer, s.lr, s.betas, s.weight_decay, s.decay_ndim2_only) == ("adamw", 1e-3, [0.9, 0.99], 0.1, True)
    assert (s.scheduler, s.cycle_epochs, s.warmup_epochs) == ("cosine_restarts", 50, 10)
    assert (s.label_smoothing, s.cutmix, s.normalize) == (0.1, 1.0, "dataset")
    assert (s.clip_grad, s.clip_mode, s.amp, s.batch_size, s.model) == (3.0, "param", True, 128, "resnet56_cifar")
    i = make_config("sse-imagenet")
    assert (i.lr, i.weight_decay, i.milestones, i.gamma) == (0.01, 1e-4, [30, 60], 0.1)
    assert (i.input_size, i.random_resized_crop, i.nesterov, i.dataset) == (224, True, False, "imagefolder")
    r = make_config("rgse-imagenet")
    assert (r.lr, r.epochs, r.milestones, r.attn, r.model) == (0.1, 100, [30, 60, 90], "rgse", "resnet50")


def test_overrides_flag_by_flag_and_attention_options():
    c = make_config("sb-vgg-cifar", epochs=3, lr=0.05, milestones=[1, 2], gamma=0.5, weight_decay=0.0, batch_size=16)
    assert (c.epochs, c.lr, c.milestones, c.gamma, c.weight_decay, c.batch_size) == (3, 0.05, [1, 2], 0.5, 0.0, 16)
    assert RECIPES["sb-vgg-cifar"]["epochs"] == 80, "overrides must not modify the recipe"
    assert make_config("sb-vgg-cifar", attn_kwargs={"act": "sigmoid"}).attn_kwargs == {"ratio": 0.5, "act": "sigmoid"}
    assert make_config("tse-vgg-cifar", attn="se").attn_kwargs == {}  # tile belongs to tse, not se
    assert make_config("tse-vgg-cifar", attn_kwargs={"tile": 4}).attn_kwargs["tile"] == 4


@pytest.mark.parametrize(("kw", "match"), [({"recipe": "tse-vgg"}, "Did you mean 'tse-vgg-cifar'"),
                                           ({"epochs": 0}, "--epochs"), ({"optimizer": "lamb"}, "optimizer"),
                                           ({"milestones": [60, 40]}, "increasing"),
                                           ({"colour": 1}, "unknown training option"),
                                           ({"scheduler": "cosine_restarts", "warmup_epochs": 60}, "shorter")])
def test_bad_settings_raise_config_error(kw, match):
    with pytest.raises(ConfigError, match=match):
        make_config(**kw)


@pytest.mark.parametrize("argv", [["--recipe", "imagenet-best"], ["--optimizer", "lamb"], ["--epochs", "x"],
                                  ["--attn-arg", "tile"]])
def test_cli_bad_input_is_one_line_exit_2(argv, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_multistep_per_epoch_matches_reference_scripts():
    f = lr_factor_fn(make_config("tse-vgg-cifar"))
    assert [round(f(t), 6) for t in (0, 39.99, 40, 59.5, 60, 79.9)] == [1, 1, 0.2, 0.2, 0.04, 0.04]


def test_cosine_restarts_with_warmup_cycles():
    c = make_config("seresnet-cifar")
    lr = lambda t: c.lr * lr_factor_fn(c)(t)  # noqa: E731
    assert lr(0) == pytest.approx(1e-6) and lr(10) == pytest.approx(1e-3) and lr(5.7) == pytest.approx(lr(5))
    assert lr(5) == pytest.approx(1e-6 + (1e-3 - 1e-6) * 0.5)
    assert lr(30) == pytest.approx(1e-6 + (1e-3 - 1e-6) * 0.5)  # half-way down the 40-epoch cosine
    assert lr(49) < 2e-5 and lr(50) == pytest.approx(1e-6) and lr(60) == pytest.approx(1e-3)  # restart
    assert [lr(t) for t in range(50)] == [lr(t) for t in range(150, 200)]


def test_scheduler_steps_per_iteration():
    c = make_config("digits", epochs=2, warmup_epochs=1.0, lr=1.0, min_lr=0.0)
    model = nn.Linear(2, 2)
    opt = build_optimizer(model, c)
    sched = build_scheduler(opt, c, steps_per_epoch=4)
    seen = []
    for _ in range(8):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen[:5] == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])
    assert seen[6] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))


def test_weight_decay_only_on_ndim2_and_optimizer_kinds():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(1, 3, 5, 5))
    groups = param_groups(model, 0.1, ndim2_only=True)
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert all(p.ndim >= 2 for p in groups[0]["params"]) and all(p.ndim < 2 for p in groups[1]["params"])
    opt = build_optimizer(model, make_config("tse-vgg-cifar"))
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["nesterov"]
    adamw = build_optimizer(model, make_config("seresnet-cifar"))
    assert isinstance(adamw, torch.optim.AdamW) and adamw.param_groups[0]["betas"] == (0.9, 0.99)


def test_per_parameter_clipping_clips_each_tensor():
    a, b = nn.Parameter(torch.zeros(4)), nn.Parameter(torch.zeros(4))
    a.grad, b.grad = torch.full((4,), 10.0), torch.full((4,), 0.1)
    clip_gradients([a, b], 3.0, "param")
    assert a.grad.norm() == pytest.approx(3.0) and b.grad.norm() == pytest.approx(0.2)
    a.grad, b.grad = torch.full((4,), 10.0), torch.full((4,), 0.1)
    clip_gradients([a, b], 3.0, "norm")
    assert torch.cat([a.grad, b.grad]).norm() == pytest.approx(3.0)
    assert b.grad.norm() < 0.2
