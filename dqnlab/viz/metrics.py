"""Reading a run directory's metrics.csv (and what the plots need from summary.json and
config.yaml) into typed arrays.

Rows of kind ``train`` become the training-episode series, rows of kind ``eval`` the evaluation
series. Rows of kind ``confirm`` are skipped: a confirm row re-checks the same network at the
same env step on other episodes before an early stop, so plotting it would draw a second point
(and a vertical jump) at one step for one network.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dqnlab.errors import DqnlabError
from dqnlab.rundir import CONFIG_FILE, METRIC_COLUMNS, METRICS_FILE, SUMMARY_FILE

# eval_success came later: runs written before it still load (their success rates read as NaN).
REQUIRED_COLUMNS = tuple(c for c in METRIC_COLUMNS if c != "eval_success")


@dataclass(frozen=True)
class RunMetrics:
    """The series of one run. Missing values (no loss before the first gradient step) are NaN."""

    name: str  # the run directory's name, for legends and titles
    env_id: str | None
    threshold: float | None  # the solve threshold, None if the environment has none
    summary: dict | None  # summary.json, None while the run is in progress
    train_step: np.ndarray  # (n_train,) int64, env step at which each training episode ended
    train_return: np.ndarray  # (n_train,) float64
    train_length: np.ndarray  # (n_train,) float64
    train_epsilon: np.ndarray  # (n_train,) float64
    train_loss: np.ndarray  # (n_train,) float64, NaN before learning starts
    train_wall: np.ndarray  # (n_train,) float64, seconds since training started
    eval_step: np.ndarray  # (n_eval,) int64
    eval_mean: np.ndarray  # (n_eval,) float64
    eval_std: np.ndarray  # (n_eval,) float64, population std over the evaluation episodes
    eval_wall: np.ndarray  # (n_eval,) float64
    eval_success: np.ndarray  # (n_eval,) float64, share of successful episodes (NaN: not a success task)


def _float(text: str | None) -> float:
    if text is None or text == "":
        return math.nan
    return float(text)


def parse_metrics_rows(rows: list[dict[str, str]], source: str) -> dict[str, np.ndarray]:
    """metrics.csv rows (as csv.DictReader gives them) -> the arrays of RunMetrics, by field name.

    Raises DqnlabError naming `source` for an unknown kind or a value that is not a number."""
    train: list[tuple[float, ...]] = []
    evals: list[tuple[float, ...]] = []
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        kind = row.get("kind")
        try:
            if kind == "train":
                train.append((int(row["env_step"]), _float(row["return"]), _float(row["length"]),
                              _float(row["epsilon"]), _float(row["loss"]), _float(row["wall_seconds"])))
            elif kind == "eval":
                evals.append((int(row["env_step"]), _float(row["eval_mean"]), _float(row["eval_std"]),
                              _float(row["wall_seconds"]), _float(row.get("eval_success"))))
            elif kind != "confirm":
                raise ValueError(f"unknown row kind {kind!r}")
        except (KeyError, TypeError, ValueError) as exc:
            raise DqnlabError(f"{source} line {line} is damaged ({exc})", exit_code=1) from None
    t = np.array(train, dtype=np.float64).reshape(-1, 6)
    e = np.array(evals, dtype=np.float64).reshape(-1, 5)
    return {
        "train_step": t[:, 0].astype(np.int64), "train_return": t[:, 1], "train_length": t[:, 2],
        "train_epsilon": t[:, 3], "train_loss": t[:, 4], "train_wall": t[:, 5],
        "eval_step": e[:, 0].astype(np.int64), "eval_mean": e[:, 1], "eval_std": e[:, 2], "eval_wall": e[:, 3],
        "eval_success": e[:, 4],
    }


def read_run_metrics(run_dir: str | Path) -> RunMetrics:
    """Load the metrics of `run_dir` (finished or still running).

    Raises DqnlabError if the directory or its metrics.csv is missing, unreadable or damaged.
    A run with no finished episode yet gives empty arrays (the plots say "no data yet")."""
    run = Path(run_dir)
    if not run.is_dir():
        raise DqnlabError(f"run directory not found: {run}")
    path = run / METRICS_FILE
    if not path.is_file():
        raise DqnlabError(f"{run} holds no {METRICS_FILE}: not a dqnlab run directory")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DqnlabError(f"{path} is not a dqnlab metrics file (no column {missing[0]!r})", exit_code=1)
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DqnlabError(f"cannot read {path}: {exc}", exit_code=1) from None
    arrays = parse_metrics_rows(rows, str(path))
    summary = _read_summary(run)
    env_id, threshold = _env_and_threshold(run, summary)
    return RunMetrics(name=run.resolve().name, env_id=env_id, threshold=threshold, summary=summary, **arrays)


def _read_summary(run: Path) -> dict | None:
    try:
        data = json.loads((run / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # in progress, or damaged: the plots do without it
    return data if isinstance(data, dict) else None


def _env_and_threshold(run: Path, summary: dict | None) -> tuple[str | None, float | None]:
    """From summary.json when the run has finished, else from config.yaml and the env's spec."""
    if summary is not None and "env_id" in summary:
        threshold = summary.get("threshold")
        return str(summary["env_id"]), None if threshold is None else float(threshold)
    from dqnlab.config import load_yaml_file
    from dqnlab.envs import reward_threshold

    try:
        cfg = load_yaml_file(run / CONFIG_FILE)
        env_id = str(cfg["env"]["id"])
    except (DqnlabError, KeyError, TypeError):
        return None, None
    try:
        override = (cfg.get("eval") or {}).get("threshold")
        return env_id, reward_threshold(env_id, None if override is None else float(override))
    except (DqnlabError, TypeError, ValueError):
        return env_id, None
