"""SE ↔ TSE conversion (paper-faithful, exact where docs/models.md says exact) and the repo's module swap."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from seadeploy.errors import ConfigError
from seadeploy.models import create_model
from seadeploy.models.build import build_model
from seadeploy.models.rewrite import attention_paths, se_to_tse, swap_attention, tse_to_se


@pytest.mark.parametrize(
    ("name", "kw"),
    [
        ("vgg16_cifar", {"ratio": 0.5, "bn": True}),  # the repo SE: BN1d after both Linear layers
        ("resnet20_cifar", {"bias": False}),  # jordandeklerk SE
        ("resnet20_cifar", {"bn": "hidden", "reduction": 8}),
    ],
)
def test_se_to_tse_with_covering_tile_equals_se(name, kw, randomized):
    se = randomized(create_model(name, "se", kw)).eval()
    tse = se_to_tse(se, tile=32)
    assert tse.spec.attn == "tse" and tse.spec.attn_kwargs["tile"] == 32 and not tse.training
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        ref, out = se(x), tse(x)
        assert ref.abs().max() > 1e-2
        assert_close(out, ref, atol=1e-5, rtol=1e-5)  # float32: Linear vs 1×1 conv summation order differs
        ref64, out64 = se.double()(x.double()), tse.double()(x.double())
    assert_close(out64, ref64, atol=1e-6, rtol=1e-6)  # the same function: equal in float64 to 1e-6


def test_weights_are_mapped_fc_to_conv_and_bn1d_to_bn2d(randomized):
    se = randomized(create_model("vgg16_cifar", "se", {"ratio": 0.5, "bn": True}))
    tse = se_to_tse(se, tile=[2, 2, 4, 4])
    a, b = se.stages[2].attn, tse.stages[2].attn
    assert b.tile == (4, 4) and b.fc1.weight.shape == (128, 256, 1, 1)
    assert torch.equal(b.fc1.weight[:, :, 0, 0], a.fc1.weight) and torch.equal(b.fc2.bias, a.fc2.bias)
    assert isinstance(b.bn2, torch.nn.BatchNorm2d) and torch.equal(b.bn2.running_var, a.bn2.running_var)
    assert torch.equal(b.bn1.num_batches_tracked, a.bn1.num_batches_tracked)


def test_round_trip_is_exact(randomized):
    se = randomized(create_model("resnet20_cifar", "se", {"bias": True}))
    back = tse_to_se(se_to_tse(se, tile=(2, 4)))
    assert back.spec == se.spec.__class__(**{**se.spec.__dict__, "attn_kwargs": {"bias": True, "bn": False}})
    s1, s2 = se.state_dict(), back.state_dict()
    assert s1.keys() == s2.keys() and all(torch.equal(s1[k], s2[k]) for k in s1)
    tse = randomized(create_model("resnet20_cifar", "tse", {"tile": 4, "bn": True}))
    again = se_to_tse(tse_to_se(tse), tile=4)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in tse.state_dict().items())


def test_tiled_conversion_changes_the_function_but_keeps_the_weights(randomized):
    se = randomized(create_model("resnet20_cifar", "se")).eval()
    tse = se_to_tse(se, tile=2)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(se(x), tse(x), atol=1e-4)


def test_convert_rejects_wrong_models():
    with pytest.raises(ConfigError, match="attn='se'"):
        se_to_tse(create_model("resnet20_cifar", "none"))
    with pytest.raises(ConfigError, match="squeeze"):
        se_to_tse(create_model("resnet20_cifar", "se", {"squeeze": "max"}))
    with pytest.raises(ConfigError, match="attn='tse'"):
        tse_to_se(create_model("resnet20_cifar", "se"))
    with pytest.raises(ConfigError, match=r"\.spec"):
        se_to_tse(torch.nn.Linear(2, 2))


def test_swap_attention_uses_donor_modules(randomized):
    se = randomized(create_model("vgg16_cifar", "se", {"ratio": 0.5, "bn": True}), seed=1).eval()
    tse = randomized(create_model("vgg16_cifar", "tse", {"ratio": 0.5, "bn": True, "tile": 2}), seed=2).eval()
    swapped = swap_attention(tse, se).eval()  # the repo's "SE->TSE": TSE backbone, SE modules
    assert swapped.spec.attn == "se" and attention_paths(swapped) == attention_paths(tse)
    assert torch.equal(swapped.stages[0][0].weight, tse.stages[0][0].weight)
    assert torch.equal(swapped.stages[0].attn.fc1.weight, se.stages[0].attn.fc1.weight)
    assert swapped.stages[0].attn is not se.stages[0].attn  # copies: the donor is untouched
    rebuilt = build_model(swapped.spec)
    rebuilt.load_state_dict(swapped.state_dict())  # the swapped weights fit the spec
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert_close(rebuilt.eval()(x), swapped(x))


def test_swap_attention_can_keep_donor_in_train_mode(randomized):
    se = randomized(create_model("vgg16_cifar", "se", {"ratio": 0.5, "bn": True}), seed=1)
    tse = randomized(create_model("vgg16_cifar", "tse", {"ratio": 0.5, "bn": True, "tile": 2}), seed=2)
    locked = swap_attention(se, tse, donor_train_mode=True).eval()
    plain = swap_attention(se, tse).eval()
    x = torch.randn(8, 3, 32, 32)
    before = locked.stages[0].attn.bn1.running_mean.clone()
    with torch.no_grad():
        out_locked, out_plain = locked(x), plain(x)
    assert locked.stages[0].attn.training and not locked.stages[0][0].training  # backbone eval, donor train
    assert not torch.equal(before, locked.stages[0].attn.bn1.running_mean)  # batch stats were used/updated
    assert not torch.allclose(out_locked, out_plain)


def test_swap_attention_needs_matching_attention():
    with pytest.raises(ConfigError, match="cannot swap"):
        swap_attention(create_model("vgg16_cifar", "se"), create_model("resnet20_cifar", "se"))
    with pytest.raises(ConfigError, match="cannot swap"):
        swap_attention(create_model("vgg16_cifar", "none"), create_model("vgg16_cifar", "none"))
