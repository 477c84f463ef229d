"""Q-networks: an MLP from observation vector to one value per action, plain or dueling."""

from __future__ import annotations

import torch
from torch import nn

from dqnlab.config import NetworkConfig

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
}


class DuelingHead(nn.Module):
    """Q(s, a) = V(s) + A(s, a) - mean_a A(s, a) from two linear heads on the same features.

    Subtracting the mean makes V and A identifiable (a constant moved from A to V would
    otherwise leave Q unchanged) without changing which action is greedy. (B, in) -> (B, A)
    """

    def __init__(self, in_features: int, n_actions: int):
        super().__init__()
        self.value = nn.Linear(in_features, 1)
        self.advantage = nn.Linear(in_features, n_actions)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        adv = self.advantage(h)  # (B, A)
        return self.value(h) + adv - adv.mean(dim=1, keepdim=True)


def build_q_network(cfg: NetworkConfig, obs_dim: int, n_actions: int) -> nn.Sequential:
    """Linear -> [BatchNorm] -> activation for each hidden size, then a linear head (or, with
    ``cfg.dueling``, a DuelingHead).

    (batch, obs_dim) -> (batch, n_actions). The architecture is a function of `cfg` alone, so a
    saved state_dict loads into a network rebuilt from the same config. Initialisation draws
    from torch's global RNG: call under ``torch.random.fork_rng()`` with a seed to keep it
    explicit and reproducible.
    """
    layers: list[nn.Module] = []
    width = obs_dim
    for size in cfg.hidden:
        layers.append(nn.Linear(width, size))
        if cfg.batch_norm:
            layers.append(nn.BatchNorm1d(size))
        layers.append(_ACTIVATIONS[cfg.activation]())
        width = size
    layers.append(DuelingHead(width, n_actions) if cfg.dueling else nn.Linear(width, n_actions))
    return nn.Sequential(*layers)


def seeded_q_network(cfg: NetworkConfig, obs_dim: int, n_actions: int, seed: int) -> nn.Sequential:
    """build_q_network with its initialisation drawn from `seed`, leaving the global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_q_network(cfg, obs_dim, n_actions)


def has_batch_norm(net: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
