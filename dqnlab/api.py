"""Evaluating any delivered policy, from Python and from `dqnlab evaluate`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from pydantic import ValidationError

from dqnlab.algos.registry import load_policy
from dqnlab.config import EnvConfig
from dqnlab.core.errors import DqnlabError
from dqnlab.envs.cartpole_vec import DEFAULT_RANDOMIZE
from dqnlab.envs.make import check_spaces, make_vec_env
from dqnlab.runtime.evaluation import EvalResult, Evaluator
from dqnlab.runtime.policy import Policy


def _noise_values(obs_noise: float | Sequence[float]) -> float | list[float]:
    """`obs_noise` as EnvConfig takes it: a list where it has dimensions (a sequence or an array),
    else one float. (np.ndim does not narrow the type: the casts say what it found.)"""
    if np.ndim(obs_noise):
        return [float(v) for v in cast(Sequence[float], obs_noise)]
    return float(cast(float, obs_noise))


def evaluate(
    policy: Policy | str | Path,
    episodes: int = 100,
    seed: int = 0,
    env_id: str | None = None,
    max_steps: int | None = None,
    max_envs: int = 100,
    obs_noise: float | Sequence[float] = 0.0,
    action_noise: float = 0.0,
    force_noise: float = 0.0,
    randomize: Mapping[str, Sequence[float]] | bool | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
) -> EvalResult:
    """Greedy evaluation of `policy` (a Policy, run directory or policy file) over `episodes`
    episodes on the environment its run evaluated on (or `env_id`), starting from `seed`: the
    same time limit and constructor kwargs (Policy.evaluation_env). `max_steps` replaces the
    time limit (for long-horizon tests), `env_kwargs` the kwargs.

    Perturbations, as the `env` section of a config (dqnlab.config.schema.EnvConfig): `obs_noise`
    (Gaussian sigma, one or one per dimension), `action_noise` (probability of a uniformly
    random action), `force_noise` (relative sigma of each push), `randomize` (physics ranges
    {name: (lo, hi)} drawn per episode, or True for dqnlab.envs.cartpole_vec.DEFAULT_RANDOMIZE);
    `env_kwargs` go to the environment's constructor. The result reports survival and, on
    CartPole-style environments, the cart's drift."""
    if not isinstance(policy, Policy):
        policy = load_policy(policy)
    if episodes < 1:
        raise DqnlabError("episodes must be at least 1")
    # The run's own evaluation environment unless told otherwise: its time limit and kwargs.
    trained = policy.evaluation_env(env_id)
    if max_steps is None:
        max_steps = trained.get("max_episode_steps")
    if env_kwargs is None:
        env_kwargs = trained.get("kwargs")
    if randomize is True:
        randomize = DEFAULT_RANDOMIZE
    try:
        env_cfg = EnvConfig.model_validate(
            {
                "id": env_id or policy.env_id,
                "max_episode_steps": max_steps,
                "kwargs": dict(env_kwargs or {}),
                "obs_noise": _noise_values(obs_noise),
                "action_noise": action_noise,
                "force_noise": force_noise,
                "randomize": dict(randomize or {}),
                # A pixel policy brings its own view: the evaluation envs draw the frames it was trained on.
                **({"pixels": policy.pixels} if policy.pixels is not None else {}),
            }
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise DqnlabError(
            f"invalid evaluation setting{' ' + where if where else ''}: {err['msg'].removeprefix('Value error, ')}"
        ) from None
    probe = make_vec_env(env_cfg, 1)
    obs_shape, n_actions = check_spaces(probe, env_cfg.id)
    probe.close()
    if obs_shape != policy.obs_shape or n_actions != policy.n_actions:
        raise DqnlabError(
            f"policy trained on {policy.env_id} (observations {policy.obs_shape}, {policy.n_actions} actions) "
            f"does not fit {env_cfg.id} (observations {obs_shape}, {n_actions} actions)"
        )
    evaluator = Evaluator(env_cfg, max_envs, track_drift=True)
    threads = torch.get_num_threads()
    # One thread, as in training: small networks on batches of 100 run several times slower on
    # more, and far slower when the cores are busy (threads spin waiting for each other).
    torch.set_num_threads(1)
    try:
        return evaluator.run(policy.act_batch, episodes, seed)
    finally:
        torch.set_num_threads(threads)
        evaluator.close()
