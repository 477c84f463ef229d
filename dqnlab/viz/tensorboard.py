"""metrics.csv -> TensorBoard event files, under CleanRL's metric names, so dqnlab runs sit next
to other agents in one TensorBoard:

    charts/episodic_return   return of each finished training episode
    charts/episodic_length   its length
    charts/epsilon           exploration rate at each episode end
    charts/sps               env steps per second of training so far
    losses/td_loss           the last TD loss at each episode end (absent before learning starts)
    eval/mean_return         mean return of each greedy evaluation
    eval/std_return          its standard deviation over the evaluation episodes

The x axis (global step) is the env step. Wall times are reconstructed from the wall_seconds
column, counted from when the run started (metrics.csv's modification time minus its last
wall_seconds), so TensorBoard's "relative" time axis shows training time.

TensorBoard is not a dependency: ``pip install "dqnlab[tensorboard]"``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dqnlab.core.errors import DqnlabError
from dqnlab.runtime.rundir import METRICS_FILE, TENSORBOARD_DIR, is_run_dir
from dqnlab.viz.metrics import read_run_metrics
from dqnlab.viz.series import steps_per_second

EVENTS_PREFIX = "events.out.tfevents."


def old_event_files(log_dir: Path) -> list[Path]:
    return sorted(log_dir.glob(EVENTS_PREFIX + "*")) if log_dir.is_dir() else []


def write_tensorboard(run_dir: str | Path, log_dir: str | Path | None = None, overwrite: bool = False) -> Path:
    """Write the metrics of `run_dir` as TensorBoard events into `log_dir` (default
    RUN_DIR/tensorboard) and return that directory.

    Earlier event files there are removed first (two would show every point twice); outside
    the run's own default directory that needs `overwrite`. Raises DqnlabError if TensorBoard
    is not installed, the run cannot be read, or the directory cannot be written."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise DqnlabError('TensorBoard export needs tensorboard: pip install "dqnlab[tensorboard]"') from None
    run = Path(run_dir)
    m = read_run_metrics(run)
    own_dir = log_dir is None and is_run_dir(run)  # a run's own tensorboard/ (marker-checked) is regenerated freely
    out = run / TENSORBOARD_DIR if log_dir is None else Path(log_dir)
    if out.exists() and not out.is_dir():
        raise DqnlabError(f"{out} exists and is not a directory")
    old = old_event_files(out)
    if old and not (own_dir or overwrite):
        raise DqnlabError(f"{out} already holds TensorBoard event files; use --overwrite to replace them")
    try:
        for f in old:
            f.unlink()
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DqnlabError(f"cannot write to {out}: {exc.strerror or exc}", exit_code=1) from None

    walls = np.concatenate([m.train_wall, m.eval_wall, [0.0]])
    start = (run / METRICS_FILE).stat().st_mtime - float(np.nanmax(walls))
    sps = steps_per_second(m.train_step, m.train_wall)
    try:
        writer = SummaryWriter(log_dir=str(out))
        try:
            for i, step in enumerate(m.train_step.tolist()):
                t = start + float(m.train_wall[i])
                writer.add_scalar("charts/episodic_return", m.train_return[i], step, walltime=t)
                writer.add_scalar("charts/episodic_length", m.train_length[i], step, walltime=t)
                writer.add_scalar("charts/epsilon", m.train_epsilon[i], step, walltime=t)
                if math.isfinite(sps[i]):
                    writer.add_scalar("charts/sps", sps[i], step, walltime=t)
                if math.isfinite(m.train_loss[i]):
                    writer.add_scalar("losses/td_loss", m.train_loss[i], step, walltime=t)
            for i, step in enumerate(m.eval_step.tolist()):
                t = start + float(m.eval_wall[i])
                writer.add_scalar("eval/mean_return", m.eval_mean[i], step, walltime=t)
                writer.add_scalar("eval/std_return", m.eval_std[i], step, walltime=t)
        finally:
            writer.close()
    except OSError as exc:
        raise DqnlabError(f"cannot write to {out}: {exc.strerror or exc}", exit_code=1) from None
    return out
