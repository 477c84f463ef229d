"""Evaluations cut short once they can no longer matter (eval.max_return_to_go): the bound is an
upper bound of the mean, a cut evaluation is recorded as partial and never becomes the best, and
runs without the option are unchanged."""

import numpy as np

import dqnlab
from dqnlab.config import EnvConfig
from dqnlab.runtime.evaluation import Evaluator
from dqnlab.runtime.rundir import read_metrics
from dqnlab.viz.metrics import read_run_metrics


def still(obs):
    """Acrobot's 'no torque': the links hang and the episode lasts its whole 500 steps."""
    return np.ones(len(obs), dtype=np.int64)


def random_policy(seed):
    rng = np.random.default_rng(seed)
    return lambda obs: rng.integers(0, 3, size=len(obs))


def test_an_evaluation_that_cannot_reach_the_bar_is_cut_with_its_upper_bound():
    evaluator = Evaluator(EnvConfig(id="Acrobot-v1"), max_envs=4)
    full = evaluator.run(still, 6, seed=0)
    assert full.mean == -500 and not full.partial
    cut = evaluator.run(still, 6, seed=0, give_up=lambda bound: bound < -50, return_to_go=0.0)
    # rounds of 4 then 2: after t steps of the first, 4 episodes at -t (each to collect 0 more)
    # and 2 unstarted (0 at most): the bound -4t/6 first falls below -50 at t = 76
    assert cut.partial and cut.cut_bound == -4 * 76 / 6
    assert cut.lengths.tolist() == [76] * 4


def test_the_bound_never_falls_below_the_mean_it_bounds():
    evaluator = Evaluator(EnvConfig(id="Acrobot-v1"), max_envs=5)
    full = evaluator.run(random_policy(1), 10, seed=3)
    bounds = []
    again = evaluator.run(random_policy(1), 10, seed=3, give_up=lambda b: bounds.append(b) and False)
    assert not again.partial
    np.testing.assert_array_equal(again.returns, full.returns)  # asking does not change the episodes
    assert min(bounds) >= full.mean and bounds == sorted(bounds, reverse=True)


def test_cut_evaluations_are_partial_rows_never_the_best(tmp_path, tiny):
    # the online network evaluated: within 4000 steps it learns enough for evaluations to be cut
    common = {
        "env.id": "Acrobot-v1",
        "eval.every_steps": 500,
        "eval.episodes": 10,
        "total_steps": 4000,
        "dqn.policy_average_tau": None,
    }
    cut = dqnlab.train(tiny(seed=1, **common, **{"eval.max_return_to_go": 0.0}), tmp_path / "cut", progress=False)
    rows = read_metrics(tmp_path / "cut" / "metrics.csv")
    partial = [r for r in rows if r["kind"] == "partial"]
    full = [r for r in rows if r["kind"] == "eval"]
    assert partial and full
    best = max(float(r["eval_mean"]) for r in full)
    # each cut evaluation could not have beaten the best before it (nor reached the stop threshold)
    best_before = -np.inf
    for r in rows:
        if r["kind"] == "eval":
            best_before = max(best_before, float(r["eval_mean"]))
        elif r["kind"] == "partial":
            assert float(r["eval_mean"]) <= best_before
    assert cut.summary["best_eval_mean"] == best
    assert len(read_run_metrics(tmp_path / "cut").eval_step) == len(full)  # curves and compare see full ones only
    # the same run with every evaluation to the end: the same training, best and delivered policy
    whole = dqnlab.train(tiny(seed=1, **common), tmp_path / "whole", progress=False)
    assert [r for r in read_metrics(tmp_path / "whole" / "metrics.csv") if r["kind"] == "train"] == [
        {**r, "wall_seconds": r2["wall_seconds"]}
        for r, r2 in zip(
            [r for r in rows if r["kind"] == "train"],
            [r for r in read_metrics(tmp_path / "whole" / "metrics.csv") if r["kind"] == "train"],
            strict=True,
        )
    ]
    for key in ("best_eval_mean", "best_eval_step", "eval_mean", "env_steps"):
        assert whole.summary[key] == cut.summary[key], key
    assert dqnlab.build_config().eval.max_return_to_go is None  # off unless a preset or config sets it
