"""Parity metrics between a reference output and a backend's output (numpy, float64 math).

Definitions (``ref`` = PyTorch fp32, ``out`` = the backend, both ``(N, classes)`` logits):

- ``max_abs`` = max |out − ref|;  ``mean_abs`` = mean |out − ref|.
- ``max_rel`` = max |out − ref| / max(|ref|, 1e-6 · max|ref|) (the floor keeps near-zero logits from
  dominating; Polygraphy and numpy divide by |ref| alone, which is infinite at ref = 0).
- ``cosine`` = mean over samples of cos(out_i, ref_i); ``cosine_min`` = the worst sample.
- ``top1`` = fraction of samples whose argmax agrees; ``accuracy`` / ``ref_accuracy`` vs labels.
- ``violations`` = fraction of elements with |out − ref| > atol + rtol·|ref| (numpy.allclose semantics);
  with ``sample_scale=True`` the atol term becomes atol·max(1, max|ref_i|) for sample i, i.e. an absolute
  tolerance relative to that sample's largest logit (float32 error grows with the magnitudes summed).
- ``nonfinite`` = count of NaN/Inf in ``out`` (``ref_nonfinite`` in ``ref``). Any non-finite value makes
  every other metric NaN: a NaN is never "close".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from seadeploy.errors import InputError

METRIC_NAMES = ("max_abs", "mean_abs", "max_rel", "cosine", "cosine_min", "top1", "accuracy", "ref_accuracy",
                "violations", "nonfinite", "ref_nonfinite")


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


def violation_fraction(ref: np.ndarray, out: np.ndarray, atol: float, rtol: float, sample_scale: bool = False) -> float:
    """Fraction of elements with |out − ref| > atol·s + rtol·|ref| (s = 1, or max(1, max|ref_i|) per sample)."""
    r = ref.astype(np.float64)
    diff = np.abs(out.astype(np.float64) - r)
    scale = 1.0
    if sample_scale and r.ndim > 1:
        scale = np.maximum(1.0, np.abs(r).reshape(len(r), -1).max(axis=1)).reshape((-1,) + (1,) * (r.ndim - 1))
    return float(np.mean(diff > atol * scale + rtol * np.abs(r)))


def parity_metrics(ref: np.ndarray, out: np.ndarray, labels: np.ndarray | None = None,
                   atol: float = 1e-4, rtol: float = 1e-4, sample_scale: bool = False) -> dict[str, Any]:
    """Every metric of this module for one output pair (see the module docstring for definitions).

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
    if labels is not None and ref_nonfinite == 0:
        m["ref_accuracy"] = float(np.mean(ref.argmax(axis=1) == labels)) if ref.ndim == 2 else math.nan
    if nonfinite or ref_nonfinite:
        return m
    r, o = ref.astype(np.float64), out.astype(np.float64)
    diff = np.abs(o - r)
    floor = max(1e-6 * float(np.abs(r).max(initial=0.0)), 1e-12)
    cos = cosine_per_sample(o, r)
    m.update(max_abs=float(diff.max(initial=0.0)), mean_abs=float(diff.mean()) if diff.size else 0.0,
             max_rel=float((diff / np.maximum(np.abs(r), floor)).max(initial=0.0)),
             cosine=float(cos.mean()), cosine_min=float(cos.min()),
             violations=violation_fraction(r, o, atol, rtol, sample_scale))
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
    scale = float(np.abs(r).max(initial=0.0))
    max_abs = float(diff.max(initial=0.0))
    return {"max_abs": max_abs, "mean_abs": float(diff.mean()) if diff.size else 0.0,
            "rel": max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else math.inf),
            "cosine": float(cosine_per_sample(o[None], r[None])[0]), "nonfinite": 0}
