"""Reading a run directory's metrics.csv (and what the plots need from summary.json and
config.yaml) into typed arrays.

Rows of kind ``train`` become the training-episode series, rows of kind ``eval`` the evaluation
series. Rows of kind ``confirm`` are skipped: a confirm row re-checks the same network at the
same env step on other episodes before an early stop, so plotting it would draw a second point
(and a vertical jump) at one step for one network.

The files may be damaged, edited or foreign, so nothing read here is trusted to be plottable:
a value that is not finite or beyond ±VALUE_LIMIT reads as missing (NaN: a gap in a curve, as a
diverged loss is), an env step must be a whole number in [0, VALUE_LIMIT] (else the line is
reported as damaged), rows are put in step order, and summary.json passes through clean_summary.
Files larger than any real run's are refused before they are read.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dqnlab.config import load_yaml_file
from dqnlab.core.errors import DqnlabError, preview
from dqnlab.envs.make import reward_threshold
from dqnlab.runtime.rundir import CONFIG_FILE, METRIC_COLUMNS, METRICS_FILE, SUMMARY_FILE

# eval_success and q_max came later: runs written before them still load (their values read as NaN).
REQUIRED_COLUMNS = tuple(c for c in METRIC_COLUMNS if c not in ("eval_success", "q_max"))
VALUE_LIMIT = 1e15
"""Largest magnitude plotted: far beyond any return, loss or step count of a real run, and far
below where matplotlib's tick arithmetic overflows (near 1e308)."""
MAX_METRICS_BYTES = 10**9
"""Largest metrics.csv read: some 20 million episodes, a minute or two of parsing."""
MAX_SUMMARY_BYTES = 10**6
"""Largest summary.json read (a real one is about 1 kB)."""


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
    eval_q_max: np.ndarray  # (n_eval,) float64, largest |Q| on recent states (NaN: not a value-based algorithm)
    algo: str | None = None  # the algorithm that trained the run (summary.json or config.yaml), None if unknown


def _float(text: str | None, column: str) -> float:
    """A metrics value: NaN when blank, not finite or beyond ±VALUE_LIMIT; ValueError if not a number."""
    if not text:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{column} {preview(text, 40)} is not a number") from None
    return value if -VALUE_LIMIT <= value <= VALUE_LIMIT else math.nan  # NaN fails the test too


def _step(text: str | None) -> int:
    """An env step: a whole number in [0, VALUE_LIMIT], else ValueError."""
    try:
        value = int(text or "")  # int() of more than 4300 digits raises ValueError as well
    except ValueError:
        raise ValueError(f"env_step {preview(text, 40)} is not a whole number") from None
    if not 0 <= value <= VALUE_LIMIT:
        raise ValueError(f"env_step {preview(value, 40)} is outside [0, {VALUE_LIMIT:.0e}]")
    return value


_TRAIN = ("return", "length", "epsilon", "loss", "wall_seconds")
_EVAL = ("eval_mean", "eval_std", "wall_seconds", "eval_success", "q_max")


def parse_metrics_rows(rows: Iterable[dict[str, str]], source: str) -> dict[str, np.ndarray]:
    """metrics.csv rows (as csv.DictReader gives them) -> the arrays of RunMetrics, by field name,
    each series in env-step order.

    Raises DqnlabError naming `source` for an unknown kind or a value that is not a number."""
    header = ("kind", "env_step", *_TRAIN, *_EVAL)
    return parse_metrics_table(header, ([row.get(c) or "" for c in header] for row in rows), source)


def parse_metrics_table(header: Sequence[str], rows: Iterable[list[str]], source: str) -> dict[str, np.ndarray]:
    """parse_metrics_rows for rows as lists under `header` (as csv.reader gives them, one at a
    time): the fast path that reads a file of millions of rows in seconds."""
    col = {name: i for i, name in enumerate(header)}
    width = len(header)
    kind_at, step_at = col["kind"], col["env_step"]
    # Flat arrays of doubles: 8 bytes a value, where a list of tuples would take some 20 times that.
    train, evals = array("d"), array("d")
    series = {
        "train": (train, [(c, col[c]) for c in _TRAIN]),
        # eval_success and q_max came later: a file without the column reads it as blank
        "eval": (evals, [(c, col.get(c, width)) for c in _EVAL]),
    }
    limit, nan = VALUE_LIMIT, math.nan
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        if len(row) <= width:
            row = row + [""] * (width + 1 - len(row))  # as DictReader: missing fields read blank
        kind = row[kind_at]
        # an early stop's re-check; an evaluation cut short (no mean); the shortlist's second look
        if kind in ("confirm", "partial", "recheck"):
            continue
        try:
            if kind not in series:
                raise ValueError(f"unknown row kind {preview(kind, 40)}")
            out, columns = series[kind]
            out.append(_step(row[step_at]))
            for name, at in columns:
                text = row[at]
                if not text:
                    out.append(nan)
                    continue
                try:
                    value = float(text)
                except ValueError:
                    raise ValueError(f"{name} {preview(text, 40)} is not a number") from None
                out.append(value if -limit <= value <= limit else nan)  # NaN fails the test too
        except ValueError as exc:
            raise DqnlabError(f"{source} line {line} is damaged ({exc})", exit_code=1) from None
    t = np.frombuffer(train, dtype=np.float64).reshape(-1, 1 + len(_TRAIN))
    e = np.frombuffer(evals, dtype=np.float64).reshape(-1, 1 + len(_EVAL))
    # A written run is in step order already; an edited or damaged one is drawn in order anyway.
    t = t[np.argsort(t[:, 0], kind="stable")]
    e = e[np.argsort(e[:, 0], kind="stable")]
    return {
        "train_step": t[:, 0].astype(np.int64),
        "train_return": t[:, 1],
        "train_length": t[:, 2],
        "train_epsilon": t[:, 3],
        "train_loss": t[:, 4],
        "train_wall": t[:, 5],
        "eval_step": e[:, 0].astype(np.int64),
        "eval_mean": e[:, 1],
        "eval_std": e[:, 2],
        "eval_wall": e[:, 3],
        "eval_success": e[:, 4],
        "eval_q_max": e[:, 5],
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
        if path.stat().st_size > MAX_METRICS_BYTES:
            raise DqnlabError(
                f"{path} is {path.stat().st_size / 1e9:.1f} GB, more than any run writes "
                f"(at most {MAX_METRICS_BYTES / 1e9:.0f} GB are read)",
                exit_code=1,
            )
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, [])
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise DqnlabError(f"{path} is not a dqnlab metrics file (no column {missing[0]!r})", exit_code=1)
            arrays = parse_metrics_table(header, reader, str(path))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DqnlabError(f"cannot read {path}: {str(exc)[:200]}", exit_code=1) from None
    summary = read_summary(run)
    env_id, threshold = _env_and_threshold(run, summary)
    return RunMetrics(
        name=run.resolve().name,
        env_id=env_id,
        threshold=threshold,
        summary=summary,
        algo=_algo(run, summary),
        **arrays,
    )


