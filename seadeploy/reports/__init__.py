"""Reports: tables (pandas), plots (matplotlib Figures) and rendering (self-contained HTML, markdown).

Analysis, tables and plots stay separate: :mod:`~seadeploy.reports.tables` summarises frames,
:mod:`~seadeploy.reports.plots` draws them, :mod:`~seadeploy.reports.sections` decides what a report
shows and :mod:`~seadeploy.reports.render` writes it.

Example:
    >>> from seadeploy.reports import load_study, write_study_report
    >>> study = load_study({"se": "runs/study/se", "tse": "runs/study/tse"})
    >>> write_study_report(study, "runs/study")["html"]  # doctest: +SKIP
    PosixPath('runs/study/report.html')

Command line: ``python -m seadeploy.reports RUN_DIR [RUN_DIR ...] --out DIR``.
"""

from __future__ import annotations

from pathlib import Path

from seadeploy.reports.render import write_report
from seadeploy.reports.sections import build_sections
from seadeploy.reports.study import StudyData, load_run, load_study


def write_study_report(study: StudyData, out_dir: str | Path, title: str | None = None) -> dict[str, Path]:
    """Build every section from ``study`` and write ``report.html``, ``report.md`` and ``figures/`` into ``out_dir``."""
    m = study.meta
    title = title or f"seadeploy study: {m.get('model', 'model')} on {m.get('dataset', 'data')} — tiled vs global squeeze"
    subtitle = f"variants: {', '.join(study.variants) or 'none'}"
    if m.get("baseline"):
        subtitle += f" · ratios are to `{m['baseline']}`"
    return write_report(out_dir, title, build_sections(study), subtitle)


__all__ = ["StudyData", "load_run", "load_study", "write_study_report"]
