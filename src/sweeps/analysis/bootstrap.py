"""Seeded bootstrap confidence intervals and paired tests over per-seed values.

Every interval here is over *independent units* (seeds, or clusters of points sharing a seed),
never over checkpoints of one run, which are correlated. The rules, in prose:

- :func:`bootstrap_ci` resamples the per-seed values with replacement ``n_resamples`` times,
  recomputes the statistic on each resample and takes the percentile interval (or the BCa
  interval, which corrects the percentiles for bias and skew by a jackknife). It is
  ``scipy.stats.bootstrap`` seeded with ``numpy.random.default_rng(seed)``, so the same input
  and seed give the same interval. Non-finite values are dropped first (the tables report
  them). With fewer than two values there is no sampling distribution to speak of, and with
  BCa on identical values the jackknife is degenerate: the interval is then ``(nan, nan)``,
  never a made-up one. The estimate is always the statistic of the (finite) values.
- :func:`paired_bootstrap_ci` is the same on per-seed differences ``a - b`` (pairs with a
  non-finite side are dropped): e.g. RL_End - SFT_MaxOOD per seed.
- :func:`sign_flip_test` tests a mean paired difference against 0: under H0 (the difference is
  symmetric around 0) each seed's sign is a coin flip, so the null distribution of the mean is
  that of the means with random signs, enumerated exactly when 2^n is small, else sampled.
- :func:`cluster_bootstrap_ci` resamples whole clusters (seeds) and pools their points, for a
  statistic of many points per seed such as a correlation across checkpoints.
"""

from __future__ import annotations

import inspect
import itertools
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

NAN = float("nan")


def _finite(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    return x[np.isfinite(x)]


def _seed_kwargs(seed: int) -> dict:
    """scipy >= 1.15 takes ``rng``; older versions take ``random_state``."""
    params = inspect.signature(stats.bootstrap).parameters
    key = "rng" if "rng" in params else "random_state"
    return {key: np.random.default_rng(seed)}


def bootstrap_ci(
    values: Sequence[float],
    statistic: Callable = np.mean,
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
    method: str = "percentile",
) -> tuple[float, float, float]:
    """(estimate, low, high) of ``statistic`` over 1-D per-seed ``values`` (see module doc)."""
    if method.lower() not in ("percentile", "bca", "basic"):
        raise ValueError(f"bootstrap method={method!r}: use percentile, BCa or basic")
    x = _finite(values)
    if x.size == 0:
        return NAN, NAN, NAN
    estimate = float(statistic(x))
    if x.size < 2 or (method.lower() == "bca" and np.ptp(x) == 0):
        return estimate, NAN, NAN
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DegenerateDataWarning: handled as nan below
        res = stats.bootstrap(
            (x,), statistic, n_resamples=n_resamples, confidence_level=confidence, method=method, **_seed_kwargs(seed)
        )
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (np.isfinite(low) and np.isfinite(high)):
        return estimate, NAN, NAN
    return estimate, low, high


def paired_bootstrap_ci(
    a: Sequence[float], b: Sequence[float], statistic: Callable = np.mean, **kwargs
) -> tuple[float, float, float]:
    """``bootstrap_ci`` of the per-seed differences ``a - b`` (same seed order in both)."""
    d = paired_differences(a, b)
    return bootstrap_ci(d, statistic, **kwargs)


def paired_differences(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal lengths, got {a.size} and {b.size}")
    d = a - b
    return d[np.isfinite(d)]


def sign_flip_test(diffs: Sequence[float], n_resamples: int = 9999, seed: int = 0) -> dict[str, float]:
    """One-sample sign-flip test of the mean of paired differences against 0.

    Returns the observed mean, ``p_below`` (evidence that the mean is < 0: the fraction of
    sign-flipped means <= the observed one) and ``p_above`` (>=), and ``exact`` (1 when all
    2^n sign patterns were enumerated). With n seeds the smallest possible p is 2^-n (0.125 for
    3 seeds): a small study cannot be significant, and this says so instead of pretending.
    """
    d = _finite(diffs)
    if d.size == 0:
        return {"mean": NAN, "p_below": NAN, "p_above": NAN, "n": 0, "exact": 0}
    observed = float(d.mean())
    if 2**d.size <= n_resamples:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))  # [2^n, n]
        exact = 1
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(n_resamples, d.size))  # [B, n]
        exact = 0
    null = (signs * d).mean(axis=1)
    tol = 1e-12 * max(1.0, abs(observed))
    below, above = np.sum(null <= observed + tol), np.sum(null >= observed - tol)
    extra = 0 if exact else 1  # Monte Carlo: count the observed pattern once
    total = null.size + extra
    return {
        "mean": observed,
        "p_below": float((below + extra) / total),
        "p_above": float((above + extra) / total),
        "n": int(d.size),
        "exact": exact,
    }


def cluster_bootstrap_ci(
    clusters: Sequence[tuple[np.ndarray, ...]],
    statistic: Callable[..., float],
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
) -> tuple[float, float, float, str]:
    """(estimate, low, high, scheme): percentile CI of ``statistic(*pooled arrays)``.

    ``clusters`` holds one tuple of equally long arrays per cluster (seed), e.g. (x, y) of its
    checkpoints. With two or more clusters, whole clusters are resampled with replacement and
    their points pooled (scheme "clusters"), which keeps the within-seed correlation of
    checkpoints. With one cluster the points themselves are resampled (scheme "points"): an
    interval that ignores that dependence, labelled as such. Resamples where the statistic is
    undefined (e.g. a constant variable for a correlation) are dropped; if more than half are,
    the interval is nan.
    """
    clusters = [tuple(np.asarray(a, dtype=float) for a in c) for c in clusters if len(c[0])]
    if not clusters:
        return NAN, NAN, NAN, "none"
    pooled = [np.concatenate(parts) for parts in zip(*clusters)]
    estimate = float(statistic(*pooled))
    rng = np.random.default_rng(seed)
    units, scheme = (
        (clusters, "clusters")
        if len(clusters) > 1
        else ([tuple(a[i : i + 1] for a in clusters[0]) for i in range(len(clusters[0][0]))], "points")
    )
    if len(units) < 2:
        return estimate, NAN, NAN, scheme
    draws = np.empty(n_resamples)
    for b in range(n_resamples):
        pick = rng.integers(0, len(units), len(units))
        draws[b] = statistic(*[np.concatenate([units[i][j] for i in pick]) for j in range(len(pooled))])
    draws = draws[np.isfinite(draws)]
    if draws.size < n_resamples / 2:
        return estimate, NAN, NAN, scheme
    alpha = (1 - confidence) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    return estimate, float(low), float(high), scheme
