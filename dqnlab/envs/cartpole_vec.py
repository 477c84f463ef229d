"""A NumPy-vectorised CartPole with per-environment physics and noise (dqnlab/physics.py).

Same spaces, start states, termination, rewards and NEXT_STEP autoreset as Gymnasium's
``CartPoleVectorEnv``; without perturbations it produces bit-identical observations for the same
seed and actions (tested). dqnlab uses it only when a perturbation is configured, so the
default path stays Gymnasium's own class.

Perturbations (all off by default):

- ``obs_noise``: Gaussian noise N(0, sigma_i^2) added to observation dimension i of every
  returned observation (the true state is untouched). A scalar applies to every dimension.
- ``action_noise``: with probability p, the chosen action is replaced by one drawn uniformly from
  {0, 1}, which may be the chosen one again (so the action actually flips with probability p/2).
- ``force_noise``: each step, the push is force_mag * max(0, 1 + sigma * N(0, 1)): a relative
  Gaussian error on its magnitude that never reverses its direction.
- ``randomize``: {name: (lo, hi)} for any of length, masspole, masscart, force_mag; at every
  reset (the first and each autoreset) each listed constant is drawn uniformly from its range for
  that environment. The total mass and pole-mass-length are derived (physics.CartPoleParams).

Start states come from ``np_random`` exactly as in Gymnasium; all perturbation noise comes from a
second generator, ``perturb_rng``, seeded from ``reset(seed=...)``. So a policy evaluated with and
without noise on the same seed sees the same start states.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv as _GymCartPoleVectorEnv

from dqnlab.envs.physics import CartPoleParams, Integrator, action_force, step_state

RANDOMIZABLE = ("length", "masspole", "masscart", "force_mag")
"""The physical constants that `randomize` may draw per episode."""

DEFAULT_RANDOMIZE = {"length": (0.25, 0.75), "masspole": (0.05, 0.2), "masscart": (0.5, 1.5), "force_mag": (8.0, 12.0)}
"""Ranges of ``dqnlab evaluate --randomize-physics``: half pole length and cart mass 0.5 to 1.5
times nominal, pole mass 0.5 to 2 times, the push within 20% of its 10 N."""

# Mixed into the reset seed so the perturbation stream differs from the start-state stream.
_PERTURB_STREAM = 0x9E3779B1


def perturb_generator(seed: int, stream: int = _PERTURB_STREAM) -> np.random.Generator:
    """The perturbation generator for a reset seed: independent of Gymnasium's np_random(seed)."""
    return np.random.default_rng([int(seed), stream])


