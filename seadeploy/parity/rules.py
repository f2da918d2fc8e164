"""The rules per precision x input kind and their overrides (docs/parity.md "Rules")."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from seadeploy.errors import ConfigError
from seadeploy.parity.metrics import EPS, INPUT_KINDS, exceed_mask, output_scale, parity_metrics, violation_fraction
from seadeploy.parity.noise import FloatNoise, NoiseProbe
from seadeploy.runfolder import PRECISIONS


# -------------------------------------------------------------------------------------------------- rules
@dataclasses.dataclass(frozen=True)
class Rule:
    """Pass/fail rule of one comparison; ``None`` bounds are reported, not judged (see the module docstring)."""

    atol: float = 1e-4
    rtol: float = 1e-4
    scale: bool = True
    max_violations: float | None = 0.0
    min_cosine: float | None = None
    min_top1: float | None = None
    max_accuracy_drop: float | None = None
    min_cosine_centered: float | None = None
    #: noise floor (:class:`FloatNoise`, module docstring "noise floors"; None: none): the element-wise bound gains
    #: ``noise_factor · rel · s_i``; the cosine and centred-cosine floors are lowered to 1 − noise_cosine_factor ·
    #: (the precision's own cosine loss on the reference model) where that is lower
    noise_factor: float | None = None
    noise_cosine_factor: float | None = None
    #: int8: the top-1 floor is lowered to 1 − noise_top1_factor · (the simulated int8 model's top-1 disagreement)
    noise_top1_factor: float | None = None

    def __post_init__(self) -> None:
        for key in ("atol", "rtol"):
            value = getattr(self, key)
            if not (isinstance(value, int | float) and value >= 0 and math.isfinite(value)):
                raise ConfigError(f"{key} must be a finite number ≥ 0, got {value}")
        for key in ("min_cosine", "min_top1"):
            value = getattr(self, key)
            if value is not None and not (isinstance(value, int | float) and -1.0 <= value <= 1.0):
                raise ConfigError(f"{key.replace('_', '-')} must be within [-1, 1], got {value}")

    @property
    def nan_only(self) -> bool:
        """Whether this rule checks nothing but NaN/Inf (int8 on random inputs)."""
        return self.max_violations is None and self.min_cosine is None and self.min_top1 is None \
            and self.max_accuracy_drop is None and self.min_cosine_centered is None

    def metrics(self, ref: np.ndarray, out: np.ndarray, labels: np.ndarray | None = None,
                noise: NoiseProbe | FloatNoise | None = None) -> dict[str, Any]:
        """:func:`parity_metrics` under this rule, with the noise floor of ``noise`` (the comparison's precision on
        the reference model; module docstring, "noise floors").

        The summary is recorded as ``float_noise`` / ``float_noise_cosine`` / ``float_noise_centered``. With a
        ``noise_factor``, each sample that exceeds the plain element-wise bound is allowed ``noise_factor ·
        rel_i · s_i`` more, ``rel_i`` = max(the summary's ``rel``, that sample's own noise, which a
        :class:`NoiseProbe` measures on demand): the summary is the model's noise level (one sample's own error
        is a noisy estimate of it: it can be near 0 by chance), and a sample worse than the level gets its own.
        ``float_noise`` is then the largest ``rel_i`` used.
        """
        m = parity_metrics(ref, out, labels, atol=self.atol, rtol=self.rtol, scale=self.scale)
        summary = getattr(noise, "summary", noise)  # a probe (NoiseProbe, int8_noise.Int8Probe) or its FloatNoise
        if summary is None:
            return m
        m.update(float_noise=summary.rel, float_noise_cosine=summary.cosine_loss,
                 float_noise_centered=summary.centered_loss, float_noise_top1=summary.top1_loss)
        if self.noise_factor is None or not m["violations"] > 0:  # NaN (non-finite outputs) or nothing to excuse
            return m
        r, o = np.asarray(ref, np.float64), np.asarray(out, np.float64)
        mask = exceed_mask(r, o, self.atol, self.rtol, self.scale).reshape(len(r), -1)
        excess = np.where(mask, np.abs(o - r).reshape(len(r), -1), 0.0).max(axis=1) / output_scale(r).reshape(-1)
        rows = [int(i) for i in np.argsort(-excess) if mask[i].any()]  # worst first
        per = np.zeros(len(r))
        per[rows] = np.maximum(summary.rel, noise.rel(rows)) if isinstance(noise, NoiseProbe) else summary.rel
        m["violations"] = violation_fraction(r, o, self.atol, self.rtol, self.scale, self.noise_factor * per)
        m["float_noise"] = max(summary.rel, float(per.max()))
        return m

    def _floor(self, bound: float | None, loss: Any) -> float | None:
        if bound is None or self.noise_cosine_factor is None or loss is None or math.isnan(loss):
            return bound
        return min(bound, 1.0 - self.noise_cosine_factor * loss)

    def cosine_floor(self, m: Mapping[str, Any]) -> float | None:
        """``min_cosine`` under the noise floor (see ``noise_cosine_factor``)."""
        return self._floor(self.min_cosine, m.get("float_noise_cosine"))

    def centered_floor(self, m: Mapping[str, Any]) -> float | None:
        """``min_cosine_centered`` under the noise floor (see ``noise_cosine_factor``)."""
        return self._floor(self.min_cosine_centered, m.get("float_noise_centered"))

    def top1_floor(self, m: Mapping[str, Any]) -> float | None:
        """``min_top1`` under the int8 noise floor (see ``noise_top1_factor``)."""
        loss = m.get("float_noise_top1")
        if self.min_top1 is None or self.noise_top1_factor is None or loss is None or math.isnan(loss):
            return self.min_top1
        return min(self.min_top1, 1.0 - self.noise_top1_factor * loss)

    def failures(self, m: Mapping[str, Any], labelled: bool) -> list[str]:
        """Reasons ``m`` (from :func:`parity_metrics`) fails this rule; empty = pass."""
        if m.get("ref_nonfinite"):
            return [f"the PyTorch reference produced {m['ref_nonfinite']} NaN/Inf values"]
        if m.get("nonfinite"):
            return [f"{m['nonfinite']} NaN/Inf values in the output"]
        out = []
        if self.max_violations is not None and not m["violations"] <= self.max_violations + EPS:
            a = f"atol {self.atol:g}" + ("·max(1, max|ref_i|)" if self.scale else "")
            noise = m.get("float_noise", math.nan)
            if self.noise_factor is not None and noise == noise:
                a += f" + {self.noise_factor:g}× float noise {noise:.2g}·max(1, max|ref_i|)"
            out.append(f"{m['violations']:.2%} of elements exceed {a} + rtol {self.rtol:g}·|ref| "
                       f"(max abs {m['max_abs']:.3g}, allowed {self.max_violations:.2%})")
        floor = self.cosine_floor(m)
        if floor is not None and not m["cosine"] >= floor:
            out.append(f"cosine {m['cosine']:.6f} < {floor:.6g}")
        centered, cfloor = m.get("cosine_centered", math.nan), self.centered_floor(m)
        if cfloor is not None and centered == centered and not centered >= cfloor:
            out.append(f"input-dependent (centred) cosine {centered:.4f} < {cfloor:.6g}")
        top1 = self.top1_floor(m)
        if labelled and top1 is not None and not m["top1"] >= top1 - EPS:
            out.append(f"top-1 agreement {m['top1']:.2%} < {top1:.2%}")
        drop = m["ref_accuracy"] - m["accuracy"]
        if labelled and self.max_accuracy_drop is not None and not drop <= self.max_accuracy_drop + EPS:
            out.append(f"accuracy {m['accuracy']:.2%} vs reference {m['ref_accuracy']:.2%} "
                       f"(drop {drop:.2%} > {self.max_accuracy_drop:.2%})")
        return out

    def describe(self) -> str:
        """One line: what this rule judges."""
        if self.nan_only:
            return "NaN/Inf only"
        parts = []
        if self.max_violations is not None:
            a = f"{self.atol:g}·max(1,max|ref_i|)" if self.scale else f"{self.atol:g}"
            noise = f" + {self.noise_factor:g}×float noise" if self.noise_factor is not None else ""
            parts.append(f"|out-ref| <= {a} + {self.rtol:g}·|ref|{noise}")
        if self.min_cosine is not None:
            parts.append(f"cosine >= {self.min_cosine:g}")
        if self.min_cosine_centered is not None:
            parts.append(f"centred cosine >= {self.min_cosine_centered:g}")
        if self.min_top1 is not None:
            parts.append(f"top-1 >= {self.min_top1:.2%}")
        if self.max_accuracy_drop is not None:
            parts.append(f"accuracy drop <= {self.max_accuracy_drop:.2%}")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def override(self, atol: float | None = None, rtol: float | None = None, min_cosine: float | None = None,
                 min_top1: float | None = None) -> Rule:
        """This rule with command-line bounds; an explicit ``atol``/``rtol`` makes the element-wise check binding. An
        explicit ``atol``/``rtol`` is exact (no element-wise noise floor), an explicit ``min_cosine`` likewise (no
        cosine noise floor)."""
        kw: dict[str, Any] = {}
        if atol is not None or rtol is not None:
            kw.update(atol=self.atol if atol is None else float(atol), rtol=self.rtol if rtol is None else float(rtol),
                      max_violations=0.0, noise_factor=None)
        if min_cosine is not None:
            kw.update(min_cosine=float(min_cosine), noise_cosine_factor=None)
        if min_top1 is not None:
            kw.update(min_top1=float(min_top1), noise_top1_factor=None)
        return dataclasses.replace(self, **kw) if kw else self


#: The noise floors' factors (module docstring, "noise floors"). fp32: two float32 implementations of one function
#: differ by up to ~2.5× the reference's own error against float64 (measured); 8× leaves headroom for the worst
#: sample, and a cosine loss grows with the square of a relative error (8² = 64). fp16: ONNX Runtime's fp16 files
#: lose 0.11-1.87× the cosine that PyTorch float16 loses on the same model (all 42 fp16 comparisons of the CI
#: matrix, ``seadeploy validate matrix --out DIR``: (1 − cosine) / float_noise_cosine in DIR/matrix.csv; the 1.87 is
#: random-weight EfficientNet-B0-SB on digits, the next 1.20); 4× leaves 2× headroom over the worst.
FP32_NOISE_FACTOR, FP32_NOISE_COSINE_FACTOR, FP16_NOISE_COSINE_FACTOR = 8.0, 64.0, 4.0


#: int8 (``seadeploy/parity/int8.py``: the file's scales fake-quantised in PyTorch): see docs/parity.md for the ratios
INT8_NOISE_COSINE_FACTOR, INT8_NOISE_TOP1_FACTOR = 4.0, 4.0


_FP32 = Rule(atol=1e-4, rtol=1e-4, scale=True, max_violations=0.0, min_cosine=0.9999, noise_factor=FP32_NOISE_FACTOR,
             noise_cosine_factor=FP32_NOISE_COSINE_FACTOR)


_LOW = {"max_violations": None, "scale": True}


_FP16 = {**_LOW, "noise_cosine_factor": FP16_NOISE_COSINE_FACTOR}


_INT8 = {**_LOW, "noise_cosine_factor": INT8_NOISE_COSINE_FACTOR, "noise_top1_factor": INT8_NOISE_TOP1_FACTOR}


_RULES: dict[tuple[str, str], Rule] = {
    ("fp32", "data"): _FP32,
    ("fp32", "random"): _FP32,
    ("fp16", "data"): Rule(5e-2, 5e-2, **_FP16, min_cosine=0.999, min_top1=0.995, max_accuracy_drop=0.005),
    ("fp16", "random"): Rule(5e-2, 5e-2, **_FP16, min_cosine=0.999),
    ("int8", "data"): Rule(0.25, 0.25, **_INT8, min_cosine=0.99, min_top1=0.99, max_accuracy_drop=0.01),
    ("int8", "random"): Rule(0.25, 0.25, **_LOW),
}


#: Random weights: near-uniform logits flip top-1 on harmless errors; cosine floors only (module docstring).
_UNTRAINED_INT8_COSINE = 0.98


#: Random weights: centred-cosine floors on real samples (module docstring, docs/parity.md).
_UNTRAINED_CENTERED = {"fp16": 0.999, "int8": 0.97}


def check_precision(precision: str) -> None:
    """Raise ``ConfigError`` for a precision other than fp32/fp16/int8."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision '{precision}'. Valid choices: {', '.join(PRECISIONS)}")


