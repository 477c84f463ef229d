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
from dqnlab.config.presets import PRESETS
from dqnlab.core.errors import ConfigError
from dqnlab.core.fileio import atomic_write_json, atomic_write_text
from dqnlab.core.stopping import catch_stop_signals
from dqnlab.experiments.fanout import check_backend
from dqnlab.experiments.runs import PlannedRun, seeded, train_runs
from dqnlab.experiments.stats import summarize
from dqnlab.runtime.rundir import open_output_folder
from dqnlab.viz.compare_figure import write_compare_figure
from dqnlab.viz.metrics import read_run_metrics

COMPARE_JSON = "compare.json"
COMPARE_MD = "compare.md"


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
    threshold, success_threshold = summary.get("threshold"), summary.get("success_threshold")
    if threshold is None and success_threshold is None:
        return None, None
    m = read_run_metrics(run_dir)
    with np.errstate(invalid="ignore"):  # NaN (not recorded) never counts as a solve
        hit = np.flatnonzero(
            m.eval_success >= success_threshold if success_threshold is not None else m.eval_mean >= threshold
        )
    if not len(hit):
        return None, None
    return int(m.eval_step[hit[0]]), float(m.eval_wall[hit[0]])


@catch_stop_signals()  # a signal before the runs start still stops them from starting
def compare(
    configs: list[tuple[str, RunConfig]],
    seeds: list[int],
    out: str | Path,
    workers: int | None = None,
    on_result: Callable[[str, dict[str, Any]], None] | None = None,
    *,
    backend: str = "local",
    ray_address: str | None = None,
    on_plan: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Train every (label, config) on every seed (all runs share one pool of `workers`, or one Ray
    cluster: see dqnlab.experiments.fanout), skipping runs already finished in `out`; write compare.json,
    compare.md and curves.png; return the comparison. `on_plan(runs, finished)` hears the plan
    before any training, `on_result(label, summary)` of each run trained now as it finishes."""
    check_backend(backend, ray_address, workers)  # before the output folder is created
    lock = open_output_folder(out, "compare")  # ours (marked) or new, and one comparison at a time
    try:
        return _compare(configs, seeds, Path(out), workers, on_result, backend, ray_address, on_plan)
    finally:
        lock.release()


def _compare(
    configs: list[tuple[str, RunConfig]],
    seeds: list[int],
    root: Path,
    workers: int | None,
    on_result: Callable[[str, dict[str, Any]], None] | None,
    backend: str,
    ray_address: str | None,
    on_plan: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    runs = [
        PlannedRun((label, seed), seeded(cfg, seed), root / label / f"seed-{seed}")
        for label, cfg in configs
        for seed in seeds
    ]
    report = None if on_result is None else (lambda key, summary: on_result(key[0], summary))
    rows = train_runs(runs, workers, report, backend=backend, ray_address=ray_address, on_plan=on_plan)
    result: dict[str, Any] = {"seeds": list(seeds), "entries": []}
    for label, cfg in configs:
        per_seed = []
        for seed in seeds:
            s = rows[(label, seed)]
            steps, seconds = (None, None)
            if s.get("status") == "finished":
                steps, seconds = solve_point(root / label / f"seed-{seed}", s)
            per_seed.append(
                {
                    **{
                        k: s.get(k)
                        for k in (
                            "seed",
                            "status",
                            "solved",
                            "eval_mean",
                            "eval_mean_length",
                            "env_steps",
                            "episodes",
                            "train_seconds",
                            "threshold",
                            "success_threshold",
                            "stop_reason",
                            "error",
                            "success_rate",
                        )
                    },
                    "steps_to_solve": steps,
                    "seconds_to_solve": seconds,
                }
            )
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
    """Markdown table: one row per entry (compare.md)."""
    head = (
        "| preset | algo | env | solved | final eval median | IQM [95% CI] | reached threshold | "
        "steps to solve (median) | s to solve (median) | train s (median) |"
    )
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
            f"{_f(ts and ts['median'], '{:.2f}')} |"
        )
    for e in result["entries"]:
        rates = [r["success_rate"] for r in e["per_seed"] if r.get("success_rate") is not None]
        if rates:
            goal = next((r["success_threshold"] for r in e["per_seed"] if r.get("success_threshold")), None)
            lines.append(
                f"\n{e['label']}: task success rate per seed (final evaluation): "
                + ", ".join(f"{x:.0%}" for x in rates)
                + f"; median {float(np.median(rates)):.0%}"
                + ("" if goal is None else f" (solved here means a success rate of at least {goal:.0%})")
            )
    lines.append("")
    lines.append(
        "solved: the delivered policy's final evaluation (100 fresh episodes) reached the threshold. "
        "Steps and seconds to solve: at the first evaluation during training that reached it "
        "(median over the seeds that did)."
    )
    return "\n".join(lines)


# The terminal table's columns, in display order: (header, priority); the lowest priority goes
# first when the terminal is too narrow. The entry, its solve count and its median stay.
_TERMINAL_COLUMNS = (
    ("entry", 0),
    ("algo", 7),
    ("env", 8),
    ("solved", 1),
    ("eval median", 2),
    ("IQM [95% CI]", 4),
    ("reached", 9),
    ("steps to solve", 3),
    ("s to solve", 6),
    ("train s", 5),
)
_TEXT_COLUMNS = (0, 1, 2)
"""Indices of the left-aligned columns (entry, algo, env); numbers are right-aligned."""
SHORT_LABEL = 20
"""Characters an entry's label is cut to before any column is dropped to fit a narrow terminal."""
MIN_LABEL = 8
"""Characters of an entry's label kept at least, however narrow the terminal."""


def format_terminal_table(result: dict[str, Any], width: int) -> str:
    """The comparison for a terminal `width` characters wide: aligned columns (medians over
    seeds), the least important dropped while the table is too wide, then long entry labels
    shortened with '…'; the notes wrapped to `width`. The full table is compare.md."""
    import textwrap

    rows = []
    for e in result["entries"]:
        ev, st, ss, ts = e["eval_mean"], e["steps_to_solve"], e["seconds_to_solve"], e["train_seconds"]
        rows.append(
            [
                e["label"],
                e["algo"],
                e["env_id"],
                f"{e['solved']}/{e['runs']}" + (f" ({e['failed']} failed)" if e["failed"] else ""),
                _f(ev and ev["median"]),
                f"{ev['iqm']:.1f} [{ev['iqm_ci_low']:.1f}, {ev['iqm_ci_high']:.1f}]" if ev else "–",
                f"{e['reached_threshold']}/{e['runs']}",
                _f(st and st["median"], "{:.0f}"),
                _f(ss and ss["median"], "{:.2f}"),
                _f(ts and ts["median"], "{:.2f}"),
            ]
        )
    keep = list(range(len(_TERMINAL_COLUMNS)))

    def widths() -> list[int]:
        return [max(len(_TERMINAL_COLUMNS[i][0]), *(len(r[i]) for r in rows)) for i in keep]

    def total() -> int:
        return sum(widths()) + 2 * (len(keep) - 1)

    def shorten(floor: int) -> None:  # cut the entry labels to fit, to no fewer than `floor` characters
        excess = total() - width
        if excess > 0:
            cut = max(floor, len("entry"), max(len(r[0]) for r in rows) - excess)
            for r in rows:
                if len(r[0]) > cut:
                    r[0] = r[0][: cut - 1] + "…"

    shorten(SHORT_LABEL)  # long labels give way first, then the least important columns, then labels again
    by_priority = sorted(keep, key=lambda i: -_TERMINAL_COLUMNS[i][1])
    while total() > width and by_priority and _TERMINAL_COLUMNS[by_priority[0]][1] > 2:
        keep.remove(by_priority.pop(0))
    shorten(MIN_LABEL)
    w = widths()

    def line(cells: list[str]) -> str:
        return "  ".join(
            cells[i].ljust(w[k]) if i in _TEXT_COLUMNS else cells[i].rjust(w[k]) for k, i in enumerate(keep)
        ).rstrip()

    lines = [line([name for name, _ in _TERMINAL_COLUMNS])] + [line(r) for r in rows]
    dropped = [name for i, (name, _) in enumerate(_TERMINAL_COLUMNS) if i not in keep]
    notes = [
        "solved: the delivered policy's final evaluation reached the threshold; medians over seeds; "
        "steps and s to solve: at the first evaluation that reached it."
    ]
    if dropped:
        notes.append(f"Not shown at this width: {', '.join(dropped)} (all in compare.md).")
    for e in result["entries"]:
        rates = [r["success_rate"] for r in e["per_seed"] if r.get("success_rate") is not None]
        if rates:
            notes.append(f"{e['label']}: median task success rate {float(np.median(rates)):.0%}.")
    wrap = max(width, 20)
    return "\n".join(lines + [""] + [line for note in notes for line in textwrap.wrap(note, wrap)])
