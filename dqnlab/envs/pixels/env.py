"""Pixel observations for CartPole, as a vector environment and as a single-env wrapper.

Both wrap the state-vector CartPole and replace each observation by the stack of the last K
frames drawn from it (dqnlab.envs.pixels.view), keeping the rest of the step untouched (rewards,
termination, info, the true state in ``unwrapped.state``). Frames are drawn from the observation
the environment returns, so observation noise (env.obs_noise) moves the drawn cart and pole too.

Episode boundaries: Gymnasium's vector envs autoreset on the NEXT_STEP, so the step after an
episode ends returns the new episode's first observation. There, and at ``reset``, the history
of that environment is restarted (filled with its first frame); the terminal observation itself
is stacked on its own episode's frames, so a transition's next_obs never mixes two episodes.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from dqnlab.config import PixelConfig
from dqnlab.envs.pixels.frames import FrameStack
from dqnlab.envs.pixels.view import render_view


def pixel_space(cfg: PixelConfig) -> spaces.Box:
    return spaces.Box(0, 255, cfg.obs_shape(), dtype=np.uint8)


class PixelVectorEnv(gym.vector.VectorWrapper):
    """A CartPole vector env whose observations are (K * C, H, W) uint8 frame stacks."""

    def __init__(self, env: gym.vector.VectorEnv, cfg: PixelConfig):
        super().__init__(env)
        self.cfg = cfg
        self.single_observation_space = pixel_space(cfg)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, env.num_envs)
        self.history = FrameStack(env.num_envs, cfg.frames, (cfg.channels, cfg.height, cfg.width))
        self.ended = np.zeros(env.num_envs, dtype=bool)  # the previous step ended these episodes

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.history.restart(render_view(self.cfg, obs))
        self.ended[:] = False
        return self.history.observation(), info

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        frames = render_view(self.cfg, obs)
        self.history.push(frames)
        if self.ended.any():  # NEXT_STEP autoreset: these observations start new episodes
            which = np.flatnonzero(self.ended)
            self.history.restart(frames[which], which)
        self.ended = np.logical_or(terminated, truncated)
        return self.history.observation(), reward, terminated, truncated, info

    def state_dict(self) -> dict:
        """The frame history, for bit-exact resume (tensors only)."""
        import torch

        return {**self.history.state_dict(), "ended": torch.from_numpy(self.ended.copy())}

    def load_state_dict(self, state: dict) -> None:
        self.history.load_state_dict(state)
        self.ended = state["ended"].numpy().copy()


class PixelObservation(gym.Wrapper):
    """A single CartPole env whose observations are (K * C, H, W) uint8 frame stacks (for
    watching a pixel policy play: ``render()`` still gives Gymnasium's own picture)."""

    def __init__(self, env: gym.Env, cfg: PixelConfig):
        super().__init__(env)
        self.cfg = cfg
        self.observation_space = pixel_space(cfg)
        self.history = FrameStack(1, cfg.frames, (cfg.channels, cfg.height, cfg.width))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.history.restart(render_view(self.cfg, np.asarray(obs)[None]))
        return self.history.observation()[0], info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.history.push(render_view(self.cfg, np.asarray(obs)[None]))
        return self.history.observation()[0], reward, terminated, truncated, info
