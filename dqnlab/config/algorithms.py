"""The algorithm table: every algorithm dqnlab can train, where its code lives, and which config
sections it reads. Adding an algorithm is one module (a ``TrainLoop`` subclass, see
``dqnlab.runtime.loop``) and one line here; the config then accepts its name for `algo`, refuses
the sections it does not read, and the training loop finds it through ``dqnlab.algos.registry``.

The table lives in the config layer, below the algorithms' code, because the config must know
the names and sections; the code is named by its import path and loaded only when used.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AlgorithmEntry:
    loop: str
    """Import path "module:Class" of the algorithm's TrainLoop subclass."""
    sections: tuple[str, ...]
    """The algorithm-specific config sections it reads (see ALGORITHM_SECTIONS); the others must
    stay at their defaults, so that no setting is silently ignored."""
    summary: str
    """One line for `dqnlab presets` and the docs."""


ALGORITHMS: dict[str, AlgorithmEntry] = {
    "dqn": AlgorithmEntry(
        "dqnlab.algos.dqn:DQNLoop",
        ("network", "dqn", "explore"),
        "Deep Q-Network: replay, n-step Double DQN targets, target network",
    ),
    "ppo": AlgorithmEntry(
        "dqnlab.algos.ppo:PPOLoop", ("network", "ppo"), "PPO: clipped surrogate, GAE, separate actor and critic"
    ),
    "pqn": AlgorithmEntry(
        "dqnlab.algos.pqn:PQNLoop",
        ("network", "pqn", "explore"),
        "PQN: Q(lambda) on rollouts of parallel envs, LayerNorm, no replay, no target network",
    ),
    "tabular": AlgorithmEntry(
        "dqnlab.algos.tabular:TabularLoop", ("explore", "tabular"), "Q-learning on a table over a discretised state"
    ),
    "baseline": AlgorithmEntry(
        "dqnlab.algos.baselines:BaselineLoop",
        ("baseline",),
        "a fixed controller (random, angle rule, LQR), no learning",
    ),
}

ALGORITHM_SECTIONS = ("network", "dqn", "explore", "ppo", "pqn", "tabular", "baseline")
"""Config sections that only some algorithms read (env, eval and the top-level fields are everyone's)."""
