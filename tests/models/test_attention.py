"""The attention zoo on its own: semantics, reference numerics, edge tiles and error messages."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from seadeploy.errors import ConfigError, InputError
from seadeploy.models.attention import create_attention, list_attention
from seadeploy.models.attention.pooling import adaptive_mean, nearest_is_exact, tile_broadcast, tile_mean
from seadeploy.models.attention.se import SQUEEZE, SqueezeExcite
from seadeploy.models.attention.tse import TiledSqueezeExcite

ATTNS = [a for a in list_attention() if a != "none"]


def naive_tse(m: TiledSqueezeExcite, x: torch.Tensor) -> torch.Tensor:
    """The reference definition: AvgPool(ceil, valid pixels only) → MLP → repeat_interleave + crop → multiply."""
    h, w = x.shape[-2:]
    kh, kw = m.tile
    z = (
        F.avg_pool2d(x, (kh, kw), (kh, kw), ceil_mode=True, count_include_pad=False)
        if (kh < h or kw < w)
        else x.mean((2, 3), keepdim=True)
    )
    a = m.excite(z)
    a = a.repeat_interleave(min(kh, h), dim=2)[:, :, :h].repeat_interleave(min(kw, w), dim=3)[:, :, :, :w]
    return x * a


@pytest.mark.parametrize("name", ATTNS)
@pytest.mark.parametrize("size", [(7, 7), (15, 9), (28, 28)])
def test_every_attention_keeps_shape_and_backprops(name, size):
    x = torch.randn(3, 32, *size, requires_grad=True)
    m = create_attention(name, 32, stage=0, feat_size=size)
    y = m(x)
    assert y.shape == x.shape
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad)


def test_none_gives_no_module():
    assert create_attention("none", 16) is None and create_attention(None, 16) is None


@pytest.mark.parametrize("size", [7, 15, 28])
@pytest.mark.parametrize("tile", [2, 4, 7])
@pytest.mark.parametrize("bn", [False, True, "both"])
def test_tse_matches_naive_reference_on_odd_sizes(size, tile, bn, randomized):
    m = randomized(TiledSqueezeExcite(16, tile=tile, reduction=4, bn=bn)).eval()
    x = torch.randn(2, 16, size, size)
    assert_close(m(x), naive_tse(m, x), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(("h", "w", "tile"), [(10, 10, 4), (4, 13, 3), (9, 30, (2, 7)), (90, 90, 41), (5, 5, 8)])
def test_tse_edge_tiles_and_rare_tiles(h, w, tile):
    m = TiledSqueezeExcite(8, tile=tile, reduction=2).eval()
    x = torch.randn(2, 8, h, w)
    assert_close(m(x), naive_tse(m, x), atol=1e-6, rtol=1e-5)


def test_tile_pooling_and_broadcast_primitives_are_exact():
    x = torch.randn(2, 3, 15, 11, dtype=torch.float64)
    for k in [(1, 1), (2, 2), (4, 3), (7, 7), (20, 5)]:
        ref = F.avg_pool2d(x, k, k, ceil_mode=True, count_include_pad=False)
        assert_close(tile_mean(x, k), ref, atol=1e-12, rtol=1e-12)
        a = torch.randn(ref.shape, dtype=torch.float64)
        kk = (min(k[0], 15), min(k[1], 11))
        rep = a.repeat_interleave(kk[0], 2)[:, :, :15].repeat_interleave(kk[1], 3)[:, :, :, :11]
        assert torch.equal(tile_broadcast(a, k, (15, 11)).expand_as(rep), rep)
    for out in [(1, 1), (2, 2), (4, 4), (3, 5)]:
        assert_close(adaptive_mean(x, out), F.adaptive_avg_pool2d(x, out), atol=1e-12, rtol=1e-12)


def test_nearest_exactness_emulation_agrees_with_torch():
    for k in (3, 7, 41, 47, 55):
        for g in (2, 3, 5):
            a = torch.arange(g, dtype=torch.float32).view(1, 1, g, 1)
            up = F.interpolate(a, size=(g * k, 1), mode="nearest").flatten()
            assert nearest_is_exact(k, g) == torch.equal(up, (torch.arange(g * k) // k).float())
    assert not nearest_is_exact(41, 2) and nearest_is_exact(7, 5)


def test_tse_with_covering_tile_equals_se_with_same_weights(randomized):
    se = randomized(SqueezeExcite(32, reduction=4, bn=True)).eval()
    tse = TiledSqueezeExcite(32, tile=16, reduction=4, bn="both").eval()
    state = {k: v.reshape(tse.state_dict()[k].shape) for k, v in se.state_dict().items()}
    tse.load_state_dict(state)
    x = torch.randn(3, 32, 8, 8)
    assert_close(tse(x), se(x), atol=1e-6, rtol=1e-6)


def test_se_squeeze_functions():
    x = torch.randn(2, 4, 5, 6)
    flat = x.flatten(2)
    assert_close(SQUEEZE["avg"](x), flat.mean(-1))
    assert_close(SQUEEZE["max"](x), flat.max(-1).values)
    n = flat.shape[-1]
    unbiased = ((flat - flat.mean(-1, keepdim=True)) ** 2).sum(-1).div(n - 1).sqrt()
    assert_close(SQUEEZE["std"](x), unbiased)
    assert_close(SQUEEZE["avg_x_std"](x), flat.mean(-1) * unbiased)
    r1, r2 = SQUEEZE["random"](x), SQUEEZE["random"](x)
    assert r1.shape == (2, 4) and r1.device == x.device and not torch.equal(r1, r2)
    assert (r1 >= 0).all() and (r1 < 1).all()


def test_random_squeeze_is_fresh_in_eval_too():
    m = SqueezeExcite(16, reduction=4, bias=False, squeeze="random").eval()
    x = torch.randn(2, 16, 4, 4)
    assert not torch.equal(m(x), m(x))


@pytest.mark.parametrize(
    ("kw", "hidden"), [({}, 4), ({"reduction": 8}, 8), ({"ratio": 0.5}, 32), ({"hidden": 5}, 5), ({"reduction": 64}, 1)]
)
def test_se_hidden_width(kw, hidden):
    m = SqueezeExcite(64, **kw)
    assert m.fc1.out_features == hidden and m.fc2.in_features == hidden


def test_se_forms_parameter_counts():
    c = 64
    assert sum(p.numel() for p in SqueezeExcite(c, bias=False).parameters()) == 2 * c * (c // 16)
    repo = SqueezeExcite(c, ratio=0.5, bn=True)  # Linear+BN1d+ReLU+Linear+BN1d
    assert sum(p.numel() for p in repo.parameters()) == c * c + 4.5 * c
    assert isinstance(repo.bn1, torch.nn.BatchNorm1d) and isinstance(repo.bn2, torch.nn.BatchNorm1d)
    tse_repo = TiledSqueezeExcite(c, ratio=0.5, bn=True)
    assert isinstance(tse_repo.bn1, torch.nn.BatchNorm2d) and isinstance(tse_repo.bn2, torch.nn.Identity)


def test_sb_is_additive_with_per_channel_lambda():
    m = create_attention("sb", 8, act="linear", bn=False).eval()
    assert m.lam.shape == (1, 8)
    x = torch.randn(2, 8, 4, 4)
    shift = m(x) - x
    assert_close(shift, shift[:, :, :1, :1].expand_as(shift))  # same shift over the whole channel
    soft = create_attention("sb", 8, act="softmax").eval()
    a = soft.gate(torch.randn(3, 8))
    assert_close(a.sum(-1), torch.ones(3))  # softmax over channels


def test_spse_and_rgse_layouts():
    spse = create_attention("spse", 256, feat_size=(7, 7))
    assert [c.kernel_size for c in spse.fuse] == [(1, 1), (2, 2), (4, 4)] and all(c.bias is not None for c in spse.fuse)
    grids = {56: (8, 8), 28: (4, 4), 14: (2, 2), 7: (1, 1), 10: (1, 1), 3: (1, 1)}
    for s, g in grids.items():
        m = create_attention("rgse", 64, feat_size=(s, s))
        assert m.grid == g
        assert isinstance(m.fuse, torch.nn.Identity) == (g == (1, 1))
        y = m(torch.randn(2, 64, s, s))
        assert y.shape == (2, 64, s, s)


def test_rgse_matches_official_pooling_at_224_stage1(randomized):
    m = randomized(create_attention("rgse", 16, feat_size=(56, 56), reduction=4)).eval()
    x = torch.randn(2, 16, 56, 56)
    z = F.relu(m.bn(m.fuse(F.avg_pool2d(x, 7, 7)))).flatten(1)
    ref = x * torch.sigmoid(m.fc2(F.relu(m.fc1(z))))[:, :, None, None]
    assert_close(m(x), ref, atol=1e-6, rtol=1e-5)


def test_cbam_channel_then_spatial():
    m = create_attention("cbam", 32).eval()
    assert m.spatial.kernel_size == (7, 7) and m.fc1.out_features == 2
    x = torch.randn(2, 32, 9, 9)
    s = torch.sigmoid(m._mlp(x.mean((2, 3))) + m._mlp(x.amax((2, 3))))
    xc = x * s[:, :, None, None]
    sp = torch.sigmoid(m.spatial_bn(m.spatial(torch.cat([xc.mean(1, True), xc.amax(1, True)], 1))))
    assert_close(m(x), xc * sp)


@pytest.mark.parametrize(
    ("name", "kw", "match"),
    [
        ("se", {"reduction": 32}, "larger than the 16 channels"),
        ("se", {"reduction": 0.5}, "reduction must be ≥ 1"),
        ("se", {"squeeze": "median"}, "Valid choices: avg, max, std, avg_x_std, random"),
        ("se", {"bias": "maybe"}, "bias must be true or false"),
        ("se", {"reduction": "abc"}, "invalid option value"),
        ("se", {"act": "swish"}, "Valid choices: relu, silu, gelu"),
        ("se", {"bn": "sometimes"}, "bn must be one of"),
        ("se", {"tile": 2}, "has no option 'tile'"),
        ("tse", {"tile": 0}, "tile must be ≥ 1"),
        ("tse", {"tile": (2, -1)}, "tile must be ≥ 1"),
        ("tse", {"tile": "big"}, "tile must be an int"),
        ("sb", {"act": "gelu"}, "Valid choices: tanh, sigmoid, relu, softmax, linear"),
        ("spse", {"levels": (1, 0)}, "levels must be positive"),
        ("cbam", {"kernel_size": 4}, "positive odd"),
        ("nope", {}, "Valid choices"),
    ],
)
def test_impossible_settings_raise_config_error(name, kw, match):
    with pytest.raises(ConfigError, match=match):
        create_attention(name, 16, stage=0, feat_size=(8, 8), **kw)


def test_rgse_without_size_and_mismatched_map():
    with pytest.raises(ConfigError, match="feat_size"):
        create_attention("rgse", 16)

    with pytest.raises(InputError, match="descriptor grid"):
        create_attention("rgse", 16, feat_size=(28, 28))(torch.randn(1, 16, 14, 14))


def test_per_stage_tiles_resolve_by_stage():
    assert create_attention("tse", 16, stage=2, tile=[2, 2, 4, 7]).tile == (4, 4)
    assert create_attention("tse", 16, stage=9, tile=[2, (3, 5)]).tile == (3, 5)
