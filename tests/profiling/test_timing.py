"""Measurement statistics, the measuring loop and the side-by-side core (no timing assertions: benchmarks/ time)."""

from __future__ import annotations

import numpy as np
import pytest

from seadeploy.profiling.timing import MIN_RUNS, Candidate, Measurement, interleave, measure, ratio_interval


def test_statistics_match_numpy():
    t = np.array([1.0, 2.0, 3.0, 4.0, 10.0, 2.5, 2.2, 1.8, 2.1, 2.4, 2.3])
    m = Measurement(t, batch=4, label="x")
    assert m.median == np.median(t) and m.mean == pytest.approx(t.mean()) and m.min == 1.0 and m.max == 10.0
    assert m.iqr == pytest.approx(np.percentile(t, 75) - np.percentile(t, 25))
    assert m.spread == pytest.approx(m.iqr / np.median(t))
    assert m.percentile(99) == pytest.approx(np.percentile(t, 99))
    assert m.cv == pytest.approx(t.std(ddof=1) / t.mean())
    assert m.throughput == pytest.approx(4 * 1000 / np.median(t))
    row = m.to_frame().iloc[0]
    assert row["p90_ms"] == pytest.approx(np.percentile(t, 90)) and row["p10_ms"] == pytest.approx(np.percentile(t, 10))
    assert row["runs"] == len(t)


def test_stability_is_iqr_over_median_not_cv():
    steady = Measurement(np.full(20, 5.0) + np.linspace(0, 0.05, 20))
    assert steady and steady.warnings == []
    # one preempted run in 40: CV is large, IQR/median is not → stable (torch.utils.benchmark's rule)
    outlier = Measurement(np.r_[np.full(39, 1.0) + np.linspace(0, 0.02, 39), 50.0])
    assert outlier.cv > 0.10 and outlier.spread < 0.10 and outlier
    noisy = Measurement(np.r_[np.full(15, 1.0), np.full(5, 3.0)])
    assert not noisy and "unstable: IQR/median 50.0%" in noisy.warnings[0] and "IQR/median" in repr(noisy)
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


def test_ratio_interval_is_paired_and_brackets_the_median():
    rng = np.random.default_rng(1)
    load = rng.uniform(1.0, 3.0, 200)  # a busy machine slows both candidates of a round alike
    a, b = 1.5 * load * rng.normal(1, 0.01, 200), load * rng.normal(1, 0.01, 200)
    med, low, high = ratio_interval(a, b)
    assert low <= med <= high and low < 1.5 < high and high - low < 0.02
    # unpaired, the same spread would hide the difference; paired it is clear and the point estimate is the median
    assert med == pytest.approx(np.median(a / b))
    same = ratio_interval(load * rng.normal(1, 0.02, 200), load * rng.normal(1, 0.02, 200))
    assert same[1] <= 1.0 <= same[2]


def test_interleave_rotates_rounds_and_records_both_clocks():
    order: list[str] = []

    def spin(label: str, n: int):
        def call():
            order.append(label)
            sum(range(n))  # CPU work on this thread
        return call

    stages = iter(range(1000))
    cands = [Candidate("a", spin("a", 20000), cpu_clock=True, meta={"backend": "x"}),
             Candidate("b", spin("b", 40000), cpu_clock=True),
             Candidate("c", lambda: {"gpu_compute": float(next(stages))}, batch=2)]
    side = interleave(cands, rounds=6, warmup_rounds=1)
    assert side.rounds == 6 and side.wall_ms.shape == (6, 3)
    measured = order[2:]  # a and b ran once each in the warm-up round (c does not append)
    # rounds a b c, b c a, c a b, ...: the start rotates, so a and b swap places every other round
    assert measured[:6] == ["a", "b", "b", "a", "a", "b"]
    assert np.isnan(side.cpu_ms[:, 2]).all() and (side.cpu_ms[:, :2] > 0).all()
    assert side.clock("a", "b") == "thread_cpu" and side.clock("a", "c") == "wall"
    r = side.ratio("b", "a")
    assert r.clock == "thread_cpu" and r.rounds == 6 and r.low <= r.ratio <= r.high
    assert side.ratio("c", "a").clock == "wall"
    assert [(x.a, x.b) for x in side.ratios()] == [("b", "a"), ("c", "a"), ("c", "b")]
    rows = {row["label"]: row for row in side.rows()}
    assert rows["a"]["clock"] == "thread_cpu" and "cpu_median_ms" in rows["a"] and rows["a"]["backend"] == "x"
    assert rows["c"]["clock"] == "wall" and "cpu_median_ms" not in rows["c"]
    (gpu,) = side.stage_measurements("c")
    assert gpu.meta["metric"] == "gpu_compute" and gpu.runs == 6 and gpu.batch == 2
    with pytest.raises(ValueError, match="unique"):
        interleave([cands[0], cands[0]], rounds=2)


def test_within_noise_follows_the_interval():
    side = interleave([Candidate("x", lambda: None), Candidate("y", lambda: None)], rounds=30)
    r = side.ratio("y", "x")
    assert r.within_noise == (r.low <= 1.0 <= r.high)
    d = r.to_dict()
    assert set(d) >= {"a", "b", "clock", "ratio", "ratio_low", "ratio_high", "within_noise", "rounds", "confidence"}
    assert ("within noise" in r.describe()) == r.within_noise
