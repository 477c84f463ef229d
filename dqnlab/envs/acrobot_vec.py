"""A NumPy-vectorised Acrobot-v1: Gymnasium's ``AcrobotEnv`` dynamics on N environments at once.

Why: Gymnasium registers no vector version of Acrobot, so N copies run as a SyncVectorEnv, one
Python ``step`` per copy (about 27 us each here: a 4-stage Runge-Kutta step on 5-element
arrays). An evaluation of 100 episodes then costs 100 of them per step, 2.6 ms; this class
does all N in one pass of the same arithmetic (about 0.2 ms for 100).

It is the SyncVectorEnv of ``gym.make("Acrobot-v1")`` bit for bit (tested): the same start
states (environment i seeded with seed + i, each with its own generator), the same dynamics
(the same floating-point operations in the same order, element by element: Gymnasium's
``_dsdt``, ``rk4``, ``wrap`` and ``bound``), the same observations (float32; after a reset
computed from the float32 start state, as Gymnasium does), rewards, terminations, the
500-step time limit and NEXT_STEP autoreset. No rendering and no torque noise (Acrobot-v1 has
none): dqnlab uses it only for plain Acrobot-v1 (``dqnlab.envs.make.make_vec_env``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.acrobot import AcrobotEnv
from gymnasium.envs.classic_control.utils import maybe_parse_reset_bounds
from gymnasium.utils import seeding
from gymnasium.vector.utils import batch_space

# Gymnasium's constants, read from its class so the two cannot drift apart.
M1, M2 = AcrobotEnv.LINK_MASS_1, AcrobotEnv.LINK_MASS_2
L1 = AcrobotEnv.LINK_LENGTH_1
LC1, LC2 = AcrobotEnv.LINK_COM_POS_1, AcrobotEnv.LINK_COM_POS_2
I1 = I2 = AcrobotEnv.LINK_MOI
G = 9.8  # a local constant of AcrobotEnv._dsdt
DT = AcrobotEnv.dt
MAX_VEL_1, MAX_VEL_2 = AcrobotEnv.MAX_VEL_1, AcrobotEnv.MAX_VEL_2
TORQUES = np.array(AcrobotEnv.AVAIL_TORQUE, dtype=np.float64)
PI = np.pi


def dsdt(y: np.ndarray) -> np.ndarray:
    """AcrobotEnv._dsdt ("book" dynamics) on rows of (theta1, theta2, dtheta1, dtheta2, torque),
    (N, 5) -> (N, 5): each expression as Gymnasium writes it, so each element's rounding is the same."""
    a = y[:, 4]
    theta1, theta2, dtheta1, dtheta2 = y[:, 0], y[:, 1], y[:, 2], y[:, 3]
    d1 = M1 * LC1**2 + M2 * (L1**2 + LC2**2 + 2 * L1 * LC2 * np.cos(theta2)) + I1 + I2
    d2 = M2 * (LC2**2 + L1 * LC2 * np.cos(theta2)) + I2
    phi2 = M2 * LC2 * G * np.cos(theta1 + theta2 - PI / 2.0)
    phi1 = (
        -M2 * L1 * LC2 * dtheta2**2 * np.sin(theta2)
        - 2 * M2 * L1 * LC2 * dtheta2 * dtheta1 * np.sin(theta2)
        + (M1 * LC1 + M2 * L1) * G * np.cos(theta1 - PI / 2)
        + phi2
    )
    ddtheta2 = (a + d2 / d1 * phi1 - M2 * L1 * LC2 * dtheta1**2 * np.sin(theta2) - phi2) / (
        M2 * LC2**2 + I2 - d2**2 / d1
    )
    ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
    return np.stack([dtheta1, dtheta2, ddtheta1, ddtheta2, np.zeros_like(a)], axis=1)


def rk4_step(y0: np.ndarray) -> np.ndarray:
    """Gymnasium's ``rk4(derivs, y0, [0, dt])`` on rows, (N, 5) -> the new states (N, 4)."""
    dt = DT - 0  # as rk4 computes it: t[1] - t[0]
    dt2 = dt / 2.0
    k1 = dsdt(y0)
    k2 = dsdt(y0 + dt2 * k1)
    k3 = dsdt(y0 + dt2 * k2)
    k4 = dsdt(y0 + dt * k3)
    return (y0 + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4))[:, :4]


def wrap(x: np.ndarray, m: float, big_m: float) -> np.ndarray:
    """Gymnasium's ``wrap`` elementwise: subtract the range while above, then add it while below."""
    diff = big_m - m
    while (over := x > big_m).any():
        x = np.where(over, x - diff, x)
    while (under := x < m).any():
        x = np.where(under, x + diff, x)
    return x


def bound(x: np.ndarray, m: float, big_m: float) -> np.ndarray:
    """Gymnasium's ``bound``, ``min(max(x, m), M)``, elementwise."""
    return np.minimum(np.maximum(x, m), big_m)


