"""Parity validation: every backend × precision of a run folder against PyTorch fp32.

``validate_run(run_dir, backends=("ort",), ...)`` returns a :class:`ParityReport` (truthy when every
comparison passed) and writes ``parity.json|csv|npz``; ``run_matrix`` is the CI numerics gate. The command
line is ``python -m seadeploy.validate RUN_DIR`` / ``python -m seadeploy.validate matrix``.
"""

from seadeploy.validate.compare import Comparison, ParityReport, Tolerance, default_tolerance
from seadeploy.validate.parity import validate_run

__all__ = ["Comparison", "ParityReport", "Tolerance", "default_tolerance", "validate_run"]
