"""Named starting configs. A preset is a dict of overrides on top of ``RunConfig``'s defaults.

The field defaults in ``dqnlab.config`` *are* the ``default`` preset: the best DQN we have for
CartPole-v1 (see BENCHMARKS.md for how it was measured and tuned).
"""

from __future__ import annotations

import copy
import difflib
from typing import Any

from dqnlab.errors import ConfigError

PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "default": (
        "Double DQN for CartPole-v1 tuned for reliability first, then speed: 128-128 MLP, 3-step "
        "returns, 8 vector envs, confirmed early stop.",
        {},
    ),
    "fast": (
        "The default with half the gradient steps on twice the batch (lr 4e-3): about 25% faster, "
        "a little less reliable (see BENCHMARKS.md).",
        {"dqn": {"batch_size": 256, "gradient_steps": 1, "lr": 4e-3, "target_update_every": 20}},
    ),
}


def preset_names() -> list[str]:
    return list(PRESETS)


def preset_description(name: str) -> str:
    return PRESETS[name][0]


def preset_dict(name: str) -> dict[str, Any]:
    """The overrides of preset ``name`` (a deep copy), or a ConfigError naming the closest one."""
    if name not in PRESETS:
        close = difflib.get_close_matches(name, PRESETS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(
            f"unknown preset '{name}'{hint} (available: {', '.join(PRESETS)}; see 'dqnlab presets')"
        )
    return copy.deepcopy(PRESETS[name][1])
