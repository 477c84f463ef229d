"""Learning curves as PNG, from one run directory or several (seeds) on one figure.

One run, up to four panels sharing the env-step axis:
  training returns   every finished episode (dots), the mean of the last 100 episodes, and an
                     exponential moving average (weight 0.9); the solve threshold dashed
  greedy evaluation  the mean of each evaluation with a band of ± one standard deviation over its
                     episodes (metrics.csv holds mean and std, not min and max, so the band is
                     mean ± std and is not clipped: it can pass the best achievable return); the
                     delivered policy's final evaluation as an error bar at the step it was saved
  loss               the last loss at each episode end and its 100-episode mean (log scale),
                     titled by what it is (DQN's TD loss, PPO's combined loss); only for
                     algorithms that minimise a loss (not tabular, not the baselines); for DQN,
                     on a second axis, the largest |Q| at each evaluation (metrics.csv's q_max)
                     and the most any return can be (summary.json's q_bound), so that a
                     diverging value estimate shows
  exploration        epsilon at each episode end; only for algorithms that explore by epsilon
                     (DQN, tabular): PPO samples its stochastic policy instead
The run's algorithm (summary.json or config.yaml) decides; for an algorithm dqnlab does not know,
a panel is drawn when its column holds a value.
Early-stop re-checks (rows of kind ``confirm``) are not drawn (see dqnlab.viz.metrics).

Several runs, two panels: the 100-episode mean of training returns and the evaluation mean, each
interpolated onto a common env-step grid; the mean over runs with a band (95% bootstrap interval
of that mean, or min–max across runs) and each run as a thin line.

Both are drawn by dqnlab.viz.chart, a small plotter on Pillow with matplotlib's names (about
0.05 s where matplotlib took 0.6 s, at the end of every training run). The figure of `dqnlab
compare` (dqnlab.viz.compare_figure) stays on matplotlib.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dqnlab.config.algorithms import ALGORITHMS
from dqnlab.core.errors import DqnlabError
from dqnlab.viz.chart import Axes, Figure
from dqnlab.viz.metrics import RunMetrics, read_run_metrics
from dqnlab.viz.output import write_output
from dqnlab.viz.series import Band, band_across_runs, common_grid, ema, interp_to_grid, moving_mean

WINDOW = 100  # episodes in the moving mean: the "mean of the last 100 episodes" of Gym's leaderboards
EMA_WEIGHT = 0.9
GRID_POINTS = 200
MAX_POINTS = 20_000
"""Points drawn per series at most: more are thinned evenly (after smoothing over all of them), so
a run of millions of episodes draws in seconds and looks the same at figure resolution."""
_BAND_LABELS = {"ci95": "95% bootstrap CI of the mean", "minmax": "min–max across runs"}
LOSS_TITLES = {
    "dqn": "TD loss",
    "pqn": "Q(λ) loss",
    "ppo": "PPO loss: clipped surrogate + value − entropy",
}
"""What the `loss` column of metrics.csv is, for the algorithms that minimise one."""


def loss_title(m: RunMetrics) -> str | None:
    """The loss panel's title for run `m`, or None when its algorithm minimises no loss."""
    if m.algo in LOSS_TITLES:
        return LOSS_TITLES[m.algo]
    if m.algo in ALGORITHMS:  # tabular Q-learning and the fixed controllers
        return None
    return "training loss" if np.isfinite(m.train_loss).any() else None


def shows_exploration(m: RunMetrics) -> bool:
    """Whether run `m`'s algorithm explores by epsilon (it reads the `explore` config section)."""
    if m.algo in ALGORITHMS:
        return "explore" in ALGORITHMS[m.algo].sections
    return bool(np.isfinite(m.train_epsilon).any())


def _thin(*series: np.ndarray) -> tuple[np.ndarray, ...]:
    """The same evenly spaced rows of each array (first and last kept), at most MAX_POINTS."""
    n = len(series[0])
    if n <= MAX_POINTS:
        return series
    idx = np.unique(np.linspace(0, n - 1, MAX_POINTS).round().astype(np.int64))
    return tuple(a[idx] for a in series)


def _threshold(ax: Axes, threshold: float | None) -> None:
    if threshold is not None:
        ax.axhline(threshold, color="0.35", linestyle="--", linewidth=1, label=f"solve threshold {threshold:g}")


