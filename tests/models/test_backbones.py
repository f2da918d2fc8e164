"""Backbones × attention: parameter counts from docs/models.md, shapes, backprop, placement and options."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seadeploy.errors import ConfigError
from seadeploy.models import create_model, list_attention, list_models, model_defaults
from seadeploy.models.layers import recalibrate_batchnorm
from seadeploy.models.rewrite import attention_paths
from seadeploy.models.vgg_cifar import repo_attn_kwargs

# (model, input size) pairs every attention is exercised on.
BACKBONES = [("vgg16_cifar", 32), ("resnet20_cifar", 32), ("resnet18", 64), ("efficientnet_b0", 64)]


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("name", "attn", "kw", "expected"),
    [
        ("resnet56_cifar", "se", {"bias": False, "reduction": 16}, 861_818),
        ("vgg16_cifar", "none", {}, 7_774_538),
        ("vgg16_cifar", "se", {"ratio": 0.5, "bn": True}, 8_127_018),
        ("vgg16_cifar", "tse", {"ratio": 0.5, "bn": True, "tile": 2}, 8_125_098),
        ("vgg16_cifar", "sb", {}, 8_127_978),
        ("resnet18", "none", {}, 11_689_512),
        ("resnet18", "se", {"bias": False}, 11_776_552),  # SsENet SE-ResNet-18
        ("resnet50", "none", {}, 25_557_032),
    ],
)
def test_parameter_counts_match_models_md(name, attn, kw, expected):
    assert n_params(create_model(name, attn, kw)) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [  # torchvision's published counts
        ("resnet34", 21_797_672),
        ("resnet101", 44_549_160),
        ("resnet152", 60_192_808),
        ("resnext50_32x4d", 25_028_904),
        ("resnext101_32x4d", 44_177_704),
        ("efficientnet_b0", 5_288_548),
        ("efficientnet_b1", 7_794_184),
        ("efficientnet_b2", 9_109_994),
    ],
)
def test_parameter_counts_match_torchvision(name, expected):
    assert n_params(create_model(name)) == expected  # EfficientNet's default attention is its SE


@pytest.mark.parametrize(("attn", "millions"), [("se", 28.09), ("rgse", 28.21), ("spse", 28.48)])
def test_resnet50_attention_counts_match_the_spse_rgse_table(attn, millions):
    assert round(n_params(create_model("resnet50", attn)) / 1e6, 2) == millions


def test_vgg_repo_attention_forms():
    assert repo_attn_kwargs("se") == {"ratio": 0.5, "bn": True}
    assert n_params(create_model("vgg16_cifar", "tse", repo_attn_kwargs("tse"))) == 8_125_098
    assert create_model("vgg16_cifar", "tse", repo_attn_kwargs("tse")).stages[0].attn.tile == (2, 2)


@pytest.mark.parametrize("attn", [a for a in list_attention() if a != "none"])
@pytest.mark.parametrize(("name", "size"), BACKBONES)
def test_every_attention_in_every_backbone_builds_keeps_shape_and_backprops(name, size, attn):
    model = create_model(name, attn, num_classes=7, input_size=size)
    paths = attention_paths(model)
    assert paths and all(".attn" in p or p.startswith("attn") for p in paths)
    x = torch.randn(2, 3, size, size)
    shapes = {}
    hooks = [
        model.get_submodule(p).register_forward_hook(
            lambda m, a, out, p=p: shapes.__setitem__(p, (a[0].shape, out.shape))
        )
        for p in paths
    ]
    y = model(x)
    for h in hooks:
        h.remove()
    assert y.shape == (2, 7)
    assert all(i == o for i, o in shapes.values()), "attention changed a feature-map shape"
    y.logsumexp(1).mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_attention_placement_and_feature_sizes():
    m = create_model("resnet56_cifar", "tse", {"tile": [2, 4, 8]})
    assert len(attention_paths(m)) == 27
    assert [m.get_submodule(f"layer{i}.0.attn").tile for i in (1, 2, 3)] == [(2, 2), (4, 4), (8, 8)]
    v = create_model("vgg16_cifar", "se")
    assert attention_paths(v) == [f"stages.{i}.attn" for i in range(4)]
    r = create_model("resnet50", "rgse")  # 224 px: the official 8/4/2/1 grids
    assert [r.get_submodule(f"layer{i}.0.attn").grid for i in (1, 2, 3, 4)] == [(8, 8), (4, 4), (2, 2), (1, 1)]
    r64 = create_model("resnet50", "rgse", input_size=64)
    assert r64(torch.randn(2, 3, 64, 64)).shape == (2, 1000)
    e = create_model("efficientnet_b0", "se", input_size=64)
    assert len(attention_paths(e)) == 16 and attention_paths(e)[0] == "blocks.0.attn"


def test_efficientnet_mbconv_se_width_carries_over_to_tse():
    se = create_model("efficientnet_b0", "se")
    tse = create_model("efficientnet_b0", "tse", {"tile": 7})
    assert n_params(se) == n_params(tse) == 5_288_548
    blk = se.blocks[1].attn  # input 16 channels, expanded 96: reduced width int(16 * 0.25) = 4
    assert (blk.fc1.in_features, blk.fc1.out_features) == (96, 4) and isinstance(blk.act, torch.nn.SiLU)
    assert tse.blocks[1].attn.fc1.out_channels == 4
    assert n_params(create_model("efficientnet_b0", "none")) == 4_652_008
    assert create_model("efficientnet_b0", "se", {"reduction": 16}).blocks[1].attn.fc1.out_features == 6


def test_resnet_init_rules():
    r18 = create_model("resnet18")
    assert torch.count_nonzero(r18.layer1[0].bn2.weight) == 0  # SsENet: zero-γ last BN
    r50 = create_model("resnet50", "se")
    assert torch.all(r50.layer1[0].bn3.weight == 1) and torch.all(r50.layer1[0].attn.fc1.bias == 0)
    assert torch.all(r50.fc.bias == 0)
    cifar = create_model("resnet18", stem="cifar", input_size=32, num_classes=10)
    assert cifar.conv1.kernel_size == (3, 3) and cifar(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_model_spec_is_attached():
    m = create_model("resnet20_cifar", "tse", {"tile": 4}, num_classes=5)
    assert (m.spec.model, m.spec.attn, m.spec.attn_kwargs, m.spec.num_classes) == (
        "resnet20_cifar",
        "tse",
        {"tile": 4},
        5,
    )
    assert model_defaults("efficientnet_b0").default_attn == "se" and create_model("efficientnet_b0").spec.attn == "se"


def test_registry_lists():
    assert len(list_models()) == 16 and list_models("resnet*_cifar") == [
        "resnet110_cifar",
        "resnet20_cifar",
        "resnet32_cifar",
        "resnet44_cifar",
        "resnet56_cifar",
    ]
    assert set(list_attention()) == {"none", "se", "tse", "sb", "spse", "rgse", "cbam"}


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"name": "resnet57_cifar"}, "Valid choices"),
        ({"name": "resnet20_cifar", "attn": "sse"}, "Valid choices: none"),
        ({"name": "resnet20_cifar", "input_size": 16}, "at least 32"),
        ({"name": "resnet20_cifar", "num_classes": 0}, "num_classes"),
        ({"name": "resnet20_cifar", "depth": 3}, "has no option 'depth'"),
        ({"name": "resnet18", "stem": "tiny"}, "Valid choices: imagenet, cifar"),
    ],
)
def test_bad_model_settings_raise_config_error(kw, match):
    with pytest.raises(ConfigError, match=match):
        create_model(**kw)


def test_batchnorm_recalibration_sets_exact_statistics():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    x = torch.randn(64, 3, 8, 8) * 5 + 2
    recalibrate_batchnorm(net, x, batch=16)
    with torch.no_grad():
        y = net[0](x)
    torch.testing.assert_close(net[1].running_mean, y.mean((0, 2, 3)), atol=1e-4, rtol=1e-4)
    assert not net.training and net[1].momentum == 0.1


def test_batchnorm_recalibration_is_deterministic_with_dropout_and_drop_path():
    # DropPath/Dropout stay in eval mode: the same weights and inputs give bit-identical statistics whatever
    # the global RNG state
    torch.manual_seed(0)
    net = create_model("efficientnet_b0", attn="cbam", num_classes=10, input_size=32)
    x = torch.randn(16, 3, 32, 32)
    stats = []
    for rng in (1, 2):
        torch.manual_seed(rng)
        recalibrate_batchnorm(net, x, batch=8)
        stats.append({k: v.clone() for k, v in net.state_dict().items() if "running" in k})
    assert all(torch.equal(stats[0][k], stats[1][k]) for k in stats[0])
