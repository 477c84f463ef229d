"""Aggregate statistics over seeds: median, interquartile mean, bootstrap confidence intervals."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Values = Sequence[float] | np.ndarray
"""Numbers: a sequence or a 1-d array."""


def iqm(values: Values) -> float:
    """Interquartile mean: the mean of the middle 50% of the sorted values (Agarwal et al. 2021),
    with fractional weights at the quartile boundaries so any n works."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = len(x)
    if n == 0:
        raise ValueError("iqm of no values")
    lo, hi = 0.25 * n, 0.75 * n
    # weight of sample i = overlap of [i, i+1) with [lo, hi)
    idx = np.arange(n)
    weights = np.clip(np.minimum(idx + 1, hi) - np.maximum(idx, lo), 0.0, 1.0)
    return float((weights * x).sum() / weights.sum())


def bootstrap_ci(
    values: Values,
    statistic: Callable[[np.ndarray], float] = iqm,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `statistic` over resamples of `values` with replacement."""
    x = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    stats = np.array([statistic(x[rng.integers(0, len(x), len(x))]) for _ in range(resamples)])
    alpha = (1.0 - confidence) / 2.0
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1.0 - alpha))


def summarize(values: Values) -> dict[str, float]:
    """median, IQM with its 95% bootstrap interval, mean, min, max."""
    x = np.asarray(values, dtype=np.float64)
    lo, hi = bootstrap_ci(x)
    return {
        "median": float(np.median(x)),
        "iqm": iqm(x),
        "iqm_ci_low": lo,
        "iqm_ci_high": hi,
        "mean": float(x.mean()),
        "min": float(x.min()),
        "max": float(x.max()),
        "n": int(len(x)),
    }
