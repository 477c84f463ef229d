"""Evaluating any delivered policy, from Python and from `dqnlab evaluate`."""

from __future__ import annotations

from pathlib import Path

from dqnlab.config import EnvConfig
from dqnlab.envs import check_spaces, make_vec_env
from dqnlab.errors import DqnlabError
from dqnlab.evaluation import EvalResult, Evaluator
from dqnlab.policy import Policy, load_policy


def evaluate(
    policy: Policy | str | Path,
    episodes: int = 100,
    seed: int = 0,
    env_id: str | None = None,
    max_steps: int | None = None,
    max_envs: int = 100,
) -> EvalResult:
    """Greedy evaluation of `policy` (a Policy, run directory or policy file) over `episodes`
    episodes on the environment it was trained on (or `env_id`), starting from `seed`.
    `max_steps` replaces the environment's time limit (for long-horizon tests)."""
    if not isinstance(policy, Policy):
        policy = load_policy(policy)
    if episodes < 1:
        raise DqnlabError("episodes must be at least 1")
    env_cfg = EnvConfig(id=env_id or policy.env_id, max_episode_steps=max_steps)
    probe = make_vec_env(env_cfg, 1)
    obs_shape, n_actions = check_spaces(probe, env_cfg.id)
    probe.close()
    if obs_shape != policy.obs_shape or n_actions != policy.n_actions:
        raise DqnlabError(
            f"policy trained on {policy.env_id} (observations {policy.obs_shape}, {policy.n_actions} actions) "
            f"does not fit {env_cfg.id} (observations {obs_shape}, {n_actions} actions)"
        )
    evaluator = Evaluator(env_cfg, max_envs)
    try:
        return evaluator.run(policy, episodes, seed)
    finally:
        evaluator.close()
