"""A run's random number streams: one user seed, several independent streams."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RngStreams:
    """Independent streams derived from one user seed (numpy SeedSequence), so that no two
    consumers share a stream and different seeds differ everywhere."""

    env: int
    explore: int  # action sampling (epsilon-greedy, PPO's stochastic policy)
    replay: int  # minibatch sampling
    network: int  # initialisation
    eval_during: int
    eval_final: int
    eval_confirm: int
    eval_shortlist: int  # appended last: the streams before it stay what they were

    @classmethod
    def derive(cls, seed: int) -> RngStreams:
        words = np.random.SeedSequence(seed).generate_state(8, dtype=np.uint32)
        return cls(*(int(w) for w in words))
