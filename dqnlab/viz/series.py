"""Pure array math behind the learning curves: smoothing, putting runs on one env-step grid,
and the band across runs. No plotting here, so every function is tested against hand values."""

from __future__ import annotations

from typing import Literal

import numpy as np

Band = Literal["ci95", "minmax"]


def moving_mean(values: np.ndarray, window: int = 100) -> np.ndarray:
    """Trailing mean of the last `window` values at each position, same length as `values`.

    The first `window - 1` positions average all values so far (the usual "mean of the last 100
    episodes", which is over fewer episodes at the start)."""
    if window < 1:
        raise ValueError("window must be at least 1")
    x = np.asarray(values, dtype=np.float64)
    csum = np.concatenate(([0.0], np.cumsum(x)))
    hi = np.arange(1, len(x) + 1)
    lo = np.maximum(hi - window, 0)
    return (csum[hi] - csum[lo]) / (hi - lo)


def ema(values: np.ndarray, weight: float = 0.9) -> np.ndarray:
    """Exponential moving average: s[0] = v[0], s[t] = weight * s[t-1] + (1 - weight) * v[t].

    This is the smoothing of many RL tutorials (and TensorBoard's slider without its debiasing):
    starting from the first value rather than 0 keeps the start of the curve unbiased."""
    if not 0.0 <= weight < 1.0:
        raise ValueError("weight must be in [0, 1)")
    x = np.asarray(values, dtype=np.float64)
    out = np.empty_like(x)
    last = x[0] if len(x) else 0.0
    for i, v in enumerate(x):  # a recurrence; a Python loop over a few thousand episodes is instant
        last = weight * last + (1.0 - weight) * v
        out[i] = last
    return out


def last_per_step(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep the last value of each run of equal, non-decreasing `steps`.

    Several vectorised environments can finish episodes at the same env step; a curve needs one
    value per x, and the last one is the most recent state of a running statistic."""
    s = np.asarray(steps, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if len(s) == 0:
        return s, v
    if np.any(np.diff(s) < 0):
        raise ValueError("steps must be non-decreasing")
    keep = np.append(s[1:] != s[:-1], True)
    return s[keep], v[keep]


def interp_to_grid(steps: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Linear interpolation of (steps, values) at `grid`: NaN before the first step, and the last
    value held after the last step (a run that stopped early, e.g. because it reached the solve
    threshold, keeps its final value instead of dropping out of the mean across runs).

    Duplicate steps keep their last value (see last_per_step)."""
    s, v = last_per_step(steps, values)
    g = np.asarray(grid, dtype=np.float64)
    if len(s) == 0:
        return np.full(g.shape, np.nan)
    return np.interp(g, s, v, left=np.nan, right=v[-1])


def common_grid(series: list[tuple[np.ndarray, np.ndarray]], points: int = 200) -> np.ndarray:
    """`points` evenly spaced env steps from the latest first step to the latest last step of the
    (steps, values) series, so every run is defined on the whole grid (see interp_to_grid)."""
    nonempty = [np.asarray(s) for s, _ in series if len(s)]
    if not nonempty:
        return np.empty(0)
    start = max(float(s[0]) for s in nonempty)
    end = max(float(s[-1]) for s in nonempty)
    return np.linspace(start, end, points if end > start else 1)


def band_across_runs(
    values: np.ndarray, band: Band = "ci95", resamples: int = 1000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, low, high) over runs at each grid point of `values` (runs, points).

    ``ci95``: the 95% percentile-bootstrap interval of the mean over runs (runs resampled with
    replacement, the same resample for every grid point so the band is a smooth curve).
    ``minmax``: the lowest and highest run. Both say how much the mean curve would move with
    other seeds; with a single run the band is that run's curve."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError("values must have shape (runs, points) with at least one run")
    mean = x.mean(axis=0)
    if band == "minmax":
        return mean, x.min(axis=0), x.max(axis=0)
    if band != "ci95":
        raise ValueError(f"unknown band {band!r}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.shape[0], size=(resamples, x.shape[0]))  # (resamples, runs)
    means = x[idx].mean(axis=1)  # (resamples, points)
    low, high = np.quantile(means, [0.025, 0.975], axis=0)
    return mean, low, high


def steps_per_second(steps: np.ndarray, wall_seconds: np.ndarray) -> np.ndarray:
    """Overall training speed at each row: env steps so far / seconds so far (NaN at 0 s)."""
    s = np.asarray(steps, dtype=np.float64)
    w = np.asarray(wall_seconds, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(w > 0, s / np.where(w > 0, w, 1.0), np.nan)
