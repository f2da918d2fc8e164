"""Latency reports over sources × backends × precisions × batches, side by side (no timing assertions)."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import torch

from seadeploy.errors import BackendUnavailable, ConfigError, InputError
from seadeploy.profiling import sources
from seadeploy.profiling.__main__ import main
from seadeploy.profiling.latency import benchmark_latency
from seadeploy.profiling.timing import STAT_KEYS


def test_latency_report_for_torch_and_ort(tiny_run):
    report = benchmark_latency(tiny_run, ["torch", "ort"], [1, 4], threads=1, warmup_s=0.0, duration_s=0.05)
    df = report.to_frame()
    assert sorted(zip(df["backend"], df["batch"])) == [("ort", 1), ("ort", 4), ("torch", 1), ("torch", 4)]
    assert (df["metric"] == "latency").all() and (df["threads"] == 1).all() and (df["runs"] >= 10).all()
    assert set(STAT_KEYS) <= set(df.columns)
    assert (df["min_ms"] <= df["median_ms"]).all() and (df["median_ms"] <= df["p99_ms"]).all()
    csv, js = report.write(tiny_run)
    data = json.loads(js.read_text())
    assert csv.name == "latency.csv" and len(data["rows"]) == 4 and data["method"]["threads"] == 1
    table = report.format_table()
    assert "median_ms" in table and "throughput_ips" in table and "cpu_median_ms" in table
    # one thread on the CPU: thread CPU time is recorded and the ratios use it
    assert (df["clock"] == "thread_cpu").all() and df["cpu_median_ms"].notna().all()
    pairs = {(r["a"], r["b"], r["batch"]) for r in report.ratios}
    assert pairs == {("run ort fp32 b1", "run torch fp32 b1", 1), ("run ort fp32 b4", "run torch fp32 b4", 4)}
    assert all(r["clock"] == "thread_cpu" and r["ratio_low"] <= r["ratio"] <= r["ratio_high"] for r in report.ratios)
    assert "Ratios measured side by side" in table and "run ort fp32 b1 / run torch fp32 b1 = " in table
    assert len(data["ratios"]) == 2


@pytest.fixture(scope="module")
def two_runs(tiny_run, tmp_path_factory):
    """Two run folders (the same model twice: the mechanics, not a speed claim)."""
    root = tmp_path_factory.mktemp("side")
    for name in ("base", "other"):
        shutil.copytree(tiny_run, root / name, ignore=shutil.ignore_patterns("latency.*"))
    return root / "base", root / "other"


def test_several_sources_side_by_side_with_ratio_to_the_first(two_runs):
    base, other = two_runs
    report = benchmark_latency([base, other], ["ort"], [1], threads=1, warmup_s=0.0, rounds=8)
    df = report.to_frame()
    assert list(df["source"]) == ["base", "other"] and (df["runs"] == 8).all()
    assert (df["ratio_to"] == "base").all() and set(df["ratio_clock"]) == {"thread_cpu"}
    assert df.loc[0, "ratio"] == 1.0 and df.loc[0, "within_noise"]  # the reference against itself
    assert df.loc[1, "ratio_low"] <= df.loc[1, "ratio"] <= df.loc[1, "ratio_high"]
    (pair,) = report.ratios
    assert (pair["a"], pair["b"]) == ("other ort fp32 b1", "base ort fp32 b1")
    assert pair["ratio"] == pytest.approx(df.loc[1, "ratio"])
    written = report.write_all()
    assert sorted(p.name for p in written) == ["latency.csv", "latency.csv", "latency.json", "latency.json"]
    for run in (base, other):  # each run folder gets its own rows and the ratios involving them
        csv = pd.read_csv(run / "latency.csv")
        assert list(csv["source"]) == [run.name] and {"ratio", "ratio_low", "ratio_high"} <= set(csv.columns)
        assert len(json.loads((run / "latency.json").read_text())["ratios"]) == 1
    with pytest.raises(ConfigError, match="write.run_dir. for each"):
        report.write()


def test_bare_onnx_file_is_a_source(tiny_run):
    report = benchmark_latency([tiny_run / "model.onnx"], ["ort", "torch"], [2], threads=1, warmup_s=0.0, rounds=3)
    df = report.to_frame()
    assert list(zip(df["backend"], df["precision"])) == [("ort", "file")] and df["run"].isna().all()
    assert report.runs() == [] and report.write_all() == []
    with pytest.raises(InputError, match="none of --backends torch runs a '.onnx' file"):
        benchmark_latency([tiny_run / "model.onnx"], ["torch"], [1])


def test_bad_rounds_and_missing_sources(tiny_run, tmp_path):
    with pytest.raises(ConfigError, match="--rounds must be ≥ 2"):
        benchmark_latency(tiny_run, ["ort"], [1], rounds=1)
    with pytest.raises(InputError, match="does not exist"):
        benchmark_latency([tiny_run, tmp_path / "nope"], ["ort"], [1])


def test_profiling_latency_command_prints_ratios(two_runs, capsys):
    base, other = two_runs
    assert main(["latency", str(base), str(other), "--backends", "ort", "--batch", "1", "--rounds", "4",
                 "--warmup-s", "0", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "other ort fp32 b1 / base ort fp32 b1 = " in out and "(thread_cpu, 4 rounds)" in out


def test_plan_lists_precisions_the_run_has(tiny_run):
    plan = sources.plan(tiny_run, ["ort", "torch"])
    assert [(s.backend, s.precision) for s in plan] == [("ort", "fp32"), ("torch", "fp32")]
    with pytest.raises(InputError, match="no ONNX files for int8"):
        sources.plan(tiny_run, ["ort"], ["int8"])
    with pytest.raises(ConfigError, match="unknown precision"):
        sources.plan(tiny_run, ["ort"], ["fp8"])


def test_missing_backend_is_unavailable_with_hint(tiny_run):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(BackendUnavailable, match="pip install"):
        benchmark_latency(tiny_run, ["trt"], [1])
    with pytest.raises(BackendUnavailable, match="onnxruntime-gpu"):
        sources.require_backend("ort:cuda")
    with pytest.raises(ConfigError, match="unknown backend 'onnxruntime'"):
        sources.require_backend("onnxruntime")


def test_bad_batch_and_missing_run(tmp_path):
    with pytest.raises(ConfigError, match="batch"):
        benchmark_latency(tmp_path, ["ort"], [0])
    with pytest.raises(InputError, match="does not exist"):
        benchmark_latency(tmp_path / "nope", ["ort"], [1])
