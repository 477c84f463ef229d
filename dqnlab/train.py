"""The DQN training loop: collect with epsilon-greedy on vector envs, learn from replay,
evaluate, keep the best policy, checkpoint, and deliver."""

from __future__ import annotations

import copy
import math
import platform
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dqnlab.config import RunConfig, config_to_yaml, validate_config
from dqnlab.dqn import DQNLearner
from dqnlab.envs import capture_env_state, check_spaces, make_vec_env, restore_env_state, reward_threshold
from dqnlab.errors import DqnlabError
from dqnlab.evaluation import Evaluator
from dqnlab.fileio import atomic_torch_save, atomic_write_json, atomic_write_text, safe_torch_load
from dqnlab.networks import seeded_q_network
from dqnlab.nstep import NStepCollector
from dqnlab.policy import POLICY_FILE, Policy
from dqnlab.progress import Progress
from dqnlab.replay import ReplayBuffer
from dqnlab.rundir import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
    MetricsLog,
    default_run_dir,
    is_run_dir,
    prepare_new_run_dir,
)
from dqnlab.schedules import epsilon_at

CHECKPOINT_FORMAT = "dqnlab.checkpoint"
CHECKPOINT_VERSION = 1


class TrainingInterrupted(DqnlabError):
    """SIGINT/SIGTERM arrived; a checkpoint was written and the summary marks the run interrupted."""

    def __init__(self, signum: int, run_dir: Path):
        super().__init__(f"interrupted; checkpoint written, resume with: dqnlab train --resume {run_dir}",
                         exit_code=128 + signum)


@dataclass(frozen=True)
class Seeds:
    """Independent streams derived from one user seed (numpy SeedSequence), so that no two
    consumers share a stream and different seeds differ everywhere."""

    env: int
    explore: int
    replay: int
    network: int
    eval_during: int
    eval_final: int
    eval_confirm: int

    @classmethod
    def derive(cls, seed: int) -> "Seeds":
        words = np.random.SeedSequence(seed).generate_state(7, dtype=np.uint32)
        return cls(*(int(w) for w in words))


@dataclass
class TrainResult:
    run_dir: Path
    summary: dict[str, Any]
    policy: Policy

    @property
    def solved(self) -> bool:
        return bool(self.summary["solved"])


