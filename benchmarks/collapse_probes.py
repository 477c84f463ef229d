"""Ideas against collapse after solving, tried without adding them to dqnlab (issue #16).

    python benchmarks/collapse_probes.py lr-after-solve 0.3 --seeds 0-3 [--set KEY=VALUE ...]
    python benchmarks/collapse_probes.py advantage-learning 0.9 --seeds 0-3
    python benchmarks/collapse_probes.py ema-eval 0.001 --seeds 0-3
    python benchmarks/collapse_probes.py average-window 0.15 --seeds 0-3 [--lr-k0 1500 --lr-power 1] [--set ...]
    python benchmarks/collapse_probes.py settle-after-solve 0.3 --settle-tau 0.001 [--settle-target-every 50]

Each runs benchmarks/stability.py's protocol (the `default` preset, early stopping off, 60k
steps, 100 evaluation episodes every 2k steps) on a patched copy of DQN, in this process only:

- `lr-after-solve F`: once an evaluation reaches 475 and a second evaluation of the same network
  on 100 other episodes confirms it (dqnlab's early-stop rule), the learning rate is multiplied
  by F for the rest of the run (F = 0 freezes the network: trivially "stable", and no answer).
- `advantage-learning A`: Bellemare et al.'s (2016) action-gap-increasing target,
  y - A * (max_b Q_target(s, b) - Q_target(s, a)).
- `ema-eval TAU`: the evaluations act with a Polyak average of the online network (after each
  gradient step, avg <- avg + TAU * (online - avg)), as supervised learning often evaluates an
  average of its recent weights; training still acts and learns with the online network.

- `average-window FRAC` (session 17): `dqn.policy_average_tau`'s average, but its tau shrinks as
  gradient steps k accumulate, tau_k = min(dqn.policy_average_tau, 1 / (FRAC * k)): a short
  window while the first solve is near, then one of FRAC times the run so far. With `--lr-k0 K0`
  the learning rate also decays from the K0-th gradient step on, lr * (K0 / k) ** `--lr-power`.
- `settle-after-solve F` (session 17): once an evaluation reaches the threshold and a second one
  on 100 other episodes confirms it (as `lr-after-solve`), the learning rate is multiplied by F,
  the average's tau becomes `--settle-tau` and, with `--settle-target-every T`, the target copy
  comes every T gradient steps: a fast config that turns into a steadier one once it solves.

They patch dqnlab's internals on purpose: a probe, not an API. The first two were not kept; the
third became `dqn.policy_average_tau` (BENCHMARKS.md). The first three
run on `default` without that average and without bounded targets (`dqn.policy_average_tau=null`,
`dqn.bound_targets=false`), as they were run, so their figures repeat; `average-window` and
`settle-after-solve` run on `default` as it is, with the average and the bound (the last two
were not kept).
"""

from __future__ import annotations

import argparse
import copy
import weakref
from collections.abc import Callable
from typing import Any

import torch
from stability import parse_seeds, run_one  # benchmarks/stability.py, next to this script

import dqnlab.algos.dqn as dqn_module
import dqnlab.runtime.loop as loop_module
from dqnlab.nn.optim import clip_grad_norm_


def confirm_solves() -> weakref.WeakKeyDictionary[Any, bool]:
    """Patch the evaluations so that once one reaches the threshold, a second on 100 other episodes
    (the early stop's confirmation) decides whether the run has solved. Returns loop -> confirmed
    (weak keys, so a later seed's loop never inherits a freed one's id)."""
    confirmed: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()
    plain_evaluate = loop_module.TrainLoop._evaluate

    def evaluate(self) -> None:
        plain_evaluate(self)
        fresh = self.last_eval_step == self.env_steps and self.last_eval is not None
        if not confirmed.get(self) and fresh and self.last_eval >= self.threshold:
            check = self.evaluator.run(self.greedy_act, 100, self.streams.eval_confirm + self.env_steps)
            confirmed[self] = check.mean >= self.threshold

    loop_module.TrainLoop._evaluate = evaluate  # type: ignore[method-assign]
    return confirmed


def patch_update(schedule: Callable[[Any, int], tuple[float | None, float, int | None]]) -> None:
    """DQNLearner.update (without value clipping) with `schedule(learner, k)` -> (learning rate or
    None for the loop's, the policy average's tau, a hard target copy every T gradient steps or
    None for dqn.target_update's sync) at gradient step k."""

    def update(self, batch):
        lr, tau, hard_every = schedule(self, self.grad_steps + 1)
        loss, self._last_td = self.gradients(batch)
        if self.cfg.max_grad_norm is not None:
            clip_grad_norm_(self._params, self.cfg.max_grad_norm)
        if lr is not None:
            self.optimizer.lr = lr
        self.optimizer.step()
        self.grad_steps += 1
        if hard_every is None:
            self.sync_target("steps", self.grad_steps)
        elif self.grad_steps % hard_every == 0:
            self.hard_update()
        assert self._average_pairs is not None, "this probe needs dqn.policy_average_tau"
        with torch.no_grad():
            torch._foreach_lerp_(self._average_pairs[0], self._average_pairs[1], tau)
        return loss.detach()

    dqn_module.DQNLearner.update = update  # type: ignore[method-assign]


