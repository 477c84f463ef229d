"""dqnlab: fast, reliable Deep Q-Networks and baselines for CartPole-style balancing.

import dqnlab
result = dqnlab.train(dqnlab.build_config(seed=0))   # writes a run directory
policy = dqnlab.load_policy(result.run_dir)          # policy(obs) -> int action
print(dqnlab.evaluate(policy, episodes=100).mean)
"""

import dqnlab.envs.target  # noqa: F401  (registers dqnlab/CartPoleTarget-v0 with Gymnasium)
from dqnlab.algos.registry import load_policy
from dqnlab.api import evaluate
from dqnlab.config import RunConfig, build_config
from dqnlab.core.errors import DqnlabError
from dqnlab.core.version import __version__
from dqnlab.runtime.policy import Policy
from dqnlab.train import TrainResult, train

__all__ = [
    "DqnlabError",
    "Policy",
    "RunConfig",
    "TrainResult",
    "build_config",
    "evaluate",
    "load_policy",
    "train",
    "__version__",
]
