"""The data a report is built from: long-form frames over one or more variants (run folders).

:class:`StudyData` holds one frame per kind of measurement, each with a ``variant`` column, and the
reasons why something was not measured. :func:`load_run` reads one run folder written by the stages
(train → export → validate → profiling); :func:`load_study` concatenates several.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd

from seadeploy.reports import readers

FRAMES = ("runs", "latency", "layers", "layer_gaps", "buffer_blocks", "buffer_totals", "parity", "training", "pipeline",
          "runtimes")


@dataclasses.dataclass
class StudyData:
    """Frames of a study (see :mod:`seadeploy.reports.tables` for their columns).

    ``notes`` maps a frame name to the reasons parts of it were not measured (``"tse: profiling
    failed: ..."``); ``warnings`` to findings about data that was measured (``"se: validate: ort/int8:
    top-1 agreement 98.9% < 99%"``); ``meta`` carries settings shown in the report (model, dataset, epochs, batches,
    threads, timing windows, baseline, library versions).
    """

    runs: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    latency: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    layers: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    layer_gaps: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    buffer_blocks: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    buffer_totals: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    parity: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    training: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    pipeline: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    runtimes: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)  # backend / other backend, side by side
    notes: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    warnings: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def variants(self) -> list[str]:
        """Variant names in run order."""
        return [] if self.runs.empty else [str(v) for v in self.runs["variant"]]

    def note(self, frame: str, text: str) -> None:
        """Record why (part of) ``frame`` was not measured."""
        self.notes.setdefault(frame, []).append(text)


def _with_variant(df: pd.DataFrame | None, variant: str) -> pd.DataFrame | None:
    if df is None or df.empty:
        return None
    df = df.copy()
    df.insert(0, "variant", variant)
    return df


def load_run(run_dir: str | Path, variant: str | None = None, study: StudyData | None = None) -> StudyData:
    """Read what the stages wrote into ``run_dir`` and add it to ``study`` (a new one by default).

    Every file is optional: a missing or unreadable file becomes a note (``"<variant>: <reason>"``),
    so a report can always be rendered and says what was not measured.
    """
    study = study if study is not None else StudyData()
    run = Path(run_dir)
    info, why = readers.read_run_info(run)
    name = variant or info.get("variant") or run.name
    row = {"variant": name, "run_dir": str(run), **{k: v for k, v in info.items() if k != "variant"},
           **readers.read_int8_target(run)}
    acc, acc_why = readers.read_backend_accuracy(run)
    row.update(acc)
    _append(study, "runs", pd.DataFrame([row]))
    if why:
        study.note("runs", f"{name}: {why}")
    if acc_why:
        study.note("parity", f"{name}: {acc_why}")
    for frame, reader in (("latency", readers.read_latency), ("layers", readers.read_layers),
                          ("parity", readers.read_parity), ("training", readers.read_training)):
        df, why = reader(run)
        if why:
            study.note(frame, f"{name}: {why}")
        _append(study, frame, _with_variant(df, name))
    runtimes, _ = readers.read_runtime_ratios(run)  # optional: only a study timing two runtimes has them
    _append(study, "runtimes", _with_variant(runtimes, name))
    gaps, _ = readers.read_layer_gaps(run)  # optional: the report falls back to latency.csv
    _append(study, "layer_gaps", _with_variant(gaps, name))
    blocks, totals, why = readers.read_buffers(run)
    if why:
        study.note("buffer_blocks", f"{name}: {why}")
    _append(study, "buffer_blocks", _with_variant(blocks, name))
    _append(study, "buffer_totals", _with_variant(totals, name))
    pipeline, _ = readers.read_pipeline(run)  # optional: written only by compare's pipeline stage
    _append(study, "pipeline", _with_variant(pipeline, name))
    return study


def _append(study: StudyData, frame: str, df: pd.DataFrame | None) -> None:
    if df is None or df.empty:
        return
    cur = getattr(study, frame)
    setattr(study, frame, df.reset_index(drop=True) if cur.empty else pd.concat([cur, df], ignore_index=True))


def load_study(run_dirs: dict[str, str | Path] | list[str | Path], meta: dict[str, Any] | None = None) -> StudyData:
    """A study over several run folders (``{variant: run_dir}`` or a list, named by folder)."""
    study = StudyData(meta=dict(meta or {}))
    items = run_dirs.items() if isinstance(run_dirs, dict) else [(None, p) for p in run_dirs]
    for name, path in items:
        load_run(path, name, study)
    return study