def patch_lr_after_solve(factor: float) -> None:
    current: list[Any] = [None]
    plain_lr_at, plain_learn = dqn_module.lr_at, dqn_module.DQNLoop._learn
    confirmed = confirm_solves()

    def lr_at(lr: float, schedule: str, step: int, total: int) -> float:
        scale = factor if current[0] is not None and confirmed.get(current[0]) else 1.0
        return plain_lr_at(lr, schedule, step, total) * scale

    def learn(self, n_valid: int) -> None:
        current[0] = self
        plain_learn(self, n_valid)

    dqn_module.lr_at = lr_at
    dqn_module.DQNLoop._learn = learn  # type: ignore[method-assign]


def patch_advantage_learning(alpha: float) -> None:
    plain_targets = dqn_module.DQNLearner.targets

    @torch.no_grad()
    def targets(self, batch):
        q_target = self._target_fn(batch.obs)
        gap = q_target.max(dim=1).values - q_target.gather(1, batch.actions.unsqueeze(1)).squeeze(1)
        return plain_targets(self, batch) - alpha * gap

    dqn_module.DQNLearner.targets = targets  # type: ignore[method-assign]


def patch_ema_eval(tau: float) -> None:
    averages: dict[int, torch.nn.Module] = {}  # id(learner) -> its average network
    plain_update = dqn_module.DQNLearner.update

    def update(self, batch):
        loss = plain_update(self, batch)
        avg = averages.get(id(self))
        if avg is None:
            avg = averages[id(self)] = copy.deepcopy(self.online).requires_grad_(False)
        with torch.no_grad():
            torch._foreach_lerp_(list(avg.parameters()), list(self.online.parameters()), tau)
        return loss

    def greedy_act(self, obs):  # used by the evaluations only (training acts in DQNLoop.advance)
        avg = averages.get(id(self.learner), self.learner.online)
        with torch.no_grad():
            return avg(torch.from_numpy(self.inputs(obs))).argmax(dim=1).numpy()

    dqn_module.DQNLearner.update = update  # type: ignore[method-assign]
    dqn_module.DQNLoop.greedy_act = greedy_act  # type: ignore[method-assign]


def patch_average_window(frac: float, lr_k0: float = 0.0, lr_power: float = 1.0) -> None:
    def schedule(learner, k: int) -> tuple[float | None, float, int | None]:
        lr = learner.cfg.lr * min(1.0, (lr_k0 / k) ** lr_power) if lr_k0 else None
        return lr, min(learner.cfg.policy_average_tau, 1.0 / (frac * k)), None

    patch_update(schedule)


def patch_settle_after_solve(factor: float, tau: float, target_every: int | None) -> None:
    confirmed = confirm_solves()
    loop_of: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()  # learner -> its loop
    plain_learn = dqn_module.DQNLoop._learn

    def learn(self, n_valid: int) -> None:
        loop_of[self.learner] = self
        plain_learn(self, n_valid)

    def schedule(learner, k: int) -> tuple[float | None, float, int | None]:
        if confirmed.get(loop_of[learner]):
            return learner.cfg.lr * factor, tau, target_every
        return None, learner.cfg.policy_average_tau, None

    dqn_module.DQNLoop._learn = learn  # type: ignore[method-assign]
    patch_update(schedule)


PROBES = {
    "lr-after-solve": patch_lr_after_solve,
    "advantage-learning": patch_advantage_learning,
    "ema-eval": patch_ema_eval,
    "average-window": patch_average_window,
    "settle-after-solve": patch_settle_after_solve,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("probe", choices=sorted(PROBES))
    ap.add_argument("value", type=float)
    ap.add_argument("--seeds", default="0-3")
    ap.add_argument("--total-steps", type=int, default=60_000)
    ap.add_argument("--every", type=int, default=2_000)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--lr-k0", type=float, default=0.0, help="average-window: lr decay from this gradient step")
    ap.add_argument("--lr-power", type=float, default=1.0, help="average-window: lr * (k0 / k) ** power")
    ap.add_argument("--settle-tau", type=float, default=0.001, help="settle-after-solve: the average's tau")
    ap.add_argument("--settle-target-every", type=int, default=None, help="settle-after-solve: target copy period")
    args = ap.parse_args()
    if args.probe == "average-window":
        patch_average_window(args.value, args.lr_k0, args.lr_power)
    elif args.probe == "settle-after-solve":
        patch_settle_after_solve(args.value, args.settle_tau, args.settle_target_every)
    else:
        PROBES[args.probe](args.value)
    for seed in parse_seeds(args.seeds):
        # default as the first three probes ran; average-window on default as it is
        as_is = args.probe in ("average-window", "settle-after-solve")
        plain = [] if as_is else ["dqn.policy_average_tau=null", "dqn.bound_targets=false"]
        r = run_one("default", [*plain, *args.overrides], seed, args.total_steps, args.every)
        share = "-" if r["share_after"] is None else f"{r['share_after']:.2f}"
        means = " ".join(f"{mean:.0f}" for _, mean, _ in r["evals"])
        print(f"seed {seed}: first solve {r['first_solve']}, share after {share}, lowest after {r['min_after']}")
        print(f"  evaluations: {means}", flush=True)


if __name__ == "__main__":
    main()
