"""The one parity system: metrics, noise floors, rules and verdicts used by export, validate, the CI matrix and compare.

The rules and their reasons are written down once, in ``docs/parity.md``:

* :mod:`~seadeploy.parity.metrics` — the numbers (max abs/rel, allclose violations relative to each sample's output
  scale, per-sample and centred cosine, top-1 agreement, accuracy);
* :mod:`~seadeploy.parity.noise` — what float32/float16 arithmetic itself does to the reference model (noise floors);
* :mod:`~seadeploy.parity.rules` — a :class:`Rule` per precision x input kind and :class:`RuleSet` (command-line
  overrides, trained vs random weights);
* :mod:`~seadeploy.parity.verdicts` — :class:`Comparison` / :class:`Verdicts` and running a backend over input sets;
* :mod:`~seadeploy.parity.int8` — what int8 rounding itself does: the int8 file's scales fake-quantised in PyTorch.

The command-line overrides (``--atol --rtol --min-cosine --min-top1``) are parsed in :mod:`seadeploy.cli`.
"""

from seadeploy.parity.metrics import (
    EPS,
    INPUT_KINDS,
    METRIC_NAMES,
    cosine_per_sample,
    exceed_mask,
    layer_error,
    output_scale,
    parity_metrics,
    violation_fraction,
)
from seadeploy.parity.noise import (
    NOISE_DTYPES,
    NOISE_MAX_ON_DEMAND,
    NOISE_SAMPLES,
    FloatNoise,
    NoiseProbe,
    measure_float_noise,
    reference_noise,
)
from seadeploy.parity.rules import (
    FP16_NOISE_COSINE_FACTOR,
    FP32_NOISE_COSINE_FACTOR,
    FP32_NOISE_FACTOR,
    INT8_NOISE_COSINE_FACTOR,
    INT8_NOISE_TOP1_FACTOR,
    Rule,
    RuleSet,
    check_precision,
    default_rule,
    is_trained,
)
from seadeploy.parity.verdicts import Comparison, Verdicts, compare, compare_backend, infer_batches, noise_notes

__all__ = ["Comparison", "EPS", "FP16_NOISE_COSINE_FACTOR", "FP32_NOISE_COSINE_FACTOR", "FP32_NOISE_FACTOR", "FloatNoise", "INPUT_KINDS", "INT8_NOISE_COSINE_FACTOR", "INT8_NOISE_TOP1_FACTOR", "METRIC_NAMES", "NOISE_DTYPES", "NOISE_MAX_ON_DEMAND", "NOISE_SAMPLES", "NoiseProbe", "Rule", "RuleSet", "Verdicts", "check_precision", "compare", "compare_backend", "cosine_per_sample", "default_rule", "exceed_mask", "infer_batches", "is_trained", "layer_error", "measure_float_noise", "noise_notes", "output_scale", "parity_metrics", "reference_noise", "violation_fraction"]
