"""The baseline controllers (dqnlab.algos.baselines) as act functions for tests."""

from __future__ import annotations

import numpy as np
import torch

from dqnlab.algos.baselines import controller


def acts(name: str, obs_dim: int = 4):
    """Controller `name` as (N, obs_dim) -> (N,) actions, or one observation -> a () action."""
    net = controller(name, obs_dim)

    def act(obs):
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32))
        actions = net(x.reshape(-1, x.shape[-1])).argmax(dim=1).numpy()
        return actions[0] if x.ndim == 1 else actions

    return act
