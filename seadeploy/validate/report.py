"""Tolerances with stated semantics, and the result objects of a parity run.

**Tolerance semantics.** An element passes when ``|out − ref| ≤ atol + rtol·|ref|`` (numpy/torch
``allclose``). A comparison then passes when *all* of these hold:

1. no NaN/Inf anywhere in the reference or the backend output (never a pass);
2. the fraction of failing elements is ≤ ``max_violations`` (``None``: reported, not judged);
3. mean per-sample cosine similarity ≥ ``min_cosine``;
4. on labelled dataset samples: top-1 agreement with the reference ≥ ``min_top1`` and accuracy drop
   (reference accuracy − backend accuracy) ≤ ``max_accuracy_drop``. Random inputs are not judged on
   top-1: there is no "right" class for noise, and a near-tie flips on the smallest error.

``sample_scale=True`` (used by the CI matrix on random weights, whose logits on noise reach 1e3) scales
the atol term by each sample's largest |logit| when it exceeds 1: float32 error grows with the size of
the numbers summed, and an absolute 1e-4 on a logit vector of magnitude 1000 asks for 1e-7 relative.

**Defaults per precision.** fp32 is judged element-wise and tightly (atol = rtol = 1e-4, no element
may fail). fp16 and int8 change every logit a little by design, so they are judged on what a user
sees: top-1 agreement (≥ 99.5 % fp16, ≥ 99 % int8), accuracy drop and cosine; their element-wise
numbers are reported only. int8 is judged on real samples only: its Q/DQ ranges are calibrated on real
data, and seeded noise drives activations outside them, where clipping is the intended behaviour (on
random inputs int8 is checked for NaN/Inf only; measured cosine there: 0.82-0.96 vs ≥ 0.995 on digits). For **untrained (random-weight) models** the logits are nearly uniform, so
top-1 flips on errors far below what matters; there int8/fp16 are judged on cosine only
(``default_tolerance(p, trained=False)``) and the report says so.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pandas as pd

from seadeploy.errors import ConfigError
from seadeploy.validate.metrics import METRIC_NAMES

PRECISIONS = ("fp32", "fp16", "int8")
INPUT_KINDS = ("random", "data")
_EPS = 1e-9  # fractions such as 1 - 198/200 are not exact in binary: 1 % allowed must accept 1 %


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """Pass/fail rule of one comparison (see the module docstring for the semantics)."""

    atol: float
    rtol: float
    max_violations: float | None = 0.0
    min_cosine: float | None = None
    min_top1: float | None = None
    max_accuracy_drop: float | None = None
    judge_random: bool = True
    sample_scale: bool = False

    def __post_init__(self) -> None:
        for key in ("atol", "rtol"):
            value = getattr(self, key)
            if not (isinstance(value, int | float) and value >= 0 and math.isfinite(value)):
                raise ConfigError(f"{key} must be a finite number ≥ 0, got {value}")

    def failures(self, m: dict[str, Any], labelled: bool, inputs: str = "data") -> list[str]:
        """Reasons ``m`` (from :func:`~seadeploy.validate.metrics.parity_metrics`) fails; empty = pass."""
        if m.get("ref_nonfinite"):
            return [f"the PyTorch reference produced {m['ref_nonfinite']} NaN/Inf values"]
        if m.get("nonfinite"):
            return [f"{m['nonfinite']} NaN/Inf values in the output"]
        if inputs == "random" and not self.judge_random:
            return []
        out = []
        if self.max_violations is not None and m["violations"] > self.max_violations:
            a = f"atol {self.atol:g}" + ("·max(1, max|ref_i|)" if self.sample_scale else "")
            out.append(f"{m['violations']:.2%} of elements exceed {a} + rtol {self.rtol:g}·|ref| "
                       f"(max abs {m['max_abs']:.3g}, allowed {self.max_violations:.2%})")
        if self.min_cosine is not None and not m["cosine"] >= self.min_cosine:
            out.append(f"cosine {m['cosine']:.6f} < {self.min_cosine}")
        if labelled and self.min_top1 is not None and not m["top1"] >= self.min_top1 - _EPS:
            out.append(f"top-1 agreement {m['top1']:.2%} < {self.min_top1:.2%}")
        drop = m["ref_accuracy"] - m["accuracy"]
        if labelled and self.max_accuracy_drop is not None and not drop <= self.max_accuracy_drop + _EPS:
            out.append(f"accuracy {m['accuracy']:.2%} vs reference {m['ref_accuracy']:.2%} "
                       f"(drop {drop:.2%} > {self.max_accuracy_drop:.2%})")
        return out

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_TRAINED = {
    "fp32": Tolerance(atol=1e-4, rtol=1e-4, max_violations=0.0, min_cosine=0.9999),
    "fp16": Tolerance(atol=5e-2, rtol=5e-2, max_violations=None, min_cosine=0.999, min_top1=0.995,
                      max_accuracy_drop=0.005),
    "int8": Tolerance(atol=0.25, rtol=0.25, max_violations=None, min_cosine=0.99, min_top1=0.99,
                      max_accuracy_drop=0.01, judge_random=False),
}
# Random weights: near-uniform logits; judge the low precisions on cosine (see the module docstring).
_UNTRAINED = {
    "fp32": _TRAINED["fp32"],
    "fp16": dataclasses.replace(_TRAINED["fp16"], min_top1=None, max_accuracy_drop=None),
    "int8": dataclasses.replace(_TRAINED["int8"], min_top1=None, max_accuracy_drop=None, min_cosine=0.98),
}


def default_tolerance(precision: str, trained: bool = True, atol: float | None = None,
                      rtol: float | None = None) -> Tolerance:
    """The default rule for ``precision``; an explicit ``atol``/``rtol`` also makes the element-wise check binding.

    Raises:
        ConfigError: unknown precision.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision '{precision}'. Valid choices: {', '.join(PRECISIONS)}")
    tol = (_TRAINED if trained else _UNTRAINED)[precision]
    if atol is not None or rtol is not None:
        tol = dataclasses.replace(tol, atol=tol.atol if atol is None else float(atol),
                                  rtol=tol.rtol if rtol is None else float(rtol), max_violations=0.0)
    return tol


