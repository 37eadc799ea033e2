"""Paired statistics: McNemar's exact test against hand-computed values, bootstrap intervals that
cover the true mean difference in about 95% of seeded simulations, and the paired table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from specllama.errors import ConfigError
from specllama.eval import paired


@pytest.mark.parametrize("only_a,only_b,expected", [
    (0, 0, 1.0),                 # no discordant pair: nothing to test
    (0, 1, 1.0),                 # 2 * 1/2
    (0, 5, 2 / 32),              # 2 * C(5,0) / 2^5 = 0.0625
    (5, 0, 2 / 32),              # symmetric
    (1, 9, 2 * 11 / 1024),       # 2 * (C(10,0) + C(10,1)) / 2^10 = 0.021484375
    (8, 2, 2 * 56 / 1024),       # 2 * (1 + 10 + 45) / 2^10 = 0.109375
    (3, 3, 1.0),                 # a tie: capped at 1
    (4, 6, 772 / 1024),          # 2 * (1 + 10 + 45 + 120 + 210) / 2^10 = 0.75390625
    (10, 0, 2 / 1024),           # 2 / 2^10
])
def test_mcnemar_exact_hand_values(only_a, only_b, expected):
    assert paired.mcnemar_exact(only_a, only_b) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_exact_large_counts_stay_finite_and_match_the_formula():
    p = paired.mcnemar_exact(520, 600)
    n = 1120
    assert p == pytest.approx(2 * sum(math.comb(n, i) for i in range(521)) / 2**n, rel=1e-12)
    assert 0.01 < p < 0.03  # about 2.39 standard errors from the null
    with pytest.raises(ConfigError):
        paired.mcnemar_exact(-1, 3)


def test_discordant_counts_and_binary_detection():
    a = np.array([100, 100, 0, 0, 100.0])
    b = np.array([100, 0, 100, 0, 0.0])
    assert paired.discordant(a, b) == (2, 1)
    assert paired.is_binary(a, b)
    assert not paired.is_binary(a, np.array([100, 50, 0, 0, 0.0]))


def test_bootstrap_is_seeded_and_constant_data_has_a_point_interval():
    x = np.array([0, 100, 100, 0, 100, 100, 0, 100.0])
    first = paired.bootstrap_interval(x, n_resamples=2000, seed=3)
    assert paired.bootstrap_interval(x, n_resamples=2000, seed=3) == first
    assert first.low < x.mean() < first.high
    assert paired.bootstrap_interval(np.full(7, 100.0), n_resamples=500) == paired.Interval(100.0, 100.0)


def test_stratified_bootstrap_targets_the_mean_of_group_means():
    # group sizes differ, so the mean of group means (50) is not the pooled mean (about 91)
    x = np.concatenate([np.full(10, 0.0), np.full(100, 100.0)])
    groups = ["a"] * 10 + ["b"] * 100
    assert paired.bootstrap_interval(x, groups, n_resamples=500) == paired.Interval(50.0, 50.0)
    per_group, average = paired.stratified_means([np.array([0.0, 100.0]), np.array([50.0])], 1000, seed=1)
    assert [d.shape for d in per_group] == [(1000,), (1000,)] and average.shape == (1000,)
    assert np.all(per_group[1] == 50.0) and np.allclose(average, (per_group[0] + 50.0) / 2)


def test_shapes_are_checked():
    with pytest.raises(ConfigError, match="differ in length"):
        paired.differences([1.0, 2.0], [1.0])
    with pytest.raises(ConfigError, match="non-empty 1-D"):
        paired.bootstrap_interval(np.zeros((2, 2)))
    with pytest.raises(ConfigError, match="labels"):
        paired.bootstrap_interval([1.0, 2.0], groups=["a"])


def simulate_trial(rng: np.random.Generator, n: int) -> tuple[dict, dict, float]:
    """Two tasks of binary paired scores; A and B are correlated (a shared difficulty). Returns
    ``(a, b, true mean of the per-task mean differences)``."""
    rates = {"easy": (0.9, 0.75), "hard": (0.55, 0.4)}
    a, b = {}, {}
    for task, (pa, pb) in rates.items():
        hard = rng.random(n) < 0.3               # a hard sample lowers both methods' chances
        u = rng.random(n)                        # shared uniform: A right implies B right more often
        shift = np.where(hard, -0.2, 0.06 / 0.7)  # keeps the marginal rates: 0.3 * -0.2 + 0.7 * shift = 0
        a[task] = 100.0 * (u < pa + shift)
        b[task] = 100.0 * (u < pb + shift)
    truth = 100.0 * np.mean([pa - pb for pa, pb in rates.values()])
    return a, b, truth


def test_bootstrap_interval_covers_the_true_difference_about_95_percent_of_the_time():
    """200 seeded trials of 2 tasks x 100 paired samples. (The percentile bootstrap is a little
    narrow on small sets: 3,000 trials gave 93.2% coverage at 50 samples a task, 94.7% at 200.)"""
    rng = np.random.default_rng(2024)
    trials, covered = 200, 0
    for trial in range(trials):
        a, b, truth = simulate_trial(rng, n=100)
        table = paired.paired_table(a, b, n_resamples=2000, seed=trial)
        ci = table.overall.interval
        covered += ci.low <= truth <= ci.high
    assert 0.90 <= covered / trials <= 0.99, covered / trials


def test_paired_table_rows_and_overall():
    a = {"t1": np.array([100, 100, 0, 100.0]), "t2": np.array([50, 100.0])}
    b = {"t1": np.array([100, 0, 0, 0.0]), "t2": np.array([100, 100.0])}
    t = paired.paired_table(a, b, n_resamples=1000)
    r1, r2 = t.rows["t1"], t.rows["t2"]
    assert (r1.n, r1.mean_a, r1.mean_b, r1.diff, r1.only_a, r1.only_b) == (4, 75.0, 25.0, 50.0, 2, 0)
    assert r1.p_value == pytest.approx(0.5)       # 2 * 1/4
    assert r2.p_value is None and r2.diff == -25.0  # a 50 is not binary
    assert t.overall.n == 6 and t.overall.diff == pytest.approx(12.5) and t.overall.p_value is None
    assert (t.overall.only_a, t.overall.only_b) == (2, 1)  # t2 #0: only B got full marks
    assert t.overall.interval.low <= 12.5 <= t.overall.interval.high
    assert list(t.rows) == ["t1", "t2"]
