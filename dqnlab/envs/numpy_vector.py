"""What dqnlab's NumPy versions of Gymnasium's classic-control environments share: the behaviour
of the SyncVectorEnv they stand in for, around dynamics that each subclass writes.

Gymnasium registers a vector version of CartPole only. For Acrobot-v1 and MountainCar-v0
(``dqnlab.envs.acrobot_vec``, ``mountaincar_vec``) dqnlab steps all copies in one NumPy pass and
reproduces ``gym.make_vec(id, vectorization_mode="sync")`` bit for bit: environment i seeded
with seed + i and keeping its own generator (start states drawn as the single env draws them),
TimeLimit's truncation, NEXT_STEP autoreset (the step after an episode ends returns the next
episode's first observation with reward 0 and ignores the action), empty infos, and checkpoints
in the SyncVectorEnv's layout (``dqnlab.envs.state``), so a run resumes in either kind.
Not supported: rendering and ``options["reset_mask"]`` (refused); dqnlab needs neither.
"""

from __future__ import annotations

from typing import Any, cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.utils import maybe_parse_reset_bounds
from gymnasium.utils import seeding
from gymnasium.vector.utils import batch_space


class NumpyVectorEnv(gym.vector.VectorEnv):
    """N copies of one environment as a SyncVectorEnv of it would run them (module docstring).

    A subclass sets ``default_bounds`` (the start-state range of the single env's reset) and
    implements ``_draw_start``, ``_dynamics`` and ``_observe``; ``state`` holds one row per
    environment."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP, "render_modes": []}
    default_bounds: tuple[float, float]

    def __init__(
        self, num_envs: int, max_episode_steps: int, observation_space: spaces.Box, n_actions: int, width: int
    ):
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        self.single_observation_space = observation_space
        self.single_action_space = spaces.Discrete(n_actions)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.n_actions = n_actions
        self.state = np.zeros((num_envs, width), dtype=np.float64)
        self.steps = np.zeros(num_envs, dtype=np.int64)  # TimeLimit's elapsed steps
        self.prev_done = np.zeros(num_envs, dtype=bool)  # the environments to reset on the next step
        self.generators: list[np.random.Generator | None] = [None] * num_envs
        self._was_reset = False

    # -- what a subclass writes ------------------------------------------------------------------
    def _draw_start(self, i: int, rng: np.random.Generator, low: float, high: float) -> None:
        """Draw environment i's start state from `rng` into ``state[i]``, as the single env's reset."""
        raise NotImplementedError

    def _dynamics(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Advance every row of ``state`` by one step of `actions` (N,); (terminated, reward), (N,)."""
        raise NotImplementedError

    def _observe(self) -> np.ndarray:
        """The observations (N, obs_dim) float32 of ``state``, as the single env returns them."""
        raise NotImplementedError

    def _saved_state(self, i: int) -> np.ndarray:
        """Environment i's state as the single env holds it (what a SyncVectorEnv checkpoint saves)."""
        return self.state[i].copy()

    def _load_state(self, i: int, state: np.ndarray) -> None:
        self.state[i] = state

    # -- the SyncVectorEnv's behaviour -----------------------------------------------------------
    def _start(self, i: int, low: float, high: float) -> None:
        rng = self.generators[i]
        if rng is None:  # never seeded: a fresh generator, as Env.np_random makes one
            rng, _ = seeding.np_random()
            self.generators[i] = rng
        self._draw_start(i, rng, low, high)
        self.steps[i] = 0

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        if options is not None and "reset_mask" in options:
            raise ValueError("options['reset_mask'] is not supported by dqnlab's NumPy vector envs")
        if seed is None or isinstance(seed, int):
            seeds: list[int | None] = [None if seed is None else seed + i for i in range(self.num_envs)]
        else:
            if len(seed) != self.num_envs:
                raise ValueError(f"{len(seed)} seeds for {self.num_envs} environments")
            seeds = list(seed)
        low, high = maybe_parse_reset_bounds(options, *self.default_bounds)
        for i, s in enumerate(seeds):
            if s is not None:
                self.generators[i], _ = seeding.np_random(s)
            self._start(i, low, high)
        self.prev_done[:] = False
        self._was_reset = True
        return self._observe(), {}

    def step(self, actions: np.ndarray):
        if not self._was_reset:
            raise gym.error.ResetNeeded("call reset before step")
        actions = np.asarray(actions)
        if (
            actions.shape != (self.num_envs,)
            or actions.dtype.kind not in "iu"
            or actions.min() < 0
            or actions.max() >= self.n_actions
        ):
            raise ValueError(
                f"expected {self.num_envs} integer actions in [0, {self.n_actions}), got {actions!r}"[:300]
            )
        terminated, reward = self._dynamics(actions)
        self.steps += 1
        truncated = self.steps >= self.max_episode_steps  # TimeLimit's rule
        # An environment that ended on the previous step starts a new episode now (its action
        # ignored; its dynamics above were wasted), with reward 0 and no end.
        done = self.prev_done
        for i in np.flatnonzero(done):
            self._start(int(i), *self.default_bounds)  # an autoreset passes no options
        reward[done] = 0.0
        terminated[done] = False
        truncated[done] = False
        self.prev_done = terminated | truncated
        return self._observe(), reward, terminated, truncated, {}

    # -- checkpoints: the SyncVectorEnv's layout (dqnlab.envs.state) ------------------------------
    def sync_capture(self) -> dict[str, Any] | None:
        """What ``dqnlab.envs.state`` saves of the SyncVectorEnv this env stands for: per
        environment its state (as the single env holds it), generator state and TimeLimit count,
        and which environments reset on the next step. None before the first reset."""
        if not self._was_reset:
            return None
        envs = [
            {
                "state": self._saved_state(i),
                "rng": rng.bit_generator.state,
                "elapsed": int(self.steps[i]),
                "noise_rngs": [],
            }
            for i, rng in enumerate(cast(list[np.random.Generator], self.generators))
        ]
        return {"envs": envs, "autoreset": self.prev_done.copy()}

    def load_sync_capture(self, envs: list[dict[str, Any]], autoreset: np.ndarray) -> None:
        """Restore what ``sync_capture``, or the SyncVectorEnv it stands for, saved."""
        if len(envs) != self.num_envs:
            raise ValueError(f"saved {len(envs)} environments, this run has {self.num_envs}")
        for i, sub in enumerate(envs):
            self._load_state(i, np.asarray(sub["state"]))
            rng, _ = seeding.np_random(0)
            rng.bit_generator.state = sub["rng"]
            self.generators[i] = rng
            self.steps[i] = 0 if sub["elapsed"] is None else int(sub["elapsed"])
        self.prev_done = np.asarray(autoreset, dtype=bool).copy()
        self._was_reset = True
