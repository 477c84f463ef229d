"""Tabular Q-learning on a uniform discretisation of chosen observation dimensions."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from dqnlab.algos.schedules import epsilon_at, log_episode
from dqnlab.config import TabularConfig
from dqnlab.core.errors import ConfigError
from dqnlab.runtime.loop import RunContext, TrainLoop


def discretise(obs: np.ndarray, dims: np.ndarray, bins: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Flat cell index of each observation, (N, obs_dim) -> (N,).

    Dimension d is cut into bins[d] equal bins over [low[d], high[d]]; values outside fall into
    the first or last bin. The cells of the selected dimensions are numbered in C order.
    """
    x = obs[:, dims]
    idx = np.floor((x - low) / (high - low) * bins).astype(np.int64)
    idx = np.clip(idx, 0, bins - 1)
    return np.ravel_multi_index(tuple(idx.T), tuple(bins))


def q_update(
    table: np.ndarray,
    s: np.ndarray,
    a: np.ndarray,
    r: np.ndarray,
    s_next: np.ndarray,
    terminated: np.ndarray,
    gamma: float,
    lr: float,
) -> None:
    """Q[s, a] += lr * (r + gamma * (1 - terminated) * max_a' Q[s', a'] - Q[s, a]), in place.

    The targets of a batch are computed before any of its updates (as if applied at once);
    repeated (s, a) pairs accumulate their increments.
    """
    target = r + gamma * (1.0 - terminated) * table[s_next].max(axis=1)
    np.add.at(table, (s, a), lr * (target - table[s, a]))


class QTable(nn.Module):
    """The table as a policy module: observation -> Q-values of its cell (buffers only, so it
    saves and loads like any network and needs no code to rebuild)."""

    table: torch.Tensor  # a buffer (register_buffer in __init__)

    def __init__(self, cfg: TabularConfig, n_actions: int):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("table", torch.zeros(int(np.prod(cfg.bins)), n_actions, dtype=torch.float64))
        self._dims = np.array(cfg.dims)
        self._bins = np.array(cfg.bins)
        self._low = np.array(cfg.low, dtype=np.float64)
        self._high = np.array(cfg.high, dtype=np.float64)

    @classmethod
    def from_extra(cls, extra: dict[str, Any], obs_dim: int, n_actions: int) -> QTable:
        cfg = TabularConfig.model_validate(extra["tabular"])
        if max(cfg.dims) >= obs_dim:
            raise ValueError(f"tabular dims {cfg.dims} do not fit observations of size {obs_dim}")
        return cls(cfg, n_actions)

    def cells(self, obs: np.ndarray) -> np.ndarray:
        return discretise(np.asarray(obs, dtype=np.float64), self._dims, self._bins, self._low, self._high)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.table[torch.from_numpy(self.cells(obs.numpy()))].float()


class TabularLoop(TrainLoop):
    algo = "tabular"

    @classmethod
    def check_fits(cls, cfg, obs_shape, n_actions, reset_info) -> None:
        super().check_fits(cfg, obs_shape, n_actions, reset_info)
        if max(cfg.tabular.dims) >= obs_shape[0]:
            raise ConfigError(
                f"tabular.dims {cfg.tabular.dims} do not fit {cfg.env.id}'s {obs_shape[0]}-dimensional observations"
            )

    @classmethod
    def build_policy_net(cls, network, obs_shape, n_actions, extra) -> nn.Module:
        return QTable.from_extra(extra, obs_shape[0], n_actions)

    @classmethod
    def memory_estimate(cls, cfg, obs_shape, n_actions) -> dict[str, float]:
        cells = float(np.prod([float(b) for b in cfg.tabular.bins]))
        # the table, the best one kept, and a serialised copy at each checkpoint
        return {"Q-table": 3 * 8 * cells * n_actions}

    def __init__(self, ctx: RunContext):
        super().__init__(ctx)
        cfg, n_actions = ctx.cfg, ctx.n_actions
        self.qtable = QTable(cfg.tabular, n_actions)
        self.table = self.qtable.table.numpy()  # shares memory with the module's buffer
        self.explore_rng = np.random.default_rng(self.streams.explore)
        self.updates = 0

    def exploration(self) -> float:
        return epsilon_at(self.cfg.explore, self.env_steps, self.episodes)

    def learning_rate(self) -> float:
        t = self.cfg.tabular
        if t.lr_schedule == "log_episode":
            return log_episode(self.episodes, 1.0, t.lr, t.lr_divisor)
        return t.lr

    def greedy_act(self, obs: np.ndarray) -> np.ndarray:
        return self.table[self.qtable.cells(obs)].argmax(axis=1)

    def policy_net(self) -> nn.Module:
        return self.qtable

    def policy_extra(self) -> dict[str, Any]:
        return {"tabular": self.cfg.tabular.model_dump(mode="json")}

    def advance(self) -> None:
        n = self.cfg.env.num_envs
        eps, lr = self.exploration(), self.learning_rate()
        s = self.qtable.cells(self.obs)
        greedy = self.table[s].argmax(axis=1)
        explore = self.explore_rng.random(n) < eps
        actions = np.where(explore, self.explore_rng.integers(0, self.n_actions, size=n), greedy)
        valid, next_obs, reward, terminated, _ = self.env_step(actions)
        if valid.any():
            q_update(
                self.table,
                s[valid],
                actions[valid],
                reward[valid].astype(np.float64),
                self.qtable.cells(next_obs[valid]),
                terminated[valid].astype(np.float64),
                self.cfg.tabular.gamma,
                lr,
            )
            self.updates += int(valid.sum())
        self.obs = next_obs

    def algo_state(self) -> dict[str, Any]:
        return {
            "table": self.qtable.table.clone(),
            "rng": self.explore_rng.bit_generator.state,
            "updates": self.updates,
        }

    def load_algo_state(self, state: dict[str, Any]) -> None:
        self.qtable.table.copy_(state["table"])
        self.explore_rng.bit_generator.state = state["rng"]
        self.updates = int(state["updates"])

    def algo_summary(self) -> dict[str, Any]:
        return {
            "updates": self.updates,
            "cells_visited": int((self.table != 0).any(axis=1).sum()),
            "cells": int(self.table.shape[0]),
        }
