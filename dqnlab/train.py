"""Training entry point: resolve the config, check it against the environment and the machine,
build the run beside its final place (or lock the run to resume), run the algorithm's loop
(``dqnlab.runtime.loop.TrainLoop`` subclasses), write plots and report."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import torch

from dqnlab.algos.registry import loop_class
from dqnlab.config import (
    RunConfig,
    build_config,
    config_from_mapping,
    config_to_yaml,
    load_yaml_file,
    validate_config,
    validate_recorded_config,
)
from dqnlab.core.errors import DqnlabError
from dqnlab.core.fileio import atomic_write_text
from dqnlab.core.stopping import catch_stop_signals
from dqnlab.envs.make import check_spaces, make_vec_env, reward_threshold
from dqnlab.nn.optim import denormals_flushed
from dqnlab.runtime.checkpoint import read_run_checkpoint
from dqnlab.runtime.loop import RunContext, TrainingInterrupted, TrainLoop, TrainResult
from dqnlab.runtime.policy import POLICY_FILE
from dqnlab.runtime.resources import check_fits_machine
from dqnlab.runtime.rundir import (
    ARGUMENTS,
    CHECKPOINT_FILE,
    CONFIG_FILE,
    FLAGS,
    MARKER_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
    FolderLock,
    NewRunDir,
    check_path_text,
    default_run_dir,
    is_run_dir,
    write_marker,
)
from dqnlab.viz import CURVES_FILE, EPISODE_GIF_FILE, REPORT_FILE, write_run_artifacts


def train(
    config: RunConfig | dict | None = None,
    run_dir: str | Path | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    total_steps: int | None = None,
    cli_flags: bool = False,
) -> TrainResult:
    """Train an agent (``config.algo``) and write a run directory; returns the summary and delivered policy.

    `config` is a RunConfig, a dict in its shape (read as a config file's contents: its
    `preset`, else 'default', then its values), or None for the default preset. With
    `resume=True`, `run_dir` must hold a run; its config is used (`total_steps` may raise the
    budget) and training continues from checkpoint.pt exactly where it stopped.

    An existing `run_dir` is refused unless `resume` or `overwrite` is given; the refusal, and
    the message of a run stopped by SIGINT/SIGTERM (TrainingInterrupted), name these arguments
    (`resume=True`), or with `cli_flags` the command line's flags (`--resume`).

    The run directory has one writer: it is locked (an OS file lock, released when the process
    ends however it ends) from start to finish, and a second writer is refused.
    """
    t_start = time.perf_counter()
    if resume:
        if run_dir is None:
            raise DqnlabError("resume needs the run directory")
        return _resume(check_path_text(run_dir, "the run directory"), total_steps, progress, t_start, cli_flags)
    if isinstance(config, RunConfig):
        cfg = config
    else:
        cfg = build_config() if config is None else config_from_mapping(config)
    if total_steps is not None:
        cfg = validate_config({**cfg.to_dict(), "total_steps": total_steps})
    run_path = (
        check_path_text(run_dir) if run_dir is not None else default_run_dir(cfg.preset, cfg.env.id, str(cfg.seed))
    )
    new = NewRunDir.plan(
        run_path, overwrite, FLAGS if cli_flags else ARGUMENTS
    )  # refusals first: nothing is written yet
    loop = None
    try:
        # Until training ends, a stop signal only sets the flag that the loop checks first: one that
        # lands between the step-0 checkpoint and the loop stops the run as any stop does
        # (checkpoint, summary, exit 130/143) instead of killing the process.
        with catch_stop_signals():
            envs, obs_shape, n_actions, threshold = _prepare(cfg)
            try:
                staging = new.stage()
                atomic_write_text(staging / CONFIG_FILE, config_to_yaml(cfg))
                loop = _new_loop(cfg, staging, envs, obs_shape, n_actions, threshold, t_start, progress)
                loop.start()  # the step-0 checkpoint: a disk too small for it fails here, before the swap
                loop.relocate(new.commit())
            except BaseException:
                _discard(loop, envs)
                raise
            result = _run(loop, cli_flags)
        return _finish(result, loop, cfg)
    finally:
        # Before the commit: the staged files are removed and the old run (if any) is untouched;
        # after it: only this writer's lock is released.
        new.abandon()


def _resume(run_path: Path, total_steps: int | None, progress: bool, t_start: float, cli_flags: bool) -> TrainResult:
    if not is_run_dir(run_path):
        raise DqnlabError(f"cannot resume {run_path}: it holds no dqnlab run ({MARKER_FILE} marker missing)")
    lock = FolderLock(run_path).acquire()
    loop = None
    try:
        with catch_stop_signals():  # as in train: a stop signal before the loop stops it cleanly
            cfg = validate_recorded_config(load_yaml_file(run_path / CONFIG_FILE))
            if total_steps is not None:
                cfg = validate_config({**cfg.to_dict(), "total_steps": total_steps})
            envs, obs_shape, n_actions, threshold = _prepare(cfg)
            try:
                checkpoint = read_run_checkpoint(run_path, cfg)
                if not (run_path / MARKER_FILE).exists():
                    write_marker(run_path, "run")  # a run begun by dqnlab 0.1.0 is marked as ours from now on
                if checkpoint is None:
                    # Stopped before its first checkpoint (written at step 0): nothing was learned yet,
                    # so starting over reproduces the run exactly.
                    (run_path / METRICS_FILE).unlink(missing_ok=True)
                if total_steps is not None:
                    atomic_write_text(run_path / CONFIG_FILE, config_to_yaml(cfg))
                loop = _new_loop(cfg, run_path, envs, obs_shape, n_actions, threshold, t_start, progress)
                if checkpoint is not None:
                    loop.load_checkpoint(checkpoint)
                loop.start()
            except BaseException:
                _discard(loop, envs)
                raise
            result = _run(loop, cli_flags)
        return _finish(result, loop, cfg)
    finally:
        lock.release()


def _prepare(cfg: RunConfig) -> tuple[Any, tuple[int, ...], int, float | None]:
    """Everything that can fail on bad input, before anything is written: the environment, the
    algorithm's fit to its spaces, the threads and the estimated memory. Returns the training
    environments (seeded), their observation shape, action count and the solve threshold."""
    torch.set_num_threads(cfg.torch_threads)
    envs = make_vec_env(cfg.env, cfg.env.num_envs)
    try:
        obs_shape, n_actions = check_spaces(envs, cfg.env.id)
        threshold = reward_threshold(cfg.env.id, cfg.eval.threshold)
        _, reset_info = envs.reset(seed=cfg.seed)  # the loop resets again with its own seed
        loop_cls = loop_class(cfg.algo)
        loop_cls.check_fits(cfg, obs_shape, n_actions, reset_info)
        check_fits_machine(cfg.torch_threads, loop_cls.memory_estimate(cfg, obs_shape, n_actions))
    except BaseException:
        envs.close()
        raise
    return envs, obs_shape, n_actions, threshold


def _new_loop(cfg: RunConfig, run_dir: Path, envs, obs_shape, n_actions, threshold, t_start, progress) -> TrainLoop:
    try:
        return loop_class(cfg.algo)(RunContext(cfg, run_dir, envs, obs_shape, n_actions, threshold, t_start, progress))
    except MemoryError:
        raise DqnlabError(
            "not enough memory for this config (replay buffer, networks or table); reduce it", exit_code=1
        ) from None
    except RuntimeError as exc:  # torch's "can't allocate memory" and the like
        if "alloc" not in str(exc).lower():
            raise
        raise DqnlabError(
            "not enough memory for this config (replay buffer, networks or table); reduce it", exit_code=1
        ) from None


RUN_FILES = (CONFIG_FILE, METRICS_FILE, POLICY_FILE, CHECKPOINT_FILE, SUMMARY_FILE)
"""The files every finished training writes into its run directory (besides the plots and report)."""


def _discard(loop: TrainLoop | None, envs: Any) -> None:
    """After a failed start: close the loop (it owns the environments), or the environments alone."""
    if loop is not None:
        loop.close()
    else:
        envs.close()


def _run(loop: TrainLoop, cli_flags: bool) -> TrainResult:
    try:
        with denormals_flushed():
            return loop.run()
    except TrainingInterrupted as exc:
        if cli_flags:
            raise
        # A Python caller resumes with an argument, not a flag: the message says so.
        raise TrainingInterrupted(exc.signum, exc.run_dir, exc.summary, python_caller=True) from None
    finally:
        loop.close()


def _finish(result: TrainResult, loop: TrainLoop, cfg: RunConfig) -> TrainResult:
    """The files of a finished run, and its plots and report where the config asks for them."""
    result.files = list(RUN_FILES)
    if cfg.artifacts:
        if loop.show_progress:  # drawing and rendering: say what is happening
            names = ", ".join((CURVES_FILE, EPISODE_GIF_FILE, REPORT_FILE))
            print(f"[dqnlab] writing {names} ...", file=sys.stderr, flush=True)
        try:
            result.files += [path.name for path in write_run_artifacts(result.run_dir)]
        except DqnlabError as exc:  # the run itself is complete and saved: only warn
            print(f"dqnlab: warning: could not write plots and report: {exc}", file=sys.stderr)
    return result
