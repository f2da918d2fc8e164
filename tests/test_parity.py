"""Tolerances (semantics, defaults per precision) and the result objects."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from seadeploy.errors import ConfigError
from seadeploy.validate.compare import ParityReport, Tolerance, compare_outputs, default_tolerance

RNG = np.random.default_rng(0)
REF = RNG.standard_normal((200, 10)).astype(np.float32) * 3
LABELS = REF.argmax(1)


def _flip(n):
    """Swap the two largest logits of the first ``n`` samples: their class changes, the vectors barely do."""
    out = REF.copy()
    for i in range(n):
        a, b = np.argsort(out[i])[-2:]
        out[i, [a, b]] = out[i, [b, a]]
    return out


def _cmp(out, precision="fp32", labels=LABELS, **kw):
    tol = default_tolerance(precision, **kw)
    return compare_outputs(REF, out, tol, backend="ort", precision=precision, inputs="data", labels=labels)


def test_fp32_is_elementwise_and_tight():
    assert _cmp(REF + 5e-5)
    failed = _cmp(REF + np.where(np.arange(REF.size).reshape(REF.shape) == 7, 1e-2, 0).astype(np.float32))
    assert not failed and "0.05% of elements exceed atol 0.0001" in failed.failures[0]


def test_low_precisions_are_judged_on_top1_accuracy_and_cosine():
    noisy = REF * 1.02 + 0.01  # every element beyond fp32's tolerance, argmax and direction kept
    assert _cmp(noisy, "fp16") and _cmp(noisy, "int8")
    flipped = _flip(2)  # 2 of 200 samples change class: 99 % agreement
    c16, c8 = _cmp(flipped, "fp16"), _cmp(flipped, "int8")
    assert not c16 and any("top-1 agreement 99.00% < 99.50%" in f for f in c16.failures)
    assert c8  # int8 allows 1 %
    assert _cmp(flipped, "fp16", labels=None)  # random inputs: top-1 reported, not judged


def test_untrained_models_drop_top1_but_keep_cosine():
    flipped = _flip(20)
    assert not _cmp(flipped, "int8")
    relaxed = default_tolerance("int8", trained=False)
    assert relaxed.min_top1 is None and relaxed.min_cosine == 0.98
    assert compare_outputs(REF, REF * 1.01, relaxed, backend="ort", precision="int8", inputs="data", labels=LABELS)
    assert not compare_outputs(REF, -REF, relaxed, backend="ort", precision="int8", inputs="data", labels=LABELS)


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_nan_is_never_a_pass(precision):
    out = REF.copy()
    out[3, 3] = np.nan
    result = _cmp(out, precision)
    assert not result and result.failures == ["1 NaN/Inf values in the output"]
    ref_nan = compare_outputs(out, REF, default_tolerance(precision), backend="ort", precision=precision,
                              inputs="random")
    assert not ref_nan and "reference produced" in ref_nan.failures[0]


def test_explicit_atol_rtol_make_the_elementwise_check_binding():
    loose = REF + 0.02
    assert _cmp(loose, "fp16")
    assert not _cmp(loose, "fp16", atol=1e-3, rtol=0.0)
    assert _cmp(loose, "fp32", atol=0.03, rtol=0.0)


def test_bad_tolerances():
    with pytest.raises(ConfigError, match="unknown precision 'bf16'"):
        default_tolerance("bf16")
    with pytest.raises(ConfigError, match="atol must be a finite number"):
        Tolerance(atol=-1, rtol=0)
    with pytest.raises(ConfigError, match="rtol must be a finite number"):
        dataclasses.replace(default_tolerance("fp32"), rtol=float("nan"))


def test_report_truthiness_frame_dict_and_text():
    ok, bad = _cmp(REF), _cmp(REF * np.nan)
    report = ParityReport("runs/x", [ok, bad], {"device": "cpu"}, {}, ["a note"])
    assert not report and ParityReport("runs/x", [ok]) and not ParityReport("runs/x", [])
    frame = report.to_frame()
    assert list(frame["passed"]) == [True, False] and {"max_abs", "cosine", "top1", "accuracy"} <= set(frame.columns)
    d = report.to_dict()
    assert d["passed"] is False and d["failures"] == ["ort/fp32/data: 2000 NaN/Inf values in the output"]
    text = report.text()
    assert "FAIL ort/fp32/data" in text and "note: a note" in text and text.endswith("1/2 comparisons within tolerance")
