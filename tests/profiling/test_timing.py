"""Measurement statistics and the measuring loop (no timing assertions: those live in benchmarks/)."""

from __future__ import annotations

import numpy as np
import pytest

from seadeploy.profiling.timing import MIN_RUNS, Measurement, measure


def test_statistics_match_numpy():
    t = np.array([1.0, 2.0, 3.0, 4.0, 10.0, 2.5, 2.2, 1.8, 2.1, 2.4, 2.3])
    m = Measurement(t, batch=4, label="x")
    assert m.median == np.median(t) and m.mean == pytest.approx(t.mean()) and m.min == 1.0 and m.max == 10.0
    assert m.iqr == pytest.approx(np.percentile(t, 75) - np.percentile(t, 25))
    assert m.percentile(99) == pytest.approx(np.percentile(t, 99))
    assert m.cv == pytest.approx(t.std(ddof=1) / t.mean())
    assert m.throughput == pytest.approx(4 * 1000 / np.median(t))
    row = m.to_frame().iloc[0]
    assert row["p90_ms"] == pytest.approx(np.percentile(t, 90)) and row["runs"] == len(t)


def test_unstable_and_short_runs_are_flagged():
    steady = Measurement(np.full(20, 5.0) + np.linspace(0, 0.05, 20))
    assert steady and steady.warnings == []
    noisy = Measurement(np.r_[np.full(15, 1.0), np.full(5, 3.0)])
    assert not noisy and "unstable" in noisy.warnings[0] and "coefficient of variation" in repr(noisy)
    short = Measurement([1.0, 1.0])
    assert not short and "only 2 runs" in short.warnings[0]
    with pytest.raises(ValueError):
        Measurement([])


def test_measure_runs_at_least_min_runs_and_warms_up():
    calls = []
    m = measure(lambda: calls.append(1), warmup_s=0.0, duration_s=0.0, min_runs=MIN_RUNS, batch=2, label="noop",
                meta={"backend": "x"})
    assert m.runs == MIN_RUNS and len(calls) == MIN_RUNS + 1  # one extra warm-up call
    assert m.to_dict()["backend"] == "x" and m.batch == 2 and (m.times_ms >= 0).all()
