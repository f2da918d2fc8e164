"""The one parity system: metrics, rules and verdicts used by export, validate, the CI matrix and compare.

The rules and their reasons are written down once, here and in ``docs/parity.md`` (keep them in step).

**Metrics** (``ref`` = PyTorch fp32 logits, ``out`` = a backend's, both ``(N, classes)``, float64 math):

- ``max_abs`` / ``mean_abs`` = max / mean |out − ref|;
- ``max_rel`` = max |out − ref| / max(|ref|, 1e-6·max|ref|) (the floor keeps near-zero logits from dominating);
- ``cosine`` = mean over samples of cos(out_i, ref_i); ``cosine_min`` = the worst sample;
- ``cosine_centered`` = mean over samples of cos(out_i − m, ref_i − m), m = the reference's mean logit vector over
  the batch: agreement on the input-dependent part of the logits;
- ``top1`` = fraction of samples whose argmax agrees; ``accuracy`` / ``ref_accuracy`` against labels;
- ``violations`` = fraction of elements outside ``atol·s_i + rtol·|ref|`` (numpy ``allclose`` semantics), where
  ``s_i`` = 1, or with ``Rule.scale`` the output scale of sample i, max(1, max_j |ref_ij|);
- ``nonfinite`` / ``ref_nonfinite`` = NaN/Inf counts. Any NaN/Inf makes every other metric NaN and the verdict
  a failure: a NaN is never "close".

**Rules** (:func:`default_rule`; a :class:`Rule` per precision × input kind, overridable from the command line
with ``--atol --rtol --min-cosine --min-top1``). A comparison passes when nothing is NaN/Inf and every bound the
rule sets holds:

================  =============================================  ==============================================
precision         ``data`` (seeded real samples, labelled)       ``random`` (seeded standard-normal inputs)
================  =============================================  ==============================================
fp32              every element within 1e-4·s_i + 1e-4·|ref|,    the same
                  cosine ≥ 0.9999
fp16              cosine ≥ 0.999, top-1 ≥ 99.5 %,                cosine ≥ 0.999
                  accuracy drop ≤ 0.5 %
int8              cosine ≥ 0.99, top-1 ≥ 99 %,                   NaN/Inf only
                  accuracy drop ≤ 1 % (noise floor below)
================  =============================================  ==============================================

Why: fp32 files compute the same function as PyTorch, so they are judged element-wise. The absolute term is
relative to the output's scale (``s_i``) because float32 rounding error grows with the magnitude of the numbers
summed: a random-init ResNet-56 emits logits of 1e4 and ONNX Runtime's reordered sums differ by ~1e-2 there
(2e-7 relative, float32 working as designed), while an absolute 1e-4 would fail it on noise and pass a real bug
on a net whose logits are 1e-3. 1e-4 relative leaves ~100× headroom over the measured float32 error and is far
below what any wrong weight, op or layout produces (≥ 1e-2 relative). fp16 (10-bit mantissa) and int8 change
every logit a little by design, so they are judged on what a user sees: the direction of the logit vector
(cosine), the decision (top-1 agreement with the reference) and accuracy; their element-wise numbers are
reported only. int8 is judged on real samples only: its Q/DQ ranges are calibrated on real data, and noise
drives activations outside them, where clipping is the intended behaviour. Random inputs are never judged on
top-1: noise has no right class and a near-tie flips on the smallest error.

**Noise floors** (fp32, fp16, int8): a precision cannot be held closer to the reference than that precision's own
arithmetic gets on the same model. On a well-conditioned model that is far inside the bounds above and changes
nothing; on an ill-conditioned one (a random deep network whose activations grow block after block, BatchNorm over
near-constant descriptors) it is not. So the reference model is also run, on the first 16 samples of each input
set (:func:`measure_float_noise`), in float64 for fp32 and in float16 for fp16, giving ``float_noise`` (max_i
max_j |approx_ij − exact_ij| / s_i) and ``float_noise_cosine`` (1 − mean cosine). fp32: a sample beyond the plain
element-wise bound gains ``8 · rel_i · s_i`` (rel_i = max(float_noise, that sample's own error, measured on demand:
:meth:`Rule.metrics`) and the cosine floor becomes min(0.9999, 1 − 64 · float_noise_cosine); two float32
implementations differ by about the sum of their errors against the exact result (measured ORT-vs-PyTorch over
PyTorch-vs-float64 per sample: median 1.1-1.6, max 2.6 where the floor matters), 8 leaves headroom, and a cosine
loss grows with the square of a relative error (8² = 64). fp16: the cosine and centred-cosine floors become
min(floor, 1 − 4 · (PyTorch float16's own loss)); see ``FP16_NOISE_COSINE_FACTOR`` for the measured ratios.
int8: the int8 file's scales fake-quantised in PyTorch (:mod:`seadeploy.int8_noise`) give the cosine, centred-cosine
and top-1 losses of int8 rounding itself; those floors become min(floor, 1 − 4 · loss), and a file whose scales do
not fit the model's activation ranges gets none. A wrong weight, op or layout moves a trained model's output far
beyond either floor. Where a floor widens a bound,
export and validate print a note naming the model ill-conditioned in that precision. An explicit ``--atol/--rtol``
(element-wise) or ``--min-cosine`` (cosines) is exact; a model that does not run in float64/float16 gets no floor.

**Untrained models** (random weights, ``trained=False``): near-uniform logits flip top-1 on errors far below
anything that matters, so fp16/int8 are judged on cosine (int8 ≥ 0.98) and top-1/accuracy are reported. Their
logits are dominated by one input-independent vector (a random ResNet-20's logits keep cosine 0.9998 to the
reference when a 3×3 kernel is transposed), so on real samples they are also judged on the centred cosine
(the input-dependent part): fp16 ≥ 0.999, int8 ≥ 0.97. Measured on random ResNet-20-SE (digits, 32 samples):
clean int8 0.987-0.989, fp16 1.0000; a transposed kernel, a conv scaled by 1.1 or an attention fc scaled by 1.5
0.75-0.96.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from seadeploy.cli import finite_float, non_negative_float
from seadeploy.errors import ConfigError, InputError
from seadeploy.runfolder import PRECISIONS

INPUT_KINDS = ("random", "data")
METRIC_NAMES = ("max_abs", "mean_abs", "max_rel", "cosine", "cosine_min", "cosine_centered", "top1", "accuracy",
                "ref_accuracy", "violations", "nonfinite", "ref_nonfinite", "float_noise", "float_noise_cosine",
                "float_noise_top1")
_EPS = 1e-9  # fractions such as 1 - 198/200 are not exact in binary: 1 % allowed must accept 1 %


# ----------------------------------------------------------------------------------------------- metrics
def cosine_per_sample(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` and ``b`` flattened per sample (1.0 when both rows are zero)."""
    a2 = a.reshape(len(a), -1).astype(np.float64)
    b2 = b.reshape(len(b), -1).astype(np.float64)
    na, nb = np.linalg.norm(a2, axis=1), np.linalg.norm(b2, axis=1)
    dot = (a2 * b2).sum(axis=1)
    both_zero = (na == 0) & (nb == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = dot / (na * nb)
    return np.where(both_zero, 1.0, np.nan_to_num(cos, nan=0.0))


def output_scale(ref: np.ndarray) -> np.ndarray:
    """``s_i`` = max(1, max_j |ref_ij|) per sample, shaped to broadcast against ``ref``."""
    r = np.abs(np.asarray(ref, np.float64))
    if r.ndim < 2:
        return np.maximum(1.0, r.max(initial=0.0))
    return np.maximum(1.0, r.reshape(len(r), -1).max(axis=1)).reshape((-1,) + (1,) * (r.ndim - 1))


def exceed_mask(ref: np.ndarray, out: np.ndarray, atol: float, rtol: float, scale: bool = False,
                noise: float | np.ndarray = 0.0) -> np.ndarray:
    """Elements with |out − ref| > atol·s + rtol·|ref| + noise_i·s_i.

    ``s`` = 1, or :func:`output_scale` with ``scale``; ``noise`` is an allowance relative to each sample's output
    scale ``s_i``, one value or one per sample (the noise floor, :meth:`Rule.metrics`).
    """
    r = np.asarray(ref, np.float64)
    diff = np.abs(np.asarray(out, np.float64) - r)
    s = output_scale(r) if scale else 1.0
    bound = atol * s + rtol * np.abs(r)
    if np.any(noise):
        per = np.asarray(noise, np.float64)
        bound = bound + (per.reshape((-1,) + (1,) * (r.ndim - 1)) if per.ndim else per) * output_scale(r)
    return diff > bound


def violation_fraction(ref: np.ndarray, out: np.ndarray, atol: float, rtol: float, scale: bool = False,
                       noise: float | np.ndarray = 0.0) -> float:
    """Fraction of elements outside the bound of :func:`exceed_mask`."""
    mask = exceed_mask(ref, out, atol, rtol, scale, noise)
    return float(np.mean(mask)) if mask.size else 0.0


@dataclasses.dataclass(frozen=True)
class FloatNoise:
    """What a floating-point precision itself does to the reference model on a set of inputs
    (:func:`measure_float_noise`): for ``fp32`` PyTorch float32 against the same model in float64 (the reference's
    own rounding error), for ``fp16`` PyTorch float16 against PyTorch float32 (what float16 arithmetic does to it).

    ``rel`` = max over the samples of max_j |approx_ij − exact_ij| / s_i (``s_i`` = :func:`output_scale` of the
    exact side); ``cosine_loss`` = 1 − mean cos(approx_i, exact_i); ``centered_loss`` the same for the centred
    cosine (NaN for one sample); ``n`` samples measured.
    """

    precision: str
    rel: float
    cosine_loss: float
    centered_loss: float
    n: int
    top1_loss: float = math.nan  # fraction of samples whose argmax changes (measured for int8)


#: the precisions with a noise floor, and the dtype the reference model runs in to measure it
NOISE_DTYPES = {"fp32": torch.float64, "fp16": torch.float16}
#: samples measured up front per input set (the cosine floors), and at most this many more on demand (the samples
#: that exceed the plain element-wise bound, worst first)
NOISE_SAMPLES, NOISE_MAX_ON_DEMAND = 16, 64


class NoiseProbe:
    """What ``precision`` itself does to ``model`` on the inputs ``x`` whose float32 reference outputs are ``ref``.

    ``summary`` (:class:`FloatNoise`) is measured on the first 16 samples when the probe is made (None when the
    model does not run in that dtype, or gives NaN/Inf); :meth:`rel` measures further samples on demand. fp32: the
    model runs in float64, converted in place and back (float32 → float64 → float32 is exact: its weights are
    unchanged afterwards and no second copy is held); fp16: a float16 copy runs. Nothing in torch or onnxruntime
    offers this measurement, hence the hand-written passes.
    """

    def __init__(self, model: torch.nn.Module, x: np.ndarray, ref: np.ndarray, precision: str = "fp32", *,
                 limit: int = NOISE_SAMPLES, batch: int = 8) -> None:
        if precision not in NOISE_DTYPES:
            raise ConfigError(f"no noise floor for {precision}; valid: {', '.join(NOISE_DTYPES)}")
        self.model, self.x, self.precision, self.batch = model, x, precision, int(batch)
        self.ref = np.asarray(ref, np.float64).reshape(len(ref), -1)
        self._rel: dict[int, float] = {}
        self._half: torch.nn.Module | None = None
        self.summary = self._summary(min(int(limit), len(x)))

    def _run(self, idx: np.ndarray) -> np.ndarray | None:
        """The model's outputs on samples ``idx`` in the probe's dtype, as float64; None if it does not run."""
        dtype = NOISE_DTYPES[self.precision]
        param = next(iter(self.model.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")
        was_training = self.model.training
        if dtype == torch.float64:
            net = self.model.eval().double()
        else:
            if self._half is None:
                self._half = copy.deepcopy(self.model).eval().to(dtype)
            net = self._half
        try:
            with torch.no_grad():
                chunks = [net(torch.as_tensor(np.asarray(self.x[c])).to(device, dtype)).float().cpu().numpy()
                          for c in np.array_split(idx, max(1, -(-len(idx) // self.batch)))]
        except (RuntimeError, TypeError, NotImplementedError):
            # the float32 reference already ran these inputs, so what fails here is the dtype: an op without a
            # float64/float16 kernel. Such a model gets no floor (documented), not a crash of the comparison.
            return None
        finally:
            if net is self.model:
                self.model.float().train(was_training)
        ran = np.concatenate(chunks).reshape(len(idx), -1).astype(np.float64)
        return ran if np.isfinite(ran).all() else None

    def _measure(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(approx, exact) for samples ``idx`` (fp32 approximates float64, fp16 approximates float32), their
        per-sample ``rel`` recorded; None when the model does not run in the probe's dtype."""
        ran = self._run(idx) if len(idx) else None
        if ran is None:
            return None
        r32 = self.ref[idx]
        approx, exact = (r32, ran) if self.precision == "fp32" else (ran, r32)
        rel = np.abs(approx - exact).max(axis=1) / output_scale(exact).reshape(-1)
        self._rel.update(zip(idx.tolist(), rel.tolist(), strict=True))
        return approx, exact

    def _summary(self, n: int) -> FloatNoise | None:
        idx = np.arange(n)
        pair = self._measure(idx) if np.isfinite(self.ref[idx]).all() else None
        if pair is None:
            return None
        approx, exact = pair
        rel = np.array([self._rel[i] for i in idx.tolist()])
        mu = exact.mean(axis=0, keepdims=True)
        centered = 1.0 - float(cosine_per_sample(approx - mu, exact - mu).mean()) if n > 1 else math.nan
        return FloatNoise(self.precision, float(rel.max()),
                          max(0.0, 1.0 - float(cosine_per_sample(approx, exact).mean())),
                          max(0.0, centered) if centered == centered else math.nan, n)

    def rel(self, idx: Sequence[int]) -> np.ndarray:
        """Per-sample ``rel`` of samples ``idx`` (in the given order, worst first), measuring at most 64 new ones;
        a sample beyond that gets the largest value measured."""
        if self.summary is None:
            return np.zeros(len(idx))
        self._measure(np.array([i for i in idx if i not in self._rel][:NOISE_MAX_ON_DEMAND], dtype=np.int64))
        worst = max(self._rel.values())
        return np.array([self._rel.get(int(i), worst) for i in idx])


def measure_float_noise(model: torch.nn.Module, x: np.ndarray, ref: np.ndarray, precision: str = "fp32", *,
                        limit: int = NOISE_SAMPLES, batch: int = 8) -> FloatNoise | None:
    """What ``precision`` itself does to ``model`` on the first ``limit`` samples of ``x`` (see :class:`NoiseProbe`);
    None for a precision without a noise floor or a model that does not run in its dtype."""
    if precision not in NOISE_DTYPES:
        return None
    return NoiseProbe(model, x, ref, precision, limit=limit, batch=batch).summary


def parity_metrics(ref: np.ndarray, out: np.ndarray, labels: np.ndarray | None = None, *, atol: float = 1e-4,
                   rtol: float = 1e-4, scale: bool = False) -> dict[str, Any]:
    """Every metric of this module for one output pair (definitions in the module docstring).

    Raises:
        InputError: ``ref`` and ``out`` differ in shape, or ``labels`` do not match the batch.
    """
    ref, out = np.asarray(ref), np.asarray(out)
    if ref.shape != out.shape:
        raise InputError(f"output shape {out.shape} differs from the reference's {ref.shape}; the run folder's files "
                         "belong to different models (re-run export)")
    if labels is not None and len(labels) != len(ref):
        raise InputError(f"{len(labels)} labels for {len(ref)} outputs")
    nonfinite, ref_nonfinite = int((~np.isfinite(out)).sum()), int((~np.isfinite(ref)).sum())
    m: dict[str, Any] = dict.fromkeys(METRIC_NAMES, math.nan)
    m.update(nonfinite=nonfinite, ref_nonfinite=ref_nonfinite, n=len(ref))
    if labels is not None and ref_nonfinite == 0 and ref.ndim == 2:
        m["ref_accuracy"] = float(np.mean(ref.argmax(axis=1) == labels))
    if nonfinite or ref_nonfinite:
        return m
    r, o = ref.astype(np.float64), out.astype(np.float64)
    diff = np.abs(o - r)
    floor = max(1e-6 * float(np.abs(r).max(initial=0.0)), 1e-12)
    cos = cosine_per_sample(o, r)
    mu = r.mean(axis=0, keepdims=True)
    m["cosine_centered"] = float(cosine_per_sample(o - mu, r - mu).mean()) if len(r) > 1 else math.nan
    m.update(max_abs=float(diff.max(initial=0.0)), mean_abs=float(diff.mean()) if diff.size else 0.0,
             max_rel=float((diff / np.maximum(np.abs(r), floor)).max(initial=0.0)),
             cosine=float(cos.mean()), cosine_min=float(cos.min(initial=1.0)),
             violations=violation_fraction(r, o, atol, rtol, scale))
    if ref.ndim == 2:
        m["top1"] = float(np.mean(o.argmax(axis=1) == r.argmax(axis=1)))
        if labels is not None:
            m["accuracy"] = float(np.mean(o.argmax(axis=1) == labels))
    return m


def layer_error(ref: np.ndarray, out: np.ndarray) -> dict[str, float]:
    """Error of one intermediate tensor: max/mean abs, ``rel`` = max_abs / max|ref|, and global cosine."""
    r = np.asarray(ref, dtype=np.float64).ravel()
    o = np.asarray(out, dtype=np.float64).ravel()
    if r.shape != o.shape:
        raise InputError(f"layer tensors differ in size: {o.size} vs reference {r.size}")
    if not np.isfinite(o).all() or not np.isfinite(r).all():
        return {"max_abs": math.nan, "mean_abs": math.nan, "rel": math.nan, "cosine": math.nan,
                "nonfinite": int((~np.isfinite(o)).sum() + (~np.isfinite(r)).sum())}
    diff = np.abs(o - r)
    s = float(np.abs(r).max(initial=0.0))
    max_abs = float(diff.max(initial=0.0))
    return {"max_abs": max_abs, "mean_abs": float(diff.mean()) if diff.size else 0.0,
            "rel": max_abs / s if s > 0 else (0.0 if max_abs == 0 else math.inf),
            "cosine": float(cosine_per_sample(o[None], r[None])[0]), "nonfinite": 0}


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
        if self.max_violations is not None and not m["violations"] <= self.max_violations + _EPS:
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
        if labelled and top1 is not None and not m["top1"] >= top1 - _EPS:
            out.append(f"top-1 agreement {m['top1']:.2%} < {top1:.2%}")
        drop = m["ref_accuracy"] - m["accuracy"]
        if labelled and self.max_accuracy_drop is not None and not drop <= self.max_accuracy_drop + _EPS:
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
#: int8 (``seadeploy/int8_noise.py``: the file's scales fake-quantised in PyTorch): see docs/parity.md for the ratios
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


def add_rule_args(parser: Any) -> None:
    """``--atol --rtol --min-cosine --min-top1`` (Polygraphy-style bounds that replace the documented defaults)."""
    parser.add_argument("--atol", type=non_negative_float, default=None,
                        help="absolute tolerance, times each sample's output scale: |out-ref| <= atol*max(1,max|ref_i|) "
                             "+ rtol*|ref| (makes the element-wise check binding at every precision)")
    parser.add_argument("--rtol", type=non_negative_float, default=None, help="relative tolerance (see --atol)")
    parser.add_argument("--min-cosine", type=finite_float, default=None, help="per-sample cosine floor (mean over samples)")
    parser.add_argument("--min-top1", type=finite_float, default=None, help="top-1 agreement floor on labelled samples (0-1)")


def any_rule_args(args: Any) -> bool:
    """Whether any :func:`add_rule_args` flag was given."""
    return any(getattr(args, k, None) is not None for k in ("atol", "rtol", "min_cosine", "min_top1"))


def is_trained(metrics: Mapping[str, Any] | None) -> bool:
    """Whether checkpoint metrics record training (an epoch or a test accuracy): random weights get the untrained rules.
    An explicit ``trained`` entry decides (``compare --epochs 0`` records the test accuracy of weights it did not
    train: random initialisation unless --weights)."""
    metrics = metrics or {}
    if "trained" in metrics:
        return bool(metrics["trained"])
    return any(k in metrics for k in ("epoch", "top1", "test_top1", "accuracy", "best_top1"))


def rules_from_args(args: Any, trained: bool | None = None) -> RuleSet:
    """The :class:`RuleSet` of parsed :func:`add_rule_args` flags."""
    rs = RuleSet(trained=trained, atol=args.atol, rtol=args.rtol, min_cosine=args.min_cosine, min_top1=args.min_top1)
    rs.rule("fp32", "data")  # validates the values (ConfigError, exit 2)
    return rs


# ------------------------------------------------------------------------------------------------ verdicts
@dataclasses.dataclass
class Comparison:
    """The verdict of one backend × precision × input kind against the reference; truthy when it passed."""

    backend: str
    precision: str
    inputs: str
    metrics: dict[str, Any]
    rule: Rule
    failures: list[str] = dataclasses.field(default_factory=list)
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __bool__(self) -> bool:
        return not self.failures

    @property
    def name(self) -> str:
        return f"{self.backend}/{self.precision}/{self.inputs}"

    def detail(self) -> str:
        """One line for logs and ``manifest.json`` checks."""
        m = self.metrics
        head = (f"{self.rule.describe()} on {m.get('n')} {self.inputs} samples: max_abs {m['max_abs']:.3g}, "
                f"cosine {m['cosine']:.6f}, top-1 {m['top1']:.4f}")
        noise = m.get("float_noise", math.nan)
        if noise == noise:
            head += f", {self.precision} noise of the model {noise:.2g}"
        return head + ("" if self else "; FAIL " + "; ".join(self.failures))

    def to_row(self) -> dict[str, Any]:
        row = {"backend": self.backend, "precision": self.precision, "inputs": self.inputs,
               "n": self.metrics.get("n"), "passed": bool(self)}
        row.update({k: self.metrics.get(k, math.nan) for k in METRIC_NAMES})
        row.update(atol=self.rule.atol, rtol=self.rule.rtol, rule=self.rule.describe(),
                   failures="; ".join(self.failures))
        return row

    def to_dict(self) -> dict[str, Any]:
        return {**self.to_row(), "tolerance": self.rule.to_dict(), "info": self.info}

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self.to_row()])


def compare(ref: np.ndarray, out: np.ndarray, rule: Rule, *, backend: str, precision: str, inputs: str,
            labels: np.ndarray | None = None, info: dict[str, Any] | None = None,
            noise: NoiseProbe | FloatNoise | None = None) -> Comparison:
    """Measure ``out`` against ``ref`` and judge it with ``rule`` (``noise``: what the comparison's precision
    itself does to the reference model, :meth:`Rule.metrics`)."""
    m = rule.metrics(ref, out, labels, noise)
    return Comparison(backend, precision, inputs, m, rule, rule.failures(m, labelled=labels is not None),
                      dict(info or {}))


@dataclasses.dataclass
class Verdicts:
    """Several comparisons (one file, or one run); truthy when there is at least one and every one passed."""

    comparisons: list[Comparison] = dataclasses.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.comparisons) and all(self.comparisons)

    @property
    def failures(self) -> list[str]:
        return [f"{c.name}: {f}" for c in self.comparisons for f in c.failures]

    def to_frame(self) -> pd.DataFrame:
        """One row per comparison: backend, precision, inputs, every metric, the rule and pass/fail."""
        return pd.DataFrame([c.to_row() for c in self.comparisons])


# ------------------------------------------------------------------------------------------------ inference
def infer_batches(backend: Any, x: np.ndarray, batch: int = 32, progress: bool = False, desc: str = "") -> np.ndarray:
    """Run ``x`` through ``backend`` in chunks of ``batch`` (memory bounded by ``batch``, not ``len(x)``).

    ``batch`` may be a static batch: the last chunk is then padded to it and the padding dropped.
    """
    name = next(iter(backend.input_specs))
    out_name = backend.output_names[0]
    step = max(1, int(batch))
    starts: Sequence[int] = range(0, len(x), step)
    if progress and len(starts) > 1:
        starts = tqdm(starts, desc=desc or "inference", unit="batch", leave=False)
    static = backend.input_specs[name].shape[0]
    parts = []
    for i in starts:
        chunk = x[i:i + step]
        if isinstance(static, int) and static > 0 and len(chunk) != static:
            pad = np.concatenate([chunk, np.repeat(chunk[-1:], static - len(chunk), axis=0)])
            parts.append(backend.infer({name: pad})[out_name][:len(chunk)])
        else:
            parts.append(backend.infer({name: chunk})[out_name])
    return np.concatenate(parts, axis=0)


def compare_backend(backend: Any, refs: Mapping[str, np.ndarray], sets: Mapping[str, tuple[np.ndarray, Any]],
                    rule: Callable[[str], Rule], *, name: str, precision: str, batch: int = 32,
                    progress: bool = False, keep: dict[str, np.ndarray] | None = None,
                    noise: Mapping[str, NoiseProbe | None] | None = None) -> list[Comparison]:
    """Run every input set through ``backend`` (batched) and judge it against ``refs[kind]`` with ``rule(kind)``.

    ``keep``, when given, receives the outputs as ``{kind: out}`` (validate saves them in parity.npz); ``noise``
    maps an input kind to what ``precision`` itself does to the reference model (:func:`reference_noise`).
    """
    out = []
    for kind, (x, y) in sets.items():
        got = infer_batches(backend, x, batch, progress, desc=f"{name} {precision} {kind}")
        if keep is not None:
            keep[kind] = got
        out.append(compare(refs[kind], got, rule(kind), backend=name, precision=precision, inputs=kind, labels=y,
                           info=dict(getattr(backend, "info", {}) or {}), noise=(noise or {}).get(kind)))
    return out


def reference_noise(model: torch.nn.Module, refs: Mapping[str, np.ndarray], sets: Mapping[str, tuple[np.ndarray, Any]],
                    precisions: Sequence[str]) -> dict[str, dict[str, NoiseProbe]]:
    """A :class:`NoiseProbe` of ``model`` for every precision with a noise floor (fp32, fp16) among ``precisions``,
    on every input set: ``{precision: {kind: probe}}``."""
    return {p: {kind: NoiseProbe(model, x, refs[kind], p) for kind, (x, _) in sets.items()}
            for p in precisions if p in NOISE_DTYPES}


_NOISE_SOURCE = {"fp32": "PyTorch float32 against float64", "fp16": "PyTorch float16 against float32",
                 "int8": "PyTorch with the int8 file's scales fake-quantised, against float32"}


def noise_notes(comparisons: Sequence[Comparison]) -> list[str]:
    """One note per precision × input kind where a noise floor widened a bound beyond the documented one."""
    notes, seen = [], set()
    for c in comparisons:
        m, r = c.metrics, c.rule
        rel = m.get("float_noise", math.nan)
        if (c.precision, c.inputs) in seen or rel is None or math.isnan(rel):
            continue
        widened = [f"element-wise to {r.noise_factor:g}× {rel:.2g} of the output scale"] \
            if r.noise_factor is not None and r.max_violations is not None and r.noise_factor * rel > r.atol else []
        for name, bound, floor in (("cosine", r.min_cosine, r.cosine_floor(m)),
                                   ("centred cosine", r.min_cosine_centered, r.centered_floor(m))):
            if bound is not None and floor is not None and floor < bound:
                widened.append(f"{name} to ≥ {floor:.6g}")
        if r.min_top1 is not None and (top1 := r.top1_floor(m)) is not None and top1 < r.min_top1:
            widened.append(f"top-1 agreement to ≥ {top1:.2%}")
        if widened:
            seen.add((c.precision, c.inputs))
            notes.append(f"{c.precision}/{c.inputs}: the model is ill-conditioned in {c.precision} on these inputs "
                         f"({_NOISE_SOURCE.get(c.precision, c.precision)}: {rel:.2g} of the output scale, cosine loss "
                         f"{m.get('float_noise_cosine', math.nan):.2g}), so the bounds widen: {'; '.join(widened)} "
                         "(docs/parity.md, noise floors)")
    return notes
