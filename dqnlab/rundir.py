"""The run directory: its files, its creation rules, and the append-only metrics log.

    config.yaml     the fully resolved config (load it back with `dqnlab train --config`)
    metrics.csv     one row per training episode and per evaluation
    policy.pt       the delivered (best-evaluated) greedy policy
    checkpoint.pt   everything needed to resume
    summary.json    the outcome, written at the end (or on interruption)
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import time
from pathlib import Path

from dqnlab.errors import DqnlabError

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.csv"
CHECKPOINT_FILE = "checkpoint.pt"
SUMMARY_FILE = "summary.json"
RUN_FILES = (CONFIG_FILE, METRICS_FILE, "policy.pt", CHECKPOINT_FILE, SUMMARY_FILE)

METRIC_COLUMNS = (
    "kind",  # "train" (a finished training episode), "eval" (an evaluation) or "confirm" (its re-check)
    "env_step",
    "episode",
    "return",
    "length",
    "epsilon",
    "loss",
    "eval_mean",
    "eval_std",
    "eval_success",  # share of the evaluation's episodes that the env called a success (target tasks)
    "wall_seconds",
)


def default_run_dir(preset: str | None, env_id: str, seeds: str, root: str | Path = "runs") -> Path:
    """runs/<preset>-<env>-s<seeds>-<timestamp>[-k]: a fresh name, so reruns never collide."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    env = env_id.replace("/", "_")
    base = Path(root) / f"{preset or 'custom'}-{env}-s{seeds}-{stamp}"
    candidate, k = base, 1
    while candidate.exists():
        k += 1
        candidate = base.with_name(f"{base.name}-{k}")
    return candidate


def is_run_dir(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file()


def prepare_new_run_dir(path: str | Path, overwrite: bool) -> Path:
    """Create `path` for a new run. An existing non-empty directory is refused unless `overwrite`."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise DqnlabError(f"run directory {p} exists and is not a directory")
    if p.is_dir() and any(p.iterdir()):
        if not overwrite:
            raise DqnlabError(
                f"run directory {p} already exists; use --resume to continue it or --overwrite to replace it"
            )
        if not is_run_dir(p):
            raise DqnlabError(f"refusing to --overwrite {p}: it is not a dqnlab run directory")
        for name in RUN_FILES:
            target = p / name
            if target.is_file():
                target.unlink()
        for extra in p.iterdir():  # plots and the like from the previous run
            if extra.is_dir():
                shutil.rmtree(extra)
            else:
                extra.unlink()
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = p / ".dqnlab-write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise DqnlabError(f"cannot write to run directory {p}: {exc.strerror or exc}") from None
    return p


def run_state(run_dir: Path, cfg) -> tuple[str, dict | None]:
    """What `run_dir` holds for a run of config `cfg` (a RunConfig): ("new", None) if nothing,
    ("resume", None) for an unfinished run of `cfg`, ("done", summary) for a finished one.
    Anything else (another config, a folder that is not a run) is refused: results are never
    overwritten. Used by compare and sweep to skip or continue runs when a command is re-run."""
    import json

    from dqnlab.config import load_yaml_file, validate_config

    if not run_dir.exists() or not any(run_dir.iterdir()):
        return "new", None
    if not is_run_dir(run_dir):
        raise DqnlabError(f"{run_dir} exists and is not a dqnlab run; move it or choose another output folder")
    if validate_config(load_yaml_file(run_dir / CONFIG_FILE)) != cfg:
        raise DqnlabError(f"{run_dir} holds a run of a different config; choose another output folder")
    try:
        summary = json.loads((run_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = None
    if isinstance(summary, dict) and summary.get("status") == "finished":
        return "done", summary
    return "resume", None


class MetricsLog:
    """Append-only CSV. Each row is written with a single os.write on an O_APPEND descriptor, so
    a crash never leaves half a row; ``truncate`` rewinds to a checkpointed size on resume."""

    def __init__(self, path: Path):
        self.path = path
        new = not path.exists() or path.stat().st_size == 0
        # A resumed run keeps its file's columns (a run begun by an older dqnlab may lack some).
        self.columns = METRIC_COLUMNS if new else _header(path)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if new:
            self._write(METRIC_COLUMNS)

    def _write(self, values) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(values)
        os.write(self.fd, buf.getvalue().encode("utf-8"))

    def row(self, **values) -> None:
        self._write(["" if values.get(c) is None else _fmt(values[c]) for c in self.columns])

    def size(self) -> int:
        os.fsync(self.fd)
        return os.fstat(self.fd).st_size

    def truncate(self, size: int) -> None:
        os.ftruncate(self.fd, size)

    def close(self) -> None:
        os.close(self.fd)


def _header(path: Path) -> tuple[str, ...]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            header = tuple(next(csv.reader(f), ()))
    except (OSError, UnicodeDecodeError, csv.Error):
        header = ()
    return header if header[:1] == ("kind",) else METRIC_COLUMNS


def _fmt(value) -> str:
    if isinstance(value, float):
        return repr(round(value, 6)) if value == value else "nan"
    return str(value)


def read_metrics(path: str | Path) -> list[dict[str, str]]:
    with open(Path(path), newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
