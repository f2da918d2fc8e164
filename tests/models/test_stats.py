"""Model statistics and the ``python -m seadeploy.models`` command line."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from seadeploy.models import create_model
from seadeploy.models.__main__ import main
from seadeploy.models.stats import compute_stats, measured_work, model_stats, zoo_table

VGG = (
    (3, 64, 32),
    (64, 64, 32),
    (64, 128, 16),
    (128, 128, 16),
    (128, 256, 8),
    (256, 256, 8),
    (256, 256, 8),
    (256, 512, 4),
    (512, 512, 4),
    (512, 512, 4),
)  # (cin, cout, map size) of the 10 convs


def test_vgg_macs_params_and_activations_match_hand_count():
    s = model_stats("vgg16_cifar", "none").summary
    conv = sum(s * s * cout * cin * 9 for cin, cout, s in VGG)
    assert s["macs"] == conv + 512 * 256 + 256 * 10
    conv_params = sum(cout * cin * 9 + cout + 2 * cout for cin, cout, _ in VGG)  # weight, bias, BatchNorm γ/β
    assert s["params"] == conv_params + (512 * 256 + 256) + (256 * 10 + 10)  # = 7,774,538 (docs/models.md §3)
    assert s["attn_blocks"] == 0 and s["attn_params"] == 0
    assert s["activations"] == sum(s * s * cout for _, cout, s in VGG) + 256 + 10


@pytest.mark.parametrize(("name", "gmacs"), [("resnet18", 1.81), ("resnet50", 4.09)])
def test_imagenet_macs_match_published_figures(name, gmacs):
    assert round(model_stats(name).summary["macs"] / 1e9, 2) == gmacs


def test_se_attention_work_per_module():
    st = model_stats("vgg16_cifar", "se", {"ratio": 0.5, "bn": True})
    frame = st.attention
    assert list(frame["module"]) == [f"stages.{i}.attn" for i in range(4)]
    row = frame.iloc[0]
    assert (row["C"], row["H"], row["W"]) == (64, 32, 32)
    assert row["reduce_ops"] == 64 * 32 * 32 and row["scale_ops"] == 64 * 32 * 32 and row["gate_ops"] == 64
    assert row["excite_macs"] == 2 * 64 * 32 and row["params"] == 64 * 64 + 4.5 * 64
    assert row["bytes_moved"] == 4 * (2 * 64 * 32 * 32 + 64 + 64 * 32 * 32 + row["params"])
    s = st.summary
    # SE with ratio 1/2 and BN per stage: fc1 C·C/2 + C/2, bn1 C, fc2 C/2·C + C, bn2 2C = C² + 4.5C
    assert s["attn_params"] == sum(c * c + 4.5 * c for c in (64, 128, 256, 512))  # = 352,480
    assert s["params"] == model_stats("vgg16_cifar", "none").summary["params"] + s["attn_params"]
    assert s["macs"] == model_stats("vgg16_cifar", "none").summary["macs"] + s["attn_excite_macs"]
    total = st.to_frame().iloc[-1]
    assert total["module"] == "total" and total["reduce_ops"] == s["attn_reduce_ops"]


def test_tse_work_scales_with_the_tile_grid():
    se = model_stats("resnet20_cifar", "se").attention
    tse = model_stats("resnet20_cifar", "tse", {"tile": 4}).attention
    first_se, first = se.iloc[0], tse.iloc[0]  # 16 × 32 × 32 map, 8 × 8 tiles
    assert first["gate_ops"] == 16 * 64 and first["excite_macs"] == first_se["excite_macs"] * 64
    assert first["reduce_ops"] == first_se["reduce_ops"] and first["bytes_moved"] > first_se["bytes_moved"]
    covering = model_stats("resnet20_cifar", "tse", {"tile": 32}).attention
    assert (covering["gate_ops"] == se["gate_ops"]).all() and (covering["excite_macs"] == se["excite_macs"]).all()


def test_other_attentions_have_work_models():
    for attn in ("sb", "spse", "rgse", "cbam"):
        frame = model_stats("resnet20_cifar", attn).attention
        assert len(frame) == 9 and (frame["reduce_ops"] > 0).all() and (frame["scale_ops"] > 0).all()
    cbam = model_stats("resnet20_cifar", "cbam").attention.iloc[0]
    assert cbam["gate_ops"] == 16 + 32 * 32


def test_compute_stats_leaves_model_mode_alone():
    m = create_model("resnet20_cifar", "se").train()
    compute_stats(m, 32)
    assert m.training


def test_zoo_table():
    frame = zoo_table(["resnet20_cifar"], ["none", "se", "tse"])
    assert list(frame["attn"]) == ["none", "se", "tse"] and frame["params"].iloc[1] == frame["params"].iloc[2]


def test_cli_stats_json(capsys):
    assert main(["stats", "--model", "resnet56_cifar", "--attn", "se", "--attn-arg", "bias=false", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    library = model_stats("resnet56_cifar", "se", {"bias": False}).summary  # the counts the CLI prints
    assert out["summary"]["params"] == library["params"] and out["summary"]["macs"] == library["macs"]
    assert len(out["attention"]) == 27


def test_cli_stats_table_and_list(capsys):
    assert main(["stats", "--model", "vgg16_cifar", "--attn", "tse", "--attn-arg", "tile=2"]) == 0
    text = capsys.readouterr().out
    assert "stages.3.attn" in text and "total" in text and "params" in text
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    assert "efficientnet_b0" in text and "attention: none, cbam, rgse, sb, se, spse, tse" in text
    assert main(["table", "--models", "resnet20_cifar", "--attn", "none,se", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["stats", "--model", "resnet57_cifar", "--attn", "se"], "Valid choices"),
        (["stats", "--model", "resnet56_cifar", "--attn", "sse"], "Valid choices: none"),
        (["stats", "--model", "resnet56_cifar", "--attn", "tse", "--attn-arg", "tile=0"], "tile must be ≥ 1"),
        (["stats", "--model", "resnet56_cifar", "--attn", "se", "--attn-arg", "reduction=32"], "larger than"),
        (["stats", "--model", "resnet56_cifar", "--attn", "se", "--attn-arg", "squeeze=median"], "Valid choices: avg"),
        (["stats", "--model", "resnet56_cifar", "--attn", "se", "--attn-arg", "tile"], "KEY=VALUE"),
        (["stats", "--model", "resnet56_cifar", "--input-size", "8"], "at least 32"),
        (["table", "--models", "nothing*"], "no model matches"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_cli_errors_exit_2_with_one_line(argv, match, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and match in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(("attn", "kwargs"), [("se", {}), ("se", {"squeeze": "max"}), ("tse", {"tile": 4}),
                                              ("tse", {"tile": 5}), ("spse", {}), ("rgse", {}), ("sb", {}), ("cbam", {})])
def test_measured_work_agrees_with_each_attentions_own_formula(attn, kwargs):
    """The counter that measures a user's module, run on the zoo's blocks, gives their hand-written work() —
    except CBAM's reads (the formula lets avg+max of one map share a read, the counter counts each call's read)
    and TSE's edge tiles (the counter counts the zero pad the implementation pools; the formula, real pixels)."""
    model = create_model("resnet20_cifar", attn, kwargs)
    frame = compute_stats(model, 32).attention
    for row in frame.iloc[[0, 3, 6]].itertuples():  # the 32×32, 16×16 and 8×8 stages
        module = model.get_submodule(row.module)
        own, measured = module.work(row.C, row.H, row.W), measured_work(module, (row.C, row.H, row.W))
        if attn == "cbam":
            assert measured.reads == 6 * row.C * row.H * row.W
            measured = dataclasses.replace(measured, reads=own.reads)
        if kwargs.get("tile") == 5:  # edge tiles: the pool reads the explicit zero pad to whole tiles as well
            padded = row.C * 5 * math.ceil(row.H / 5) * 5 * math.ceil(row.W / 5)
            assert measured.reduce_ops == padded and measured.reads == padded + row.C * row.H * row.W
            measured = dataclasses.replace(measured, reduce_ops=own.reduce_ops, reads=own.reads)
        assert measured == own


