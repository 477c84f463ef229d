"""Many runs, one path: every command that trains several runs (`train --seeds`, `compare`,
`sweep`) plans them here and trains them through dqnlab.experiments.fanout.

Re-running a command continues it: a run already finished in its folder is read back, not
retrained; a run cut off (a crash, a kill, a signal) resumes from its checkpoint, which gives
exactly the run it would have been; a folder holding anything else (a run of another config, a
folder that is not a run) is refused, so results are never overwritten.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dqnlab.config import RunConfig, load_yaml_file, validate_config, validate_recorded_config
from dqnlab.core.errors import DqnlabError
from dqnlab.experiments.fanout import RunJob, run_jobs
from dqnlab.runtime.rundir import CONFIG_FILE, SUMMARY_FILE, is_run_dir


@dataclass(frozen=True)
class PlannedRun:
    """One run a command wants: its caller's key, its full config and its folder."""

    key: Hashable
    config: RunConfig
    run_dir: Path


def run_state(run_dir: Path, cfg: RunConfig) -> tuple[str, dict | None]:
    """What `run_dir` holds for a run of config `cfg` (a RunConfig): ("new", None) if nothing,
    ("resume", None) for an unfinished run of `cfg`, ("done", summary) for a finished one.
    Anything else (another config, a folder that is not a run) is refused: results are never
    overwritten."""
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return "new", None
    if not is_run_dir(run_dir):
        raise DqnlabError(f"{run_dir} exists and is not a dqnlab run; move it or choose another output folder")
    if validate_recorded_config(load_yaml_file(run_dir / CONFIG_FILE)) != cfg:
        raise DqnlabError(f"{run_dir} holds a run of a different config; choose another output folder")
    try:
        summary = json.loads((run_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = None
    if isinstance(summary, dict) and summary.get("status") == "finished":
        return "done", summary
    return "resume", None


def train_runs(
    runs: list[PlannedRun],
    workers: int | None,
    on_result: Callable[[Hashable, dict[str, Any]], None] | None,
    *,
    backend: str = "local",
    ray_address: str | None = None,
    on_plan: Callable[[int, int], None] | None = None,
) -> dict[Hashable, dict[str, Any]]:
    """Train every planned run that has not finished (new ones started, cut-off ones resumed), at
    most `workers` at a time on `backend`; return every run's summary by key. `on_plan(runs,
    finished)` is called once every folder has been checked, before any training: the number of
    runs and how many of them have finished already. `on_result(key, summary)` is called for
    each run trained now, as it finishes."""
    summaries: dict[Hashable, dict[str, Any]] = {}
    jobs = []
    for run in runs:
        state, summary = run_state(run.run_dir, run.config)
        if state == "done":
            assert summary is not None  # run_state gives a finished run's summary
            summaries[run.key] = summary
        else:
            jobs.append(RunJob(run.key, run.config.to_dict(), str(run.run_dir), resume=state == "resume"))
    if on_plan:
        on_plan(len(runs), len(summaries))

    def record(key: Hashable, summary: dict[str, Any]) -> None:
        summaries[key] = summary
        if on_result:
            on_result(key, summary)

    run_jobs(jobs, workers, record, backend=backend, ray_address=ray_address)
    return summaries


def seeded(cfg: RunConfig, seed: int) -> RunConfig:
    """`cfg` with its seed replaced (validated)."""
    return validate_config({**cfg.to_dict(), "seed": seed})
