"""The compare study's outputs: the report, ``summary.csv``/``summary.json`` and the printed table.

:func:`write_summary` loads every variant's run folder, records why stages did not finish (so the
report says "not measured: <why>" instead of guessing), writes the report and the summary files and
returns the summary with the exit code. :func:`format_summary` is the human table printed at the end.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from seadeploy.data import get_dataset
from seadeploy.fileio import library_versions, write_json, write_text
from seadeploy.reports import tables, write_study_report
from seadeploy.reports.render import format_value
from seadeploy.reports.sections import answer_lines
from seadeploy.reports.study import StudyData, load_study

SUMMARY_CSV, SUMMARY_JSON = "summary.csv", "summary.json"
#: Report frames a stage fills (a failed or skipped stage leaves them empty for that variant).
STAGE_FRAMES = {"train": ("runs", "training"), "export": ("parity",), "validate": ("parity",),
                "latency": ("latency",), "layers": ("layers",), "buffers": ("buffer_blocks",),
                "pipeline": ("pipeline",)}
PRINT_COLUMNS = {"variant": "variant", "accuracy": "acc %", "acc_ort_int8": "int8 acc %", "latency_ms": "latency ms",
                 "latency_x": "lat ×{b}", "attention_pct": "attn time %", "attention_buffer_elements": "attn buffer",
                 "attn_buffer_x": "buf ×{b}", "stages": "stages"}


def _test_samples(o: Any) -> int | None:
    try:
        n = len(get_dataset(o.dataset, split="test", root=o.data_root))
    except Exception:  # noqa: BLE001 - only a caption in the report; the stages report data errors themselves
        return None
    return min(n, o.limit_test) if o.limit_test else n


def study_meta(variants: Sequence[Any], o: Any, wall_s: float) -> dict[str, Any]:
    """Settings shown in the report's method section."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {"model": o.model, "dataset": o.dataset, "epochs": o.epochs, "baseline": o.baseline,
            "variants": ", ".join(f"{v.name} {v.attn_kwargs or ''}".strip() for v in variants),
            "latency batches": ", ".join(map(str, o.batches)), "per-layer batch": max(o.batches),
            "backends": ", ".join(o.backends), "export precisions": ", ".join(o.precisions),
            "timed precisions": ", ".join(o.latency_precisions), "threads while timing": o.threads,
            "timing window": f"{o.warmup_s} s warm-up + {o.duration_s} s per configuration",
            "test_samples": _test_samples(o), "wall time (s)": round(wall_s, 1),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load[0]:.2f} at the end",
            "versions": library_versions()}


def apply_stage_notes(study: StudyData, stages: dict[str, dict[str, dict[str, Any]]]) -> None:
    """Replace the readers' "no <file>" notes by the real reason for every stage that did not finish."""
    reasons: dict[tuple[str, str], list[str]] = {}
    for variant, per_stage in stages.items():
        for stage, info in per_stage.items():
            if info.get("status") == "ok":
                continue
            if info["status"] == "warning":
                for frame in STAGE_FRAMES[stage]:
                    study.warnings.setdefault(frame, []).append(f"{variant}: {stage}: {info.get('error')}")
                continue
            text = (f"{stage} skipped ({info.get('error')})" if info["status"] == "skipped"
                    else f"{stage} {info['status']}: {info.get('error')}")
            for frame in STAGE_FRAMES[stage]:
                reasons.setdefault((variant, frame), []).append(f"{variant}: {text}")
    for (variant, frame), notes in reasons.items():
        others = [n for n in study.notes.get(frame, []) if not n.startswith(f"{variant}: ")]
        study.notes[frame] = others + notes


def _stage_text(per_stage: dict[str, dict[str, Any]]) -> str:
    bad = [f"{s} {i['status']}" for s, i in per_stage.items() if i.get("status") != "ok"]
    return "all ok" if not bad else "; ".join(bad)


def exit_code(stages: dict[str, dict[str, dict[str, Any]]]) -> int:
    """0 when every stage finished, else the first failure's exit code (1 check, 2 input, 3 backend)."""
    for per_stage in stages.values():
        for info in per_stage.values():
            if info.get("status") in ("failed", "partial"):
                return int(info.get("exit_code", 1))
    return 0


def write_summary(variants: Sequence[Any], o: Any, stages: dict[str, dict[str, dict[str, Any]]],
                  wall_s: float) -> dict[str, Any]:
    """Load the variants' run folders, write report.html/.md and summary.csv/.json into ``o.out``."""
    study = load_study({v.name: v.run_dir for v in variants}, study_meta(variants, o, wall_s))
    apply_stage_notes(study, stages)
    paths = write_study_report(study, o.out)
    comp = tables.comparison_table(study.runs, study.latency, study.layers, study.buffer_totals,
                                   baseline=o.baseline, backend="ort", precision="fp32")
    if comp.columns.tolist() == ["variant"]:
        comp = pd.DataFrame({"variant": [v.name for v in variants]})
    comp["stages"] = comp["variant"].map(lambda n: _stage_text(stages.get(n, {})))
    for stage in ("train", "export", "validate", "latency", "layers", "buffers"):
        comp[f"{stage}_s"] = comp["variant"].map(lambda n, s=stage: stages.get(n, {}).get(s, {}).get("seconds"))
    out = Path(o.out)
    write_text(out / SUMMARY_CSV, comp.to_csv(index=False, float_format="%.6g"))
    failures = [f"{v}: {s} {i['status']}: {i.get('error', '')}" for v, st in stages.items() for s, i in st.items()
                if i.get("status") != "ok"]
    summary = {"out": str(out), "report_html": str(paths["html"]), "report_md": str(paths["md"]),
               "wall_s": round(wall_s, 1), "baseline": comp.attrs.get("baseline"),
               "latency_point": list(comp.attrs.get("latency_point", ())), "variants": comp.to_dict("records"),
               "stages": stages, "failures": failures, "exit_code": exit_code(stages)}
    write_json(out / SUMMARY_JSON, summary)
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The table printed at the end of a study, the answer in one line per variant, and where the report is."""
    comp = pd.DataFrame(summary["variants"])
    base = summary.get("baseline") or "baseline"
    cols = [c for c in PRINT_COLUMNS if c in comp.columns]
    shown = comp[cols].rename(columns={c: PRINT_COLUMNS[c].format(b=base) for c in cols})
    shown = shown.apply(lambda s: s.map(format_value) if s.dtype != object else s.fillna("n/a"))
    point = summary.get("latency_point") or []
    where = f"ORT {point[1]} batch {point[2]}" if point else "ORT (not measured)"
    lines = [f"seadeploy compare: {len(comp)} variants in {summary['wall_s']:.0f} s — latency = median at {where}; "
             f"ratios to '{base}'", shown.to_string(index=False)]
    comp.attrs.update(baseline=summary.get("baseline"), latency_point=tuple(point) or None)
    lines += ["", *[ln.replace("**", "") for ln in answer_lines(comp)]] if len(comp) > 1 else []
    problems = [f"{i['status'].upper()} {v} {stage}: {i.get('error', '')}" for v, st in summary["stages"].items()
                for stage, i in st.items() if i.get("status") != "ok"]
    lines += ["", *problems] if problems else []
    lines += ["", f"report: {summary['report_html']}  (also {summary['report_md']}, "
              f"{Path(summary['out']) / SUMMARY_CSV}, {Path(summary['out']) / SUMMARY_JSON})"]
    return "\n".join(lines)
