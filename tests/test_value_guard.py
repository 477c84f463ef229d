"""The divergence guard: every value-based run records the scale of its Q-values (metrics.csv's
q_max at each evaluation, summary.json's q_max and q_bound) and warns once, on stderr and in
summary.json, when |Q| goes far past the most any return can be."""

from __future__ import annotations

import json
import math

import pytest

import dqnlab
from dqnlab.algos.dqn import DQNLoop
from dqnlab.runtime.loop import VALUE_SLACK, value_bound
from dqnlab.runtime.rundir import read_metrics

SMALL = {"total_steps": 2000, "artifacts": False, "eval.every_steps": 500, "eval.episodes": 3, "eval.final_episodes": 3}


def test_value_bound_by_hand():
    assert value_bound(1.0, 0.99) == pytest.approx(100.0)  # 1 + 0.99 + 0.99^2 + ... = 1 / 0.01
    assert value_bound(2.5, 0.9) == pytest.approx(25.0)
    assert value_bound(0.0, 0.99) == 0.0
    assert value_bound(1.0, 1.0) == math.inf  # undiscounted: no bound
    assert value_bound(0.0, 1.0) == 0.0


def _train(tmp_path, preset="default", **overrides):
    cfg = dqnlab.build_config(preset, **{**SMALL, **overrides})
    return dqnlab.train(cfg, tmp_path / "run", progress=False)


def test_dqn_records_its_q_scale_and_the_bound_of_cartpole(tmp_path, capsys):
    result = _train(tmp_path)
    evals = [r for r in read_metrics(result.run_dir / "metrics.csv") if r["kind"] == "eval"]
    q = [float(r["q_max"]) for r in evals]
    assert len(q) >= 3 and all(0.0 < x < 100.0 for x in q)  # CartPole pays 1 a step: |Q| <= 100
    s = json.loads((result.run_dir / "summary.json").read_text())
    assert s["q_bound"] == pytest.approx(100.0)  # max |reward| 1, gamma 0.99
    assert s["q_max"] == pytest.approx(max(q), rel=1e-5)
    assert s["value_warning"] is None
    assert "diverging" not in capsys.readouterr().err


def test_algorithms_without_q_values_leave_the_column_blank(tmp_path):
    result = _train(tmp_path, preset="ppo")
    evals = [r for r in read_metrics(result.run_dir / "metrics.csv") if r["kind"] == "eval"]
    assert evals and all(r["q_max"] == "" for r in evals)
    s = result.summary
    assert s["q_max"] is None and s["q_bound"] is None and s["value_warning"] is None


def test_a_diverging_estimate_is_warned_about_once(tmp_path, capsys, monkeypatch):
    """|Q| forced past VALUE_SLACK times its bound from the second evaluation on: one warning
    line naming the step, recorded in summary.json, and the scale in metrics.csv."""
    calls = []

    def value_range(self):
        calls.append(self.env_steps)
        q = 10.0 if len(calls) == 1 else VALUE_SLACK * 100.0 * len(calls)
        return q, 1.0, 0.99

    monkeypatch.setattr(DQNLoop, "value_range", value_range)
    result = _train(tmp_path)
    err = capsys.readouterr().err
    assert err.count("Q-values are diverging") == 1
    warning = result.summary["value_warning"]
    assert warning["env_step"] == calls[1] and warning["q_bound"] == pytest.approx(100.0)
    assert warning["q_max"] == pytest.approx(300.0)
    assert f"at step {calls[1]}" in err
    evals = [r for r in read_metrics(result.run_dir / "metrics.csv") if r["kind"] == "eval"]
    assert [float(r["q_max"]) for r in evals][:2] == [10.0, 300.0]
    assert result.summary["q_max"] == pytest.approx(max(float(r["q_max"]) for r in evals))


def test_the_guard_survives_a_resume(tmp_path, capsys, monkeypatch):
    """The warning, given before a checkpoint, is neither lost nor repeated by --resume."""
    monkeypatch.setattr(DQNLoop, "value_range", lambda self: (1000.0, 1.0, 0.99))
    first = _train(tmp_path, total_steps=1000, checkpoint_every=500)
    assert first.summary["value_warning"]["env_step"] <= 1000
    assert capsys.readouterr().err.count("Q-values are diverging") == 1
    resumed = dqnlab.train(run_dir=first.run_dir, resume=True, total_steps=2000, progress=False)
    assert resumed.summary["value_warning"] == first.summary["value_warning"]
    assert "Q-values are diverging" not in capsys.readouterr().err
