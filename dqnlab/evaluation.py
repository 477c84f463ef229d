"""Greedy evaluation on vectorised environments: many episodes in parallel, one forward pass per step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from dqnlab.config import EnvConfig
from dqnlab.envs import make_vec_env

ActFn = Callable[[np.ndarray], np.ndarray]  # (N, *obs_shape) -> (N,) actions


@dataclass(frozen=True)
class EvalResult:
    returns: np.ndarray  # (episodes,) float64
    lengths: np.ndarray  # (episodes,) int64

    @property
    def mean(self) -> float:
        return float(self.returns.mean())

    @property
    def std(self) -> float:
        return float(self.returns.std())

    def lower_bound(self, z: float) -> float:
        """mean - z * standard error of the mean: a margin for deciding that a policy is good."""
        return self.mean - z * self.std / len(self.returns) ** 0.5

    def as_dict(self) -> dict:
        return {
            "mean": self.mean,
            "std": self.std,
            "min": float(self.returns.min()),
            "max": float(self.returns.max()),
            "episodes": int(len(self.returns)),
            "mean_length": float(self.lengths.mean()),
        }


class Evaluator:
    """Runs `episodes` greedy episodes in rounds of at most `max_envs` parallel environments.

    The initial states are derived from (seed, max_envs, episodes): two policies evaluated with
    the same arguments see the same starts (a different episode count may change them, since
    the NumPy CartPole draws a whole round's starts from one generator).
    Environments are kept between calls (creating 100 of them is not free).
    """

    def __init__(self, env_cfg: EnvConfig, max_envs: int = 100):
        self.env_cfg = env_cfg
        self.max_envs = max_envs
        self._envs: dict[int, gym.vector.VectorEnv] = {}

    def _get(self, n: int) -> gym.vector.VectorEnv:
        if n not in self._envs:
            self._envs[n] = make_vec_env(self.env_cfg, n)
        return self._envs[n]

    def run(self, act: ActFn, episodes: int, seed: int) -> EvalResult:
        returns: list[np.ndarray] = []
        lengths: list[np.ndarray] = []
        done_count = 0
        round_index = 0
        while done_count < episodes:
            n = min(self.max_envs, episodes - done_count)
            envs = self._get(n)
            obs, _ = envs.reset(seed=seed + round_index * self.max_envs)
            ret = np.zeros(n, dtype=np.float64)
            length = np.zeros(n, dtype=np.int64)
            active = np.ones(n, dtype=bool)
            while active.any():
                obs, reward, terminated, truncated, _ = envs.step(act(obs))
                ret += np.where(active, reward, 0.0)
                length += active
                # Finished environments autoreset and keep stepping; their outputs are ignored.
                active &= ~(terminated | truncated)
            returns.append(ret)
            lengths.append(length)
            done_count += n
            round_index += 1
        return EvalResult(np.concatenate(returns), np.concatenate(lengths))

    def close(self) -> None:
        for envs in self._envs.values():
            envs.close()
        self._envs.clear()