def versions() -> dict[str, str]:
    import gymnasium

    from dqnlab import __version__

    return {
        "dqnlab": __version__,
        "torch": torch.__version__,
        "gymnasium": gymnasium.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


class _SignalGuard:
    """Turns SIGINT/SIGTERM into a flag checked once per loop iteration (main thread only)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_SignalGuard":
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not in the main thread: leave signals alone
            self._old.clear()
        return self

    def _handle(self, signum, frame) -> None:
        self.signum = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def train(
    config: RunConfig | dict | None = None,
    run_dir: str | Path | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    total_steps: int | None = None,
) -> TrainResult:
    """Train a DQN agent and write a run directory; returns the summary and delivered policy.

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

    loop = _Loop(cfg, run_path, envs, obs_shape, n_actions, threshold, t_start, progress)
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


class _Loop:
    """State of one training run. Kept as an object so that checkpointing sees all of it."""

    def __init__(self, cfg: RunConfig, run_dir: Path, envs, obs_shape, n_actions, threshold, t_start, progress):
        self.cfg, self.run_dir, self.envs = cfg, run_dir, envs
        self.obs_shape, self.n_actions, self.threshold = obs_shape, n_actions, threshold
        self.t_start = t_start
        self.seeds = Seeds.derive(cfg.seed)
        self.explore_rng = np.random.default_rng(self.seeds.explore)
        self.replay_gen = torch.Generator().manual_seed(self.seeds.replay)
        online = seeded_q_network(cfg.network, obs_shape[0], n_actions, self.seeds.network)
        self.learner = DQNLearner(online, cfg.dqn)
        self.buffer = ReplayBuffer(cfg.dqn.buffer_size, obs_shape)
        self.gammas = np.full(cfg.env.num_envs, cfg.dqn.gamma, dtype=np.float32)
        self.nstep = NStepCollector(cfg.dqn.n_step, cfg.dqn.gamma, cfg.env.num_envs, obs_shape) if cfg.dqn.n_step > 1 else None
        self.evaluator = Evaluator(cfg.env, cfg.eval.max_envs)
        self.metrics = MetricsLog(run_dir / METRICS_FILE)
        self.show_progress = progress

        n = cfg.env.num_envs
        self.obs, _ = envs.reset(seed=self.seeds.env)
        self.prev_done = np.zeros(n, dtype=bool)
        self.ep_return = np.zeros(n, dtype=np.float64)
        self.ep_length = np.zeros(n, dtype=np.int64)
        self.env_steps = 0
        self.episodes = 0
        self.since_update = 0
        self.next_eval = cfg.eval.every_steps
        self.next_checkpoint = cfg.checkpoint_every
        self.last_loss: torch.Tensor | None = None
        self.best_mean = -math.inf
        self.best_step: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.last_eval: float | None = None
        self.last_eval_step: int | None = None
        self.solved_at: int | None = None
        self.seconds_before = 0.0  # training seconds spent before a resume
        self.recent = deque(maxlen=20)

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        cfg = self.cfg
        prog = Progress(cfg.total_steps, self.env_steps, enabled=self.show_progress)
        stop_reason = "total_steps"
        if self.env_steps == 0:
            self._checkpoint()  # so that a run killed at any moment can be resumed
        with _SignalGuard() as guard:
            try:
                while self.env_steps < cfg.total_steps and self.solved_at is None:
                    self._step()
                    if self.env_steps >= self.next_eval:
                        while self.next_eval <= self.env_steps:
                            self.next_eval += cfg.eval.every_steps
                        self._evaluate()
                        prog.update(self.env_steps, self._recent(), self._epsilon(), self.last_eval)
                    if self.env_steps >= self.next_checkpoint:
                        while self.next_checkpoint <= self.env_steps:
                            self.next_checkpoint += cfg.checkpoint_every
                        self._checkpoint()
                    if guard.signum is not None:
                        self._checkpoint()
                        self._write_summary(status="interrupted", stop_reason="signal", final=None)
                        raise TrainingInterrupted(guard.signum, self.run_dir)
            finally:
                prog.close()
            # Checkpoint the loop state first: a later --resume with a larger budget then continues
            # exactly as if never stopped, undisturbed by the extra evaluation below.
            self._checkpoint()
            if self.solved_at is not None:
                stop_reason = "threshold"
            elif self.last_eval_step != self.env_steps:
                self._evaluate()  # the network as it ended may be the best one
        train_seconds = self.seconds_before + time.perf_counter() - self.t_start
        policy = self._delivered_policy()
        t_eval = time.perf_counter()
        final = self.evaluator.run(policy, cfg.eval.final_episodes, self.seeds.eval_final)
        summary = self._write_summary(status="finished", stop_reason=stop_reason, final=final,
                                      train_seconds=train_seconds, final_eval_seconds=time.perf_counter() - t_eval)
        return TrainResult(self.run_dir, summary, policy)

    def _epsilon(self) -> float:
        return epsilon_at(self.cfg.explore, self.env_steps, self.episodes)

    def _recent(self) -> float | None:
        return float(np.mean(self.recent)) if self.recent else None

    def _step(self) -> None:
        cfg, n = self.cfg, self.cfg.env.num_envs
        eps = self._epsilon()
        with torch.no_grad():
            greedy = self.learner.greedy_actions(torch.from_numpy(self.obs)).numpy()
        explore = self.explore_rng.random(n) < eps
        random_actions = self.explore_rng.integers(0, self.n_actions, size=n)
        actions = np.where(explore, random_actions, greedy)
        next_obs, reward, terminated, truncated, _ = self.envs.step(actions)

        # NEXT_STEP autoreset: where the previous step ended an episode, this step only reset
        # that environment (reward 0, action ignored). It is not a transition: never stored.
        valid = ~self.prev_done
        n_valid = int(valid.sum())
        if n_valid:
            if self.nstep is None:
                self.buffer.add(self.obs[valid], actions[valid], reward[valid], next_obs[valid], terminated[valid],
                                self.gammas[:n_valid])
            else:
                out = self.nstep.push(np.flatnonzero(valid), self.obs[valid], actions[valid], reward[valid],
                                      next_obs[valid], terminated[valid], truncated[valid])
                if out is not None:
                    self.buffer.add(*out)
        self.env_steps += n_valid
        self.ep_return += np.where(valid, reward, 0.0)
        self.ep_length += valid
        done = valid & (terminated | truncated)
        if done.any():
            self._finish_episodes(np.flatnonzero(done), eps)
        self.prev_done = terminated | truncated
        self.obs = next_obs

        if self.env_steps >= cfg.dqn.learning_starts and len(self.buffer) >= cfg.dqn.batch_size:
            self.since_update += n_valid
            while self.since_update >= cfg.dqn.train_freq:
                self.since_update -= cfg.dqn.train_freq
                for _ in range(cfg.dqn.gradient_steps):
                    batch = self.buffer.sample(cfg.dqn.batch_size, self.replay_gen,
                                               cfg.dqn.replay_sampling == "sequential")
                    self.last_loss = self.learner.update(batch)

    def _finish_episodes(self, which: np.ndarray, eps: float) -> None:
        dqn = self.cfg.dqn
        loss = float(self.last_loss) if self.last_loss is not None else None
        wall = self.seconds_before + time.perf_counter() - self.t_start
        for i in which:
            self.episodes += 1
            ret, length = float(self.ep_return[i]), int(self.ep_length[i])
            self.recent.append(ret)
            self.metrics.row(kind="train", env_step=self.env_steps, episode=self.episodes, **{"return": ret},
                             length=length, epsilon=eps, loss=loss, wall_seconds=wall)
            if dqn.target_update == "hard" and dqn.target_update_unit == "episodes" and \
                    self.episodes % dqn.target_update_every == 0:
                self.learner.hard_update()
        self.ep_return[which] = 0.0
        self.ep_length[which] = 0

    def _evaluate(self) -> None:
        self._check_finite()
        learner = self.learner

        def act(obs: np.ndarray) -> np.ndarray:
            return learner.greedy_actions(torch.from_numpy(obs)).numpy()

        res = self.evaluator.run(act, self.cfg.eval.episodes, self.seeds.eval_during)
        self.last_eval, self.last_eval_step = res.mean, self.env_steps
        wall = self.seconds_before + time.perf_counter() - self.t_start
        self.metrics.row(kind="eval", env_step=self.env_steps, episode=self.episodes, eval_mean=res.mean,
                         eval_std=res.std, epsilon=self._epsilon(), wall_seconds=wall)
        if res.mean > self.best_mean:
            self.best_mean, self.best_step = res.mean, self.env_steps
            self.best_state = copy.deepcopy(learner.online.state_dict())
            self._delivered_policy().save(self.run_dir / POLICY_FILE)
        ev = self.cfg.eval
        stop_at = ev.stop_threshold if ev.stop_threshold is not None else self.threshold
        if ev.early_stop and stop_at is not None and res.lower_bound(ev.stop_z) >= stop_at:
            if ev.confirm:
                check = self.evaluator.run(act, ev.episodes, self.seeds.eval_confirm + self.env_steps)
                self.metrics.row(kind="confirm", env_step=self.env_steps, episode=self.episodes,
                                 eval_mean=check.mean, eval_std=check.std, epsilon=self._epsilon(), wall_seconds=wall)
                if check.lower_bound(ev.stop_z) < stop_at:
                    return
            self.solved_at = self.env_steps

    def _check_finite(self) -> None:
        bad_loss = self.last_loss is not None and not torch.isfinite(self.last_loss)
        bad_params = any(not torch.isfinite(p).all() for p in self.learner.online.parameters())
        if bad_loss or bad_params:
            raise DqnlabError(
                f"training diverged at step {self.env_steps} (non-finite {'loss' if bad_loss else 'weights'}); "
                f"the last good checkpoint and {POLICY_FILE} in {self.run_dir} are kept. "
                "Try a lower dqn.lr or set dqn.max_grad_norm.",
                exit_code=1,
            )

    def _delivered_policy(self) -> Policy:
        net = copy.deepcopy(self.learner.online)
        if self.best_state is not None:
            net.load_state_dict(self.best_state)
        return Policy(net, self.cfg.env.id, self.obs_shape, self.n_actions, self.cfg.network, algo="dqn")

    # -- checkpoint ----------------------------------------------------------------------------
    def _checkpoint(self) -> None:
        self._check_finite()
        env_state = capture_env_state(self.envs)
        state = {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_VERSION,
            "config": self.cfg.to_dict(),
            "learner": self.learner.state_dict(),
            "buffer": self.buffer.state_dict(),
            "nstep": None if self.nstep is None else self.nstep.state_dict(),
            "rng": {"explore": self.explore_rng.bit_generator.state, "replay": self.replay_gen.get_state()},
            "env": env_state,
            "obs": torch.from_numpy(np.array(self.obs)),
            "prev_done": torch.from_numpy(self.prev_done.copy()),
            "ep_return": torch.from_numpy(self.ep_return.copy()),
            "ep_length": torch.from_numpy(self.ep_length.copy()),
            "counters": {
                "env_steps": self.env_steps,
                "episodes": self.episodes,
                "since_update": self.since_update,
                "next_eval": self.next_eval,
                "next_checkpoint": self.next_checkpoint,
                "best_mean": self.best_mean if self.best_mean > -math.inf else None,
                "best_step": self.best_step,
                "last_eval": self.last_eval,
                "last_eval_step": self.last_eval_step,
                "solved_at": self.solved_at,
                "seconds": self.seconds_before + time.perf_counter() - self.t_start,
                "recent": list(self.recent),
            },
            "last_loss": self.last_loss,
            "best_state": self.best_state,
            "metrics_bytes": self.metrics.size(),
        }
        atomic_torch_save(self.run_dir / CHECKPOINT_FILE, state)

    def load_checkpoint(self, state: dict) -> None:
        try:
            self.learner.load_state_dict(state["learner"])
            self.buffer.load_state_dict(state["buffer"])
            if self.nstep is not None:
                self.nstep.load_state_dict(state["nstep"])
            self.explore_rng.bit_generator.state = state["rng"]["explore"]
            self.replay_gen.set_state(state["rng"]["replay"])
            c = state["counters"]
            self.env_steps, self.episodes = int(c["env_steps"]), int(c["episodes"])
            self.since_update = int(c["since_update"])
            self.next_eval, self.next_checkpoint = int(c["next_eval"]), int(c["next_checkpoint"])
            self.best_mean = -math.inf if c["best_mean"] is None else float(c["best_mean"])
            self.best_step, self.last_eval, self.solved_at = c["best_step"], c["last_eval"], c["solved_at"]
            self.last_eval_step = c["last_eval_step"]
            self.seconds_before = float(c["seconds"])
            self.recent.extend(c["recent"])
            self.last_loss = state["last_loss"]
            self.best_state = state["best_state"]
            if state["env"] is not None:
                restore_env_state(self.envs, state["env"])
                self.obs = state["obs"].numpy().copy()
                self.prev_done = state["prev_done"].numpy().copy()
                self.ep_return = state["ep_return"].numpy().copy()
                self.ep_length = state["ep_length"].numpy().copy()
            else:  # environment state not capturable: restart the in-progress episodes
                self.obs, _ = self.envs.reset(seed=self.seeds.env + self.env_steps)
                if self.nstep is not None:
                    self.nstep = NStepCollector(self.cfg.dqn.n_step, self.cfg.dqn.gamma, self.cfg.env.num_envs)
            self.metrics.truncate(int(state["metrics_bytes"]))
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            raise DqnlabError(f"checkpoint in {self.run_dir} does not fit this run's config ({exc})",
                              exit_code=1) from None
        self.t_start = time.perf_counter()

    # -- summary -------------------------------------------------------------------------------
    def _write_summary(self, status: str, stop_reason: str, final, train_seconds: float | None = None,
                       final_eval_seconds: float | None = None) -> dict[str, Any]:
        fd = final.as_dict() if final is not None else {}
        solved = bool(final is not None and self.threshold is not None and final.mean >= self.threshold)
        summary = {
            "status": status,
            "solved": solved,
            "stop_reason": stop_reason,
            "env_id": self.cfg.env.id,
            "preset": self.cfg.preset,
            "seed": self.cfg.seed,
            "threshold": self.threshold,
            "env_steps": self.env_steps,
            "episodes": self.episodes,
            "grad_steps": self.learner.grad_steps,
            "train_seconds": train_seconds if train_seconds is not None
            else self.seconds_before + time.perf_counter() - self.t_start,
            "steps_to_threshold": self.solved_at,
            "best_eval_mean": None if self.best_mean == -math.inf else self.best_mean,
            "best_eval_step": self.best_step,
            "eval_mean": fd.get("mean"),
            "eval_std": fd.get("std"),
            "eval_min": fd.get("min"),
            "eval_max": fd.get("max"),
            "eval_episodes": fd.get("episodes"),
            "final_eval_seconds": final_eval_seconds,
            "run_dir": str(self.run_dir),
            "versions": versions(),
        }
        atomic_write_json(self.run_dir / SUMMARY_FILE, summary)
        return summary

    def close(self) -> None:
        self.metrics.close()
        self.evaluator.close()
        self.envs.close()