def check_sigma(sigma: float | Sequence[float], obs_dim: int) -> np.ndarray:
    """Per-dimension noise scales (obs_dim,) float64 from a scalar or a list, or ValueError."""
    arr = np.asarray(sigma, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(obs_dim, float(arr))
    if arr.shape != (obs_dim,):
        raise ValueError(f"obs_noise has {arr.size} values but observations have {obs_dim} dimensions")
    if not np.all(np.isfinite(arr)) or (arr < 0).any():
        raise ValueError("obs_noise values must be finite and >= 0")
    return arr


def check_ranges(randomize: Mapping[str, Sequence[float]] | None) -> dict[str, tuple[float, float]]:
    """Validated {name: (lo, hi)} with 0 < lo <= hi, or ValueError naming the problem."""
    out: dict[str, tuple[float, float]] = {}
    for name, bounds in (randomize or {}).items():
        if name not in RANDOMIZABLE:
            raise ValueError(f"cannot randomize '{name}' (choose from {', '.join(RANDOMIZABLE)})")
        if bounds is None:
            continue
        lo, hi = (float(b) for b in bounds)
        if not 0 < lo <= hi or not np.isfinite(hi):
            raise ValueError(f"randomize.{name} must be [lo, hi] with 0 < lo <= hi, got {list(bounds)}")
        out[name] = (lo, hi)
    return out


class CartPoleVectorEnv(_GymCartPoleVectorEnv):
    """Gymnasium's vectorised CartPole with per-environment physics and optional noise (see the module
    docstring). ``params`` holds the current constants of every environment as (N,) arrays."""

    # Gymnasium's __init__ sets `self.state = None` unannotated, so mypy infers the type None (and
    # then treats every use after `assert self.state is not None` as unreachable): the true type.
    state: np.ndarray | None  # type: ignore[assignment]

    def __init__(
        self,
        num_envs: int = 1,
        max_episode_steps: int = 500,
        render_mode: str | None = None,
        sutton_barto_reward: bool = False,
        obs_noise: float | Sequence[float] = 0.0,
        action_noise: float = 0.0,
        force_noise: float = 0.0,
        randomize: Mapping[str, Sequence[float]] | None = None,
    ):
        super().__init__(
            num_envs=num_envs,
            max_episode_steps=max_episode_steps,
            render_mode=render_mode,
            sutton_barto_reward=sutton_barto_reward,
        )
        assert self.single_observation_space.shape is not None  # Gymnasium's CartPole: a Box (4,)
        obs_dim = self.single_observation_space.shape[0]
        self.obs_sigma = check_sigma(obs_noise, obs_dim)
        if not 0.0 <= action_noise <= 1.0:
            raise ValueError(f"action_noise is a probability in [0, 1], got {action_noise}")
        if not force_noise >= 0.0:
            raise ValueError(f"force_noise must be >= 0, got {force_noise}")
        self.action_noise = float(action_noise)
        self.force_noise = float(force_noise)
        self.ranges = check_ranges(randomize)
        # The nominal constants (Gymnasium's scalar attributes) broadcast to one value per env.
        self.params = CartPoleParams(
            **{
                name: np.full(num_envs, float(getattr(self, name)))
                for name in ("gravity", "masscart", "masspole", "length", "force_mag", "tau")
            }
        )
        self.perturb_rng = np.random.default_rng()

    # -- hooks a task built on this physics (dqnlab.envs.target) overrides ---------------------------
    def _observe(self) -> np.ndarray:
        """Noise-free observation (N, obs_dim) float32 of the current state."""
        assert self.state is not None  # called after reset
        return self.state.T.astype(np.float32)

    def _task_step(self, terminated: np.ndarray, force: np.ndarray) -> np.ndarray:
        """The rewards (N,) float32 of the step just simulated (before any autoreset); a task may
        also update its own per-episode bookkeeping here."""
        if self._sutton_barto_reward:
            return -np.array(terminated, dtype=np.float32)
        return np.ones_like(terminated, dtype=np.float32)

    def _on_episode_start(self, mask: np.ndarray) -> None:
        """Called after the start states of the environments in `mask` (N,) bool were drawn."""

    def _info(self) -> dict[str, Any]:
        return {}

    # -- the environment ---------------------------------------------------------------------------
    def _draw_params(self, mask: np.ndarray) -> None:
        if not self.ranges:
            return
        values = {}
        for name, (lo, hi) in self.ranges.items():
            current = np.array(getattr(self.params, name), dtype=np.float64)
            current[mask] = self.perturb_rng.uniform(lo, hi, size=int(mask.sum()))
            values[name] = current
        self.params = self.params.with_values(**values)

    def _noisy_obs(self, obs: np.ndarray) -> np.ndarray:
        if not self.obs_sigma.any():
            return obs
        noise = self.perturb_rng.standard_normal(obs.shape) * self.obs_sigma  # (N, obs_dim)
        return (obs + noise).astype(np.float32)

    def step(self, action: np.ndarray):
        assert self.action_space.contains(action), f"{action!r} ({type(action)}) invalid"
        assert self.state is not None, "Call reset before using step method."
        action = np.asarray(action)
        if self.action_noise > 0.0:
            replace = self.perturb_rng.random(self.num_envs) < self.action_noise
            random_actions = self.perturb_rng.integers(0, 2, size=self.num_envs)
            action = np.where(replace, random_actions, action)
        force = action_force(action, self.params.force_mag)
        if self.force_noise > 0.0:
            force = force * np.maximum(0.0, 1.0 + self.force_noise * self.perturb_rng.standard_normal(self.num_envs))

        # Gymnasium types kinematics_integrator as str; step_state refuses names other than Integrator's
        self.state = step_state(self.state, force, self.params, cast(Integrator, self.kinematics_integrator))
        x, _, theta, _ = self.state
        terminated = (
            (x < -self.x_threshold)
            | (x > self.x_threshold)
            | (theta < -self.theta_threshold_radians)
            | (theta > self.theta_threshold_radians)
        )
        self.steps += 1
        truncated = self.steps >= self.max_episode_steps
        reward = self._task_step(terminated, force)

        # NEXT_STEP autoreset, exactly as Gymnasium: environments that ended on the previous step
        # start a new episode now (their action was ignored), with reward 0 and no termination.
        done = self.prev_done
        self.state[:, done] = self.np_random.uniform(low=self.low, high=self.high, size=(4, done.sum()))
        if done.any():
            self._draw_params(done)
            self._on_episode_start(done)
        self.steps[done] = 0
        reward[done] = 0.0
        terminated[done] = False
        truncated[done] = False
        self.prev_done = np.logical_or(terminated, truncated)
        return self._noisy_obs(self._observe()), reward, terminated, truncated, self._info()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed, options=options)
        if seed is not None:
            self.perturb_rng = perturb_generator(seed)
        everyone = np.ones(self.num_envs, dtype=bool)
        self._draw_params(everyone)
        self._on_episode_start(everyone)
        return self._noisy_obs(self._observe()), self._info()

    # -- exact state for checkpoints (dqnlab.envs.make.capture_env_state) ----------------------------------
    def extra_state(self) -> dict[str, Any]:
        """What determines this env's future beyond Gymnasium's state, steps, prev_done, np_random."""
        return {
            "perturb_rng": self.perturb_rng.bit_generator.state,
            "params": {name: np.array(getattr(self.params, name), dtype=np.float64) for name in RANDOMIZABLE},
        }

    def set_extra_state(self, saved: Mapping[str, Any]) -> None:
        self.perturb_rng.bit_generator.state = saved["perturb_rng"]
        self.params = self.params.with_values(
            **{k: np.asarray(v, dtype=np.float64) for k, v in saved["params"].items()}
        )
