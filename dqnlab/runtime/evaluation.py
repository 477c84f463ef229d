"""Greedy evaluation on vectorised environments: many episodes in parallel, one forward pass per step.

Besides returns and lengths, a result tells which episodes survived (ended by the time limit, not
by failure) and, on CartPole-style environments, how far the cart drifted: the largest and the
final |x| of each episode, read from the true state (not from a possibly noisy observation).
Long-horizon tests (``dqnlab evaluate --max-steps 10000``) need both: a policy that balances but
drifts slowly fails only after the usual 500 steps.

An evaluation can last long (a million-step episode of a policy that never falls): a `should_stop`
test, checked every step, cuts it off with ``EvaluationStopped`` (a training run stopped by a
signal must not wait for its evaluation to end).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from dqnlab.config import EnvConfig
from dqnlab.envs.make import is_cartpole_like, make_vec_env

ActFn = Callable[[np.ndarray], np.ndarray]  # (N, *obs_shape) -> (N,) actions
ShouldStop = Callable[[], bool]


class EvaluationStopped(Exception):
    """An evaluation's `should_stop` test said stop: it was cut off and has no result."""


@dataclass(frozen=True)
class EvalResult:
    returns: np.ndarray  # (episodes,) float64
    lengths: np.ndarray  # (episodes,) int64
    survived: np.ndarray | None = None  # (episodes,) bool: truncated by the time limit, not terminated
    max_abs_x: np.ndarray | None = None  # (episodes,) float64: largest |cart x| (CartPole-style only)
    final_abs_x: np.ndarray | None = None  # (episodes,) float64: |cart x| at the episode's end
    success: np.ndarray | None = None  # (episodes,) bool: the env's info["success"] on the last step
    final_offset: np.ndarray | None = None  # (episodes,) float64: info["mean_abs_offset_last_100"] there
    cut_bound: float | None = None
    """Set when the evaluation was cut short (see ``Evaluator.run``'s `give_up`): the highest mean
    it could still have reached. `returns` and `lengths` then hold the episodes run so far, the
    unfinished ones included, and mean nothing on their own."""

    @property
    def partial(self) -> bool:
        """Whether the evaluation was cut short: its mean is unknown, at most ``cut_bound``."""
        return self.cut_bound is not None

    @property
    def success_rate(self) -> float | None:
        """Share of episodes the environment called a success (target tasks; None elsewhere)."""
        return None if self.success is None else float(self.success.mean())

    @property
    def survival(self) -> float | None:
        """Share of episodes that reached the step cap without failing (None if not recorded)."""
        return None if self.survived is None else float(self.survived.mean())

    @property
    def mean(self) -> float:
        return float(self.returns.mean())

    @property
    def std(self) -> float:
        return float(self.returns.std())

    def lower_bound(self, z: float) -> float:
        """mean - z * standard error of the mean: a margin for deciding that a policy is good."""
        return self.mean - z * self.std / len(self.returns) ** 0.5

    def success_lower_bound(self, z: float) -> float | None:
        """success rate - z * its binomial standard error sqrt(p (1 - p) / n) (None: no success
        recorded). The same margin as ``lower_bound``, for a share instead of a mean."""
        if self.success is None:
            return None
        p = self.success_rate
        assert p is not None  # self.success is set
        return p - z * (p * (1.0 - p) / len(self.success)) ** 0.5

    def _drift_dict(self) -> dict[str, float]:
        if self.max_abs_x is None:
            return {}
        assert self.final_abs_x is not None  # recorded with max_abs_x
        return {
            "max_abs_x_mean": float(self.max_abs_x.mean()),
            "max_abs_x_max": float(self.max_abs_x.max()),
            "final_abs_x_mean": float(self.final_abs_x.mean()),
        }

    def as_dict(self) -> dict:
        return {
            "mean": self.mean,
            "std": self.std,
            "min": float(self.returns.min()),
            "max": float(self.returns.max()),
            "episodes": int(len(self.returns)),
            "mean_length": float(self.lengths.mean()),
            **({} if self.survived is None else {"survival": self.survival}),
            **self._drift_dict(),
            **({} if self.success is None else {"success_rate": self.success_rate}),
            **({} if self.final_offset is None else {"mean_abs_offset_last_100": float(self.final_offset.mean())}),
        }


def solves(res: EvalResult, threshold: float | None, success_threshold: float | None) -> bool:
    """Whether an evaluation solves the task: its success rate reaches `success_threshold` when
    one is set, else its mean return reaches `threshold` (never, with neither)."""
    if success_threshold is not None:
        return res.success_rate is not None and res.success_rate >= success_threshold
    return threshold is not None and res.mean >= threshold