class AcrobotVectorEnv(gym.vector.VectorEnv):
    """N Acrobot-v1 environments stepped together (see the module docstring)."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, max_episode_steps: int = 500):
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        high = np.array([1.0, 1.0, 1.0, 1.0, MAX_VEL_1, MAX_VEL_2], dtype=np.float32)
        self.single_observation_space = spaces.Box(low=-high, high=high, dtype=np.float32)
        self.single_action_space = spaces.Discrete(3)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.state = np.zeros((num_envs, 4), dtype=np.float64)
        # Rows whose state is a start state: float32 values, observed in float32 as Gymnasium does.
        self.fresh = np.ones(num_envs, dtype=bool)
        self.steps = np.zeros(num_envs, dtype=np.int64)
        self.prev_done = np.zeros(num_envs, dtype=bool)
        self.generators: list[np.random.Generator | None] = [None] * num_envs

    def _start(self, i: int, low: float = -0.1, high: float = 0.1) -> None:
        """A new episode for environment i, from its own generator (AcrobotEnv.reset; an autoreset
        passes no options, so its bounds are the defaults)."""
        rng = self.generators[i]
        if rng is None:
            rng, _ = seeding.np_random()
            self.generators[i] = rng
        self.state[i] = rng.uniform(low=low, high=high, size=(4,)).astype(np.float32)
        self.fresh[i] = True
        self.steps[i] = 0

    def _observe(self) -> np.ndarray:
        s = self.state
        obs = np.stack([np.cos(s[:, 0]), np.sin(s[:, 0]), np.cos(s[:, 1]), np.sin(s[:, 1]), s[:, 2], s[:, 3]], axis=1)
        obs = obs.astype(np.float32)
        if self.fresh.any():  # AcrobotEnv._get_ob of a float32 state: float32 cos and sin
            s32 = s[self.fresh].astype(np.float32)
            obs[self.fresh] = np.stack(
                [np.cos(s32[:, 0]), np.sin(s32[:, 0]), np.cos(s32[:, 1]), np.sin(s32[:, 1]), s32[:, 2], s32[:, 3]],
                axis=1,
            )
        return obs

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        if seed is None or isinstance(seed, int):
            seeds: list[int | None] = [None if seed is None else seed + i for i in range(self.num_envs)]
        else:
            if len(seed) != self.num_envs:
                raise ValueError(f"{len(seed)} seeds for {self.num_envs} environments")
            seeds = list(seed)
        low, high = maybe_parse_reset_bounds(options, -0.1, 0.1)
        for i, s in enumerate(seeds):
            if s is not None:
                self.generators[i], _ = seeding.np_random(s)
            self._start(i, low, high)
        self.prev_done[:] = False
        return self._observe(), {}

    def step(self, actions: np.ndarray):
        actions = np.asarray(actions)
        y0 = np.concatenate([self.state, TORQUES[actions][:, None]], axis=1)
        ns = rk4_step(y0)
        theta1 = wrap(ns[:, 0], -PI, PI)
        theta2 = wrap(ns[:, 1], -PI, PI)
        self.state = np.stack(
            [theta1, theta2, bound(ns[:, 2], -MAX_VEL_1, MAX_VEL_1), bound(ns[:, 3], -MAX_VEL_2, MAX_VEL_2)], axis=1
        )
        self.fresh[:] = False
        terminated = -np.cos(self.state[:, 0]) - np.cos(self.state[:, 1] + self.state[:, 0]) > 1.0
        reward = np.where(terminated, 0.0, -1.0)
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
        return self._observe(), reward, terminated, truncated, {}

    # -- checkpoints: saved as the SyncVectorEnv it replaces (dqnlab.envs.state) -----------------
    def sync_capture(self) -> dict[str, Any] | None:
        """The state ``dqnlab.envs.state`` saves of a SyncVectorEnv of AcrobotEnv, in its layout
        (state arrays, generator states, TimeLimit step counts, the envs to reset next), so a
        checkpoint resumes in either kind of env. None before the first reset."""
        if any(rng is None for rng in self.generators):
            return None
        envs = [
            {
                # AcrobotEnv's own types: a float32 start state, float64 once stepped
                "state": self.state[i].astype(np.float32) if self.fresh[i] else self.state[i].copy(),
                "rng": rng.bit_generator.state,
                "elapsed": int(self.steps[i]),
                "noise_rngs": [],
            }
            for i, rng in enumerate(self.generators)
            if rng is not None
        ]
        return {"envs": envs, "autoreset": self.prev_done.copy()}

    def load_sync_capture(self, envs: list[dict[str, Any]], autoreset: np.ndarray) -> None:
        """Restore what ``sync_capture`` (or a SyncVectorEnv of AcrobotEnv) saved."""
        if len(envs) != self.num_envs:
            raise ValueError(f"saved {len(envs)} environments, this run has {self.num_envs}")
        for i, sub in enumerate(envs):
            state = np.asarray(sub["state"])
            self.state[i] = state
            self.fresh[i] = state.dtype == np.float32
            rng, _ = seeding.np_random(0)
            rng.bit_generator.state = sub["rng"]
            self.generators[i] = rng
            self.steps[i] = 0 if sub["elapsed"] is None else int(sub["elapsed"])
        self.prev_done = np.asarray(autoreset, dtype=bool).copy()
