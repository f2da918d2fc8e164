"""The one parity system (seadeploy/parity.py): metric definitions, rules per precision × input kind, verdicts."""

from __future__ import annotations

import argparse
import dataclasses
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seadeploy.cli import add_rule_args, rules_from_args
from seadeploy.errors import ConfigError, InputError
from seadeploy.parity import (
    FloatNoise,
    NoiseProbe,
    Rule,
    RuleSet,
    Verdicts,
    compare,
    cosine_per_sample,
    default_rule,
    layer_error,
    measure_float_noise,
    noise_notes,
    parity_metrics,
    violation_fraction,
)
from seadeploy.validate.report import ParityReport

RNG = np.random.default_rng(0)
REF = RNG.standard_normal((200, 10)).astype(np.float32) * 3
LABELS = REF.argmax(1)


# ------------------------------------------------------------------------------------------------ metrics
def test_identical_outputs():
    ref = np.random.default_rng(0).standard_normal((6, 10)).astype(np.float32)
    m = parity_metrics(ref, ref.copy(), labels=ref.argmax(1))
    assert m["max_abs"] == m["mean_abs"] == m["max_rel"] == m["violations"] == 0.0
    assert m["cosine"] == pytest.approx(1.0) and m["top1"] == m["accuracy"] == m["ref_accuracy"] == 1.0
    assert m["nonfinite"] == m["ref_nonfinite"] == 0 and m["n"] == 6


def test_values_of_a_known_difference():
    ref = np.array([[1.0, 2.0, 0.0], [0.0, -1.0, 3.0]], np.float32)
    out = ref + np.array([[0.5, 0.0, 0.0], [0.0, 0.0, -3.5]], np.float32)  # row 2 now argmax 0
    m = parity_metrics(ref, out, labels=np.array([1, 2]))
    assert m["max_abs"] == pytest.approx(3.5) and m["mean_abs"] == pytest.approx(4.0 / 6)
    assert m["max_rel"] == pytest.approx(3.5 / 3.0)
    assert m["top1"] == 0.5 and m["accuracy"] == 0.5 and m["ref_accuracy"] == 1.0
    assert m["violations"] == pytest.approx(2 / 6)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_output_is_never_close(bad):
    ref = np.ones((2, 4), np.float32)
    out = ref.copy()
    out[1, 3] = bad
    m = parity_metrics(ref, out)
    assert m["nonfinite"] == 1 and all(math.isnan(m[k]) for k in ("max_abs", "cosine", "top1", "violations"))
    assert parity_metrics(out, ref)["ref_nonfinite"] == 1


def test_shape_mismatch_and_label_count():
    with pytest.raises(InputError, match="belong to different models"):
        parity_metrics(np.zeros((2, 10)), np.zeros((2, 5)))
    with pytest.raises(InputError, match="3 labels for 2 outputs"):
        parity_metrics(np.zeros((2, 10)), np.zeros((2, 10)), labels=np.zeros(3, int))


def test_violation_boundary_is_inclusive():
    # |a-b| <= atol + rtol*|ref| passes: ref 10, rtol 0.1, atol 0 → 1.0 exactly allowed (binary-exact values)
    ref = np.array([10.0, 10.0])
    assert violation_fraction(ref, np.array([11.0, 9.0]), atol=0.0, rtol=0.1) == 0.0
    assert violation_fraction(ref, np.array([11.5, 10.0]), atol=0.0, rtol=0.1) == 0.5
    assert violation_fraction(np.zeros(2), np.array([0.25, 0.0]), atol=0.25, rtol=0.0) == 0.0


def test_scale_makes_atol_relative_to_each_samples_output_scale():
    ref = np.array([[1000.0, 0.5], [0.5, 0.25]])
    out = ref + np.array([[0.05, 0.005], [0.0, 0.0]])
    assert violation_fraction(ref, out, 1e-4, 1e-4) == 0.25  # 0.005 on 0.5 fails an absolute 1e-4
    assert violation_fraction(ref, out, 1e-4, 1e-4, scale=True) == 0.0  # 1e-4 · 1000 allowed in sample 0
    small = np.array([[0.5, 0.25]])  # below magnitude 1 the scale is 1: numpy's allclose
    assert violation_fraction(small, small + 2e-4, 1e-4, 1e-4) == \
        violation_fraction(small, small + 2e-4, 1e-4, 1e-4, scale=True) == 1.0


