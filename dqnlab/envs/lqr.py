"""The linear-quadratic regulator of the cart-pole: the linearised model's Euler step, the discrete
Riccati equation and the optimal gain K (force u = -K s). The controllers that use it, as
policies, are in dqnlab.algos.baselines (LQR, and LQR tracking a target).
"""

from __future__ import annotations

import numpy as np

from dqnlab.envs.physics import DEFAULT_PARAMS, CartPoleParams, linearized_dynamics

DEFAULT_Q = (10.0, 1.0, 10.0, 1.0)
"""State weights of the LQR cost, for (x, x_dot, theta, theta_dot): position and angle matter
most (with a position weight of 1 the target controller needs ~300 steps to settle, and only
half its episodes end within 0.1 m of the target)."""
DEFAULT_R = 0.1
"""Weight of the squared force (N^2) in the LQR cost."""


def solve_dare(
    a: np.ndarray, b: np.ndarray, q: np.ndarray, r: np.ndarray, tol: float = 1e-10, max_iter: int = 100_000
) -> np.ndarray:
    """The stabilising solution P of the discrete algebraic Riccati equation
    P = A'PA - A'PB (R + B'PB)^-1 B'PA + Q, by fixed-point iteration of the Riccati difference
    equation from P = Q (it converges for (A, B) stabilisable and Q > 0). NumPy only: scipy is not
    a dependency. ValueError if it has not converged after `max_iter` iterations."""
    p = q.astype(np.float64).copy()
    for _ in range(max_iter):
        bp = b.T @ p
        gain = np.linalg.solve(r + bp @ b, bp @ a)  # (m, n)
        p_next = a.T @ p @ a - a.T @ p @ b @ gain + q
        p_next = (p_next + p_next.T) / 2  # keep it symmetric against rounding drift
        if np.max(np.abs(p_next - p)) <= tol * max(1.0, np.max(np.abs(p_next))):
            return p_next
        p = p_next
    raise ValueError("the Riccati iteration did not converge (is the system stabilisable?)")


def discrete_dynamics(params: CartPoleParams = DEFAULT_PARAMS) -> tuple[np.ndarray, np.ndarray]:
    """(A_d, B_d) of one Euler step: s' = s + tau (A s + B u) = (I + tau A) s + tau B u."""
    a, b = linearized_dynamics(params)
    tau = float(params.tau)
    return np.eye(4) + tau * a, tau * b


def lqr_gain(
    params: CartPoleParams = DEFAULT_PARAMS, q: tuple[float, ...] = DEFAULT_Q, r: float = DEFAULT_R
) -> np.ndarray:
    """The (4,) gain K minimising sum(s'Qs + r u^2) on the discretised linear model; u = -K s."""
    a, b = discrete_dynamics(params)
    qm, rm = np.diag(np.asarray(q, dtype=np.float64)), np.array([[float(r)]])
    p = solve_dare(a, b, qm, rm)
    return np.linalg.solve(rm + b.T @ p @ b, b.T @ p @ a)[0]
