"""Parity validation: every backend × precision of a run folder against PyTorch fp32.

``validate_run(run_dir, backends=("ort",), ...)`` returns a :class:`ParityReport` (truthy when every
comparison passed, judged by :mod:`seadeploy.parity`) and writes ``parity.json|csv|npz``; ``run_matrix`` is the CI numerics gate. The command
line is ``python -m seadeploy.validate RUN_DIR`` / ``python -m seadeploy.validate matrix``.
"""

from seadeploy.parity import Comparison, Rule, RuleSet, default_rule
from seadeploy.validate.judge import validate_run
from seadeploy.validate.report import ParityReport

__all__ = ["Comparison", "ParityReport", "Rule", "RuleSet", "default_rule", "validate_run"]
