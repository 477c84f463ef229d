import csv

import pytest
import torch

import dqnlab

torch.set_num_threads(1)


def tiny_config(**fields):
    """A run small enough for a unit test: a few thousand steps, few evaluation episodes."""
    base = {
        "total_steps": 3000,
        "checkpoint_every": 1000,
        "eval.every_steps": 1000,
        "eval.episodes": 4,
        "eval.final_episodes": 4,
        "eval.early_stop": False,
        "dqn.learning_starts": 500,
        "artifacts": False,  # plots and report are tested in test_viz
    }
    base.update(fields)
    algo = base.get("algo") or dqnlab.build_config(base.get("preset")).algo
    if algo != "dqn":
        base.pop("dqn.learning_starts")
    return dqnlab.build_config(**base)  # a keyword None sets its field to null


@pytest.fixture
def tiny():
    return tiny_config


def metrics_without_wall(run_dir):
    """metrics.csv as dicts, without wall_seconds: the one column that differs between equal runs."""
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r.pop("wall_seconds")
    return rows