def test_user_model_stats_count_the_attention_work(capsys):
    """models stats on a model seadeploy did not write: its SE modules (found by behaviour) get the same per-block
    work columns as the zoo's, counted by hand here from the fixture's three blocks (8×16×16, 16×8×8, 16×8×8)."""
    src = str(Path(__file__).parents[1] / "fixtures" / "user_model.py") + ":build"
    assert main(["stats", "--model", src, "--model-arg", "width=8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    maps = [(8, 16, 16), (16, 8, 8), (16, 8, 8)]
    s = out["summary"]
    assert s["attn_blocks"] == 3 and s["attn_modules"] == ", ".join(f"recal.{i}.squeeze_gate" for i in range(3))
    assert s["attn_reduce_ops"] == s["attn_scale_ops"] == sum(c * h * w for c, h, w in maps)
    assert s["attn_gate_ops"] == sum(c for c, _, _ in maps)
    first = out["attention"][0]  # Recalibrate: Linear 8→2→8 with biases
    assert first["excite_macs"] == 2 * 8 * 2 and first["params"] == 8 * 2 + 2 + 2 * 8 + 8
    assert first["bytes_moved"] == 4 * (2 * 8 * 16 * 16 + 8 + 8 * 16 * 16 + first["params"])
    assert main(["stats", "--model", src]) == 0
    total = capsys.readouterr().out.splitlines()[-1].split()
    assert total[0] == "total" and total[3:6] == ["4096", "40", "4096"]  # no C/H/W sums on the total row