def _title(m: RunMetrics) -> str:
    parts = [m.name]
    if m.env_id:
        parts.append(m.env_id)
    s = m.summary
    if s is not None and s.get("eval_mean") is not None:
        verdict = "solved" if s.get("solved") else "not solved"
        parts.append(
            f"{verdict}: final eval {s['eval_mean']:.1f} ± {s.get('eval_std') or 0:.1f} "
            f"over {s.get('eval_episodes')} episodes"
        )
    elif s is None:
        parts.append("in progress")
    return "  ·  ".join(parts)


def run_figure(m: RunMetrics) -> Figure:
    """The figure of one run: two to four panels (see the module docstring)."""
    title = loss_title(m)
    lower = [name for name, shown in (("loss", title is not None), ("eps", shows_exploration(m))) if shown]
    mosaic: list[list[str]]  # rows of panel names
    if not lower:
        fig = Figure(11, 4.2)
        mosaic = [["ret", "eval"]]
    else:
        fig = Figure(11, 7.5)
        mosaic = [["ret", "eval"], lower if len(lower) == 2 else lower * 2]  # one lower panel spans the row
    axes = fig.subplot_mosaic(mosaic, sharex=True)
    ax_ret, ax_eval = axes["ret"], axes["eval"]
    fig.suptitle(_title(m), fontsize=11)
    for name in lower:
        axes[name].set_xlabel("environment steps")
    if not lower:
        ax_ret.set_xlabel("environment steps")
        ax_eval.set_xlabel("environment steps")

    ax_ret.set_title("Training episodes", fontsize=10)
    if len(m.train_step):
        steps, returns, mean, smooth = _thin(
            m.train_step, m.train_return, moving_mean(m.train_return, WINDOW), ema(m.train_return, EMA_WEIGHT)
        )
        ax_ret.scatter(steps, returns, s=4, color="C0", alpha=0.25, linewidths=0, label="episode return")
        ax_ret.plot(steps, mean, color="C0", linewidth=2, label=f"mean of last {WINDOW} episodes")
        ax_ret.plot(steps, smooth, color="C1", linewidth=1, label=f"EMA (weight {EMA_WEIGHT:g})")
    else:
        _empty(ax_ret, "no finished training episode yet")
    _threshold(ax_ret, m.threshold)
    ax_ret.set_ylabel("return")

    ax_eval.set_title("Greedy evaluation", fontsize=10)
    if len(m.eval_step):
        e_step, e_mean, e_std = _thin(m.eval_step, m.eval_mean, m.eval_std)
        ax_eval.fill_between(
            e_step,
            e_mean - e_std,
            e_mean + e_std,
            color="C2",
            alpha=0.2,
            linewidth=0,
            label="± 1 std over its episodes",
        )
        ax_eval.plot(e_step, e_mean, color="C2", marker="o", markersize=3, label="evaluation mean")
        s = m.summary or {}
        if s.get("eval_mean") is not None and s.get("best_eval_step") is not None:
            ax_eval.errorbar(
                [s["best_eval_step"]],
                [s["eval_mean"]],
                yerr=[[s.get("eval_std") or 0.0]] * 2,
                fmt="D",
                color="C3",
                capsize=4,
                markersize=6,
                label=f"delivered policy, {s.get('eval_episodes')} fresh episodes",
            )
    else:
        _empty(ax_eval, "no evaluation yet")
    _threshold(ax_eval, m.threshold)
    ax_eval.set_ylabel("return")
    if np.isfinite(m.eval_success).any():  # a task that reports success: its rate on a second axis
        ax_success = ax_eval.twinx()
        ax_success.plot(
            *_thin(m.eval_step, m.eval_success), color="C5", linestyle="--", linewidth=1.2, label="task success rate"
        )
        goal = (m.summary or {}).get("success_threshold")
        if goal is not None:
            ax_success.axhline(goal, color="C5", linestyle=":", linewidth=1)
        ax_success.set_ylim(0.0, 1.05)
        ax_success.set_ylabel("success rate")
        ax_success.legend(loc="best", fontsize=8)

    if title is not None:
        _loss_panel(axes["loss"], m, title)
    if "eps" in axes:
        _exploration_panel(axes["eps"], m)

    for ax in axes.values():
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
    return fig


