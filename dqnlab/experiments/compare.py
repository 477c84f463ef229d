"""`dqnlab compare`: train several presets or configs on the same seeds, then tabulate and plot.

    OUT/<label>/seed-<k>/   one ordinary run directory per (entry, seed)
    OUT/compare.json        per entry: solve rate, final-evaluation statistics, steps and seconds to solve
    OUT/compare.md          the same as a Markdown table (what the command prints)
    OUT/curves.png          evaluation and training curves: mean over seeds with a 95% band per entry

Running the same command again skips the runs that finished (their summary.json is read back)
and continues the ones cut off from their checkpoints, so an interrupted comparison resumes; a
run directory left by a different config is refused. SIGINT or SIGTERM stops the whole comparison
(see dqnlab.experiments.fanout): runs under way checkpoint, queued runs never start, and nothing is tabulated.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dqnlab.config import RunConfig, build_config
from dqnlab.core.errors import ConfigError
from dqnlab.core.fileio import atomic_write_json, atomic_write_text
from dqnlab.config.presets import PRESETS
from dqnlab.experiments.runs import PlannedRun, seeded, train_runs
from dqnlab.runtime.rundir import open_output_folder
from dqnlab.experiments.stats import summarize
from dqnlab.core.stopping import catch_stop_signals

COMPARE_JSON = "compare.json"
COMPARE_MD = "compare.md"
CURVES_PNG = "curves.png"


def resolve_entries(entries: Sequence[str], overrides: list[str] | None = None) -> list[tuple[str, RunConfig]]:
    """Each entry is a preset name or a YAML config file; returns (label, config) pairs with
    distinct labels (the preset name, or the file's stem)."""
    if not entries:
        raise ConfigError("compare needs at least one preset or config file")
    out: list[tuple[str, RunConfig]] = []
    for entry in entries:
        path = Path(entry)
        if entry in PRESETS:
            label, cfg = entry, build_config(entry, overrides=overrides)
        elif path.suffix in (".yaml", ".yml") or path.exists():
            label, cfg = entry_label(path), build_config(config_file=path, overrides=overrides)
        else:
            build_config(entry)  # raises the unknown-preset error with its hint
            raise AssertionError("unreachable")
        if any(label == other for other, _ in out):
            raise ConfigError(f"compare: '{entry}' is given twice (labels must differ)")
        out.append((label, cfg))
    return out


def entry_label(path: Path) -> str:
    """The label (and folder name under --out) of a config file: its stem, with anything but
    letters, digits, '-', '_', '+' and inner dots replaced, so that no label can name a path
    outside --out (a file called '...yaml' has the stem '..')."""
    label = re.sub(r"[^A-Za-z0-9_+.-]", "_", path.stem).lstrip(".")
    return label[:100] or "config"


def solve_point(run_dir: Path, summary: dict[str, Any]) -> tuple[int | None, float | None]:
    """(env steps, training seconds) at the first evaluation during training that solved the task
    (mean return at the summary's `threshold`, or success rate at its `success_threshold` when
    set), from metrics.csv; (None, None) if none did. The same rule for every algorithm and stop rule."""
    from dqnlab.viz.metrics import read_run_metrics

    threshold, success_threshold = summary.get("threshold"), summary.get("success_threshold")
    if threshold is None and success_threshold is None:
        return None, None
    m = read_run_metrics(run_dir)
    with np.errstate(invalid="ignore"):  # NaN (not recorded) never counts as a solve
        hit = np.flatnonzero(m.eval_success >= success_threshold if success_threshold is not None
                             else m.eval_mean >= threshold)
    if not len(hit):
        return None, None
    return int(m.eval_step[hit[0]]), float(m.eval_wall[hit[0]])


@catch_stop_signals()  # a signal before the runs start still stops them from starting
def compare(configs: list[tuple[str, RunConfig]], seeds: list[int], out: str | Path, workers: int | None = None,
            on_result: Callable[[str, dict[str, Any]], None] | None = None, *, backend: str = "local",
            ray_address: str | None = None) -> dict[str, Any]:
    """Train every (label, config) on every seed (all runs share one pool of `workers`, or one Ray
    cluster: see dqnlab.experiments.fanout), skipping runs already finished in `out`; write compare.json,
    compare.md and curves.png; return the comparison."""
    from dqnlab.experiments.fanout import check_backend

    check_backend(backend, ray_address, workers)  # before the output folder is created
    lock = open_output_folder(out, "compare")  # ours (marked) or new, and one comparison at a time
    try:
        return _compare(configs, seeds, Path(out), workers, on_result, backend, ray_address)
    finally:
        lock.release()


def _compare(configs: list[tuple[str, RunConfig]], seeds: list[int], root: Path, workers: int | None,
             on_result: Callable[[str, dict[str, Any]], None] | None, backend: str,
             ray_address: str | None) -> dict[str, Any]:
    runs = [PlannedRun((label, seed), seeded(cfg, seed), root / label / f"seed-{seed}")
             for label, cfg in configs for seed in seeds]
    report = None if on_result is None else (lambda key, summary: on_result(key[0], summary))
    rows = train_runs(runs, workers, report, backend=backend, ray_address=ray_address)
    result = {"seeds": list(seeds), "entries": []}
    for label, cfg in configs:
        per_seed = []
        for seed in seeds:
            s = rows[(label, seed)]
            steps, seconds = (None, None)
            if s.get("status") == "finished":
                steps, seconds = solve_point(root / label / f"seed-{seed}", s)
            per_seed.append({**{k: s.get(k) for k in ("seed", "status", "solved", "eval_mean", "eval_mean_length",
                                                      "env_steps", "episodes", "train_seconds", "threshold",
                                                      "success_threshold", "stop_reason", "error", "success_rate")},
                             "steps_to_solve": steps, "seconds_to_solve": seconds})
        result["entries"].append(entry_stats(label, cfg, per_seed))
    atomic_write_json(root / COMPARE_JSON, result)
    atomic_write_text(root / COMPARE_MD, format_table(result) + "\n")
    write_compare_figure(result, root)
    return result


def entry_stats(label: str, cfg: RunConfig, per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate one entry's runs: solve rate, statistics of the final evaluation means, and of
    steps and seconds to solve over the seeds that solved."""
    ok = [r for r in per_seed if r["status"] == "finished"]
    reached = [r for r in ok if r["steps_to_solve"] is not None]
    return {
        "label": label,
        "algo": cfg.algo,
        "env_id": cfg.env.id,
        "threshold": ok[0]["threshold"] if ok else None,
        "runs": len(per_seed),
        "failed": len(per_seed) - len(ok),
        "solved": sum(bool(r["solved"]) for r in ok),
        "eval_mean": summarize([r["eval_mean"] for r in ok]) if ok else None,
        "reached_threshold": len(reached),
        "steps_to_solve": summarize([r["steps_to_solve"] for r in reached]) if reached else None,
        "seconds_to_solve": summarize([r["seconds_to_solve"] for r in reached]) if reached else None,
        "train_seconds": summarize([r["train_seconds"] for r in ok]) if ok else None,
        "per_seed": per_seed,
    }


def _f(x: float | None, fmt: str = "{:.1f}") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def format_table(result: dict[str, Any]) -> str:
    """Markdown table: one row per entry."""
    head = ("| preset | algo | env | solved | final eval median | IQM [95% CI] | reached threshold | "
            "steps to solve (median) | s to solve (median) | train s (median) |")
    lines = [head, "|" + "---|" * 10]
    for e in result["entries"]:
        ev = e["eval_mean"]
        st, ss, ts = e["steps_to_solve"], e["seconds_to_solve"], e["train_seconds"]
        iqm = f"{ev['iqm']:.1f} [{ev['iqm_ci_low']:.1f}, {ev['iqm_ci_high']:.1f}]" if ev else "–"
        lines.append(
            f"| {e['label']} | {e['algo']} | {e['env_id']} | {e['solved']}/{e['runs']}"
            + (f" ({e['failed']} failed)" if e["failed"] else "")
            + f" | {_f(ev and ev['median'])} | {iqm} | {e['reached_threshold']}/{e['runs']} | "
            f"{_f(st and st['median'], '{:.0f}')} | {_f(ss and ss['median'], '{:.2f}')} | "
            f"{_f(ts and ts['median'], '{:.2f}')} |")
    for e in result["entries"]:
        rates = [r["success_rate"] for r in e["per_seed"] if r.get("success_rate") is not None]
        if rates:
            goal = next((r["success_threshold"] for r in e["per_seed"] if r.get("success_threshold")), None)
            lines.append(f"\n{e['label']}: task success rate per seed (final evaluation): "
                         + ", ".join(f"{x:.0%}" for x in rates) + f"; median {float(np.median(rates)):.0%}"
                         + ("" if goal is None else f" (solved here means a success rate of at least {goal:.0%})"))
    lines.append("")
    lines.append("solved: the delivered policy's final evaluation (100 fresh episodes) reached the threshold. "
                 "Steps and seconds to solve: at the first evaluation during training that reached it "
                 "(median over the seeds that did).")
    return "\n".join(lines)


def write_compare_figure(result: dict[str, Any], root: Path) -> Path:
    """Two panels, one colour per entry: greedy evaluation mean and the 100-episode mean of
    training returns against env steps, each the mean over seeds with a 95% bootstrap band; and
    a third, the evaluations' task success rate, when some entry's runs record one."""
    from dqnlab.viz.curves import WINDOW, _new_figure, _png_bytes
    from dqnlab.viz.metrics import read_run_metrics
    from dqnlab.viz.output import write_output
    from dqnlab.viz.series import band_across_runs, common_grid, interp_to_grid, moving_mean

    runs_of = {e["label"]: [read_run_metrics(root / e["label"] / f"seed-{r['seed']}") for r in e["per_seed"]
                            if r["status"] == "finished"] for e in result["entries"]}
    with_success = any(np.isfinite(m.eval_success).any() for runs in runs_of.values() for m in runs)
    fig = _new_figure(19 if with_success else 13, 5)
    axes = fig.subplots(1, 3 if with_success else 2)
    ax_eval, ax_train = axes[0], axes[1]
    ax_success = axes[2] if with_success else None
    fig.suptitle(f"{len(result['entries'])} configurations × {len(result['seeds'])} seeds", fontsize=11)
    import matplotlib

    palette = matplotlib.colormaps["tab20"].colors  # 20 colours, then line styles tell entries apart
    styles = ("-", "--", ":", "-.")
    for k, e in enumerate(result["entries"]):
        color, style = palette[(2 * k) % 20 if k < 10 else (2 * k + 1) % 20], styles[(k // 20) % 4]
        runs = runs_of[e["label"]]
        panels = [
            (ax_eval, [(m.eval_step, m.eval_mean) for m in runs if len(m.eval_step)]),
            (ax_train, [(m.train_step, moving_mean(m.train_return, WINDOW)) for m in runs if len(m.train_step)]),
        ]
        if ax_success is not None:
            panels.append((ax_success, [(m.eval_step, m.eval_success) for m in runs
                                        if len(m.eval_step) and np.isfinite(m.eval_success).all()]))
        for ax, series in panels:
            grid = common_grid(series, 200)
            if not len(grid):
                continue
            values = np.stack([interp_to_grid(s, v, grid) for s, v in series])
            mean, low, high = band_across_runs(values, "ci95")
            ax.fill_between(grid, low, high, color=color, alpha=0.2, linewidth=0)
            ax.plot(grid, mean, color=color, linestyle=style, linewidth=1.8,
                    label=f"{e['label']} ({e['solved']}/{e['runs']} solved)")
    for ax, title in ((ax_eval, "Greedy evaluation mean (band: 95% CI over seeds)"),
                      (ax_train, f"Training return, mean of last {WINDOW} episodes")):
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
                ax.text(0.99, 0.99, f"clipped at {top:.0f}", transform=ax.transAxes, ha="right", va="top",
                        fontsize=7, color="0.4")
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
    return write_output(root / CURVES_PNG, _png_bytes(fig))
