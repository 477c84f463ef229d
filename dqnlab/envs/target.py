"""``dqnlab/CartPoleTarget-v0``: balance the pole AND bring the cart to a target position and keep it there.

Registered with Gymnasium when ``dqnlab`` is imported::

    import dqnlab, gymnasium as gym
    env = gym.make("dqnlab/CartPoleTarget-v0")                       # target uniform in [-1.5, 1.5]
    env = gym.make("dqnlab/CartPoleTarget-v0", target_range=(1.0, 1.0))   # always x = 1
    envs = gym.make_vec("dqnlab/CartPoleTarget-v0", 8)               # NumPy-vectorised version

Physics, actions (0 push left, 1 push right, 10 N), start states, termination (|angle| > 12 deg
or |x| > 2.4) and the 500-step time limit are CartPole-v1's (dqnlab/physics.py).

Observation (5 float32): x, x_dot, theta, theta_dot, and the offset x - target.

Target: drawn uniformly from ``target_range`` at every reset (lo == hi: a fixed target). With
``move_prob`` > 0 it is redrawn after any step with that probability, and with ``move_every = K``
after every K-th step, so that a policy must follow a moving target.

Reward per step, in [0, 1], after dm_control's cartpole ``balance`` reward (Tassa et al. 2018)::

    r = upright * centered * still
    upright  = (1 + cos theta) / 2                      # 1 upright, > 0.989 within 12 degrees
    centered = (1 + tol(x - target, margin)) / 2        # 1 on target, 0.5 far from it (margin 0.5 m)
    still    = (1 + tol(theta_dot, 5)) / 2              # 1 with a still pole
    tol(d, margin) = 0.1 ** ((d / margin) ** 2)         # dm_control's gaussian tolerance

dm_control's ``small_control`` factor is left out: with two fixed-size pushes every action
costs the same. Surviving is worth about 0.5 per step anywhere, so balance comes first; the
other half is earned by standing at the target (0.956 at 0.1 away, 0.85 at 0.2, 0.5 at 1.0).
A smaller ``margin`` pays more sharply for the last few centimetres: with 0.25, centered is 0.85
at 0.1 away, 0.61 at 0.2 and 0.5 beyond 0.5. The success test does not depend on it.

``info`` on every step: ``success`` (the pole is up, i.e. not terminated, and |x - target| <
0.1) and ``mean_abs_offset_last_100`` (mean of |x - target| over the episode's last 100 steps,
or all of them if fewer); the values on an episode's last step are its result.

``reward_threshold`` (registered, for the default margin): 450, the score of a policy that reaches and holds the target
in about 95% of episodes. Measured on 200 random-target episodes, the LQR tracking controller
(the `target_lqr` baseline, dqnlab.algos.baselines, default weights) scores 469 with 100% success; weaker LQR
weightings score 449 with 94% success, 435 with 73%, 423 with 49%. Balancing alone, ignoring the
target, scores about 300.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any, overload

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.vector.utils import batch_space

from dqnlab.envs.cartpole_vec import CartPoleVectorEnv, check_sigma
from dqnlab.envs.physics import CartPoleParams, action_force, step_state

ENV_ID = "dqnlab/CartPoleTarget-v0"
REWARD_THRESHOLD = 450.0
MAX_EPISODE_STEPS = 500
SUCCESS_RADIUS = 0.1
"""|x - target| below this (m) with the pole up counts as success."""
WINDOW = 100
"""Steps over which the final mean |x - target| is measured."""

_X_THRESHOLD = 2.4
_THETA_THRESHOLD = 12 * 2 * np.pi / 360
TARGET_RGB = (220, 40, 40)
"""Colour of the line that render() paints across the frame at the target."""


def target_columns(target: float, width: int) -> tuple[int, int]:
    """The pixel columns [lo, hi) of a frame `width` wide that render() paints as the target line."""
    col = int(round((target / (2 * _X_THRESHOLD) + 0.5) * width))
    return max(col - 1, 0), min(col + 1, width)


def tolerance(d: np.ndarray | float, margin: float) -> np.ndarray | np.floating:
    """dm_control's gaussian tolerance with bounds (0, 0): 1 at d = 0, 0.1 at |d| = margin."""
    return 0.1 ** ((np.asarray(d, dtype=np.float64) / margin) ** 2)


@overload
def target_reward(theta: np.ndarray, theta_dot: np.ndarray, offset: np.ndarray, margin: float = 0.5) -> np.ndarray: ...
@overload
def target_reward(theta: float, theta_dot: float, offset: float, margin: float = 0.5) -> np.floating: ...
def target_reward(
    theta: np.ndarray | float, theta_dot: np.ndarray | float, offset: np.ndarray | float, margin: float = 0.5
) -> np.ndarray | np.floating:
    """Per-step reward in [0, 1] (formula in the module docstring; `margin` is centered's),
    batched: (N,) x3 -> (N,), or scalars -> a scalar."""
    upright = (1.0 + np.cos(theta)) / 2.0
    centered = (1.0 + tolerance(offset, margin)) / 2.0
    still = (1.0 + tolerance(theta_dot, 5.0)) / 2.0
    return upright * centered * still


