"""Training entry point: resolve the config, prepare (or resume) the run directory, run the
algorithm's loop (``dqnlab.loop.TrainLoop`` subclasses), write plots and report."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from dqnlab.config import RunConfig, config_to_yaml, validate_config
from dqnlab.envs import check_spaces, make_vec_env, reward_threshold
from dqnlab.errors import DqnlabError
from dqnlab.fileio import atomic_write_text, safe_torch_load
from dqnlab.loop import CHECKPOINT_FORMAT, TrainingInterrupted, TrainLoop, TrainResult  # noqa: F401 (re-exported)
from dqnlab.rundir import CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE, default_run_dir, is_run_dir, prepare_new_run_dir


def train(
    config: RunConfig | dict | None = None,
    run_dir: str | Path | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    total_steps: int | None = None,
) -> TrainResult:
    """Train an agent (``config.algo``) and write a run directory; returns the summary and delivered policy.

    `config` is a RunConfig, a dict in its shape, or None for the default preset. With
    `resume=True`, `run_dir` must hold a run; its config is used (`total_steps` may raise the
    budget) and training continues from checkpoint.pt exactly where it stopped.
    """
    t_start = time.perf_counter()
    if resume:
        if run_dir is None:
            raise DqnlabError("resume needs the run directory")
        run_path = Path(run_dir)
        if not is_run_dir(run_path):
            raise DqnlabError(f"cannot resume {run_path}: it holds no dqnlab run ({CONFIG_FILE} missing)")
        from dqnlab.config import load_yaml_file

        cfg = validate_config(load_yaml_file(run_path / CONFIG_FILE))
        if total_steps is not None:
            cfg = validate_config({**cfg.to_dict(), "total_steps": total_steps})
    else:
        if isinstance(config, RunConfig):
            cfg = config
        else:
            from dqnlab.config import build_config

            cfg = build_config() if config is None else validate_config(config)
        if total_steps is not None:
            cfg = validate_config({**cfg.to_dict(), "total_steps": total_steps})
        run_path = Path(run_dir) if run_dir is not None else default_run_dir(cfg.preset, cfg.env.id, str(cfg.seed))

    torch.set_num_threads(cfg.torch_threads)
    # Everything that can fail on bad input happens before anything is written.
    envs = make_vec_env(cfg.env, cfg.env.num_envs)
    obs_shape, n_actions = check_spaces(envs, cfg.env.id)
    threshold = reward_threshold(cfg.env.id, cfg.eval.threshold)
    _, reset_info = envs.reset(seed=cfg.seed)  # the loop resets again with its own seed
    loop_class(cfg.algo).check_fits(cfg, obs_shape, n_actions, reset_info)
    checkpoint = None
    if resume:
        ckpt_path = run_path / CHECKPOINT_FILE
        if ckpt_path.exists():
            checkpoint = safe_torch_load(ckpt_path, "checkpoint")
            if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
                raise DqnlabError(f"{ckpt_path} is not a dqnlab checkpoint", exit_code=1)
        else:
            # Stopped before its first checkpoint (written at step 0): nothing was learned yet,
            # so starting over reproduces the run exactly.
            (run_path / METRICS_FILE).unlink(missing_ok=True)
        if total_steps is not None:
            atomic_write_text(run_path / CONFIG_FILE, config_to_yaml(cfg))
    else:
        run_path = prepare_new_run_dir(run_path, overwrite)
        atomic_write_text(run_path / CONFIG_FILE, config_to_yaml(cfg))

    loop = loop_class(cfg.algo)(cfg, run_path, envs, obs_shape, n_actions, threshold, t_start, progress)
    if checkpoint is not None:
        loop.load_checkpoint(checkpoint)
    try:
        result = loop.run()
    finally:
        loop.close()
    if cfg.artifacts:
        from dqnlab.viz import write_run_artifacts

        try:
            write_run_artifacts(run_path)
        except DqnlabError as exc:  # the run itself is complete and saved: only warn
            print(f"dqnlab: warning: could not write plots and report: {exc}", file=sys.stderr)
    return result




def loop_class(algo: str) -> type[TrainLoop]:
    """The training loop of `algo` (imported on demand: each pulls in only what it needs)."""
    if algo == "dqn":
        from dqnlab.dqn_loop import DQNLoop

        return DQNLoop
    if algo == "ppo":
        from dqnlab.ppo import PPOLoop

        return PPOLoop
    if algo == "tabular":
        from dqnlab.tabular import TabularLoop

        return TabularLoop
    from dqnlab.baselines import BaselineLoop

    return BaselineLoop