def test_cosine_handles_zero_rows():
    a = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    b = np.array([[0.0, 0.0], [0.0, 0.0], [-1.0, -1.0]])
    np.testing.assert_allclose(cosine_per_sample(a, b), [1.0, 0.0, -1.0])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=4, max_size=4), st.floats(0.01, 100))
def test_cosine_is_scale_invariant(row, scale):
    a = np.array([row])
    if not np.abs(a).sum():
        return
    assert cosine_per_sample(a * scale, a)[0] == pytest.approx(1.0, abs=1e-9)


def test_layer_error():
    ref = np.array([[1.0, -2.0], [4.0, 0.0]])
    err = layer_error(ref, ref + np.array([[0.0, 0.4], [0.0, 0.0]]))
    assert err["max_abs"] == pytest.approx(0.4) and err["rel"] == pytest.approx(0.1) and err["nonfinite"] == 0
    assert math.isnan(layer_error(ref, ref * np.nan)["rel"])
    assert layer_error(np.zeros(3), np.zeros(3))["rel"] == 0.0
    with pytest.raises(InputError, match="differ in size"):
        layer_error(np.zeros(3), np.zeros(4))


# -------------------------------------------------------------------------------------------------- rules
def _flip(n):
    """Swap the two largest logits of the first ``n`` samples: their class changes, the vectors barely do."""
    out = REF.copy()
    for i in range(n):
        a, b = np.argsort(out[i])[-2:]
        out[i, [a, b]] = out[i, [b, a]]
    return out


def _cmp(out, precision="fp32", labels=LABELS, inputs="data", trained=True, **kw):
    rule = default_rule(precision, inputs, trained).override(**kw)
    return compare(REF, out, rule, backend="ort", precision=precision, inputs=inputs, labels=labels)


def test_fp32_is_elementwise_relative_to_the_output_scale():
    assert _cmp(REF + 5e-5)
    one_off = np.where(np.arange(REF.size).reshape(REF.shape) == 7, 1e-2, 0).astype(np.float32)
    failed = _cmp(REF + one_off)
    assert not failed and "0.05% of elements exceed atol 0.0001·max(1, max|ref_i|)" in failed.failures[0]
    big = REF * 1e4  # random-init deep nets: logits of 1e4, float32 sums differ by ~1e-2 there (2e-7 relative)
    assert compare(big, big + 1e-2, default_rule("fp32"), backend="ort", precision="fp32", inputs="random")
    assert not compare(big, big * 1.01, default_rule("fp32"), backend="ort", precision="fp32", inputs="random")


def test_low_precisions_are_judged_on_top1_accuracy_and_cosine():
    noisy = REF * 1.02 + 0.01  # every element beyond fp32's tolerance, argmax and direction kept
    assert not _cmp(noisy) and _cmp(noisy, "fp16") and _cmp(noisy, "int8")
    flipped = _flip(2)  # 2 of 200 samples change class: 99 % agreement
    c16, c8 = _cmp(flipped, "fp16"), _cmp(flipped, "int8")
    assert not c16 and any("top-1 agreement 99.00% < 99.50%" in f for f in c16.failures)
    assert c8  # int8 allows 1 %
    assert _cmp(flipped, "fp16", labels=None, inputs="random")  # random inputs: top-1 reported, not judged


def test_int8_on_random_inputs_checks_nan_only():
    rule = default_rule("int8", "random")
    assert rule.nan_only and rule.describe() == "NaN/Inf only"
    assert compare(REF, -REF, rule, backend="ort", precision="int8", inputs="random")
    assert not compare(REF, REF * np.nan, rule, backend="ort", precision="int8", inputs="random")


