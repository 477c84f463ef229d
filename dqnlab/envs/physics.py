"""The cart-pole equations of motion, batched over environments with per-environment parameters.

The model and the arithmetic are Gymnasium's ``CartPoleEnv.step`` (Barto, Sutton and Anderson
1983, corrected as in https://coneural.org/florian/papers/05_cart_pole.pdf), written once so
that the scalar and vectorised environments, the perturbations and the LQR controller all use
the same equations. The operations are in Gymnasium's order, so the default parameters give
bit-identical states.

``total_mass`` and ``polemass_length`` are derived from the masses and the length every time,
never stored: changing the pole mass without them (CARL; ray-project/ray#14090) silently
simulates a different system than the one named.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

Integrator = Literal["euler", "semi-implicit euler"]
ArrayLike = float | np.ndarray


@dataclass(frozen=True)
class CartPoleParams:
    """Physical constants, each a float or an array broadcastable against the batch, shape (N,)."""

    gravity: ArrayLike = 9.8
    """Gravitational acceleration (m/s^2)."""
    masscart: ArrayLike = 1.0
    """Mass of the cart (kg)."""
    masspole: ArrayLike = 0.1
    """Mass of the pole (kg)."""
    length: ArrayLike = 0.5
    """HALF the pole's length (m), as Gymnasium's ``length``."""
    force_mag: ArrayLike = 10.0
    """Magnitude of the force of one push (N)."""
    tau: ArrayLike = 0.02
    """Seconds between state updates."""

    @property
    def total_mass(self) -> ArrayLike:
        return self.masspole + self.masscart

    @property
    def polemass_length(self) -> ArrayLike:
        return self.masspole * self.length

    def with_values(self, **values: ArrayLike) -> CartPoleParams:
        """A copy with some constants replaced (the derived quantities follow automatically)."""
        return replace(self, **values)


DEFAULT_PARAMS = CartPoleParams()


def action_force(action: np.ndarray, force_mag: ArrayLike) -> np.ndarray:
    """Action 1 pushes right (+force_mag), action 0 left (-force_mag): (N,) -> (N,) float64."""
    return np.sign(np.asarray(action) - 0.5) * force_mag


def accelerations(state: np.ndarray, force: ArrayLike, p: CartPoleParams) -> tuple[np.ndarray, np.ndarray]:
    """(x_acc, theta_acc) of `state` (4, N) = (x, x_dot, theta, theta_dot) under `force` (N,)."""
    _, _, theta, theta_dot = state
    costheta = np.cos(theta)
    sintheta = np.sin(theta)
    total_mass = p.total_mass
    polemass_length = p.polemass_length
    temp = (force + polemass_length * np.square(theta_dot) * sintheta) / total_mass
    thetaacc = (p.gravity * sintheta - costheta * temp) / (
        p.length * (4.0 / 3.0 - p.masspole * np.square(costheta) / total_mass)
    )
    xacc = temp - polemass_length * thetaacc * costheta / total_mass
    return xacc, thetaacc


def step_state(
    state: np.ndarray, force: ArrayLike, p: CartPoleParams = DEFAULT_PARAMS, integrator: Integrator = "euler"
) -> np.ndarray:
    """The state one step of `p.tau` seconds later: (4, N) -> (4, N) float64 (or (4,) -> (4,)).

    Explicit Euler moves the positions with the OLD velocities (Gymnasium's default);
    semi-implicit Euler updates the velocities first and moves with the new ones.
    """
    x, x_dot, theta, theta_dot = state
    xacc, thetaacc = accelerations(state, force, p)
    tau = p.tau
    if integrator == "euler":
        x = x + tau * x_dot
        x_dot = x_dot + tau * xacc
        theta = theta + tau * theta_dot
        theta_dot = theta_dot + tau * thetaacc
    elif integrator == "semi-implicit euler":
        x_dot = x_dot + tau * xacc
        x = x + tau * x_dot
        theta_dot = theta_dot + tau * thetaacc
        theta = theta + tau * theta_dot
    else:
        raise ValueError(f"unknown integrator {integrator!r}: expected 'euler' or 'semi-implicit euler'")
    return np.stack((x, x_dot, theta, theta_dot)).astype(np.float64, copy=False)


def linearized_dynamics(p: CartPoleParams = DEFAULT_PARAMS) -> tuple[np.ndarray, np.ndarray]:
    """Continuous-time (A, B) of the model linearised about the upright rest state, for scalar `p`:
    d/dt (x, x_dot, theta, theta_dot) = A s + B force.

    With sin(theta) ~ theta, cos(theta) ~ 1 and theta_dot^2 ~ 0, and M the total mass:
    theta_acc = (g theta - F / M) / (l (4/3 - m / M)),  x_acc = F / M - m l theta_acc / M.
    """
    m, mass, length, g = float(p.masspole), float(p.total_mass), float(p.length), float(p.gravity)
    denom = length * (4.0 / 3.0 - m / mass)
    a_theta = g / denom  # d theta_acc / d theta
    b_theta = -1.0 / (mass * denom)  # d theta_acc / d F
    pml = m * length
    a = np.array(
        [
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, -pml * a_theta / mass, 0.0],
            [0.0, 0.0, 0.0, 1.0],
            [0.0, 0.0, a_theta, 0.0],
        ]
    )
    b = np.array([[0.0], [1.0 / mass - pml * b_theta / mass], [0.0], [b_theta]])
    return a, b
