"""The study: what does tiled vs global squeeze cost and buy here?

For every attention variant: train -> export (fp32 + fp16 + int8) -> validate (parity) -> profile (latency, per-layer,
dataflow buffers, streaming pipeline), then one combined report (``report.html``, ``report.md``, ``summary.csv``,
``summary.json``) in ``--out``::

    python -m seadeploy.compare                                   # small default on digits, a few minutes
    python -m seadeploy.compare --model resnet20_cifar --attn none,se,tse --epochs 5 --out runs/study \\
        --attn-arg tse:tile=4 --batch 1,8,32

* :mod:`~seadeploy.compare.options` — the variants and every option, checked before the first stage;
* :mod:`~seadeploy.compare.stages` — one adapter per stage (the library functions the stage commands call);
* :mod:`~seadeploy.compare.engine` — the stage engine: every variant through every stage, failures recorded;
* :mod:`~seadeploy.compare.summary` — ``summary.json`` / ``summary.csv`` and the text summary;
* ``python -m seadeploy.compare`` (``__main__``) — the command line.
"""

from seadeploy.compare.engine import run_compare, run_variant
from seadeploy.compare.options import STAGES, CompareOptions, Variant
from seadeploy.compare.stages import NEEDS, STAGE_FNS, PartialStage, StageWarning, study_int8_target

__all__ = ["CompareOptions", "NEEDS", "PartialStage", "STAGES", "STAGE_FNS", "StageWarning", "Variant", "run_compare", "run_variant", "study_int8_target"]
