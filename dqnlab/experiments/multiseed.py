"""Many seeds as a first-class use: parse seed lists, train them on the available cores,
aggregate the outcome (solve rate, IQM with a bootstrap interval, per-seed table). SIGINT or
SIGTERM stops them all (see dqnlab.experiments.fanout): runs under way checkpoint, queued runs never start."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dqnlab.config import RunConfig
from dqnlab.core.errors import ConfigError, preview
from dqnlab.core.fileio import atomic_write_json
from dqnlab.core.stopping import catch_stop_signals
from dqnlab.experiments.fanout import check_backend
from dqnlab.experiments.runs import PlannedRun, seeded, train_runs
from dqnlab.experiments.stats import summarize
from dqnlab.runtime.rundir import check_path_text, open_output_folder

SEEDS_SUMMARY_FILE = "seeds_summary.json"
MAX_SEEDS = 10_000


def parse_seeds(text: str) -> list[int]:
    """'0-19', '3', '0,2,5' or '0-4,10-12' -> sorted unique seeds; nonsense is a ConfigError."""
    seeds: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ConfigError(f"--seeds expects ranges like 0-19 or lists like 0,3,5; got {preview(text, 60)}")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise ConfigError(f"--seeds range '{part}' runs backwards; write {hi}-{lo}")
        if hi >= 2**32:
            raise ConfigError(f"--seeds: seeds must be below 2**32, got {hi}")
        if hi - lo + 1 + len(seeds) > MAX_SEEDS:
            raise ConfigError(f"--seeds: at most {MAX_SEEDS} seeds at once")
        seeds.update(range(lo, hi + 1))
    return sorted(seeds)


@catch_stop_signals()  # a signal before the runs start still stops them from starting
def run_seeds(
    cfg: RunConfig,
    seeds: list[int],
    root: str | Path,
    workers: int | None = None,
    on_result=None,
    *,
    backend: str = "local",
    ray_address: str | None = None,
) -> dict[str, Any]:
    """Train `cfg` once per seed into root/seed-<k> (in parallel, on `backend`: see dqnlab.experiments.fanout),
    then write and return the aggregate summary (root/seeds_summary.json)."""
    check_backend(backend, ray_address, workers)  # before the output folder is created
    root = check_path_text(root)
    # A folder of an earlier `--seeds` run is continued: its finished runs are kept, cut-off ones
    # resumed, a run of another config refused (dqnlab.experiments.runs).
    lock = open_output_folder(root, "seeds", "--run-dir")
    try:
        return _run_seeds(cfg, seeds, root, workers, on_result, backend, ray_address)
    finally:
        lock.release()


def _run_seeds(
    cfg: RunConfig, seeds: list[int], root: Path, workers: int | None, on_result, backend: str, ray_address: str | None
) -> dict[str, Any]:
    runs = [PlannedRun(s, seeded(cfg, s), root / f"seed-{s}") for s in seeds]
    report = None if on_result is None else (lambda _seed, summary: on_result(summary))
    by_seed = train_runs(runs, workers, report, backend=backend, ray_address=ray_address)
    summary = aggregate([by_seed[s] for s in seeds], cfg)
    atomic_write_json(root / SEEDS_SUMMARY_FILE, summary)
    return summary


def aggregate(rows: list[dict[str, Any]], cfg: RunConfig | None = None) -> dict[str, Any]:
    ok = [r for r in rows if r.get("status") == "finished"]
    out: dict[str, Any] = {
        "preset": cfg.preset if cfg else None,
        "env_id": cfg.env.id if cfg else None,
        "seeds": [r["seed"] for r in rows],
        "runs": len(rows),
        "failed": len(rows) - len(ok),
        "solved": sum(bool(r.get("solved")) for r in rows),
        "solve_rate": sum(bool(r.get("solved")) for r in rows) / len(rows) if rows else 0.0,
        "per_seed": [
            {
                k: r.get(k)
                for k in (
                    "seed",
                    "solved",
                    "eval_mean",
                    "eval_std",
                    "env_steps",
                    "steps_to_threshold",
                    "train_seconds",
                    "run_dir",
                    "status",
                    "error",
                )
            }
            for r in rows
        ],
    }
    if ok:
        out["eval_mean"] = summarize([r["eval_mean"] for r in ok])
        out["env_steps"] = summarize([r["env_steps"] for r in ok])
        out["train_seconds"] = summarize([r["train_seconds"] for r in ok])
    return out


def format_seeds_table(summary: dict[str, Any]) -> str:
    lines = ["seed  solved  eval_mean  env_steps  seconds"]
    for r in summary["per_seed"]:
        if r.get("status") != "finished":
            lines.append(f"{r['seed']:>4}  failed: {r.get('error')}")
            continue
        lines.append(
            f"{r['seed']:>4}  {'yes' if r['solved'] else 'no':>6}  {r['eval_mean']:>9.1f}  "
            f"{r['env_steps']:>9}  {r['train_seconds']:>7.2f}"
        )
    lines.append("")
    lines.append(f"solved {summary['solved']}/{summary['runs']}")
    if "eval_mean" in summary:
        e, s, t = summary["eval_mean"], summary["env_steps"], summary["train_seconds"]
        lines.append(
            f"eval mean: median {e['median']:.1f}, IQM {e['iqm']:.1f} "
            f"[95% CI {e['iqm_ci_low']:.1f}, {e['iqm_ci_high']:.1f}]"
        )
        lines.append(f"env steps: median {s['median']:.0f}; train seconds: median {t['median']:.2f}")
    return "\n".join(lines)
