"""What every training algorithm shares: stepping vector environments with NEXT_STEP autoreset,
episode bookkeeping, periodic evaluation of the greedy policy, keeping the best one, stop rules,
checkpoints, signals and the summary.

Signals: SIGINT and SIGTERM set a flag (``dqnlab.core.stopping``) that the loop checks after every
step and evaluations check before every step. The run then writes a checkpoint, marks its
summary.json "interrupted" and raises TrainingInterrupted; `dqnlab train --resume` continues it
exactly. An evaluation cut off during training is redone first on resume (the checkpoint still
has it due); one cut off after training (the final evaluation, or the extra one before it) is
redone from the checkpoint written when training ended.

An algorithm subclasses ``TrainLoop`` and supplies: ``advance()`` (act, learn, and step the
environments through ``env_step``), ``greedy_act`` (the policy evaluated), ``policy_net`` (the
module delivered as ``policy.pt``) and its own state for checkpoints.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from dqnlab.config import NetworkConfig, RunConfig
from dqnlab.core.errors import ConfigError, DqnlabError, Interrupted, preview
from dqnlab.core.fileio import atomic_torch_save, atomic_write_json
from dqnlab.core.stopping import catch_stop_signals, stop_requested, stop_signal
from dqnlab.envs.make import check_spaces, make_vec_env
from dqnlab.envs.state import capture_env_state, restore_env_state
from dqnlab.runtime.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, check_header, check_same_shapes
from dqnlab.runtime.evaluation import EvalResult, EvaluationStopped, Evaluator
from dqnlab.runtime.policy import POLICY_FILE, Policy
from dqnlab.runtime.progress import RECENT_EPISODES, Progress
from dqnlab.runtime.rng import RngStreams
from dqnlab.runtime.rundir import CHECKPOINT_FILE, METRICS_FILE, SUMMARY_FILE, MetricsLog
from dqnlab.runtime.summary import run_summary

VALUE_SLACK = 1.5
"""The divergence guard warns when |Q| passes this many times its bound. Some overshoot is normal
(an approximator trained on bootstrapped targets, early in training); a diverging run goes far
past it (a traced target-task run went from 75 to 3,400 against a bound of 100)."""


def value_bound(reward_abs_max: float, gamma: float) -> float:
    """The largest |Q| any policy can have when every |reward| is at most `reward_abs_max`:
    the sum of reward_abs_max * gamma^t over t >= 0 (infinite for gamma = 1 and a nonzero reward)."""
    if gamma >= 1.0:
        return math.inf if reward_abs_max > 0 else 0.0
    return reward_abs_max / (1.0 - gamma)


class TrainingInterrupted(Interrupted):
    """SIGINT/SIGTERM arrived; a checkpoint was written and the summary marks the run interrupted."""

    def __init__(self, signum: int, run_dir: Path, summary: dict[str, Any], python_caller: bool = False):
        how = (
            f"dqnlab.train(run_dir={str(run_dir)!r}, resume=True)"
            if python_caller
            else f"dqnlab train --resume {run_dir}"
        )
        super().__init__(signum, f"checkpoint written, resume with: {how}")
        self.run_dir = run_dir
        self.summary = summary
        """The summary.json written (status "interrupted")."""


@dataclass
class TrainResult:
    run_dir: Path
    summary: dict[str, Any]
    policy: Policy
    files: list[str] = field(default_factory=list)
    """Names of the files this training wrote in `run_dir` (set by dqnlab.train.train)."""

    @property
    def solved(self) -> bool:
        return bool(self.summary["solved"])


@dataclass(frozen=True)
class Candidate:
    """A network on the shortlist (eval.shortlist): its evaluation and its weights."""

    mean: float
    success: float | None
    step: int
    state: dict[str, torch.Tensor]


@dataclass(frozen=True)
class RunContext:
    """What a training loop starts from: the run's config and directory, its training
    environments (made, checked and not yet reset by the loop), what was learned of them, and
    how to report."""

    cfg: RunConfig
    run_dir: Path
    envs: gym.vector.VectorEnv
    obs_shape: tuple[int, ...]
    n_actions: int
    threshold: float | None
    """The return that solves the task (None: none registered or configured)."""
    t_start: float
    """time.perf_counter() when the run began (training seconds count from there)."""
    progress: bool
    """Show progress on stderr (dqnlab.runtime.progress: a bar on a terminal, plain lines otherwise)."""


class TrainLoop:
    """State of one training run. Kept as an object so that checkpointing sees all of it."""

    algo = "base"
    _progress: Progress | None = None
    """The progress display while run() runs (evaluations show that they are alive on it)."""

    def __init__(self, ctx: RunContext):
        cfg = ctx.cfg
        self.cfg, self.run_dir, self.envs = cfg, ctx.run_dir, ctx.envs
        self.obs_shape, self.n_actions, self.threshold = ctx.obs_shape, ctx.n_actions, ctx.threshold
        self.t_start = ctx.t_start
        progress = ctx.progress
        run_dir, envs = ctx.run_dir, ctx.envs
        self.streams = RngStreams.derive(cfg.seed)  # independent RNG seeds: env, explore, replay, ...
        self.evaluator = Evaluator(cfg.eval_env(), cfg.eval.max_envs)
        self.metrics = MetricsLog(run_dir / METRICS_FILE)
        self.show_progress = progress

        n = cfg.env.num_envs
        self.obs, _ = envs.reset(seed=self.streams.env)
        self.prev_done = np.zeros(n, dtype=bool)
        self.ep_return = np.zeros(n, dtype=np.float64)
        self.ep_length = np.zeros(n, dtype=np.int64)
        self.env_steps = 0
        self.episodes = 0
        self.evaluations = 0
        self.next_eval = cfg.eval.every_episodes or cfg.eval.every_steps
        self.next_checkpoint = cfg.checkpoint_every
        self.last_loss: torch.Tensor | None = None
        self.best_mean = -math.inf
        self.best_success: float | None = None  # the best evaluation's success rate (success tasks)
        self.best_step: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_eval_index = 0  # evaluations done when the best was found (for patience)
        self.shortlist: list[Candidate] = []  # the eval.shortlist best evaluations, best first
        self.rechecks: list[dict[str, Any]] | None = None  # their second evaluation, for the summary
        self.recheck_seconds: float | None = None  # its time (part of the training time)
        self.longest = 0  # longest training episode so far (eval.deliver = "longest_episode")
        self.last_eval: float | None = None
        self.last_eval_step: int | None = None
        self.last_cut: float | None = None  # the bound of the last evaluation if it was cut short (display only)
        self.solved_at: int | None = None
        self.stop_reason: str | None = None  # set by a stop rule other than the budgets
        self.seconds_before = 0.0  # training seconds spent before a resume
        self.recent: deque[float] = deque(maxlen=RECENT_EPISODES)
        # The divergence guard (see value_range): the largest |Q| seen at an evaluation, the bound
        # the rewards allow, and the first time the first left the second (None: never).
        self.q_max: float | None = None
        self.q_bound: float | None = None
        self.value_warning: dict[str, float] | None = None

    @classmethod
    def check_fits(cls, cfg: RunConfig, obs_shape: tuple[int, ...], n_actions: int, reset_info: dict) -> None:
        """Raise ConfigError if `cfg` cannot run on this environment (spaces and `reset_info`, the
        info of a first reset). Called before the run directory is touched, so that bad input
        never leaves a half-made run or removes an old one."""
        if cfg.eval.success_threshold is not None and "success" not in reset_info:
            raise ConfigError(
                f"eval.success_threshold needs an environment that reports info['success'] "
                f"(such as dqnlab/CartPoleTarget-v0); {cfg.env.id} does not"
            )
        if cfg.eval.env:  # evaluations build their environments later, mid-run: try one now
            probe = make_vec_env(cfg.eval_env(), 1)
            try:
                if check_spaces(probe, cfg.env.id) != (obs_shape, n_actions):
                    raise ConfigError(
                        "eval.env changes the observation or action space; evaluations must see what training sees"
                    )
                # Success rates come from the evaluations, so their environment must report it
                # too: eval.env's kwargs reach the constructor, which may turn the report off.
                if cfg.eval.success_threshold is not None and "success" not in probe.reset(seed=cfg.seed)[1]:
                    raise ConfigError(
                        f"eval.success_threshold needs an evaluation environment that reports info['success']; "
                        f"{cfg.env.id} with eval.env {preview(cfg.eval.env)} does not"
                    )
            finally:
                probe.close()

    @classmethod
    def memory_estimate(cls, cfg: RunConfig, obs_shape: tuple[int, ...], n_actions: int) -> dict[str, float]:
        """Bytes of the run's largest allocations, by what needs them (checked against the free
        memory before anything is written; see dqnlab.runtime.resources). Algorithms add their own."""
        return {}

    # -- what an algorithm provides ---------------------------------------------------------------
    @classmethod
    def build_policy_net(
        cls, network: NetworkConfig, obs_shape: tuple[int, ...], n_actions: int, extra: dict[str, Any]
    ) -> nn.Module:
        """The untrained module of this algorithm's delivered policy, from config alone (a policy
        file is rebuilt with it: see dqnlab.algos.registry.load_policy). `extra` is what
        ``policy_extra`` saved beside the network config."""
        raise NotImplementedError

    def advance(self) -> None:
        """Act and learn for at least one environment step (through ``env_step``)."""
        raise NotImplementedError

    def greedy_act(self, obs: np.ndarray) -> np.ndarray:
        """The policy being trained, acting greedily: (N, *obs_shape) -> (N,) actions."""
        raise NotImplementedError

    def policy_net(self) -> nn.Module:
        """The module whose state is evaluated, kept as the best, and delivered."""
        raise NotImplementedError

    def exploration(self) -> float | None:
        """Current exploration rate for the logs (None where the algorithm has none)."""
        return None

    def algo_state(self) -> dict[str, Any]:
        return {}

    def load_algo_state(self, state: dict[str, Any]) -> None:
        pass

    def algo_summary(self) -> dict[str, Any]:
        return {}

    def on_episode_end(self, env_index: int) -> None:
        """Called once per finished training episode, after the counters are updated."""

    def value_range(self) -> tuple[float, float, float] | None:
        """(the largest |Q| the network being trained predicts on recently stored states, the
        largest |reward| stored so far, gamma) for value-based algorithms, or None. Read at every
        evaluation: the first goes to metrics.csv (`q_max`), and a run whose |Q| passes
        VALUE_SLACK times ``value_bound`` is warned about once, on stderr and in summary.json."""
        return None

    def eval_state(self) -> Any:
        """State that evaluating the greedy policy changes (a random controller's generator; None
        for most): taken before an evaluation during training and put back with
        ``restore_eval_state`` when a signal cuts it off, so that the checkpoint written then is
        the state before the evaluation, which the resumed run redoes."""
        return None

    def restore_eval_state(self, state: Any) -> None:
        pass

    def check_finite(self) -> None:
        bad_loss = self.last_loss is not None and not torch.isfinite(self.last_loss)
        bad_params = any(not torch.isfinite(p).all() for p in self.policy_net().parameters())
        if bad_loss or bad_params:
            raise DqnlabError(
                f"training diverged at step {self.env_steps} (non-finite {'loss' if bad_loss else 'weights'}); "
                f"the last good checkpoint and {POLICY_FILE} in {self.run_dir} are kept. "
                "Try a lower learning rate or clip gradients.",
                exit_code=1,
            )

    # -- shared mechanics -------------------------------------------------------------------------
    def env_step(self, actions: np.ndarray):
        """Step all environments and do the episode bookkeeping.

        Returns (valid, next_obs, reward, terminated, truncated). NEXT_STEP autoreset: where the
        previous step ended an episode, this step only reset that environment (reward 0, action
        ignored); ``valid`` is False there, and such a step is not a transition.
        ``self.obs`` still holds the observations the actions were chosen on; the caller moves it
        on with ``self.obs = next_obs`` once it has used both.
        """
        next_obs, reward, terminated, truncated, _ = self.envs.step(actions)
        valid = ~self.prev_done
        self.env_steps += int(valid.sum())
        self.ep_return += np.where(valid, reward, 0.0)
        self.ep_length += valid
        self.prev_done = terminated | truncated
        done = valid & self.prev_done
        if done.any():
            self._finish_episodes(np.flatnonzero(done))
        return valid, next_obs, reward, terminated, truncated

    def _finish_episodes(self, which: np.ndarray) -> None:
        eps = self.exploration()
        loss = float(self.last_loss) if self.last_loss is not None else None
        wall = self.seconds_before + time.perf_counter() - self.t_start
        ev = self.cfg.eval
        for i in which:
            self.episodes += 1
            ret, length = float(self.ep_return[i]), int(self.ep_length[i])
            self.recent.append(ret)
            self.metrics.row(
                kind="train",
                env_step=self.env_steps,
                episode=self.episodes,
                **{"return": ret},
                length=length,
                epsilon=eps,
                loss=loss,
                wall_seconds=wall,
            )
            self.on_episode_end(int(i))
            if length > self.longest:
                self.longest = length
                if ev.deliver == "longest_episode":
                    self._keep_best(float(length))
            if ev.stop_train_return is not None and ret >= ev.stop_train_return and self.stop_reason is None:
                self.stop_reason = "train_return"
        self.ep_return[which] = 0.0
        self.ep_length[which] = 0

    def _keep_best(self, score: float, success: float | None = None) -> None:
        self.best_mean, self.best_success, self.best_step = score, success, self.env_steps
        self.best_eval_index = self.evaluations
        self.best_state = copy.deepcopy(self.policy_net().state_dict())
        self._delivered_policy().save(self.run_dir / POLICY_FILE)

    def _eval_due(self) -> bool:
        ev = self.cfg.eval
        counter = self.episodes if ev.every_episodes else self.env_steps
        if counter < self.next_eval:
            return False
        period = ev.every_episodes or ev.every_steps
        while self.next_eval <= counter:
            self.next_eval += period
        return True

    def start(self) -> None:
        """Write the step-0 checkpoint of a new run, so that a run killed at any moment can be
        resumed (and a disk too small for a checkpoint fails now, before training)."""
        if self.env_steps == 0:
            self._checkpoint()

    def relocate(self, run_dir: Path) -> None:
        """The run directory was moved (a new run is built beside its final place, then moved
        there): write there from now on. The metrics file stays open across the move."""
        self.run_dir = run_dir

    def run(self) -> TrainResult:
        cfg = self.cfg
        prog = self._progress = Progress(cfg.total_steps, self.env_steps, enabled=self.show_progress)
        with catch_stop_signals():
            try:
                # Nothing is due here, except on resuming a run whose evaluation a signal cut off.
                self._end_step(prog)
                # A budget is not a stop rule: a resume with a larger budget goes on.
                budget_reason = None
                while self.stop_reason is None:
                    self._stop_if_signalled()
                    if self.env_steps >= cfg.total_steps:
                        budget_reason = "total_steps"
                        break
                    if cfg.total_episodes is not None and self.episodes >= cfg.total_episodes:
                        budget_reason = "total_episodes"
                        break
                    self.advance()
                    prog.tick(self.env_steps, self._recent)
                    self._end_step(prog)
                self._stop_if_signalled()
                # Checkpoint the loop state first: a later --resume with a larger budget then
                # continues exactly as if never stopped, undisturbed by the extra evaluation
                # below; a signal during the evaluations below leaves the run resumable from here.
                self._checkpoint()
                try:
                    if cfg.eval.deliver == "last":
                        self._keep_best(self.last_eval if self.last_eval is not None else -math.inf)
                    elif self.stop_reason != "threshold" and self.last_eval_step != self.env_steps:
                        self._evaluate()  # the network as it ended may be the best one
                        prog.update(self.env_steps, self._recent(), self.exploration(), self.last_eval, self.last_cut)
                    if len(self.shortlist) > 1:
                        t_recheck = time.perf_counter()
                        self.recheck_shortlist(prog)
                        self.recheck_seconds = time.perf_counter() - t_recheck
                    train_seconds = self.seconds_before + time.perf_counter() - self.t_start
                    policy = self._delivered_policy()
                    prog.note(f"final evaluation of the delivered policy: {cfg.eval.final_episodes} episodes")
                    t_eval = time.perf_counter()
                    final = self.evaluator.run(
                        policy.act_batch, cfg.eval.final_episodes, self.streams.eval_final, self._evaluation_stop
                    )
                except EvaluationStopped:
                    self._interrupt(checkpoint=False)
            finally:
                prog.close()
                self._progress = None
        summary = self._write_summary(
            status="finished",
            stop_reason=self.stop_reason or budget_reason,
            final=final,
            train_seconds=train_seconds,
            final_eval_seconds=time.perf_counter() - t_eval,
        )
        return TrainResult(self.run_dir, summary, policy)

    def _end_step(self, prog: Progress) -> None:
        """What follows a step: an evaluation and a checkpoint when due. A signal that cuts the
        evaluation off leaves it due and the loop as before it (the checkpoint that the signal
        writes then has the evaluation still to do), and skips the rest of the step."""
        due = self.next_eval
        if self._eval_due():
            rng = self.eval_state()
            try:
                self._evaluate()
            except EvaluationStopped:
                self.next_eval = due
                self.restore_eval_state(rng)
                return
            prog.update(self.env_steps, self._recent(), self.exploration(), self.last_eval, self.last_cut)
        if self.env_steps >= self.next_checkpoint:
            while self.next_checkpoint <= self.env_steps:
                self.next_checkpoint += self.cfg.checkpoint_every
            self._checkpoint()

    def _stop_if_signalled(self) -> None:
        if stop_signal() is not None:
            self._interrupt(checkpoint=True)

    def _interrupt(self, checkpoint: bool) -> None:
        """Stop for a signal: checkpoint (unless the last checkpoint is the state to resume from),
        mark the run interrupted and raise TrainingInterrupted."""
        signum = stop_signal()
        assert signum is not None, "only a stop signal interrupts a run"
        if checkpoint:
            self._checkpoint()
        summary = self._write_summary(status="interrupted", stop_reason="signal", final=None)
        raise TrainingInterrupted(signum, self.run_dir, summary)

    def _evaluation_stop(self) -> bool:
        """The evaluator's test at each of its steps: a stop signal cuts the evaluation off. On the
        way, the progress display shows that the run is alive (a long evaluation is otherwise silent)."""
        if self._progress is not None:
            self._progress.evaluating(self.env_steps)
        return stop_requested()

    def _recent(self) -> float | None:
        return float(np.mean(self.recent)) if self.recent else None

    def _evaluate(self) -> None:
        """Evaluate the greedy policy (and confirm an early stop), then update the loop's state.
        Both evaluations run before anything changes: one cut off by a signal (EvaluationStopped)
        leaves the loop as it was."""
        self.check_finite()
        ev = self.cfg.eval
        seed = self.streams.eval_during
        if ev.fresh_starts:  # a new stretch of seeds per evaluation, never overlapping
            seed += self.evaluations * ev.episodes
        give_up = None if ev.max_return_to_go is None else self._hopeless
        res = self.evaluator.run(
            self.greedy_act, ev.episodes, seed, self._evaluation_stop, give_up, ev.max_return_to_go or 0.0
        )
        wall = self.seconds_before + time.perf_counter() - self.t_start
        self.last_cut = res.cut_bound
        if res.partial:  # cut short: it can be neither the best nor a stop, only an evaluation without a new best
            self.evaluations += 1
            self.last_eval_step = self.env_steps
            self.metrics.row(
                kind="partial",
                env_step=self.env_steps,
                episode=self.episodes,
                eval_mean=res.cut_bound,
                epsilon=self.exploration(),
                wall_seconds=wall,
            )
            if ev.patience is not None and self.evaluations - self.best_eval_index >= ev.patience:
                self.stop_reason = "patience"
            return
        early_stop = ev.early_stop and self._good_enough(res)
        check = None
        if early_stop and ev.confirm:
            check = self.evaluator.run(
                self.greedy_act, ev.episodes, self.streams.eval_confirm + self.env_steps, self._evaluation_stop
            )
        self.evaluations += 1
        self.last_eval, self.last_eval_step = res.mean, self.env_steps
        value_range = self.value_range()
        self._eval_row(
            "eval",
            self.env_steps,
            res,
            wall,
            q_max=None if value_range is None else value_range[0],
            epsilon=self.exploration(),
        )
        if value_range is not None:
            self._guard_values(value_range[0], value_bound(value_range[1], value_range[2]))
        if (ev.deliver == "best_eval" and self._beats_best(res)) or ev.deliver == "last":
            self._keep_best(res.mean, res.success_rate)
        if ev.shortlist > 1:
            self._shortlist_add(res)
        if ev.patience is not None and self.evaluations - self.best_eval_index >= ev.patience:
            self.stop_reason = "patience"
        if early_stop:
            if check is not None:
                self._eval_row("confirm", self.env_steps, check, wall, epsilon=self.exploration())
                if not self._good_enough(check):
                    return
            self.solved_at = self.env_steps
            self.stop_reason = "threshold"

    def _eval_row(self, kind: str, env_step: int, res: EvalResult, wall: float, **more: Any) -> None:
        """An evaluation's row in metrics.csv (kinds eval, confirm and recheck)."""
        self.metrics.row(
            kind=kind,
            env_step=env_step,
            episode=self.episodes,
            eval_mean=res.mean,
            eval_std=res.std,
            eval_success=res.success_rate,
            wall_seconds=wall,
            **more,
        )

    def _guard_values(self, q_max: float, bound: float) -> None:
        """Keep the Q scale for the summary, and warn once when it leaves its possible range."""
        self.q_max = q_max if self.q_max is None else max(self.q_max, q_max)
        self.q_bound = bound
        if self.value_warning is None and q_max > VALUE_SLACK * bound:
            self.value_warning = {"env_step": self.env_steps, "q_max": q_max, "q_bound": bound}
            print(
                f"[dqnlab] warning: Q-values are diverging in {self.run_dir} at step {self.env_steps}: "
                f"max |Q| {q_max:.4g} > {bound:.4g} = max |reward| / (1 - gamma), the most any return can be "
                "(summary.json records it as value_warning; metrics.csv's q_max column tracks |Q|)",
                file=sys.stderr,
                flush=True,
            )

    def _hopeless(self, bound: float) -> bool:
        """Whether an evaluation whose mean can be at most `bound` can be of no use: it could not
        beat the best evaluation so far (with eval.shortlist, enter the shortlist), nor reach the
        early stop's threshold (eval.max_return_to_go)."""
        ev = self.cfg.eval
        if ev.shortlist > 1:  # it is of use if it would enter the shortlist
            if len(self.shortlist) < ev.shortlist or bound > self.shortlist[-1].mean:
                return False
        elif bound > self.best_mean:
            return False
        stop_at = ev.stop_threshold if ev.stop_threshold is not None else self.threshold
        return not (ev.early_stop and stop_at is not None and bound >= stop_at)

    def _rank(self, mean: float, success: float | None) -> tuple[float, ...]:
        """The order of evaluations: by mean return, or with eval.success_threshold by success
        rate first (a policy that reaches the target beats one that balances better)."""
        if self.cfg.eval.success_threshold is None or success is None:
            return (mean,)
        return (success, mean)

    def _shortlist_add(self, res: EvalResult) -> None:
        """Keep the evaluated network if its evaluation is among the eval.shortlist best so far
        (a tie keeps the earlier one, as the best evaluation does)."""
        key = self._rank(res.mean, res.success_rate)
        short = self.shortlist
        if len(short) == self.cfg.eval.shortlist and key <= self._rank(short[-1].mean, short[-1].success):
            return
        # The network just kept as the best is already a copy (nothing changes a kept state in place).
        just_kept = self.best_step == self.env_steps and self.best_state is not None
        state = self.best_state if just_kept else copy.deepcopy(self.policy_net().state_dict())
        assert state is not None
        short.append(Candidate(res.mean, res.success_rate, self.env_steps, state))
        short.sort(key=lambda c: self._rank(c.mean, c.success), reverse=True)  # stable: earlier first on ties
        del short[self.cfg.eval.shortlist :]

    def recheck_shortlist(self, prog: Progress) -> None:
        """Evaluate every network on the shortlist again, on the same fresh episodes, and make the
        best of this second evaluation the delivered one (see eval.shortlist)."""
        ev = self.cfg.eval
        prog.note(f"second look at the {len(self.shortlist)} best networks: {ev.shortlist_episodes} episodes each")
        results = [
            self.evaluator.run(
                self._policy_from(c.state).act_batch,
                ev.shortlist_episodes,
                self.streams.eval_shortlist,
                self._evaluation_stop,
            )
            for c in self.shortlist
        ]
        wall = self.seconds_before + time.perf_counter() - self.t_start
        for c, res in zip(self.shortlist, results, strict=True):
            self._eval_row("recheck", c.step, res, wall)
        # max() keeps the first of equals: on a tie, the better first evaluation.
        chosen = max(range(len(results)), key=lambda i: self._rank(results[i].mean, results[i].success_rate))
        self.rechecks = [
            {
                "env_step": c.step,
                "eval_mean": c.mean,
                "eval_success": c.success,
                "recheck_mean": res.mean,
                "recheck_success": res.success_rate,
                "delivered": i == chosen,
            }
            for i, (c, res) in enumerate(zip(self.shortlist, results, strict=True))
        ]
        best = self.shortlist[chosen]
        self.best_mean, self.best_success, self.best_step, self.best_state = (
            best.mean,
            best.success,
            best.step,
            best.state,
        )
        self._delivered_policy().save(self.run_dir / POLICY_FILE)

    def _beats_best(self, res: EvalResult) -> bool:
        """Better than the best evaluation so far: by mean return, or with eval.success_threshold
        by success rate first (a policy that reaches the target beats one that balances better)."""
        if self.cfg.eval.success_threshold is None or self.best_success is None:
            return res.mean > self.best_mean
        return self._rank(res.mean, res.success_rate) > self._rank(self.best_mean, self.best_success)

    def _good_enough(self, res: EvalResult) -> bool:
        """The early-stop test: the evaluation clears the stop threshold (return or success rate)
        by `stop_z` standard errors."""
        ev = self.cfg.eval
        if ev.success_threshold is not None:
            bound = res.success_lower_bound(ev.stop_z)
            assert bound is not None  # check_fits: the environment reports info["success"]
            return bound >= ev.success_threshold
        stop_at = ev.stop_threshold if ev.stop_threshold is not None else self.threshold
        return stop_at is not None and res.lower_bound(ev.stop_z) >= stop_at

    def _delivered_policy(self) -> Policy:
        return self._policy_from(self.best_state)

    def _policy_from(self, state: dict[str, torch.Tensor] | None) -> Policy:
        """The policy of the network with weights `state` (None: the network as it is now)."""
        net = copy.deepcopy(self.policy_net())
        if state is not None:
            net.load_state_dict(state)
        return Policy(
            net,
            self.cfg.env.id,
            self.obs_shape,
            self.n_actions,
            self.cfg.network,
            algo=self.algo,
            extra={**self.policy_extra(), **self.eval_env_record()},
        )

    def eval_env_record(self) -> dict[str, Any]:
        """{"eval_env": ...}: what of the evaluation environment `dqnlab evaluate` must repeat (its
        time limit and constructor kwargs, where the config set them; see Policy.evaluation_env)."""
        env = self.cfg.eval_env()
        record: dict[str, Any] = {}
        if env.id != self.cfg.env.id:  # evaluated on another task: the policy's env_id is the training one
            return {}
        if env.max_episode_steps is not None:
            record["max_episode_steps"] = env.max_episode_steps
        if env.kwargs:
            record["kwargs"] = dict(env.kwargs)
        return {"eval_env": record} if record else {}

    def policy_extra(self) -> dict[str, Any]:
        """What, besides the network config, rebuilds ``policy_net`` (see dqnlab.runtime.policy)."""
        return {}

    # -- checkpoint ------------------------------------------------------------------------------
    def _checkpoint(self) -> None:
        self.check_finite()
        state = {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_VERSION,
            "algo": self.algo,
            "config": self.cfg.to_dict(),
            "algo_state": self.algo_state(),
            "env": capture_env_state(self.envs),
            "obs": torch.from_numpy(np.array(self.obs)),
            "prev_done": torch.from_numpy(self.prev_done.copy()),
            "ep_return": torch.from_numpy(self.ep_return.copy()),
            "ep_length": torch.from_numpy(self.ep_length.copy()),
            "counters": {
                "env_steps": self.env_steps,
                "episodes": self.episodes,
                "evaluations": self.evaluations,
                "next_eval": self.next_eval,
                "next_checkpoint": self.next_checkpoint,
                "best_mean": self.best_mean if self.best_mean > -math.inf else None,
                "best_success": self.best_success,
                "best_step": self.best_step,
                "best_eval_index": self.best_eval_index,
                "longest": self.longest,
                "last_eval": self.last_eval,
                "last_eval_step": self.last_eval_step,
                "solved_at": self.solved_at,
                "stop_reason": self.stop_reason,
                "seconds": self.seconds_before + time.perf_counter() - self.t_start,
                "recent": list(self.recent),
                "q_max": self.q_max,
                "q_bound": self.q_bound,
                "value_warning": self.value_warning,
            },
            "last_loss": self.last_loss,
            "best_state": self.best_state,
            "shortlist": [
                {"mean": c.mean, "success": c.success, "step": c.step, "state": c.state} for c in self.shortlist
            ],
            "metrics_bytes": self.metrics.size(),
        }
        atomic_torch_save(self.run_dir / CHECKPOINT_FILE, state)

    def load_checkpoint(self, state: dict) -> None:
        metrics_bytes = check_header(state, self.algo, self.run_dir, self.metrics.size())
        try:
            self.load_algo_state(state["algo_state"])
            c = state["counters"]
            self.env_steps, self.episodes = int(c["env_steps"]), int(c["episodes"])
            self.evaluations = int(c["evaluations"])
            self.next_eval, self.next_checkpoint = int(c["next_eval"]), int(c["next_checkpoint"])
            self.best_mean = -math.inf if c["best_mean"] is None else float(c["best_mean"])
            self.best_success = c.get("best_success")  # absent in older checkpoints
            self.best_step, self.last_eval, self.solved_at = c["best_step"], c["last_eval"], c["solved_at"]
            self.best_eval_index, self.longest = int(c["best_eval_index"]), int(c["longest"])
            self.last_eval_step = c["last_eval_step"]
            self.stop_reason = c["stop_reason"]
            self.seconds_before = float(c["seconds"])
            assert self.recent.maxlen is not None  # made with one in __init__
            recent = list(c["recent"])[-self.recent.maxlen :]
            if not all(isinstance(r, (int, float)) for r in recent):
                raise ValueError("recent returns are not numbers")
            self.recent.extend(recent)
            # Absent in checkpoints written before the divergence guard.
            self.q_max, self.q_bound = c.get("q_max"), c.get("q_bound")
            self.value_warning = c.get("value_warning")
            self.last_loss = state["last_loss"]
            best = state["best_state"]
            if best is not None:
                check_same_shapes(best, self.policy_net().state_dict(), "best network")
            self.best_state = best
            # Absent in checkpoints written before eval.shortlist, whose configs (which a resume
            # must match) all have a shortlist of 1: nothing to keep.
            self.shortlist = []
            for kept in state.get("shortlist", [])[: self.cfg.eval.shortlist]:
                check_same_shapes(kept["state"], self.policy_net().state_dict(), "shortlisted network")
                success = None if kept["success"] is None else float(kept["success"])
                self.shortlist.append(Candidate(float(kept["mean"]), success, int(kept["step"]), kept["state"]))
            if state["env"] is not None:
                restore_env_state(self.envs, state["env"])
                per_env = {
                    "obs": self.obs,
                    "prev_done": self.prev_done,
                    "ep_return": self.ep_return,
                    "ep_length": self.ep_length,
                }
                check_same_shapes({k: state[k] for k in per_env}, per_env, "environment state")
                self.obs = state["obs"].numpy().copy()
                self.prev_done = state["prev_done"].numpy().copy()
                self.ep_return = state["ep_return"].numpy().copy()
                self.ep_length = state["ep_length"].numpy().copy()
            else:  # environment state not capturable: restart the in-progress episodes
                self.obs, _ = self.envs.reset(seed=self.streams.env + self.env_steps)
                self.prev_done[:] = False
                self.ep_return[:] = 0.0
                self.ep_length[:] = 0
                self.on_env_restart()
            self.metrics.truncate(metrics_bytes)
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError, OverflowError) as exc:
            raise DqnlabError(
                f"checkpoint in {self.run_dir} does not fit this run's config ({str(exc)[:200] or type(exc).__name__})",
                exit_code=1,
            ) from None
        self.t_start = time.perf_counter()

    def on_env_restart(self) -> None:
        """The environments were reset on resume: drop any partial per-episode state."""

    # -- summary -----------------------------------------------------------------------------------
    def _write_summary(
        self,
        status: str,
        stop_reason: str | None,
        final: EvalResult | None,
        train_seconds: float | None = None,
        final_eval_seconds: float | None = None,
    ) -> dict[str, Any]:
        seconds = (
            train_seconds if train_seconds is not None else self.seconds_before + time.perf_counter() - self.t_start
        )
        summary = run_summary(
            self.cfg,
            status=status,
            stop_reason=stop_reason,
            final=final,
            threshold=self.threshold,
            algo=self.algo,
            counters={
                "env_steps": self.env_steps,
                "episodes": self.episodes,
                "solved_at": self.solved_at,
                "best_mean": self.best_mean,
                "best_success": self.best_success,
                "best_step": self.best_step,
                "longest": self.longest,
                "q_max": self.q_max,
                "q_bound": self.q_bound,
                "value_warning": self.value_warning,
                "shortlist": self.rechecks,
                "recheck_seconds": self.recheck_seconds,
            },
            algo_summary=self.algo_summary(),
            train_seconds=seconds,
            final_eval_seconds=final_eval_seconds,
            run_dir=self.run_dir,
        )
        atomic_write_json(self.run_dir / SUMMARY_FILE, summary)
        return summary

    def close(self) -> None:
        self.metrics.close()
        self.evaluator.close()
        self.envs.close()
