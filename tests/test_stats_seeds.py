"""Aggregate statistics by hand, seed-list parsing, and the many-seeds runner."""

import json

import numpy as np
import pytest

from dqnlab.core.errors import ConfigError
from dqnlab.experiments.multiseed import aggregate, parse_seeds
from dqnlab.experiments.stats import bootstrap_ci, iqm, summarize


def test_iqm_by_hand():
    # n = 8: the middle four of the sorted values
    assert iqm([8, 1, 7, 2, 6, 3, 5, 4]) == pytest.approx((3 + 4 + 5 + 6) / 4)
    # n = 4: the middle two
    assert iqm([10, 0, 1, 2]) == pytest.approx(1.5)
    # n = 5: quartiles at 1.25 and 3.75 -> weights 0, .75, 1, .75, 0 over the sorted values
    assert iqm([1, 2, 3, 4, 100]) == pytest.approx((0.75 * 2 + 3 + 0.75 * 4) / 2.5)
    assert iqm([7]) == 7.0
    # outliers do not move it, unlike the mean
    assert iqm([1, 1, 1, 1, 1, 1, 1, 1000]) == 1.0


def test_bootstrap_ci_brackets_and_is_deterministic():
    x = np.random.default_rng(0).normal(10, 1, size=50)
    lo, hi = bootstrap_ci(x, np.mean)
    assert lo < x.mean() < hi and hi - lo < 1.5
    assert bootstrap_ci(x, np.mean) == (lo, hi)
    assert bootstrap_ci([5.0] * 10) == (5.0, 5.0)


def test_summarize_fields():
    s = summarize([1, 2, 3, 4])
    assert s["median"] == 2.5 and s["min"] == 1 and s["max"] == 4 and s["n"] == 4
    assert s["iqm_ci_low"] <= s["iqm"] <= s["iqm_ci_high"]


@pytest.mark.parametrize(
    "text, seeds",
    [("0-3", [0, 1, 2, 3]), ("5", [5]), ("0,3,5", [0, 3, 5]), ("0-2,10-11", [0, 1, 2, 10, 11]), ("2,1,2", [1, 2])],
)
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["5-2", "a-b", "-3", "1-", "", "0-99999999"])
def test_parse_seeds_rejects_nonsense(text):
    with pytest.raises(ConfigError):
        parse_seeds(text)


def test_aggregate_counts_failures_and_solves():
    rows = [
        {"seed": 0, "status": "finished", "solved": True, "eval_mean": 500.0, "env_steps": 10, "train_seconds": 1.0},
        {"seed": 1, "status": "finished", "solved": False, "eval_mean": 300.0, "env_steps": 20, "train_seconds": 2.0},
        {"seed": 2, "status": "failed", "solved": False, "error": "boom"},
    ]
    agg = aggregate(rows)
    assert agg["solved"] == 1 and agg["failed"] == 1 and agg["runs"] == 3
    assert agg["solve_rate"] == pytest.approx(1 / 3)
    assert agg["eval_mean"]["median"] == 400.0


def test_train_seeds_cli(tmp_path, capsys):
    from dqnlab.cli.main import main

    root = tmp_path / "many"
    code = main(
        [
            "train",
            "--seeds",
            "0-1",
            "--workers",
            "2",
            "--run-dir",
            str(root),
            "--quiet",
            "--total-steps",
            "800",
            "--set",
            "eval.episodes=2",
            "--set",
            "eval.final_episodes=2",
            "--set",
            "eval.every_steps=400",
            "--set",
            "dqn.learning_starts=200",
            "--set",
            "artifacts=false",
        ]
    )
    assert code == 0
    summary = json.loads((root / "seeds_summary.json").read_text())
    assert summary["seeds"] == [0, 1] and summary["failed"] == 0
    assert (root / "seed-0" / "policy.pt").is_file() and (root / "seed-1" / "policy.pt").is_file()
    # the two seeds are different runs
    assert (
        summary["per_seed"][0]["eval_mean"] != summary["per_seed"][1]["eval_mean"]
        or (root / "seed-0" / "metrics.csv").read_text() != (root / "seed-1" / "metrics.csv").read_text()
    )
    assert "solved" in capsys.readouterr().out
    # the same output folder with another config is refused, its results untouched
    before = (root / "seeds_summary.json").read_bytes()
    assert main(["train", "--seeds", "0-1", "--run-dir", str(root), "--quiet"]) == 2
    assert "different config" in capsys.readouterr().err
    assert (root / "seeds_summary.json").read_bytes() == before


def test_train_seeds_again_continues_cut_off_runs_and_keeps_finished_ones(tmp_path):
    """`train --seeds` into the same folder continues it, as compare and sweep do (#15)."""
    from dqnlab.cli.main import main

    root = tmp_path / "many"
    cmd = [
        "train",
        "--seeds",
        "0-1",
        "--workers",
        "1",
        "--run-dir",
        str(root),
        "--quiet",
        "--total-steps",
        "800",
        "--set",
        "eval.episodes=2",
        "--set",
        "eval.final_episodes=2",
        "--set",
        "eval.every_steps=400",
        "--set",
        "dqn.learning_starts=200",
        "--set",
        "artifacts=false",
        "--set",
        "checkpoint_every=400",
    ]
    assert main(cmd) == 0
    finished = (root / "seed-0" / "summary.json").stat().st_mtime_ns
    (root / "seed-1" / "summary.json").unlink()  # seed 1 cut off after its last checkpoint
    whole = (root / "seed-1" / "metrics.csv").read_text()
    assert main(cmd) == 0
    assert (root / "seed-0" / "summary.json").stat().st_mtime_ns == finished  # not retrained
    assert json.loads((root / "seed-1" / "summary.json").read_text())["status"] == "finished"
    rows = [line.split(",")[:-1] for line in (root / "seed-1" / "metrics.csv").read_text().splitlines()]
    assert rows == [line.split(",")[:-1] for line in whole.splitlines()]  # resumed exactly
    # more seeds: only the new one trains
    assert main([*cmd[:2], "0-2", *cmd[3:]]) == 0
    assert json.loads((root / "seeds_summary.json").read_text())["seeds"] == [0, 1, 2]
    assert (root / "seed-0" / "summary.json").stat().st_mtime_ns == finished


def test_eval_lower_bound_by_hand():
    from dqnlab.runtime.evaluation import EvalResult

    r = EvalResult(np.array([480.0, 490.0, 500.0, 470.0]), np.ones(4, dtype=np.int64))
    # mean 485, population std sqrt(125) = 11.18, standard error 11.18 / 2
    assert r.lower_bound(0.0) == 485.0
    assert r.lower_bound(2.0) == pytest.approx(485.0 - 2 * np.sqrt(125) / 2)
    perfect = EvalResult(np.full(100, 500.0), np.full(100, 500))
    assert perfect.lower_bound(3.0) == 500.0
