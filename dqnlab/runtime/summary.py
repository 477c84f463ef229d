"""summary.json: the outcome of a run, in one schema for every algorithm."""

from __future__ import annotations

import math
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dqnlab.config import EnvConfig, RunConfig
from dqnlab.core.version import __version__
from dqnlab.envs.make import env_spec
from dqnlab.runtime.evaluation import EvalResult, solves


def versions() -> dict[str, str]:
    import gymnasium

    return {
        "dqnlab": __version__,
        "torch": torch.__version__,
        "gymnasium": gymnasium.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def episode_cap(env_cfg: EnvConfig) -> int | None:
    """The step cap of an episode: the configured one, else the registered time limit."""
    if env_cfg.max_episode_steps is not None:
        return env_cfg.max_episode_steps
    return env_spec(env_cfg.id).max_episode_steps


def run_summary(
    cfg: RunConfig,
    *,
    status: str,
    stop_reason: str | None,
    final: EvalResult | None,
    threshold: float | None,
    algo: str,
    counters: dict[str, Any],
    algo_summary: dict[str, Any],
    train_seconds: float,
    final_eval_seconds: float | None,
    run_dir: Path,
) -> dict[str, Any]:
    """The summary of a run: how it ended (`status` "finished" or "interrupted", `stop_reason`),
    whether the delivered policy's final evaluation `final` solved the task, and the counters
    of the training loop (env_steps, episodes, solved_at, best_mean, best_success, best_step,
    longest, and optionally q_max, q_bound, value_warning)."""
    fd = final.as_dict() if final is not None else {}
    c, deliver = counters, cfg.eval.deliver
    return {
        "status": status,
        "solved": bool(final is not None and solves(final, threshold, cfg.eval.success_threshold)),
        "stop_reason": stop_reason,
        "algo": algo,
        "env_id": cfg.env.id,
        "max_episode_steps": episode_cap(cfg.env),
        "preset": cfg.preset,
        "seed": cfg.seed,
        "threshold": threshold,
        "success_threshold": cfg.eval.success_threshold,
        "env_steps": c["env_steps"],
        "episodes": c["episodes"],
        **algo_summary,
        "train_seconds": train_seconds,
        "steps_to_threshold": c["solved_at"],
        "best_eval_mean": None if c["best_mean"] == -math.inf or deliver != "best_eval" else c["best_mean"],
        "best_eval_success": c["best_success"] if deliver == "best_eval" else None,
        "best_eval_step": c["best_step"],
        "longest_train_episode": c["longest"] if c["episodes"] else None,
        # The divergence guard (value-based algorithms; null otherwise): the largest |Q| seen at an
        # evaluation, the most the rewards allow, and where |Q| first went far past it (null: never).
        "q_max": c.get("q_max"),
        "q_bound": c.get("q_bound"),
        "value_warning": c.get("value_warning"),
        "delivered": deliver,
        # eval.shortlist > 1: the best evaluations' networks, each evaluated again on the same
        # fresh episodes when training ended; the best of that second look is the delivered one
        # (null when fewer than two networks were kept). Its seconds are part of train_seconds.
        "shortlist": c.get("shortlist"),
        "recheck_seconds": c.get("recheck_seconds"),
        "eval_mean": fd.get("mean"),
        "eval_std": fd.get("std"),
        "eval_min": fd.get("min"),
        "eval_max": fd.get("max"),
        "eval_episodes": fd.get("episodes"),
        "eval_mean_length": fd.get("mean_length"),
        **{k: fd[k] for k in ("success_rate", "mean_abs_offset_last_100") if k in fd},
        "final_eval_seconds": final_eval_seconds,
        "run_dir": str(run_dir),
        "versions": versions(),
    }
