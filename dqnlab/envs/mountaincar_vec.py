"""A NumPy-vectorised MountainCar-v0: Gymnasium's ``MountainCarEnv`` on N environments at once.

Why: as for Acrobot (``dqnlab.envs.acrobot_vec``), Gymnasium registers no vector version, and a
SyncVectorEnv steps each copy in Python; an evaluation of 100 episodes pays 100 of those calls
per step.

It is the SyncVectorEnv of ``gym.make("MountainCar-v0")`` bit for bit (tested): the same start
states (environment i seeded with seed + i, each with its own generator), the same arithmetic
in the same order element by element (``math.cos`` and NumPy's cos agree on the float64 values
checked), the stop at the left wall, the goal test, rewards, the 200-step time limit and
NEXT_STEP autoreset. No rendering; ``goal_velocity`` 0 (MountainCar-v0's). dqnlab uses it only
for plain MountainCar-v0 (``dqnlab.envs.make.make_vec_env``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.mountain_car import MountainCarEnv
from gymnasium.envs.classic_control.utils import maybe_parse_reset_bounds
from gymnasium.utils import seeding
from gymnasium.vector.utils import batch_space

_REFERENCE = MountainCarEnv()  # its constants are set in __init__, not on the class
MIN_POSITION, MAX_POSITION = _REFERENCE.min_position, _REFERENCE.max_position
MAX_SPEED = _REFERENCE.max_speed
GOAL_POSITION, GOAL_VELOCITY = _REFERENCE.goal_position, _REFERENCE.goal_velocity
FORCE, GRAVITY = _REFERENCE.force, _REFERENCE.gravity
LOW, HIGH = _REFERENCE.low, _REFERENCE.high
del _REFERENCE


class MountainCarVectorEnv(gym.vector.VectorEnv):
    """N MountainCar-v0 environments stepped together (see the module docstring)."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, max_episode_steps: int = 200):
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        self.single_observation_space = spaces.Box(LOW, HIGH, dtype=np.float32)
        self.single_action_space = spaces.Discrete(3)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.state = np.zeros((num_envs, 2), dtype=np.float64)  # (position, velocity)
        self.steps = np.zeros(num_envs, dtype=np.int64)
        self.prev_done = np.zeros(num_envs, dtype=bool)
        self.generators: list[np.random.Generator | None] = [None] * num_envs

    def _start(self, i: int, low: float = -0.6, high: float = -0.4) -> None:
        """A new episode for environment i, from its own generator (MountainCarEnv.reset; an
        autoreset passes no options, so its bounds are the defaults)."""
        rng = self.generators[i]
        if rng is None:
            rng, _ = seeding.np_random()
            self.generators[i] = rng
        self.state[i] = (rng.uniform(low=low, high=high), 0)
        self.steps[i] = 0

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        if seed is None or isinstance(seed, int):
            seeds: list[int | None] = [None if seed is None else seed + i for i in range(self.num_envs)]
        else:
            if len(seed) != self.num_envs:
                raise ValueError(f"{len(seed)} seeds for {self.num_envs} environments")
            seeds = list(seed)
        low, high = maybe_parse_reset_bounds(options, -0.6, -0.4)
        for i, s in enumerate(seeds):
            if s is not None:
                self.generators[i], _ = seeding.np_random(s)
            self._start(i, low, high)
        self.prev_done[:] = False
        return self.state.astype(np.float32), {}

    def step(self, actions: np.ndarray):
        actions = np.asarray(actions)
        position, velocity = self.state[:, 0], self.state[:, 1]
        # MountainCarEnv.step, elementwise, in its order of operations
        velocity = velocity + ((actions - 1) * FORCE + np.cos(3 * position) * (-GRAVITY))
        velocity = np.clip(velocity, -MAX_SPEED, MAX_SPEED)
        position = position + velocity
        position = np.clip(position, MIN_POSITION, MAX_POSITION)
        velocity = np.where((position == MIN_POSITION) & (velocity < 0), 0.0, velocity)
        terminated = (position >= GOAL_POSITION) & (velocity >= GOAL_VELOCITY)
        self.state = np.stack([position, velocity], axis=1)
        reward = np.full(self.num_envs, -1.0)
        self.steps += 1
        truncated = self.steps >= self.max_episode_steps  # TimeLimit's rule
        # NEXT_STEP autoreset, as SyncVectorEnv: an environment that ended on the previous step
        # starts a new episode now (its action ignored), with reward 0 and no termination.
        for i in np.flatnonzero(self.prev_done):
            self._start(int(i))
        done = self.prev_done
        reward[done] = 0.0
        terminated[done] = False
        truncated[done] = False
        self.prev_done = terminated | truncated
        return self.state.astype(np.float32), reward, terminated, truncated, {}

    # -- checkpoints: saved as the SyncVectorEnv it replaces (dqnlab.envs.state) -----------------
    def sync_capture(self) -> dict[str, Any] | None:
        """The state ``dqnlab.envs.state`` saves of a SyncVectorEnv of MountainCarEnv, in its
        layout, so a checkpoint resumes in either kind of env. None before the first reset."""
        if any(rng is None for rng in self.generators):
            return None
        envs = [
            {
                "state": self.state[i].copy(),
                "rng": rng.bit_generator.state,
                "elapsed": int(self.steps[i]),
                "noise_rngs": [],
            }
            for i, rng in enumerate(self.generators)
            if rng is not None
        ]
        return {"envs": envs, "autoreset": self.prev_done.copy()}

    def load_sync_capture(self, envs: list[dict[str, Any]], autoreset: np.ndarray) -> None:
        """Restore what ``sync_capture`` (or a SyncVectorEnv of MountainCarEnv) saved."""
        if len(envs) != self.num_envs:
            raise ValueError(f"saved {len(envs)} environments, this run has {self.num_envs}")
        for i, sub in enumerate(envs):
            self.state[i] = np.asarray(sub["state"], dtype=np.float64)
            rng, _ = seeding.np_random(0)
            rng.bit_generator.state = sub["rng"]
            self.generators[i] = rng
            self.steps[i] = 0 if sub["elapsed"] is None else int(sub["elapsed"])
        self.prev_done = np.asarray(autoreset, dtype=bool).copy()