class Evaluator:
    """Runs `episodes` greedy episodes in rounds of at most `max_envs` parallel environments.

    The initial states are derived from (seed, max_envs, episodes): two policies evaluated with
    the same arguments see the same starts (a different episode count may change them, since
    the NumPy CartPole draws a whole round's starts from one generator).
    Environments are kept between calls (creating 100 of them is not free).
    With `track_drift`, on CartPole-style environments the result also holds each episode's
    largest and final |cart x| (``max_abs_x``, ``final_abs_x``).
    """

    def __init__(self, env_cfg: EnvConfig, max_envs: int = 100, track_drift: bool = False):
        self.env_cfg = env_cfg
        self.max_envs = max_envs
        self._envs: dict[int, gym.vector.VectorEnv] = {}
        # Off by default: reading the state every step costs a few percent of an evaluation, which
        # training (evaluating every 1000 steps) does not need.
        self._track_x = track_drift and is_cartpole_like(env_cfg.id)

    def _get(self, n: int) -> gym.vector.VectorEnv:
        if n not in self._envs:
            self._envs[n] = make_vec_env(self.env_cfg, n)
        return self._envs[n]

    def run(
        self,
        act: ActFn,
        episodes: int,
        seed: int,
        should_stop: ShouldStop | None = None,
        give_up: Callable[[float], bool] | None = None,
        return_to_go: float = 0.0,
    ) -> EvalResult:
        """Evaluate `act` on `episodes` episodes; raises EvaluationStopped as soon as `should_stop`
        (checked before every step) returns True.

        With `give_up`: after every step, the highest mean still reachable, each unfinished or
        unstarted episode collecting at most `return_to_go` more, is passed to `give_up`; when it
        says so, the evaluation ends there and its result is partial (``EvalResult.cut_bound``)."""
        returns: list[np.ndarray] = []
        lengths: list[np.ndarray] = []
        survived: list[np.ndarray] = []
        max_x: list[np.ndarray] = []
        final_x: list[np.ndarray] = []
        ok: dict[int, np.ndarray] = {}
        offset: dict[int, np.ndarray] = {}
        done_count = 0
        round_index = 0
        while done_count < episodes:
            n = min(self.max_envs, episodes - done_count)
            envs = self._get(n)
            obs, _ = envs.reset(seed=seed + round_index * self.max_envs)
            ret = np.zeros(n, dtype=np.float64)
            length = np.zeros(n, dtype=np.int64)
            active = np.ones(n, dtype=bool)
            ended_by_limit = np.zeros(n, dtype=bool)
            x = _cart_x(envs) if self._track_x else None
            peak_x = np.abs(x) if x is not None else None
            last_x = np.abs(x) if x is not None else None
            while active.any():
                if should_stop is not None and should_stop():
                    raise EvaluationStopped
                obs, reward, terminated, truncated, info = envs.step(act(obs))
                ret += np.where(active, reward, 0.0)
                length += active
                ending = active & (terminated | truncated)
                for key, store in (("success", ok), ("mean_abs_offset_last_100", offset)):
                    if key in info:  # task outcomes that the environment reports per step
                        store.setdefault(round_index, np.zeros(n, dtype=np.float64))
                        store[round_index] = np.where(ending, info[key], store[round_index])
                ended_by_limit |= ending & truncated & ~terminated
                if peak_x is not None:
                    # The state after this step; for an episode that just ended, its final state
                    # (the NEXT_STEP autoreset replaces it only on the following step).
                    x_now = _cart_x(envs)
                    assert x_now is not None and last_x is not None  # x was readable at the reset
                    abs_x = np.abs(x_now)
                    peak_x = np.where(active, np.maximum(peak_x, abs_x), peak_x)
                    last_x = np.where(active, abs_x, last_x)
                # Finished environments autoreset and keep stepping; their outputs are ignored.
                active &= ~(terminated | truncated)
                if give_up is not None:
                    so_far = sum(float(r.sum()) for r in returns) + float(ret.sum())
                    waiting = int(active.sum()) + episodes - done_count - n  # unfinished and unstarted
                    bound = (so_far + return_to_go * waiting) / episodes
                    if waiting and give_up(bound):
                        return EvalResult(
                            np.concatenate([*returns, ret]), np.concatenate([*lengths, length]), cut_bound=bound
                        )
            returns.append(ret)
            lengths.append(length)
            survived.append(ended_by_limit)
            if peak_x is not None:
                assert last_x is not None  # set with peak_x
                max_x.append(peak_x)
                final_x.append(last_x)
            done_count += n
            round_index += 1
        drift = (np.concatenate(max_x), np.concatenate(final_x)) if max_x else (None, None)
        task: dict[str, np.ndarray] = {}
        if len(ok) == round_index:
            task["success"] = np.concatenate([ok[i] for i in range(round_index)]).astype(bool)
        if len(offset) == round_index:
            task["final_offset"] = np.concatenate([offset[i] for i in range(round_index)])
        return EvalResult(
            np.concatenate(returns),
            np.concatenate(lengths),
            np.concatenate(survived),
            max_abs_x=drift[0],
            final_abs_x=drift[1],
            success=task.get("success"),
            final_offset=task.get("final_offset"),
        )

    def close(self) -> None:
        for envs in self._envs.values():
            envs.close()
        self._envs.clear()


def _cart_x(envs: gym.vector.VectorEnv) -> np.ndarray | None:
    """The true cart positions (N,) of a CartPole-style vector env, or None where not readable."""
    base = envs.unwrapped
    state = getattr(base, "state", None)
    if isinstance(state, np.ndarray) and state.ndim == 2:  # NumPy vector envs: state is (4, N)
        return state[0]
    if isinstance(base, gym.vector.SyncVectorEnv):
        xs = []
        for env in base.envs:
            inner = env.unwrapped
            assert hasattr(inner, "state")  # CartPole-style environments only (track_drift)
            xs.append(float(inner.state[0]))
        return np.array(xs)
    return None
