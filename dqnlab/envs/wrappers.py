"""Perturbation wrappers for single Gymnasium environments other than CartPole: noise on what the
agent sees and does.

Each wrapper draws from its own generator, ``noise_rng``, seeded from ``reset(seed=...)``, so
wrapping changes none of the environment's own random draws (its start states stay those of the
same seed without the wrapper). In a SyncVectorEnv every sub-environment is reset with its own
seed, so their noise differs.

For CartPole and dqnlab/CartPoleTarget-v0, dqnlab's vectorised environments apply these and the
physics perturbations (force noise, randomised physics) inside one NumPy step (dqnlab.envs.cartpole_vec); dqnlab.envs.make.make_vec_env chooses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from dqnlab.envs.cartpole_vec import check_sigma, perturb_generator

# Each wrapper type gets its own stream, so stacking two wrappers does not correlate their noise.
_STREAMS = {"obs": 1, "action": 2}


def _reseed(wrapper: ObservationNoise | ActionNoise, seed: int | None, stream: str) -> None:
    if seed is not None:
        wrapper.noise_rng = perturb_generator(seed, _STREAMS[stream])


class ObservationNoise(gym.ObservationWrapper):
    """Adds N(0, sigma_i^2) to dimension i of every observation (reset's too). `sigma` is a scalar
    for all dimensions or one value per dimension; the environment's true state is unaffected."""

    def __init__(self, env: gym.Env, sigma: float | Sequence[float]):
        super().__init__(env)
        if not isinstance(env.observation_space, spaces.Box) or len(env.observation_space.shape) != 1:
            raise ValueError("ObservationNoise needs a flat Box observation space")
        self.sigma = check_sigma(sigma, env.observation_space.shape[0])
        self.noise_rng = np.random.default_rng()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        _reseed(self, seed, "obs")
        return super().reset(seed=seed, options=options)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        noise = self.noise_rng.standard_normal(self.sigma.shape) * self.sigma
        return (observation + noise).astype(self.observation_space.dtype)


class ActionNoise(gym.ActionWrapper):
    """With probability `prob`, replaces the chosen action by one drawn uniformly from the Discrete
    action space, which may be the chosen one again: with n actions the action actually changes
    with probability prob * (n - 1) / n (as epsilon-greedy exploration)."""

    def __init__(self, env: gym.Env, prob: float):
        super().__init__(env)
        if not isinstance(env.action_space, spaces.Discrete):
            raise ValueError("ActionNoise needs a Discrete action space")
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"action noise is a probability in [0, 1], got {prob}")
        self.prob = float(prob)
        self.noise_rng = np.random.default_rng()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        _reseed(self, seed, "action")
        return super().reset(seed=seed, options=options)

    def action(self, action):
        if self.noise_rng.random() < self.prob:
            space = self.env.action_space
            assert isinstance(space, spaces.Discrete)  # checked in __init__
            return int(space.start + self.noise_rng.integers(space.n))
        return action