def test_untrained_models_drop_top1_but_keep_cosine():
    flipped = _flip(20)  # 10 % of the samples change class: fails a trained model's top-1 floor
    assert not _cmp(flipped, "int8")
    assert _cmp(REF * 1.01, "int8", trained=False) and _cmp(flipped, "int8", trained=False)
    assert not _cmp(-REF, "int8", trained=False)
    assert default_rule("fp32", trained=False) == default_rule("fp32")


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_nan_is_never_a_pass(precision):
    out = REF.copy()
    out[3, 3] = np.nan
    result = _cmp(out, precision)
    assert not result and result.failures == ["1 NaN/Inf values in the output"]
    ref_nan = compare(out, REF, default_rule(precision), backend="ort", precision=precision, inputs="random")
    assert not ref_nan and "reference produced" in ref_nan.failures[0]


def test_command_line_bounds_override_the_documented_rules():
    parser = argparse.ArgumentParser()
    add_rule_args(parser)
    loose = REF + 0.02
    assert _cmp(loose, "fp16")
    rs = rules_from_args(parser.parse_args(["--atol", "1e-3", "--rtol", "0"]))
    assert not compare(REF, loose, rs.rule("fp16", "data"), backend="ort", precision="fp16", inputs="data")
    assert _cmp(loose, "fp32", atol=0.03, rtol=0.0)
    strict = rules_from_args(parser.parse_args(["--min-top1", "1.0", "--min-cosine", "0.99999"])).for_model(False)
    rule = strict.rule("int8", "data")
    assert rule.min_top1 == 1.0 and rule.min_cosine == 0.99999 and rule.max_violations is None
    assert not compare(REF, _flip(1), rule, backend="ort", precision="int8", inputs="data", labels=LABELS)
    with pytest.raises(SystemExit):
        parser.parse_args(["--atol", "nan"])


def test_ruleset_overrides_tf32_and_untrained_defaults():
    floor = dataclasses.replace(default_rule("int8", trained=False), min_cosine=0.5)
    rs = RuleSet(overrides={"int8": floor}).for_model(False)
    assert rs.rule("int8", "data").min_cosine == 0.5 and rs.rule("int8", "random").nan_only
    assert rs.rule("fp32", "data", tf32=True) == default_rule("fp16", "data", trained=False)
    assert RuleSet(trained=True).for_model(False).trained is True  # an explicit choice wins


def test_bad_rules():
    with pytest.raises(ConfigError, match="unknown precision 'bf16'"):
        default_rule("bf16")
    with pytest.raises(ConfigError, match="unknown input kind"):
        default_rule("fp32", "images")
    with pytest.raises(ConfigError, match="atol must be a finite number"):
        Rule(atol=-1, rtol=0)
    with pytest.raises(ConfigError, match="rtol must be a finite number"):
        dataclasses.replace(default_rule("fp32"), rtol=float("nan"))
    with pytest.raises(ConfigError, match="min-top1 must be within"):
        default_rule("int8").override(min_top1=99.0)


# ----------------------------------------------------------------------------------------------- verdicts
def test_verdicts_truthiness_frame_dict_and_text():
    ok, bad = _cmp(REF), _cmp(REF * np.nan)
    assert ok and not bad and len(ok.to_frame()) == 1 and ok.to_frame()["rule"][0].startswith("|out-ref|")
    assert Verdicts([ok]) and not Verdicts([ok, bad]) and not Verdicts([])
    report = ParityReport([ok, bad], "runs/x", {"device": "cpu"}, {}, ["a note"])
    assert not report and ParityReport([ok], "runs/x") and not ParityReport([], "runs/x")
    frame = report.to_frame()
    assert list(frame["passed"]) == [True, False] and {"max_abs", "cosine", "top1", "accuracy"} <= set(frame.columns)
    d = report.to_dict()
    assert d["passed"] is False and d["failures"] == ["ort/fp32/data: 2000 NaN/Inf values in the output"]
    assert d["comparisons"][0]["tolerance"]["scale"] is True
    text = report.text()
    assert "FAIL ort/fp32/data" in text and "note: a note" in text and text.endswith("1/2 comparisons within tolerance")


