"""Verdicts: one comparison per backend x precision x input kind, and running a backend over input sets."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from seadeploy.parity.metrics import METRIC_NAMES
from seadeploy.parity.noise import FloatNoise, NoiseProbe
from seadeploy.parity.rules import Rule


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
