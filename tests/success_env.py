"""A user's own Gymnasium environment whose info["success"] depends on a constructor argument.

dqnlab's own environments cannot make the training and evaluation environments disagree on
reporting success (eval.env may not change env.id, and dqnlab/CartPoleTarget-v0 reports it
whatever its kwargs), but any registered environment can: here `eval.env: {kwargs:
{report_success: false}}` evaluates on a copy that does not report it. Run as a script, it
registers the environment and runs dqnlab's command line with the script's arguments (dqnlab's
CLI only knows registered ids, so a user with their own environment wraps it like this).
"""

from __future__ import annotations

import sys
from typing import Any

import gymnasium as gym
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

ENV_ID = "TestSuccess/ReportingCartPole-v0"


class ReportingCartPole(CartPoleEnv):
    """CartPole-v1 that reports info["success"] (the pole still up) unless `report_success` is false."""

    def __init__(self, report_success: bool = True, render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        self.report_success = report_success

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = super().reset(seed=seed, options=options)
        return obs, self._task_info(info, True)

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward, terminated, truncated, self._task_info(info, not terminated)

    def _task_info(self, info: dict[str, Any], success: bool) -> dict[str, Any]:
        return {**info, "success": success} if self.report_success else info


def register() -> None:
    if ENV_ID not in gym.registry:
        gym.register(ENV_ID, entry_point=ReportingCartPole, max_episode_steps=500, reward_threshold=475.0)


def unregister() -> None:
    gym.registry.pop(ENV_ID, None)


if __name__ == "__main__":
    register()
    from dqnlab.cli.main import main

    sys.exit(main())