# ------------------------------------------------------------------------------------- float32 noise floor
class _Cancelling(torch.nn.Module):
    """Ill-conditioned in float32: (x·w + 1e6) − 1e6 rounds to multiples of 1/16 (ulp of 1e6), exact in float64."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(10, 10)
        self.register_buffer("c", torch.tensor(1e6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.fc(x) + self.c) - self.c


def test_float_noise_measures_each_precision_on_the_reference_model_and_leaves_its_weights_unchanged():
    torch.manual_seed(0)
    x = RNG.standard_normal((20, 10)).astype(np.float32)
    well = torch.nn.Linear(10, 10)
    before = {k: v.clone() for k, v in well.state_dict().items()}
    with torch.no_grad():
        ref = well(torch.as_tensor(x)).numpy()
    fp32, fp16 = (measure_float_noise(well, x, ref, p) for p in ("fp32", "fp16"))
    assert fp32.n == 16 and fp32.rel < 1e-6  # first 16 samples; float32 sums of 10 terms against float64
    assert 1e-5 < fp16.rel < 1e-2 and fp16.precision == "fp16"  # float16 rounding (2^-11) of the same sums
    assert all(torch.equal(before[k], v) and v.dtype == torch.float32 for k, v in well.state_dict().items())
    assert measure_float_noise(well, x, ref, "int8") is None  # int8 has no floor
    bad = _Cancelling()
    with torch.no_grad():
        noise = measure_float_noise(bad, x, bad(torch.as_tensor(x)).numpy())
    assert 1e-3 < noise.rel < 0.1 and bad.c.dtype == torch.float32


def _noise(precision, rel, cosine_loss=0.0, centered_loss=0.0):
    return FloatNoise(precision, rel, cosine_loss, centered_loss, 16)


def test_the_fp32_floor_widens_by_eight_times_the_references_own_error():
    ref = REF.astype(np.float64)
    out = ref + 1e-3 * np.abs(ref).max(1, keepdims=True)  # 1e-3 of the output scale: beyond 1e-4
    rule = default_rule("fp32", "random")
    assert not compare(ref, out, rule, backend="ort", precision="fp32", inputs="random")
    noisy_ref = _noise("fp32", 2e-4, 1e-9)  # the reference itself is off by 2e-4 of its scale
    passed = compare(ref, out, rule, backend="ort", precision="fp32", inputs="random", noise=noisy_ref)
    assert passed and passed.metrics["float_noise"] == 2e-4
    assert len(noise_notes([passed])) == 1 and "ill-conditioned in fp32" in noise_notes([passed])[0]
    # 8× is the bound: an error of 1e-2 of the scale (a wrong weight) still fails on that reference
    assert not compare(ref, ref + 1e-2 * np.abs(ref).max(1, keepdims=True), rule, backend="ort", precision="fp32",
                       inputs="random", noise=noisy_ref)
    # an explicit bound is exact
    assert not compare(ref, out, rule.override(atol=1e-4), backend="ort", precision="fp32", inputs="random",
                       noise=noisy_ref)
    # a well-conditioned reference (noise 1e-7) changes nothing and adds no note
    quiet = compare(ref, ref + 5e-5, rule, backend="ort", precision="fp32", inputs="random", noise=_noise("fp32", 1e-7))
    assert quiet and not noise_notes([quiet])


def test_the_fp16_floor_lowers_the_cosine_floors_to_four_times_what_float16_loses_on_the_model():
    ref = REF.astype(np.float64)
    out = ref + RNG.standard_normal(ref.shape) * 0.1 * np.abs(ref).mean()  # cosine ≈ 0.995, centred alike
    rule = default_rule("fp16", "data", trained=False)
    assert rule.noise_factor is None and default_rule("int8", "random").noise_cosine_factor is None  # NaN/Inf only
    plain = compare(ref, out, rule, backend="ort", precision="fp16", inputs="data")
    assert not plain and "cosine" in plain.failures[0]
    loss = 1 - plain.metrics["cosine"]
    lossy = _noise("fp16", 0.05, cosine_loss=loss, centered_loss=1 - plain.metrics["cosine_centered"])
    assert compare(ref, out, rule, backend="ort", precision="fp16", inputs="data", noise=lossy)  # 1× < 4× the loss
    small = _noise("fp16", 0.05, cosine_loss=loss / 5, centered_loss=(1 - plain.metrics["cosine_centered"]) / 5)
    failed = compare(ref, out, rule, backend="ort", precision="fp16", inputs="data", noise=small)
    assert not failed and len(failed.failures) == 2  # 5× what float16 loses: both cosines fail
    assert not compare(ref, out, rule.override(min_cosine=0.999), backend="ort", precision="fp16", inputs="data",
                       noise=lossy)  # an explicit --min-cosine is exact


class _CancellingSome(torch.nn.Module):
    """Ill-conditioned in float32 only on samples whose first input is > 1: (fc(x) + k) − k with k = 1e6 there."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(10, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = (x[:, :1] > 1).to(x.dtype) * 1e6
        return (self.fc(x) + k) - k