def read_summary(run: Path) -> dict[str, Any] | None:
    """summary.json of `run` through clean_summary, or None if there is none (in progress) or it
    is not a JSON object (damaged): the plots and the report do without it."""
    try:
        with open(run / SUMMARY_FILE, "rb") as f:
            raw = f.read(MAX_SUMMARY_BYTES + 1)
        if len(raw) > MAX_SUMMARY_BYTES:
            return None
        data = json.loads(raw)
    except (OSError, ValueError, RecursionError):  # ValueError: bad JSON, bad UTF-8, an int of 5000 digits
        return None
    return clean_summary(data) if isinstance(data, dict) else None


# summary.json fields that the plots and the report format as numbers.
_NUMBER_FIELDS = (
    "threshold",
    "success_threshold",
    "env_steps",
    "episodes",
    "grad_steps",
    "updates",
    "seed",
    "train_seconds",
    "steps_to_threshold",
    "best_eval_mean",
    "best_eval_success",
    "best_eval_step",
    "longest_train_episode",
    "eval_mean",
    "eval_std",
    "eval_min",
    "eval_max",
    "eval_episodes",
    "eval_mean_length",
    "success_rate",
    "mean_abs_offset_last_100",
    "final_eval_seconds",
    "recheck_seconds",
    "max_episode_steps",
    "cells",
    "cells_visited",
    "q_max",
    "q_bound",
)


def clean_summary(data: dict[Any, Any]) -> dict[str, Any]:
    """A summary.json object made safe to show: numbers that are not finite numbers within
    ±VALUE_LIMIT become None, `solved` a bool, other values short text (an edited file may hold
    a million-item list where a name belongs); `versions` stays a mapping of short texts."""
    out: dict[str, Any] = {}
    for key, value in itertools.islice(data.items(), 200):
        key = str(key)[:100]
        if key in _NUMBER_FIELDS:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) <= VALUE_LIMIT
            out[key] = value if ok else None  # abs(nan) <= limit is False too
        elif key == "solved":
            out[key] = value is True
        elif key == "versions" and isinstance(value, dict):
            out[key] = {str(k)[:40]: str(v)[:80] for k, v in list(value.items())[:20]}
        elif value is None or isinstance(value, bool):
            out[key] = value
        else:
            out[key] = (value if isinstance(value, str) else preview(value, 200))[:500]
    return out


def _limited(value: Any) -> float | None:
    """`value` as a plottable float, or None."""
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return x if abs(x) <= VALUE_LIMIT else None


def _algo(run: Path, summary: dict | None) -> str | None:
    """The run's algorithm: from summary.json when the run has finished, else from config.yaml
    (a config without the field is DQN's, the only algorithm of dqnlab 0.1.0); None if unreadable."""
    if summary is not None and isinstance(summary.get("algo"), str):
        return summary["algo"][:100]
    try:
        algo = load_yaml_file(run / CONFIG_FILE).get("algo", "dqn")
    except (DqnlabError, AttributeError):
        return None
    return algo[:100] if isinstance(algo, str) else None


def _env_and_threshold(run: Path, summary: dict | None) -> tuple[str | None, float | None]:
    """From summary.json when the run has finished, else from config.yaml and the env's spec."""
    if summary is not None and isinstance(summary.get("env_id"), str):
        return summary["env_id"], _limited(summary.get("threshold"))
    try:
        cfg = load_yaml_file(run / CONFIG_FILE)
        env_id = cfg["env"]["id"]
        if not isinstance(env_id, str):
            return None, None
        env_id = env_id[:200]  # the closest-id search on an unknown id costs its length squared
        override = (cfg.get("eval") or {}).get("threshold")
    except (DqnlabError, KeyError, TypeError, AttributeError):
        return None, None
    if override is not None:
        return env_id, _limited(override)
    try:
        return env_id, _limited(reward_threshold(env_id, None))
    except DqnlabError:
        return env_id, None
