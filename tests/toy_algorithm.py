"""A toy algorithm, to show what adding one takes: this module and one line in the algorithm
table (tests/test_registry.py adds the line). It is random search on a linear policy: each
episode plays perturbed weights, kept when they beat the best return so far."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from dqnlab.runtime.loop import RunContext, TrainLoop


class ToyLoop(TrainLoop):
    algo = "toy"

    @classmethod
    def build_policy_net(cls, network, obs_shape, n_actions, extra) -> nn.Module:
        return nn.Linear(obs_shape[0], n_actions, bias=False)

    def __init__(self, ctx: RunContext):
        super().__init__(ctx)
        self.net = self.build_policy_net(ctx.cfg.network, ctx.obs_shape, ctx.n_actions, {})
        self.search_rng = np.random.default_rng(self.streams.explore)
        self.best_weights = torch.zeros_like(self.net.weight)
        self.best_return = -np.inf
        self.trial = self.best_weights.clone()

    def greedy_act(self, obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.net(torch.as_tensor(obs, dtype=torch.float32)).argmax(dim=1).numpy()

    def policy_net(self) -> nn.Module:
        return self.net

    def advance(self) -> None:
        with torch.no_grad():
            actions = (torch.as_tensor(self.obs, dtype=torch.float32) @ self.trial.T).argmax(dim=1).numpy()
        _, self.obs, _, _, _ = self.env_step(actions)

    def on_episode_end(self, env_index: int) -> None:
        ret = self.recent[-1]
        if ret > self.best_return:  # keep the weights that played it, try a new perturbation
            self.best_return, self.best_weights = ret, self.trial.clone()
            self.net.weight.data.copy_(self.best_weights)
        noise = torch.as_tensor(self.search_rng.normal(size=tuple(self.trial.shape)), dtype=torch.float32)
        self.trial = self.best_weights + 0.5 * noise

    def algo_state(self) -> dict[str, Any]:
        return {
            "best": self.best_weights,
            "trial": self.trial,
            "best_return": float(self.best_return),
            "rng": self.search_rng.bit_generator.state,
        }

    def load_algo_state(self, state: dict[str, Any]) -> None:
        self.best_weights, self.trial = state["best"], state["trial"]
        self.best_return = state["best_return"]
        self.search_rng.bit_generator.state = state["rng"]
        self.net.weight.data.copy_(self.best_weights)
