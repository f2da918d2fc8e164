"""Loading run folders: the files the stages write become the report's frames; missing files become notes."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from seadeploy.artifacts import Checkpoint, ModelSpec
from seadeploy.reports import load_run, load_study
from seadeploy.reports.render import Table
from seadeploy.reports.sections import build_sections
from seadeploy.reports.study import StudyData


def _write_run(run, study: StudyData, variant: str) -> None:
    """A run folder in the stages' file formats (latency.csv as profiling writes it, parity.csv as validate does)."""
    spec = ModelSpec("resnet20_cifar", attn=variant, attn_kwargs={"tile": 2} if variant == "tse" else {})
    model = spec.build()
    metrics = {"epoch": 2, "top1": 96.5, "best_top1": 97.0}
    Checkpoint(spec, model.state_dict(), dataset="digits", metrics=metrics).save(run / "checkpoint.safetensors")
    study.training[study.training["variant"] == variant].drop(columns="variant").to_csv(run / "metrics.csv", index=False)
    lat = study.latency[study.latency["variant"] == variant].drop(columns="variant")
    lat = lat.rename(columns={"median_ms": "median_ms"}).assign(metric="latency", throughput_ips=100.0, stable=True)
    pd.concat([lat, lat.head(1).assign(metric="h2d", median_ms=99.0)]).to_csv(run / "latency.csv", index=False)
    for backend, part in study.layers[study.layers["variant"] == variant].groupby("backend"):
        part.drop(columns="variant").to_csv(run / f"layers_{backend}.csv", index=False)
    blocks = study.buffer_blocks[study.buffer_blocks["variant"] == variant]
    totals = study.buffer_totals.set_index("variant").loc[variant]
    (run / "buffers.json").write_text(json.dumps({
        "format_version": 1, "attention_buffer_elements": int(totals["attention_buffer_elements"]),
        "total_buffer_elements": int(totals["total_buffer_elements"]),
        "blocks": [{"block": b, "joins": 2, "attention_elements": int(e), "total_elements": int(e)}
                   for b, e in zip(blocks["block"], blocks["elements"])]}))
    (run / "layers_summary.json").write_text(json.dumps({"gaps": [
        {"backend": "ort", "precision": "fp32", "batch": 1, "layers": 50, "run_sum_ms": 0.9, "end_to_end_ms": 1.0,
         "gap_pct": 10.0, "interference_pct": 1.0}], "within_tolerance": True}))
    pd.DataFrame([{"backend": "ort", "precision": p, "inputs": k, "n": 360 if k == "data" else 32, "passed": True,
                   "max_abs": 1e-6, "cosine": 0.9999999, "top1": 1.0, "accuracy": 0.95 if k == "data" else None,
                   "ref_accuracy": 0.95 if k == "data" else None}
                  for p in ("fp32", "int8") for k in ("random", "data")]).to_csv(run / "parity.csv", index=False)


def test_load_run_reads_every_stage_file(study, tmp_path):
    for v in ("se", "tse"):
        (tmp_path / v).mkdir()
        _write_run(tmp_path / v, study, v)
    loaded = load_study({"se": tmp_path / "se", "tse": tmp_path / "tse"}, {"baseline": "se"})
    assert loaded.notes == {}
    runs = loaded.runs.set_index("variant")
    assert runs.at["tse", "attn"] == "tse" and runs.at["tse", "attn_kwargs"] == "tile=2"
    assert runs.at["se", "accuracy"] == 97.0 and runs.at["se", "acc_ort_int8"] == pytest.approx(95.0)
    assert runs.at["se", "params"] > 200_000
    assert set(loaded.latency["backend"]) == {"ort", "torch"} and 99.0 not in set(loaded.latency["median_ms"])
    assert {"throughput"} <= set(loaded.latency.columns)
    assert len(loaded.layers) == len(study.layers[study.layers["variant"].isin(["se", "tse"])])
    assert loaded.buffer_blocks.groupby("variant")["elements"].sum().to_dict() == \
        study.buffer_blocks.groupby("variant")["elements"].sum().to_dict()
    assert loaded.buffer_totals["attention_buffer_elements"].tolist() == \
        study.buffer_totals.set_index("variant").loc[["se", "tse"], "attention_buffer_elements"].tolist()
    assert len(loaded.parity) == 8 and len(loaded.training) == 4
    assert loaded.layer_gaps["gap_pct"].tolist() == [10.0, 10.0]
    sections = build_sections(loaded)
    assert [s.anchor for s in sections if s.empty or any("not measured" in str(i) for i in s.items)] == []
    layers = next(s for s in sections if s.anchor == "layers")
    gap = next(i for i in layers.items if isinstance(i, Table) and "gap_pct" in i.frame)
    assert "timed between the profiled runs" in gap.caption and gap.frame["run_sum_ms"].tolist() == [0.9, 0.9]


def test_empty_run_folder_notes_every_missing_file(tmp_path):
    study = load_run(tmp_path, "se")
    assert study.variants == ["se"]
    for frame, text in [("runs", "no checkpoint.safetensors"), ("latency", "no latency.csv"),
                        ("layers", "no layers_<backend>.csv"), ("buffer_blocks", "no buffers.json"),
                        ("parity", "no parity.csv"), ("training", "no metrics.csv")]:
        assert any(n.startswith("se: ") and text in n for n in study.notes[frame]), (frame, study.notes.get(frame))


def test_corrupt_files_become_notes_not_crashes(tmp_path):
    (tmp_path / "latency.csv").write_text("backend,precision\nort,fp32\n")
    (tmp_path / "buffers.json").write_text("{not json")
    (tmp_path / "checkpoint.safetensors").write_bytes(b"garbage")
    study = load_run(tmp_path, "se")
    assert any("lacks columns" in n for n in study.notes["latency"])
    assert any("not valid JSON" in n for n in study.notes["buffer_blocks"])
    assert any("unreadable" in n for n in study.notes["runs"])


def test_reports_cli(study, tmp_path, capsys):
    from seadeploy.reports.__main__ import main

    (tmp_path / "se").mkdir()
    _write_run(tmp_path / "se", study, "se")
    assert main([str(tmp_path / "se"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["html"] == str(tmp_path / "se" / "report.html") and (tmp_path / "se" / "report.md").is_file()
    assert out["not_measured"] == {}
    assert main([str(tmp_path / "se"), str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "se"), str(tmp_path / "empty")]) == 2
    assert "--out DIR is required" in capsys.readouterr().err
    assert main([str(tmp_path / "se"), str(tmp_path / "empty"), "--out", str(tmp_path / "both")]) == 0
    text = capsys.readouterr().out
    assert "not measured (latency): empty: no latency.csv" in text
    html = (tmp_path / "both" / "report.html").read_text()
    assert "not measured: empty: no latency.csv" in html
