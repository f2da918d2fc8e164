"""What one ``validate`` run measured: the verdicts of :mod:`seadeploy.parity` plus the run's context.

The metrics, rules and per-comparison verdicts live in :mod:`seadeploy.parity` (rules documented in
``docs/parity.md``); this module adds the reference description, settings, notes, layer-wise findings and the
text/JSON forms ``parity.json`` and the terminal show.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from seadeploy.parity import Verdicts


@dataclasses.dataclass
class ParityReport(Verdicts):
    """Everything one ``validate`` run measured; truthy when every comparison passed."""

    run_dir: str = ""
    reference: dict[str, Any] = dataclasses.field(default_factory=dict)
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    warnings: list[str] = dataclasses.field(default_factory=list)
    layerwise: list[Any] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The ``parity.json`` payload (see :func:`seadeploy.runfolder.write_parity`)."""
        return {"passed": bool(self), "run_dir": self.run_dir, "reference": self.reference,
                "settings": self.settings, "warnings": self.warnings, "failures": self.failures,
                "comparisons": [c.to_dict() for c in self.comparisons],
                "layerwise": [lw.to_dict() for lw in self.layerwise]}

    def table(self) -> str:
        """A fixed-width text table for terminals and CI logs."""
        if not self.comparisons:
            return "(no comparisons)"
        cols = ["backend", "precision", "inputs", "n", "max_abs", "mean_abs", "max_rel", "cosine", "top1",
                "accuracy", "ref_accuracy", "passed"]
        frame = self.to_frame()[cols].copy()
        for c in ("max_abs", "mean_abs", "max_rel"):
            frame[c] = frame[c].map(lambda v: f"{v:.2e}")
        frame["cosine"] = frame["cosine"].map(lambda v: f"{v:.6f}")
        for c in ("top1", "accuracy", "ref_accuracy"):
            frame[c] = frame[c].map(lambda v: "-" if v != v else f"{v:.2%}")
        frame["passed"] = frame["passed"].map({True: "PASS", False: "FAIL"})
        loose = [i for i, c in enumerate(self.comparisons) if c.rule.nan_only]
        frame.loc[loose, "passed"] = frame.loc[loose, "passed"] + "*"
        note = ("\n* NaN/Inf checked only: int8 ranges are calibrated on real data, noise inputs leave them"
                if loose else "")
        return frame.to_string(index=False) + note

    def text(self) -> str:
        """The human summary: table, notes, layer-wise findings, failures and the verdict."""
        lines = [f"parity of {self.run_dir} against PyTorch fp32 ({self.reference.get('device', 'cpu')})",
                 self.table()]
        lines += [f"note: {w}" for w in self.warnings]
        lines += [lw.summary() for lw in self.layerwise]
        lines += [f"FAIL {f}" for f in self.failures]
        n_ok = sum(1 for c in self.comparisons if c)
        lines.append(f"{'PASSED' if self else 'FAILED'}: {n_ok}/{len(self.comparisons)} comparisons within tolerance")
        return "\n".join(lines)
