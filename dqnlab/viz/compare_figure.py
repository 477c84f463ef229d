"""The figure of `dqnlab compare`: every entry's curves, mean over seeds with a 95% band."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from dqnlab.core.errors import DqnlabError
from dqnlab.viz.curves import WINDOW
from dqnlab.viz.metrics import read_run_metrics
from dqnlab.viz.output import CURVES_FILE, write_output
from dqnlab.viz.series import band_across_runs, common_grid, interp_to_grid, moving_mean

if TYPE_CHECKING:
    from matplotlib.figure import Figure


DPI = 100


def new_figure(width: float, height: float) -> Figure:
    """A matplotlib figure on the Agg canvas; DqnlabError without matplotlib (imported here, only
    when a figure is drawn, so that ``import dqnlab`` stays light and no global backend is
    switched for the caller)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure as MplFigure
    except ImportError:
        raise DqnlabError('plots need matplotlib: pip install "matplotlib>=3.7"') from None
    fig = MplFigure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def write_compare_figure(result: dict[str, Any], root: Path) -> Path:
    """Draw compare_figure and write it to ROOT/curves.png."""
    return write_output(root / CURVES_FILE, png_bytes(compare_figure(result, root)))


def compare_figure(result: dict[str, Any], root: Path) -> Figure:
    """Two panels, one colour per entry: greedy evaluation mean and the 100-episode mean of
    training returns against env steps, each the mean over seeds with a 95% bootstrap band; and
    a third, the evaluations' task success rate, when some entry's runs record one. An entry
    whose series is a single point (a baseline evaluated once) is a horizontal line at its level."""
    runs_of = {
        e["label"]: [
            read_run_metrics(root / e["label"] / f"seed-{r['seed']}")
            for r in e["per_seed"]
            if r["status"] == "finished"
        ]
        for e in result["entries"]
    }
    with_success = any(np.isfinite(m.eval_success).any() for runs in runs_of.values() for m in runs)
    fig = new_figure(19 if with_success else 13, 5)
    axes = fig.subplots(1, 3 if with_success else 2)
    ax_eval, ax_train = axes[0], axes[1]
    ax_success = axes[2] if with_success else None
    fig.suptitle(f"{len(result['entries'])} configurations × {len(result['seeds'])} seeds", fontsize=11)
    import matplotlib
    from matplotlib.colors import ListedColormap

    tab20 = matplotlib.colormaps["tab20"]
    assert isinstance(tab20, ListedColormap)  # the registry's type is any Colormap
    # 20 colours, then line styles tell entries apart. RGB tuples: matplotlib types them as any colour data.
    palette = cast(tuple[tuple[float, float, float], ...], tab20.colors)
    styles = ("-", "--", ":", "-.")
    for k, e in enumerate(result["entries"]):
        color, style = palette[(2 * k) % 20 if k < 10 else (2 * k + 1) % 20], styles[(k // 20) % 4]
        runs = runs_of[e["label"]]
        panels = [
            (ax_eval, [(m.eval_step, m.eval_mean) for m in runs if len(m.eval_step)]),
            (ax_train, [(m.train_step, moving_mean(m.train_return, WINDOW)) for m in runs if len(m.train_step)]),
        ]
        if ax_success is not None:
            panels.append(
                (
                    ax_success,
                    [
                        (m.eval_step, m.eval_success)
                        for m in runs
                        if len(m.eval_step) and np.isfinite(m.eval_success).all()
                    ],
                )
            )
        for ax, series in panels:
            grid = common_grid(series, 200)
            if not len(grid):
                continue
            values = np.stack([interp_to_grid(s, v, grid) for s, v in series])
            mean, low, high = band_across_runs(values, "ci95")
            label = f"{e['label']} ({e['solved']}/{e['runs']} solved)"
            if len(grid) == 1:
                # One point (a fixed controller evaluated once, then stopped): a curve of one point
                # draws nothing, so its level spans the panel, as a reference line.
                ax.axhspan(low[0], high[0], color=color, alpha=0.15, linewidth=0)
                ax.axhline(mean[0], color=color, linestyle=style, linewidth=1.8, label=label + ", one evaluation")
                continue
            ax.fill_between(grid, low, high, color=color, alpha=0.2, linewidth=0)
            ax.plot(grid, mean, color=color, linestyle=style, linewidth=1.8, label=label)
    for ax, title in (
        (ax_eval, "Greedy evaluation mean (band: 95% CI over seeds)"),
        (ax_train, f"Training return, mean of last {WINDOW} episodes"),
    ):
        ax.set_title(title, fontsize=10)
        ax.set_xscale("symlog", linthresh=1000)
        ax.set_xlabel("environment steps (log scale above 1000)")
        ax.set_ylabel("return")
        ax.grid(True, alpha=0.3)
    thresholds = {e["threshold"] for e in result["entries"] if e["threshold"] is not None}
    if thresholds:
        # Runs without a time limit (episodes of thousands of steps) would flatten every other
        # curve: the axis stops a little above the highest threshold's episode length.
        top = max(thresholds) / 0.95 * 1.15
        for ax in (ax_eval, ax_train):
            if ax.get_ylim()[1] > top:
                ax.set_ylim(0, top)
                ax.text(
                    0.99,
                    0.99,
                    f"clipped at {top:.0f}",
                    transform=ax.transAxes,
                    ha="right",
                    va="top",
                    fontsize=7,
                    color="0.4",
                )
    if len(thresholds) == 1:
        ax_eval.axhline(thresholds.pop(), color="0.3", linestyle="--", linewidth=1, label="solve threshold")
    ax_eval.legend(fontsize=7, loc="best")
    if ax_success is not None:
        ax_success.set_title("Task success rate of the evaluations", fontsize=10)
        ax_success.set_xscale("symlog", linthresh=1000)
        ax_success.set_xlabel("environment steps (log scale above 1000)")
        ax_success.set_ylabel("success rate")
        ax_success.set_ylim(0.0, 1.05)
        ax_success.grid(True, alpha=0.3)
        goals = {r.get("success_threshold") for e in result["entries"] for r in e["per_seed"]} - {None}
        if len(goals) == 1:
            ax_success.axhline(goals.pop(), color="0.3", linestyle="--", linewidth=1, label="success goal")
    return fig
