"""Seeded bootstrap CIs, paired tests and the cluster bootstrap (sweeps.analysis.bootstrap)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sweeps.analysis import bootstrap_ci
from sweeps.analysis.bootstrap import cluster_bootstrap_ci, paired_bootstrap_ci, sign_flip_test


def test_reproducible_for_a_fixed_seed_whatever_the_global_state():
    x = np.random.default_rng(1).normal(size=8)
    for method in ("percentile", "BCa"):
        np.random.seed(0)
        first = bootstrap_ci(x, seed=3, method=method)
        np.random.seed(1)  # the global NumPy state must not matter
        assert bootstrap_ci(x, seed=3, method=method) == first
        assert bootstrap_ci(x, seed=4, method=method)[1:] != first[1:]


def test_estimate_is_the_statistic_and_interval_contains_it():
    x = [0.1, 0.3, 0.2, 0.25, 0.15]
    est, lo, hi = bootstrap_ci(x, np.median)
    assert est == pytest.approx(0.2)
    assert lo <= est <= hi


def test_two_values_hand_computed():
    # Resampled means of [0, 1] are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4: the 2.5% and
    # 97.5% percentiles are 0 and 1.
    assert bootstrap_ci([0.0, 1.0], n_resamples=4999) == (0.5, 0.0, 1.0)


def test_percentile_coverage_near_nominal():
    """400 samples of 30 N(2, 1) values: the 95% CI of the mean covers 2 about 95% of the time.

    The percentile interval of a mean is about mean +- 1.96 s sqrt((n-1)/n) / sqrt(n) (the
    bootstrap variance divides by n), so its coverage is P(|t_{n-1}| < 1.96 sqrt((n-1)/n)):
    0.90 at n = 10 (too close to the bound for a 400-draw check, whose SE is 0.015) and 0.935
    at n = 30."""
    rng = np.random.default_rng(123)
    hits = 0
    for i in range(400):
        _, lo, hi = bootstrap_ci(rng.normal(2.0, 1.0, size=30), n_resamples=999, seed=i)
        hits += lo <= 2.0 <= hi
    assert 0.90 <= hits / 400 <= 0.98


def test_bca_coverage_near_nominal():
    rng = np.random.default_rng(7)
    hits = sum(
        lo <= 1.0 <= hi
        for lo, hi in (
            bootstrap_ci(rng.exponential(1.0, size=20), n_resamples=999, seed=i, method="BCa")[1:] for i in range(200)
        )
    )
    assert 0.88 <= hits / 200 <= 0.99


@pytest.mark.parametrize("values", [[0.4], [], [float("nan"), 0.4], [0.4, float("inf")]])
def test_fewer_than_two_finite_values_give_no_interval(values):
    est, lo, hi = bootstrap_ci(values)
    assert math.isnan(lo) and math.isnan(hi)
    assert est == 0.4 or (not values and math.isnan(est))


def test_identical_values():
    assert bootstrap_ci([0.3, 0.3, 0.3], method="percentile") == pytest.approx((0.3, 0.3, 0.3))
    est, lo, hi = bootstrap_ci([0.3, 0.3, 0.3], method="BCa")  # jackknife degenerate: no interval
    assert est == pytest.approx(0.3) and math.isnan(lo) and math.isnan(hi)


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="bootstrap method"):
        bootstrap_ci([1.0, 2.0], method="normal")


def test_paired_is_the_bootstrap_of_differences():
    a, b = np.array([0.5, 0.6, 0.4, 0.7]), np.array([0.3, 0.5, 0.35, 0.5])
    assert paired_bootstrap_ci(a, b, seed=2) == bootstrap_ci(a - b, seed=2)
    assert paired_bootstrap_ci([1.0, float("nan")], [0.0, 0.0])[1:] != (0.0, 0.0)  # one finite pair: nan
    with pytest.raises(ValueError, match="equal lengths"):
        paired_bootstrap_ci([1.0], [1.0, 2.0])


def test_sign_flip_exact_p_values():
    # d = (-1, -2, -3): of the 2^3 sign patterns only the observed one has mean <= -2.
    t = sign_flip_test([-1.0, -2.0, -3.0])
    assert t["exact"] == 1 and t["p_below"] == pytest.approx(1 / 8) and t["p_above"] == pytest.approx(1.0)
    t = sign_flip_test(np.full(20, 0.5), n_resamples=999, seed=0)  # 2^20 > 999: Monte Carlo
    assert t["exact"] == 0 and t["p_above"] == pytest.approx(1 / 1000)


def test_cluster_bootstrap_resamples_seeds():
    x = [np.arange(5.0), np.arange(5.0) + 1, np.arange(5.0) - 1]
    clusters = [(a, 2 * a) for a in x]
    corr = lambda u, v: float(np.corrcoef(u, v)[0, 1])  # noqa: E731
    est, lo, hi, scheme = cluster_bootstrap_ci(clusters, corr, n_resamples=199)
    assert scheme == "clusters" and est == pytest.approx(1.0) and lo == pytest.approx(1.0)
    assert cluster_bootstrap_ci(clusters, corr, n_resamples=199) == (est, lo, hi, scheme)
    assert cluster_bootstrap_ci(clusters[:1], corr, n_resamples=199)[3] == "points"
