"""Each `-fixed` tutorial preset differs from its tutorial's preset in exactly the fields that
BENCHMARKS.md ("The tutorials fixed") names and ablates, and in nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from dqnlab.config import build_config
from dqnlab.config.presets import PRESETS

# fixed preset -> (the tutorial's preset, {dotted field: the fixed value})
FIXES: dict[str, tuple[str, dict[str, Any]]] = {
    "s0-keras-fixed": (
        "s0-keras",
        {
            "eval.patience": None,
            "dqn.gamma": 0.99,
            "eval.episodes": 10,
            "eval.early_stop": True,
            "total_episodes": 2000,
        },
    ),
    "s1-pixels-fixed": (
        "s1-pixels",
        {
            "network.batch_norm": False,
            "dqn.lr": 1e-3,
            "dqn.double": True,
            "dqn.n_step": 3,
            "dqn.train_freq": 4,
            "explore.decay_steps": 5000,
            "eval.every_steps": 1000,
            "eval.episodes": 100,
            "eval.early_stop": True,
            "eval.deliver": "best_eval",
            "total_episodes": 300,
        },
    ),
    "s2-config-fixed": (
        "s2-config",
        {
            "eval.early_stop": True,
            "eval.every_steps": 1000,
            "eval.episodes": 100,
            "eval.deliver": "best_eval",
            "total_episodes": 400,
            "total_steps": 80_000,
        },
    ),
    "s3c-soft-fixed": (
        "s3c-soft",
        {
            "eval.stop_train_return": None,
            "eval.early_stop": True,
            "eval.episodes": 100,
            "dqn.gamma": 0.99,
            "dqn.tau": 0.01,
        },
    ),
    "s4-batchnorm-fixed": (
        "s4-batchnorm",
        {
            "eval.early_stop": True,
            "eval.deliver": "best_eval",
            "eval.episodes": 100,
            "eval.every_steps": 2500,
        },
    ),
}


def flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.parametrize("fixed", list(FIXES))
def test_a_fixed_preset_changes_exactly_the_documented_fields(fixed):
    original, changes = FIXES[fixed]
    before = flat(build_config(original).model_dump(exclude={"preset"}))
    after = flat(build_config(fixed).model_dump(exclude={"preset"}))
    assert {k for k in after if after[k] != before.get(k)} == set(changes)
    assert {k: after[k] for k in changes} == changes


def test_every_fixed_preset_is_tested_and_says_what_it_fixes():
    assert {name for name in PRESETS if name.endswith("-fixed")} == set(FIXES)
    for fixed, (original, _) in FIXES.items():
        assert original in PRESETS
        assert PRESETS[fixed][0].lower().startswith(original.split("-")[0] + " fixed")
