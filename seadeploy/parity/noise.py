"""Noise floors: what float32 / float16 arithmetic itself does to the reference model, measured in PyTorch
(docs/parity.md "Noise floors")."""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from seadeploy.errors import ConfigError
from seadeploy.parity.metrics import cosine_per_sample, output_scale


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


def reference_noise(model: torch.nn.Module, refs: Mapping[str, np.ndarray], sets: Mapping[str, tuple[np.ndarray, Any]],
                    precisions: Sequence[str]) -> dict[str, dict[str, NoiseProbe]]:
    """A :class:`NoiseProbe` of ``model`` for every precision with a noise floor (fp32, fp16) among ``precisions``,
    on every input set: ``{precision: {kind: probe}}``."""
    return {p: {kind: NoiseProbe(model, x, refs[kind], p) for kind, (x, _) in sets.items()}
            for p in precisions if p in NOISE_DTYPES}
