"""A NumPy-vectorised Acrobot-v1: Gymnasium's ``AcrobotEnv`` dynamics on N environments at once.

Why: Gymnasium registers no vector version of Acrobot, so N copies run as a SyncVectorEnv, one
Python ``step`` per copy (a 4-stage Runge-Kutta step on 5-element arrays). An evaluation of
100 episodes then cost 3.3 ms per step; this class does all N in one pass of the same
arithmetic, 0.19 ms for 100 (benchmarks/vector_envs.py, BENCHMARKS.md).

It is the SyncVectorEnv of ``gym.make("Acrobot-v1")`` bit for bit (tested; what all dqnlab's
NumPy envs share is in ``dqnlab.envs.numpy_vector``): the same dynamics (the same floating-point
operations in the same order, element by element: Gymnasium's ``_dsdt``, ``rk4``, ``wrap`` and
``bound``) and the same observations (float32; after a reset computed from the float32 start
state, as Gymnasium does). No torque noise (Acrobot-v1 has none). dqnlab uses it for the
registered Acrobot-v1 only (``dqnlab.envs.make.make_vec_env``).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.acrobot import AcrobotEnv

from dqnlab.envs.numpy_vector import NumpyVectorEnv

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


def square(x: np.ndarray) -> np.ndarray:
    """x**2 as Gymnasium's scalar code computes it: a NumPy float64 scalar's ``**`` calls the C
    library's pow, which differs from x * x (what ``array**2`` computes) in the last bit for
    about 1 value in 1,300; ``float_power`` calls the same pow elementwise. (With x * x, runs
    drifted apart after tens of thousands of steps.)"""
    return np.float_power(x, 2)


def dsdt(y: np.ndarray) -> np.ndarray:
    """AcrobotEnv._dsdt ("book" dynamics) on rows of (theta1, theta2, dtheta1, dtheta2, torque),
    (N, 5) -> (N, 5): each expression as Gymnasium writes it, so each element's rounding is the same."""
    a = y[:, 4]
    theta1, theta2, dtheta1, dtheta2 = y[:, 0], y[:, 1], y[:, 2], y[:, 3]
    cos2, sin2 = np.cos(theta2), np.sin(theta2)  # Gymnasium computes them 2 and 3 times: same values
    d1 = M1 * LC1**2 + M2 * (L1**2 + LC2**2 + 2 * L1 * LC2 * cos2) + I1 + I2
    d2 = M2 * (LC2**2 + L1 * LC2 * cos2) + I2
    phi2 = M2 * LC2 * G * np.cos(theta1 + theta2 - PI / 2.0)
    phi1 = (
        -M2 * L1 * LC2 * square(dtheta2) * sin2
        - 2 * M2 * L1 * LC2 * dtheta2 * dtheta1 * sin2
        + (M1 * LC1 + M2 * L1) * G * np.cos(theta1 - PI / 2)
        + phi2
    )
    ddtheta2 = (a + d2 / d1 * phi1 - M2 * L1 * LC2 * square(dtheta1) * sin2 - phi2) / (
        M2 * LC2**2 + I2 - square(d2) / d1
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


class AcrobotVectorEnv(NumpyVectorEnv):
    """N Acrobot-v1 environments stepped together (see the module docstring)."""

    default_bounds = (-0.1, 0.1)

    def __init__(self, num_envs: int = 1, max_episode_steps: int = 500):
        high = np.array([1.0, 1.0, 1.0, 1.0, MAX_VEL_1, MAX_VEL_2], dtype=np.float32)
        obs_space = spaces.Box(low=-high, high=high, dtype=np.float32)
        super().__init__(num_envs, max_episode_steps, obs_space, n_actions=3, width=4)
        # Rows whose state is a start state: float32 values, observed in float32 as Gymnasium does.
        self.fresh = np.ones(num_envs, dtype=bool)

    def _draw_start(self, i: int, rng: np.random.Generator, low: float, high: float) -> None:
        self.state[i] = rng.uniform(low=low, high=high, size=(4,)).astype(np.float32)
        self.fresh[i] = True

    def _dynamics(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ns = rk4_step(np.concatenate([self.state, TORQUES[actions][:, None]], axis=1))
        theta1 = wrap(ns[:, 0], -PI, PI)
        theta2 = wrap(ns[:, 1], -PI, PI)
        self.state = np.stack(
            [theta1, theta2, bound(ns[:, 2], -MAX_VEL_1, MAX_VEL_1), bound(ns[:, 3], -MAX_VEL_2, MAX_VEL_2)], axis=1
        )
        self.fresh[:] = False
        terminated = -np.cos(self.state[:, 0]) - np.cos(self.state[:, 1] + self.state[:, 0]) > 1.0
        return terminated, np.where(terminated, 0.0, -1.0)

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

    def _saved_state(self, i: int) -> np.ndarray:
        # AcrobotEnv's own types: a float32 start state, float64 once stepped
        return self.state[i].astype(np.float32) if self.fresh[i] else self.state[i].copy()

    def _load_state(self, i: int, state: np.ndarray) -> None:
        self.state[i] = state
        self.fresh[i] = state.dtype == np.float32
