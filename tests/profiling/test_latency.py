"""Latency reports over backends × precisions × batches of a run folder (no timing assertions)."""

from __future__ import annotations

import json

import pytest

from seadeploy.errors import BackendUnavailable, ConfigError, InputError
from seadeploy.profiling import sources
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
    assert "median_ms" in table and "throughput_ips" in table


def test_plan_lists_precisions_the_run_has(tiny_run):
    plan = sources.plan(tiny_run, ["ort", "torch"])
    assert [(s.backend, s.precision) for s in plan] == [("ort", "fp32"), ("torch", "fp32")]
    with pytest.raises(InputError, match="no ONNX files for int8"):
        sources.plan(tiny_run, ["ort"], ["int8"])
    with pytest.raises(ConfigError, match="unknown precision"):
        sources.plan(tiny_run, ["ort"], ["fp8"])


def test_missing_backend_is_unavailable_with_hint(tiny_run):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(BackendUnavailable, match="pip install"):
        benchmark_latency(tiny_run, ["trt"], [1])
    with pytest.raises(BackendUnavailable, match="onnxruntime-gpu"):
        sources.require_backend("ort:cuda")


def test_bad_batch_and_missing_run(tmp_path):
    with pytest.raises(ConfigError, match="batch"):
        benchmark_latency(tmp_path, ["ort"], [0])
    with pytest.raises(InputError, match="does not exist"):
        benchmark_latency(tmp_path / "nope", ["ort"], [1])