def _check_task_args(
    target_range: Sequence[float], move_prob: float, move_every: int | None, margin: float
) -> tuple[float, float]:
    if not 0.0 < margin < float("inf"):
        raise ValueError(f"margin must be a finite distance > 0, got {margin}")
    lo, hi = (float(v) for v in target_range)
    if not -_X_THRESHOLD < lo <= hi < _X_THRESHOLD:
        raise ValueError(f"target_range must be [lo, hi] with -2.4 < lo <= hi < 2.4, got {list(target_range)}")
    if not 0.0 <= move_prob <= 1.0:
        raise ValueError(f"move_prob is a probability in [0, 1], got {move_prob}")
    if move_every is not None and move_every < 1:
        raise ValueError(f"move_every must be >= 1 (or None), got {move_every}")
    return lo, hi


def _observation_space(lo: float, hi: float) -> spaces.Box:
    # As CartPole: twice the termination bounds, so the terminal observation is still inside.
    reach = 2 * _X_THRESHOLD + max(abs(lo), abs(hi))
    high = np.array([2 * _X_THRESHOLD, np.inf, 2 * _THETA_THRESHOLD, np.inf, reach], dtype=np.float32)
    return spaces.Box(-high, high, dtype=np.float32)


class CartPoleTargetEnv(gym.Env[np.ndarray, int | np.integer]):
    """The single-environment version (see the module docstring). The physical constants are
    Gymnasium-named attributes (gravity, masscart, masspole, length, force_mag, tau), so
    dqnlab.envs.wrappers' physics perturbations apply to it as to CartPoleEnv."""

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 50}

    def __init__(
        self,
        target_range: Sequence[float] = (-1.5, 1.5),
        move_prob: float = 0.0,
        move_every: int | None = None,
        margin: float = 0.5,
        render_mode: str | None = None,
    ):
        self.target_low, self.target_high = _check_task_args(target_range, move_prob, move_every, margin)
        self.margin = float(margin)
        self.move_prob = float(move_prob)
        self.move_every = move_every
        nominal = CartPoleParams()
        # Scalars, as CartPoleEnv's (CartPoleParams' fields may also be per-environment arrays)
        self.gravity, self.masscart = float(nominal.gravity), float(nominal.masscart)
        self.masspole, self.length = float(nominal.masspole), float(nominal.length)
        self.force_mag, self.tau = float(nominal.force_mag), float(nominal.tau)
        self.x_threshold = _X_THRESHOLD
        self.theta_threshold_radians = _THETA_THRESHOLD
        self.action_space = spaces.Discrete(2)
        self.observation_space = _observation_space(self.target_low, self.target_high)
        self.render_mode = render_mode
        self.state: np.ndarray | None = None
        self.target = 0.0
        self._steps = 0
        self._offsets: deque[float] = deque(maxlen=WINDOW)
        self._renderer: CartPoleEnv | None = None

    @property
    def total_mass(self) -> float:
        return float(self.params.total_mass)

    @property
    def polemass_length(self) -> float:
        return float(self.params.polemass_length)

    @property
    def params(self) -> CartPoleParams:
        return CartPoleParams(
            gravity=self.gravity,
            masscart=self.masscart,
            masspole=self.masspole,
            length=self.length,
            force_mag=self.force_mag,
            tau=self.tau,
        )

    def _obs(self) -> np.ndarray:
        assert self.state is not None  # called after reset
        return np.append(self.state, self.state[0] - self.target).astype(np.float32)

    def _info(self, terminated: bool) -> dict[str, Any]:
        assert self.state is not None  # called after reset
        offset = abs(float(self.state[0]) - self.target)
        return {
            "success": bool(not terminated and offset < SUCCESS_RADIUS),
            "mean_abs_offset_last_100": float(np.mean(self._offsets)) if self._offsets else offset,
        }

    def step(self, action):
        assert self.action_space.contains(action), f"{action!r} ({type(action)}) invalid"
        assert self.state is not None, "Call reset before using step method."
        force = float(action_force(action, self.force_mag))
        self.state = step_state(self.state, force, self.params)
        x, _, theta, theta_dot = self.state
        terminated = bool(abs(x) > self.x_threshold or abs(theta) > self.theta_threshold_radians)
        offset = float(x) - self.target
        reward = float(target_reward(theta, theta_dot, offset, self.margin))
        self._steps += 1
        self._offsets.append(abs(offset))
        info = self._info(terminated)
        # Move after scoring the step: the next observation shows the new target.
        if (self.move_every is not None and self._steps % self.move_every == 0) or (
            self.move_prob > 0 and self.np_random.random() < self.move_prob
        ):
            self.target = float(self.np_random.uniform(self.target_low, self.target_high))
        if self.render_mode == "human":
            self.render()
        return self._obs(), reward, terminated, False, info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.state = self.np_random.uniform(low=-0.05, high=0.05, size=(4,))
        self.target = float(self.np_random.uniform(self.target_low, self.target_high))
        self._steps = 0
        self._offsets.clear()
        if self.render_mode == "human":
            self.render()
        return self._obs(), self._info(False)

    def render(self):
        """CartPole's picture, with the target drawn as a red line across the track."""
        if self.render_mode is None:
            gym.logger.warn("render() without a render_mode; pass render_mode='rgb_array' to gym.make")
            return None
        if self._renderer is None:
            self._renderer = CartPoleEnv(render_mode=self.render_mode)
        self._renderer.length = self.length
        self._renderer.state = self.state
        frame = self._renderer.render()
        if frame is not None:
            lo, hi = target_columns(self.target, frame.shape[1])
            frame = frame.copy()
            frame[:, lo:hi] = TARGET_RGB
        return frame

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


