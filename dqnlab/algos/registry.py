"""Finding an algorithm by name: its training loop, and the network its policy files hold.

The names, and where each algorithm's code lives, are in dqnlab.config.algorithms.ALGORITHMS
(one line per algorithm); the code is imported only when the algorithm is used.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch

from dqnlab.config import NetworkConfig
from dqnlab.config.algorithms import ALGORITHMS
from dqnlab.core.errors import ConfigError
from dqnlab.core.fileio import safe_torch_load
from dqnlab.runtime.loop import TrainLoop
from dqnlab.runtime.policy import Policy, policy_from_dict, resolve_policy_path


def loop_class(algo: str) -> type[TrainLoop]:
    """The TrainLoop subclass of `algo`, imported from where the algorithm table says it is."""
    if algo not in ALGORITHMS:
        raise ConfigError(f"unknown algo {algo!r} (choose from: {', '.join(ALGORITHMS)})")
    module, _, name = ALGORITHMS[algo].loop.partition(":")
    loop = getattr(importlib.import_module(module), name)
    if not (isinstance(loop, type) and issubclass(loop, TrainLoop)):
        raise TypeError(f"{ALGORITHMS[algo].loop} is not a TrainLoop subclass")
    return loop


def build_policy_net(
    algo: str, network: NetworkConfig, obs_shape: tuple[int, ...], n_actions: int, extra: dict[str, Any]
) -> torch.nn.Module:
    """The (untrained) module of a policy of `algo`: the algorithm builds it from config alone, so
    that a policy file holds only tensors and plain data."""
    return loop_class(algo).build_policy_net(network, obs_shape, n_actions, extra)


def load_policy(path: str | Path) -> Policy:
    """Load the greedy policy from a run directory or a policy file (no code is executed)."""
    p = resolve_policy_path(path)
    return policy_from_dict(safe_torch_load(p, "policy file"), str(p), build_policy_net)
