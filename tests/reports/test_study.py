"""Loading run folders: the files the stages write become the report's frames; missing files become notes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from seadeploy import runfolder
from seadeploy.models.build import build_model
from seadeploy.parity import compare, default_rule
from seadeploy.reports import load_run, load_study
from seadeploy.reports.__main__ import main
from seadeploy.reports.render import Table
from seadeploy.reports.sections import build_sections, runtime_lines
from seadeploy.reports.study import StudyData
from seadeploy.runfolder import Checkpoint, ModelSpec
from seadeploy.train.history import write_metrics_csv
from seadeploy.validate.report import ParityReport


def _write_run(run, study: StudyData, variant: str) -> None:
    """A run folder written by the stages' own writers (seadeploy/runfolder.py), from the synthetic study frames."""
    spec = ModelSpec("resnet20_cifar", attn=variant, attn_kwargs={"tile": 2} if variant == "tse" else {})
    model = build_model(spec)
    metrics = {"epoch": 2, "top1": 96.5, "best_top1": 97.0}
    Checkpoint(spec, model.state_dict(), dataset="digits", metrics=metrics).save(run / "checkpoint.safetensors")
    write_metrics_csv(run, study.training[study.training["variant"] == variant].drop(columns="variant")
                      .to_dict("records"))
    lat = study.latency[study.latency["variant"] == variant].drop(columns="variant")
    lat = lat.assign(metric="latency", throughput_ips=100.0, stable=True)
    runfolder.write_latency(run, pd.concat([lat, lat.head(1).assign(metric="h2d", median_ms=99.0)]), method="test")
    for backend, part in study.layers[study.layers["variant"] == variant].groupby("backend"):
        runfolder.write_layers(run, backend, part.drop(columns="variant"))
    blocks = study.buffer_blocks[study.buffer_blocks["variant"] == variant]
    totals = study.buffer_totals.set_index("variant").loc[variant]
    runfolder.write_buffers(run, {
        "attention_buffer_elements": int(totals["attention_buffer_elements"]),
        "total_buffer_elements": int(totals["total_buffer_elements"]),
        "blocks": [{"block": b, "joins": 2, "attention_elements": int(e), "total_elements": int(e)}
                   for b, e in zip(blocks["block"], blocks["elements"])]})
    runfolder.write_layers_summary(run, {"gaps": [
        {"backend": "ort", "precision": "fp32", "batch": 1, "layers": 50, "run_sum_ms": 0.9, "end_to_end_ms": 1.0,
         "gap_pct": 10.0, "interference_pct": 1.0}], "within_tolerance": True})
    ref = np.random.default_rng(0).standard_normal((40, 10)).astype(np.float32)
    labels = ref.argmax(1)
    labels[:2] = (labels[:2] + 1) % 10  # reference accuracy 95 %
    report = ParityReport([compare(ref, ref + 1e-6, default_rule(p, k), backend="ort", precision=p, inputs=k,
                                   labels=labels if k == "data" else None)
                           for p in ("fp32", "int8") for k in ("random", "data")], str(run))
    runfolder.write_parity(run, report.to_dict(), report.to_frame())
    runfolder.write_pipeline(run, {"fps": 30.0, "initiation_interval_cycles": 6.6e6, "fill_latency_cycles": 2e7,
                                   "fifo_elements": 1000, "hardware": {"macs_per_cycle": 4096.0, "clock_mhz": 200.0}})


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
    assert {"throughput_ips"} <= set(loaded.latency.columns)
    assert len(loaded.layers) == len(study.layers[study.layers["variant"].isin(["se", "tse"])])
    assert loaded.buffer_blocks.groupby("variant")["elements"].sum().to_dict() == \
        study.buffer_blocks.groupby("variant")["elements"].sum().to_dict()
    assert loaded.buffer_totals["attention_buffer_elements"].tolist() == \
        study.buffer_totals.set_index("variant").loc[["se", "tse"], "attention_buffer_elements"].tolist()
    assert len(loaded.parity) == 8 and len(loaded.training) == 4
    (tmp_path / "se" / "parity.csv").unlink()  # parity.json alone gives the same rows (its "comparisons")
    assert len(load_study({"se": tmp_path / "se"}).parity) == 4
    assert loaded.layer_gaps["gap_pct"].tolist() == [10.0, 10.0]
    assert loaded.pipeline["variant"].tolist() == ["se", "tse"] and loaded.pipeline["fps"].tolist() == [30.0, 30.0]
    sections = build_sections(loaded)
    assert [s.anchor for s in sections if s.empty or any("not measured" in str(i) for i in s.items)] == []
    streaming = next(s for s in sections if s.anchor == "streaming")  # the hardware is the one pipeline.json records
    assert "4096 MACs/cycle" in str(streaming.items[0]) and "200 MHz" in str(streaming.items[0])
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


def test_checkpoint_accuracy_is_read_as_the_percent_it_is(tmp_path):
    """A random head's 0.8 % top-1 (compare --epochs 0 on a 1000-class model) is not a fraction to scale to 80 %."""
    spec = ModelSpec("resnet20_cifar", attn="none")
    Checkpoint(spec, build_model(spec).state_dict(), dataset="digits", metrics={"top1": 0.8}).save(
        tmp_path / "checkpoint.safetensors")
    assert load_run(tmp_path, "none").runs.iloc[0]["accuracy"] == 0.8


def test_which_runtime_is_faster_is_answered_with_intervals_from_the_written_ratios(tmp_path):
    """Ratios between two runtimes on one file (latency.json, written by the real writer) reach the answer."""
    run = tmp_path / "se"
    run.mkdir()
    rows = pd.DataFrame([{"source": "se", "backend": b, "precision": "fp32", "batch": 1, "median_ms": 1.0}
                         for b in ("ort", "openvino")])
    ratios = [{"a": "se openvino fp32 b1", "b": "se ort fp32 b1", "ratio": 2.5, "ratio_low": 1.8, "ratio_high": 3.6,
               "clock": "wall", "batch": 1},
              {"a": "se openvino int8 b1", "b": "se ort int8 b1", "ratio": 0.97, "ratio_low": 0.9, "ratio_high": 1.1,
               "clock": "wall", "batch": 1},
              {"a": "se ort int8 b1", "b": "se ort fp32 b1", "ratio": 0.6, "ratio_low": 0.5, "ratio_high": 0.7,
               "clock": "thread_cpu", "batch": 1}]  # same runtime: not a runtime comparison
    runfolder.write_latency(run, rows, ratios=ratios)
    study = load_run(run, "se")
    assert len(study.runtimes) == 2 and set(study.runtimes["backend"]) == {"openvino"}
    fp32, int8 = runtime_lines(study.runtimes)
    assert "se 2.50× [1.80, 3.60] (ort faster)" in fp32 and "wall time" in fp32
    assert "se 0.97× [0.90, 1.10] (within noise)" in int8  # never stronger than the interval allows