class CartPoleTargetVectorEnv(CartPoleVectorEnv):
    """The NumPy-vectorised version, with NEXT_STEP autoreset and the perturbations of
    dqnlab.envs.cartpole_vec.CartPoleVectorEnv (obs_noise then has 5 values, or one for all)."""

    def __init__(
        self,
        num_envs: int = 1,
        max_episode_steps: int = MAX_EPISODE_STEPS,
        render_mode: str | None = None,
        target_range: Sequence[float] = (-1.5, 1.5),
        move_prob: float = 0.0,
        move_every: int | None = None,
        margin: float = 0.5,
        obs_noise: float | Sequence[float] = 0.0,
        **perturbations: Any,
    ):
        self.target_low, self.target_high = _check_task_args(target_range, move_prob, move_every, margin)
        self.margin = float(margin)
        self.move_prob = float(move_prob)
        self.move_every = move_every
        self.targets = np.zeros(num_envs)
        self._offsets = np.zeros((WINDOW, num_envs))  # ring buffer of |x - target|, row = step % WINDOW
        self._success = np.zeros(num_envs, dtype=bool)
        super().__init__(
            num_envs=num_envs, max_episode_steps=max_episode_steps, render_mode=render_mode, **perturbations
        )
        self.single_observation_space = _observation_space(self.target_low, self.target_high)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.obs_sigma = check_sigma(obs_noise, 5)

    def _observe(self) -> np.ndarray:
        assert self.state is not None  # called after reset
        return np.vstack((self.state, self.state[0] - self.targets)).T.astype(np.float32)

    def _task_step(self, terminated: np.ndarray, force: np.ndarray) -> np.ndarray:
        assert self.state is not None  # called after reset
        x, _, theta, theta_dot = self.state
        offset = x - self.targets
        reward = target_reward(theta, theta_dot, offset, self.margin).astype(np.float32)
        self._offsets[(self.steps - 1) % WINDOW, np.arange(self.num_envs)] = np.abs(offset)
        self._success = ~terminated & (np.abs(offset) < SUCCESS_RADIUS)
        move = np.zeros(self.num_envs, dtype=bool)
        if self.move_every is not None:
            move |= self.steps % self.move_every == 0
        if self.move_prob > 0:
            move |= self.np_random.random(self.num_envs) < self.move_prob
        if move.any():
            self.targets[move] = self.np_random.uniform(self.target_low, self.target_high, size=int(move.sum()))
        return reward

    def _on_episode_start(self, mask: np.ndarray) -> None:
        self.targets[mask] = self.np_random.uniform(self.target_low, self.target_high, size=int(mask.sum()))
        self._offsets[:, mask] = 0.0
        self._success[mask] = False

    def _info(self) -> dict[str, Any]:
        assert self.state is not None  # called after reset
        counted = np.clip(self.steps, 1, WINDOW)
        started = self.steps == 0  # an episode's first observation: its current offset
        mean = np.where(started, np.abs(self.state[0] - self.targets), self._offsets.sum(axis=0) / counted)
        return {"success": self._success.copy(), "mean_abs_offset_last_100": mean}

    def extra_state(self) -> dict[str, Any]:
        return {
            **super().extra_state(),
            "targets": self.targets.copy(),
            "offsets": self._offsets.copy(),
            "success": self._success.copy(),
        }

    def set_extra_state(self, saved) -> None:
        super().set_extra_state(saved)
        self.targets = np.asarray(saved["targets"], dtype=np.float64).copy()
        self._offsets = np.asarray(saved["offsets"], dtype=np.float64).copy()
        self._success = np.asarray(saved["success"], dtype=bool).copy()


def register() -> None:
    """Register ENV_ID with Gymnasium (done on ``import dqnlab``; harmless to repeat)."""
    if ENV_ID in gym.registry:
        return
    gym.register(
        id=ENV_ID,
        entry_point="dqnlab.envs.target:CartPoleTargetEnv",
        vector_entry_point="dqnlab.envs.target:CartPoleTargetVectorEnv",
        max_episode_steps=MAX_EPISODE_STEPS,
        reward_threshold=REWARD_THRESHOLD,
    )


register()