@dataclasses.dataclass
class Comparison:
    """One backend × precision × input set against the PyTorch fp32 reference."""

    backend: str
    precision: str
    inputs: str
    metrics: dict[str, Any]
    tolerance: Tolerance
    failures: list[str] = dataclasses.field(default_factory=list)
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __bool__(self) -> bool:
        return not self.failures

    @property
    def name(self) -> str:
        return f"{self.backend}/{self.precision}/{self.inputs}"

    def to_row(self) -> dict[str, Any]:
        row = {"backend": self.backend, "precision": self.precision, "inputs": self.inputs,
               "n": self.metrics.get("n"), "passed": bool(self)}
        row.update({k: self.metrics.get(k, math.nan) for k in METRIC_NAMES})
        row.update(atol=self.tolerance.atol, rtol=self.tolerance.rtol, failures="; ".join(self.failures))
        return row


def compare_outputs(ref, out, tolerance: Tolerance, *, backend: str, precision: str, inputs: str,
                    labels=None, info: dict[str, Any] | None = None) -> Comparison:
    """Measure ``out`` against ``ref`` and judge it with ``tolerance``."""
    from seadeploy.validate.metrics import parity_metrics

    m = parity_metrics(ref, out, labels, atol=tolerance.atol, rtol=tolerance.rtol, sample_scale=tolerance.sample_scale)
    fails = tolerance.failures(m, labelled=labels is not None, inputs=inputs)
    return Comparison(backend, precision, inputs, m, tolerance, fails, dict(info or {}))


@dataclasses.dataclass
class ParityReport:
    """Everything one ``validate`` run measured; truthy when every comparison passed."""

    run_dir: str
    comparisons: list[Comparison]
    reference: dict[str, Any] = dataclasses.field(default_factory=dict)
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    warnings: list[str] = dataclasses.field(default_factory=list)
    layerwise: list[Any] = dataclasses.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.comparisons) and all(self.comparisons)

    @property
    def failures(self) -> list[str]:
        return [f"{c.name}: {f}" for c in self.comparisons for f in c.failures]

    def to_frame(self) -> pd.DataFrame:
        """One row per comparison: backend, precision, inputs, every metric, tolerance, pass/fail."""
        return pd.DataFrame([c.to_row() for c in self.comparisons])

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": 1, "passed": bool(self), "run_dir": self.run_dir, "reference": self.reference,
                "settings": self.settings, "warnings": self.warnings, "failures": self.failures,
                "comparisons": [{**c.to_row(), "tolerance": c.tolerance.to_dict(), "info": c.info}
                                for c in self.comparisons],
                "layerwise": [lw.to_dict() for lw in self.layerwise]}

    def table(self) -> str:
        """A fixed-width text table for terminals and CI logs."""
        if not self.comparisons:
            return "(no comparisons)"
        cols = ["backend", "precision", "inputs", "n", "max_abs", "mean_abs", "max_rel", "cosine", "top1",
                "accuracy", "ref_accuracy", "passed"]
        frame = self.to_frame()[cols].copy()
        for c in ("max_abs", "mean_abs", "max_rel"):
            frame[c] = frame[c].map(lambda v: f"{v:.2e}")
        frame["cosine"] = frame["cosine"].map(lambda v: f"{v:.6f}")
        for c in ("top1", "accuracy", "ref_accuracy"):
            frame[c] = frame[c].map(lambda v: "-" if v != v else f"{v:.2%}")
        frame["passed"] = frame["passed"].map({True: "PASS", False: "FAIL"})
        loose = [i for i, c in enumerate(self.comparisons) if c.inputs == "random" and not c.tolerance.judge_random]
        frame.loc[loose, "passed"] = frame.loc[loose, "passed"] + "*"
        note = ("\n* NaN/Inf checked only: int8 ranges are calibrated on real data, noise inputs leave them"
                if loose else "")
        return frame.to_string(index=False) + note

    def text(self) -> str:
        """The human summary: table, notes, layer-wise findings, failures and the verdict."""
        lines = [f"parity of {self.run_dir} against PyTorch fp32 ({self.reference.get('device', 'cpu')})",
                 self.table()]
        lines += [f"note: {w}" for w in self.warnings]
        lines += [lw.summary() for lw in self.layerwise]
        lines += [f"FAIL {f}" for f in self.failures]
        n_ok = sum(1 for c in self.comparisons if c)
        lines.append(f"{'PASSED' if self else 'FAILED'}: {n_ok}/{len(self.comparisons)} comparisons within tolerance")
        return "\n".join(lines)