def _loss_panel(ax: Axes, m: RunMetrics, title: str) -> None:
    ax.set_title(f"{title} (at each episode end)", fontsize=10)
    finite = np.isfinite(m.train_loss)
    if finite.any():
        steps, loss, mean = _thin(m.train_step[finite], m.train_loss[finite], moving_mean(m.train_loss[finite], WINDOW))
        ax.plot(steps, loss, color="C4", alpha=0.3, linewidth=0.8, label="loss")
        ax.plot(steps, mean, color="C4", linewidth=1.8, label=f"{WINDOW}-episode mean")
        if (loss > 0).all():
            ax.set_yscale("log")
    else:
        _empty(ax, "no gradient step yet")
    ax.set_ylabel("loss")
    finite = np.isfinite(m.eval_q_max)
    if finite.any():
        ax_q = ax.twinx()
        ax_q.plot(
            *_thin(m.eval_step[finite], m.eval_q_max[finite]),
            color="C3",
            marker=".",
            linewidth=1.2,
            label="max |Q| (at evaluations)",
        )
        bound = (m.summary or {}).get("q_bound")
        if isinstance(bound, (int, float)) and math.isfinite(bound):
            ax_q.axhline(bound, color="C3", linestyle=":", linewidth=1, label=f"max |reward| / (1 - γ) = {bound:.4g}")
        ax_q.set_ylabel("max |Q|")
        ax_q.legend(loc="best", fontsize=8)


def _exploration_panel(ax: Axes, m: RunMetrics) -> None:
    ax.set_title("Exploration", fontsize=10)
    finite = np.isfinite(m.train_epsilon)
    if finite.any():
        ax.plot(*_thin(m.train_step, m.train_epsilon), color="C5", linewidth=1.5, label="epsilon")
        ax.set_ylim(-0.02, max(1.0, float(m.train_epsilon[finite].max())) + 0.02)
    else:
        _empty(ax, "no finished training episode yet")
    ax.set_ylabel("epsilon")


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, color="0.5")  # centred in the panel


def runs_figure(runs: Sequence[RunMetrics], band: Band = "ci95") -> Figure:
    """The two-panel figure comparing several runs (see the module docstring)."""
    fig = Figure(12, 4.8)
    ax_ret, ax_eval = fig.subplots(1, 2, sharex=True)
    envs = sorted({m.env_id for m in runs if m.env_id})
    finished = [m.summary for m in runs if m.summary and m.summary.get("eval_mean") is not None]
    title = f"{len(runs)} runs" + (f" of {', '.join(envs)}" if envs else "")
    if finished:
        title += f"  ·  solved {sum(bool(s.get('solved')) for s in finished)}/{len(finished)} finished"
    fig.suptitle(title, fontsize=11)

    train = [(m.train_step, moving_mean(m.train_return, WINDOW)) for m in runs if len(m.train_step)]
    evals = [(m.eval_step, m.eval_mean) for m in runs if len(m.eval_step)]
    panels = (
        (ax_ret, train, f"Training: mean of last {WINDOW} episodes", "C0"),
        (ax_eval, evals, "Greedy evaluation mean", "C2"),
    )
    for ax, series, name, color in panels:
        ax.set_title(name, fontsize=10)
        grid = common_grid(series, GRID_POINTS)
        if not len(grid):
            _empty(ax, "no data yet")
        else:
            values = np.stack([interp_to_grid(s, v, grid) for s, v in series])  # (runs, points)
            for row in values:
                ax.plot(grid, row, color=color, alpha=0.25, linewidth=0.8)
            mean, low, high = band_across_runs(values, band)
            ax.fill_between(grid, low, high, color=color, alpha=0.25, linewidth=0, label=_BAND_LABELS[band])
            ax.plot(grid, mean, color=color, linewidth=2, label=f"mean of {len(series)} runs")
        thresholds = {m.threshold for m in runs if m.threshold is not None}
        if len(thresholds) == 1:
            _threshold(ax, thresholds.pop())
        ax.set_xlabel("environment steps")
        ax.set_ylabel("return")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
    return fig


def plot_curves(run_dirs: Sequence[str | Path], out: str | Path, band: Band = "ci95") -> Path:
    """Write the learning curves of one run (four panels) or several (mean and band) to `out` as
    PNG and return its path. Raises DqnlabError for a missing or damaged run or an unwritable
    `out`; `out` is replaced if it exists (callers apply the overwrite rule first)."""
    if not run_dirs:
        raise DqnlabError("no run directory given")
    runs = [read_run_metrics(d) for d in run_dirs]
    fig = run_figure(runs[0]) if len(runs) == 1 else runs_figure(runs, band)
    return write_output(out, fig.png())
