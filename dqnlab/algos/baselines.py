"""Fixed controllers as policies (no learning): random actions, the tutorial's angle rule, and
an LQR on the linearised cart-pole, run through the same loop, evaluation and run directory as
the learners so that they compare like for like."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from dqnlab.config import BaselineConfig
from dqnlab.core.errors import ConfigError
from dqnlab.envs.lqr import lqr_gain
from dqnlab.runtime.loop import RunContext, TrainLoop


class RandomController(nn.Module):
    """Uniform random actions, drawn from its own seeded generator (reproducible evaluations)."""

    def __init__(self, n_actions: int, seed: int = 0):
        super().__init__()
        self.n_actions = n_actions
        self.gen = torch.Generator().manual_seed(seed)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.rand(obs.shape[0], self.n_actions, generator=self.gen)


class AngleRule(nn.Module):
    """Push right (action 1) when the pole angle (obs[2]) is positive, else left: S3's rule."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        right = (obs[:, 2] > 0).float()
        return torch.stack([1.0 - right, right], dim=1)


class LinearFeedback(nn.Module):
    """Push right when the force u = -K x of a linear state-feedback law is positive: a
    bang-bang version of LQR. K is a buffer, so the policy file holds it."""

    gain: torch.Tensor  # a buffer (register_buffer in __init__)

    def __init__(self, gain: np.ndarray):
        super().__init__()
        self.register_buffer("gain", torch.as_tensor(np.asarray(gain, dtype=np.float32)).reshape(-1))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        u = -(obs[:, : self.gain.shape[0]].float() @ self.gain)
        right = (u > 0).float()
        return torch.stack([1.0 - right, right], dim=1)


def controller_net(extra: dict[str, Any], obs_dim: int, n_actions: int) -> nn.Module:
    """The controller module named in a policy's `extra` (see ``BaselineLoop.policy_extra``)."""
    cfg = BaselineConfig.model_validate(extra["baseline"])
    if cfg.controller == "random":
        return RandomController(n_actions, int(extra.get("seed", 0)))
    if obs_dim < 4 or n_actions != 2:
        raise ValueError(f"the {cfg.controller} controller needs CartPole's 4 observations and 2 actions")
    if cfg.controller == "angle":
        return AngleRule()
    if cfg.controller == "target_lqr":
        if obs_dim < 5:
            raise ValueError(
                "the target_lqr controller needs the target offset as 5th observation (dqnlab/CartPoleTarget-v0)"
            )
        return LinearFeedback(np.zeros(5))
    return LinearFeedback(np.zeros(4))  # the gain comes with the state dict


def feedback_gain(name: str) -> np.ndarray:
    """The gain of a LinearFeedback controller: LQR's K on (x, x_dot, theta, theta_dot), or for
    `target_lqr` on (x, x_dot, theta, theta_dot, x - target) with x's weight moved to the offset."""
    k = np.asarray(lqr_gain(), dtype=np.float64).reshape(-1)  # CartPole's default physics
    if name == "target_lqr":
        return np.concatenate(([0.0], k[1:], k[:1]))
    return k


def controller(name: str, obs_dim: int = 4, n_actions: int = 2, seed: int = 0) -> nn.Module:
    """The controller `name` ("random", "angle", "lqr", "target_lqr") ready to act: scores
    (N, n_actions) from observations (N, obs_dim), the greedy action being its choice."""
    net = controller_net({"baseline": {"controller": name}, "seed": seed}, obs_dim, n_actions)
    if isinstance(net, LinearFeedback):
        net.gain.copy_(torch.as_tensor(feedback_gain(name), dtype=torch.float32))
    return net


class BaselineLoop(TrainLoop):
    algo = "baseline"

    @classmethod
    def build_policy_net(cls, network, obs_shape, n_actions, extra) -> nn.Module:
        return controller_net(extra, obs_shape[0], n_actions)

    @classmethod
    def check_fits(cls, cfg, obs_shape, n_actions, reset_info) -> None:
        super().check_fits(cfg, obs_shape, n_actions, reset_info)
        try:
            controller_net({"baseline": cfg.baseline.model_dump(mode="json")}, obs_shape[0], n_actions)
        except ValueError as exc:
            raise ConfigError(f"baseline on {cfg.env.id}: {exc}") from None

    def __init__(self, ctx: RunContext):
        super().__init__(ctx)
        self.controller = controller(ctx.cfg.baseline.controller, ctx.obs_shape[0], ctx.n_actions, self.streams.explore)

    def greedy_act(self, obs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.controller(torch.from_numpy(obs)).argmax(dim=1).numpy()

    def policy_net(self) -> nn.Module:
        return self.controller

    def policy_extra(self) -> dict[str, Any]:
        return {"baseline": self.cfg.baseline.model_dump(mode="json"), "seed": self.streams.explore}

    def advance(self) -> None:
        _, next_obs, _, _, _ = self.env_step(self.greedy_act(self.obs))
        self.obs = next_obs

    def algo_state(self) -> dict[str, Any]:
        if isinstance(self.controller, RandomController):
            return {"gen": self.controller.gen.get_state()}
        return {}

    def load_algo_state(self, state: dict[str, Any]) -> None:
        if isinstance(self.controller, RandomController):
            self.controller.gen.set_state(state["gen"])

    def eval_state(self) -> torch.Tensor | None:
        # The random controller draws its evaluation actions from its training generator.
        return self.controller.gen.get_state() if isinstance(self.controller, RandomController) else None

    def restore_eval_state(self, state: torch.Tensor | None) -> None:
        if state is not None:
            assert isinstance(self.controller, RandomController)  # the only one with an eval_state
            self.controller.gen.set_state(state)
