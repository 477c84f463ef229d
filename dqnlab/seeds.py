"""Many seeds as a first-class use: parse seed lists, train them on the available cores,
aggregate the outcome (solve rate, IQM with a bootstrap interval, per-seed table)."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import re
from pathlib import Path
from collections.abc import Callable
from typing import Any

from dqnlab.config import RunConfig
from dqnlab.errors import ConfigError, DqnlabError
from dqnlab.fileio import atomic_write_json
from dqnlab.stats import summarize

SEEDS_SUMMARY_FILE = "seeds_summary.json"
MAX_SEEDS = 10_000


def parse_seeds(text: str) -> list[int]:
    """'0-19', '3', '0,2,5' or '0-4,10-12' -> sorted unique seeds; nonsense is a ConfigError."""
    seeds: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ConfigError(f"--seeds expects ranges like 0-19 or lists like 0,3,5; got '{text}'")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise ConfigError(f"--seeds range '{part}' runs backwards; write {hi}-{lo}")
        if hi >= 2**32:
            raise ConfigError(f"--seeds: seeds must be below 2**32, got {hi}")
        if hi - lo + 1 + len(seeds) > MAX_SEEDS:
            raise ConfigError(f"--seeds: at most {MAX_SEEDS} seeds at once")
        seeds.update(range(lo, hi + 1))
    return sorted(seeds)


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _train_one(args: tuple[Any, dict, str]) -> tuple[Any, dict[str, Any]]:
    key, config, run_dir = args
    from dqnlab.train import train

    try:
        return key, train(config, run_dir, progress=False).summary
    except DqnlabError as exc:
        error = str(exc)
    except Exception as exc:  # a crash in one run must not take the others down
        error = f"{type(exc).__name__}: {exc}"
    return key, {"seed": config.get("seed"), "run_dir": run_dir, "status": "failed", "error": error, "solved": False}


def run_jobs(jobs: list[tuple[Any, dict, str]], workers: int | None,
             record: Callable[[Any, dict[str, Any]], None]) -> None:
    """Train each (key, config dict, run dir) job, `workers` at a time, calling record(key, summary)
    as each finishes (in completion order). A run that fails is recorded with status 'failed'."""
    if not jobs:
        return
    workers = min(workers or default_workers(), len(jobs))
    if workers == 1:
        for job in jobs:
            record(*_train_one(job))
        return
    # spawn: a fresh interpreter per worker, no forked torch thread pools
    with cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_train_one, job): job for job in jobs}
        for fut in cf.as_completed(futures):
            key, _, run_dir = futures[fut]
            try:
                record(*fut.result())
            except cf.process.BrokenProcessPool as exc:  # a worker was killed (out of memory, signal)
                record(key, {"seed": futures[fut][1].get("seed"), "run_dir": run_dir, "status": "failed",
                             "error": f"worker died: {exc}", "solved": False})


def run_seeds(cfg: RunConfig, seeds: list[int], root: str | Path, workers: int | None = None,
              on_result=None) -> dict[str, Any]:
    """Train `cfg` once per seed into root/seed-<k> (in parallel), then write and return the
    aggregate summary (root/seeds_summary.json)."""
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise DqnlabError(f"output directory {root} already exists; choose a new --run-dir")
    root.mkdir(parents=True, exist_ok=True)
    jobs = [(s, {**cfg.to_dict(), "seed": s}, str(root / f"seed-{s}")) for s in seeds]
    by_seed: dict[int, dict[str, Any]] = {}

    def record(seed: int, summary: dict[str, Any]) -> None:
        by_seed[seed] = summary
        if on_result:
            on_result(summary)

    run_jobs(jobs, workers, record)
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
        "per_seed": [{k: r.get(k) for k in ("seed", "solved", "eval_mean", "eval_std", "env_steps",
                                            "steps_to_threshold", "train_seconds", "run_dir", "status", "error")}
                     for r in rows],
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
        lines.append(f"{r['seed']:>4}  {'yes' if r['solved'] else 'no':>6}  {r['eval_mean']:>9.1f}  "
                     f"{r['env_steps']:>9}  {r['train_seconds']:>7.2f}")
    lines.append("")
    lines.append(f"solved {summary['solved']}/{summary['runs']}")
    if "eval_mean" in summary:
        e, s, t = summary["eval_mean"], summary["env_steps"], summary["train_seconds"]
        lines.append(f"eval mean: median {e['median']:.1f}, IQM {e['iqm']:.1f} "
                     f"[95% CI {e['iqm_ci_low']:.1f}, {e['iqm_ci_high']:.1f}]")
        lines.append(f"env steps: median {s['median']:.0f}; train seconds: median {t['median']:.2f}")
    return "\n".join(lines)
