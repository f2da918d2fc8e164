"""Parity metrics: definitions, NaN handling, the allclose semantics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seadeploy.errors import InputError
from seadeploy.validate.metrics import cosine_per_sample, layer_error, parity_metrics, violation_fraction


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


def test_sample_scale_makes_atol_relative_to_each_samples_largest_logit():
    ref = np.array([[1000.0, 0.5], [0.5, 0.25]])
    out = ref + np.array([[0.05, 0.005], [0.0, 0.0]])
    assert violation_fraction(ref, out, 1e-4, 1e-4) == 0.25  # 0.005 on 0.5 fails an absolute 1e-4
    assert violation_fraction(ref, out, 1e-4, 1e-4, sample_scale=True) == 0.0  # 1e-4 · 1000 allowed in sample 0
    small = np.array([[0.5, 0.25]])  # below magnitude 1 both rules are numpy's
    assert violation_fraction(small, small + 2e-4, 1e-4, 1e-4) == violation_fraction(small, small + 2e-4, 1e-4, 1e-4,
                                                                                        sample_scale=True) == 1.0
