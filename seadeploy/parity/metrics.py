"""Parity metrics of a backend's logits against the reference's (docs/parity.md "Metrics")."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from seadeploy.errors import InputError

INPUT_KINDS = ("random", "data")


METRIC_NAMES = ("max_abs", "mean_abs", "max_rel", "cosine", "cosine_min", "cosine_centered", "top1", "accuracy",
                "ref_accuracy", "violations", "nonfinite", "ref_nonfinite", "float_noise", "float_noise_cosine",
                "float_noise_top1")


EPS = 1e-9  # fractions such as 1 - 198/200 are not exact in binary: 1 % allowed must accept 1 %


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
