"""The algorithm registry: an algorithm is one module plus one line in the table (#15)."""

from __future__ import annotations

import pytest

import dqnlab
from dqnlab.algos.registry import loop_class
from dqnlab.cli.main import main
from dqnlab.config.algorithms import ALGORITHMS, AlgorithmEntry
from dqnlab.core.errors import ConfigError


def test_every_algorithm_in_the_table_is_found():
    for name in ALGORITHMS:
        assert loop_class(name).algo == name


def test_a_new_algorithm_is_one_module_and_one_table_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(
        ALGORITHMS, "toy", AlgorithmEntry("toy_algorithm:ToyLoop", ("network",), "random search on a linear policy")
    )
    run = tmp_path / "toy"
    assert (
        main(
            [
                "train",
                "--set",
                "algo=toy",
                "--run-dir",
                str(run),
                "--total-steps",
                "3000",
                "--quiet",
                "--set",
                "eval.episodes=5",
                "--set",
                "eval.final_episodes=5",
                "--set",
                "artifacts=false",
                "--preset",
                "random",
                "--set",
                "baseline={}",
            ]
        )
        == 0
    )
    assert "algo toy" in capsys.readouterr().out
    policy = dqnlab.load_policy(run)  # the registry rebuilds the toy's network from the policy file
    assert policy.algo == "toy" and dqnlab.evaluate(policy, episodes=5).mean > 0
    assert main(["train", "--resume", str(run), "--total-steps", "4000", "--quiet"]) == 0


def test_the_config_refuses_an_unknown_algorithm_and_sections_it_does_not_read(monkeypatch):
    with pytest.raises(ConfigError, match="unknown algo 'nope'"):
        dqnlab.build_config(algo="nope")
    monkeypatch.setitem(ALGORITHMS, "toy", AlgorithmEntry("toy_algorithm:ToyLoop", ("network",), "toy"))
    with pytest.raises(ConfigError, match="section 'dqn' has no effect with algo 'toy'"):
        dqnlab.build_config(preset="random", algo="toy", **{"baseline": {}, "dqn.lr": 0.1})