def test_each_sample_beyond_the_plain_bound_is_judged_by_its_own_float32_noise():
    torch.manual_seed(0)
    x = RNG.standard_normal((200, 10)).astype(np.float32)
    x[:16, 0] = np.minimum(x[:16, 0], 1.0)  # the first 16 (measured up front) are well-conditioned
    net = _CancellingSome()
    with torch.no_grad():
        ref = net(torch.as_tensor(x)).numpy()
        exact = net.double()(torch.as_tensor(x).double()).float().numpy()  # a backend computing the exact function
        net.float()
    bad = x[:, 0] > 1
    assert bad[16:].any() and not bad[:16].any()  # ill-conditioned samples only beyond the 16 measured up front
    rule = default_rule("fp32", "random")
    assert not compare(ref, exact, rule, backend="ort", precision="fp32", inputs="random")
    probe = NoiseProbe(net, x, ref, "fp32")
    passed = compare(ref, exact, rule, backend="ort", precision="fp32", inputs="random", noise=probe)
    assert probe.summary.rel < 1e-6 and passed.metrics["float_noise"] > 1e-3  # measured on demand, where it fails
    # a well-conditioned sample keeps the level of the first 16: a 1e-2 error there fails though others are noisy
    wrong = exact.copy()
    good = int(np.flatnonzero(~bad)[-1])
    wrong[good] += 1e-2 * np.abs(ref[good]).max()
    failed = compare(ref, wrong, rule, backend="ort", precision="fp32", inputs="random", noise=probe)
    assert not failed and failed.metrics["violations"] == pytest.approx(1 / len(ref))  # that one row only


class _Float32Only(torch.nn.Module):
    """A model with an op that has no float64 kernel (here: refused by hand, as a custom CPU op would)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(10, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.float32:
            raise RuntimeError(f"no {x.dtype} kernel")
        return self.fc(x)


def test_a_model_without_a_float64_kernel_gets_no_floor_and_is_left_as_it_was():
    """The documented fallback: no floor (plain bounds judge), no crash, weights back in float32, mode kept."""
    torch.manual_seed(0)
    x = RNG.standard_normal((20, 10)).astype(np.float32)
    model = _Float32Only().train()
    with torch.no_grad():
        ref = model(torch.as_tensor(x)).numpy()
    probe = NoiseProbe(model, x, ref, "fp32")
    assert probe.summary is None and probe.rel([0, 1]).tolist() == [0.0, 0.0]
    assert model.training and all(p.dtype == torch.float32 for p in model.parameters())
    out = ref + 1e-3 * np.abs(ref).max(1, keepdims=True)
    judged = compare(ref, out, default_rule("fp32", "random"), backend="ort", precision="fp32", inputs="random",
                     noise=probe)
    assert not judged and math.isnan(judged.metrics.get("float_noise", math.nan))  # no floor measured
    assert "float noise" not in judged.failures[0]  # judged on the plain 1e-4 bound
