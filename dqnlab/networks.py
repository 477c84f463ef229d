"""Q-networks: an MLP from observation vector to one value per action."""

from __future__ import annotations

import torch
from torch import nn

from dqnlab.config import NetworkConfig

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
}


def build_q_network(cfg: NetworkConfig, obs_dim: int, n_actions: int) -> nn.Sequential:
    """Linear -> [BatchNorm] -> activation for each hidden size, then a linear head.

    (batch, obs_dim) -> (batch, n_actions). Initialisation draws from torch's global RNG: call
    under ``torch.random.fork_rng()`` with a seed to keep it explicit and reproducible.
    """
    layers: list[nn.Module] = []
    width = obs_dim
    for size in cfg.hidden:
        layers.append(nn.Linear(width, size))
        if cfg.batch_norm:
            layers.append(nn.BatchNorm1d(size))
        layers.append(_ACTIVATIONS[cfg.activation]())
        width = size
    layers.append(nn.Linear(width, n_actions))
    return nn.Sequential(*layers)


def seeded_q_network(cfg: NetworkConfig, obs_dim: int, n_actions: int, seed: int) -> nn.Sequential:
    """build_q_network with its initialisation drawn from `seed`, leaving the global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_q_network(cfg, obs_dim, n_actions)


def has_batch_norm(net: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
