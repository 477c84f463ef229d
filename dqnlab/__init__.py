"""dqnlab: fast, reliable Deep Q-Networks and baselines for CartPole-style balancing.

    import dqnlab
    result = dqnlab.train(dqnlab.build_config(seed=0))   # writes a run directory
    policy = dqnlab.load_policy(result.run_dir)          # policy(obs) -> int action
    print(dqnlab.evaluate(policy, episodes=100).mean)
"""

__version__ = "0.1.0"

from dqnlab.config import RunConfig, build_config  # noqa: E402
from dqnlab.errors import DqnlabError  # noqa: E402
from dqnlab.api import evaluate  # noqa: E402
from dqnlab.policy import Policy, load_policy  # noqa: E402
from dqnlab.train import TrainResult, train  # noqa: E402
import dqnlab.target_env  # noqa: E402,F401  (registers dqnlab/CartPoleTarget-v0 with Gymnasium)

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