def default_rule(precision: str, inputs: str = "data", trained: bool = True) -> Rule:
    """The documented rule for ``precision`` on ``inputs`` (``data``/``random``) of a trained or random-weight model.

    Raises:
        ConfigError: unknown precision or input kind.
    """
    check_precision(precision)
    if inputs not in INPUT_KINDS:
        raise ConfigError(f"unknown input kind '{inputs}'. Valid choices: {', '.join(INPUT_KINDS)}")
    rule = _RULES[precision, inputs]
    if not trained and precision != "fp32":
        rule = dataclasses.replace(rule, min_top1=None, max_accuracy_drop=None)
        if inputs == "data":
            rule = dataclasses.replace(rule, min_cosine_centered=_UNTRAINED_CENTERED[precision])
        if precision == "int8" and inputs == "data":
            rule = dataclasses.replace(rule, min_cosine=_UNTRAINED_INT8_COSINE)
    return rule


@dataclasses.dataclass(frozen=True)
class RuleSet:
    """How every comparison of a run is judged: the defaults for the model, command-line bounds, per-precision overrides.

    ``overrides`` maps a precision to a rule replacing the default on every input kind it judges (the CI matrix sets
    per-family int8 floors this way); ``atol``/``rtol``/``min_cosine``/``min_top1`` come from the command line.
    """

    trained: bool | None = None  # None: decided by the model (see :func:`is_trained`)
    atol: float | None = None
    rtol: float | None = None
    min_cosine: float | None = None
    min_top1: float | None = None
    overrides: Mapping[str, Rule] = dataclasses.field(default_factory=dict)

    def for_model(self, trained: bool) -> RuleSet:
        """These rules with ``trained`` filled in when the command line left it open."""
        return self if self.trained is not None else dataclasses.replace(self, trained=bool(trained))

    def rule(self, precision: str, inputs: str, tf32: bool = False) -> Rule:
        """The rule for one comparison; ``tf32``: the backend ran fp32 with TF32 (judged like fp16 unless overridden)."""
        if precision in self.overrides:
            base = self.overrides[precision]
            if inputs == "random" and precision == "int8":
                base = default_rule("int8", "random", self.trained is not False)  # calibrated ranges: noise is checked for NaN only
        elif tf32 and precision == "fp32" and self.atol is None and self.rtol is None:
            base = default_rule("fp16", inputs, self.trained is not False)  # TF32 keeps fp16's 10-bit mantissa
        else:
            base = default_rule(precision, inputs, self.trained is not False)
        return base.override(self.atol, self.rtol, self.min_cosine, self.min_top1)

    def to_dict(self) -> dict[str, Any]:
        return {"trained": self.trained, "atol": self.atol, "rtol": self.rtol, "min_cosine": self.min_cosine,
                "min_top1": self.min_top1, "overrides": {k: v.to_dict() for k, v in self.overrides.items()}}


def is_trained(metrics: Mapping[str, Any] | None) -> bool:
    """Whether checkpoint metrics record training (an epoch or a test accuracy): random weights get the untrained rules.
    An explicit ``trained`` entry decides (``compare --epochs 0`` records the test accuracy of weights it did not
    train: random initialisation unless --weights)."""
    metrics = metrics or {}
    if "trained" in metrics:
        return bool(metrics["trained"])
    return any(k in metrics for k in ("epoch", "top1", "test_top1", "accuracy", "best_top1"))
