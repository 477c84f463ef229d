"""Solving a task by its success rate (eval.success_threshold) instead of the return, and the
target-tracking LQR baseline that reaches it."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import success_env
from controllers import acts

import dqnlab
from dqnlab.algos.baselines import BaselineLoop, feedback_gain
from dqnlab.core.errors import ConfigError
from dqnlab.envs.make import make_vec_env
from dqnlab.experiments.compare import solve_point
from dqnlab.runtime.evaluation import EvalResult, solves
from dqnlab.runtime.loop import RunContext
from dqnlab.runtime.rundir import METRIC_COLUMNS, MetricsLog
from dqnlab.viz.curves import run_figure
from dqnlab.viz.metrics import read_run_metrics

TARGET = "dqnlab/CartPoleTarget-v0"
REPO = Path(__file__).resolve().parents[1]


def result(successes: list[bool], returns: list[float] | None = None) -> EvalResult:
    n = len(successes)
    ret = np.asarray(returns if returns is not None else [100.0] * n, dtype=np.float64)
    return EvalResult(returns=ret, lengths=np.full(n, 500), success=np.asarray(successes, dtype=bool))


def test_success_lower_bound_by_hand():
    # 3 of 4: p = 0.75, binomial standard error sqrt(0.75 * 0.25 / 4) = 0.2165...
    r = result([True, True, True, False])
    assert r.success_rate == 0.75
    assert r.success_lower_bound(0.0) == 0.75
    assert r.success_lower_bound(2.0) == pytest.approx(0.75 - 2 * (0.75 * 0.25 / 4) ** 0.5)
    assert result([True] * 10).success_lower_bound(2.0) == 1.0  # no spread: no margin
    assert EvalResult(returns=np.ones(2), lengths=np.ones(2)).success_lower_bound(2.0) is None


def test_solves_by_success_or_by_return():
    r = result([True] * 19 + [False], returns=[10.0] * 20)  # 95% success, a poor return
    assert solves(r, threshold=450, success_threshold=0.95)
    assert not solves(r, threshold=450, success_threshold=0.96)
    assert not solves(r, threshold=450, success_threshold=None)
    assert solves(r, threshold=10, success_threshold=None)
    assert not solves(r, threshold=None, success_threshold=None)
    no_success = EvalResult(returns=np.ones(3), lengths=np.ones(3))
    assert not solves(no_success, threshold=None, success_threshold=0.5)


def test_target_lqr_gain_matches_the_control_module():
    rng = np.random.default_rng(0)
    obs = np.concatenate([rng.normal(0, 0.05, (64, 4)), rng.uniform(-1.5, 1.5, (64, 1))], axis=1)
    u = -(obs @ feedback_gain("target_lqr"))
    np.testing.assert_array_equal((u > 0).astype(np.int64), acts("target_lqr", 5)(obs))


def test_target_lqr_baseline_stops_on_success_and_solves(tmp_path, tiny):
    cfg = tiny(
        total_steps=50_000,
        **{
            "algo": "baseline",
            "baseline.controller": "target_lqr",
            "env.id": TARGET,
            "eval.success_threshold": 0.95,
            "eval.early_stop": True,
            "eval.episodes": 20,
            "eval.final_episodes": 20,
        },
    )
    s = dqnlab.train(cfg, tmp_path / "r", progress=False).summary
    assert s["stop_reason"] == "threshold" and s["solved"]
    assert s["success_threshold"] == 0.95 and s["success_rate"] >= 0.95 and s["best_eval_success"] >= 0.95
    m = read_run_metrics(tmp_path / "r")
    assert len(m.eval_success) == 1 and m.eval_success[0] >= 0.95  # solved at the first evaluation
    assert solve_point(tmp_path / "r", s)[0] == s["steps_to_threshold"] == m.eval_step[0]
    with open(tmp_path / "r" / "metrics.csv", newline="") as f:
        confirm = [r for r in csv.DictReader(f) if r["kind"] == "confirm"]
    assert len(confirm) == 1 and float(confirm[0]["eval_success"]) >= 0.95
    # The run's figure shows the success rate on a second axis of the evaluation panel.
    assert len(run_figure(m).axes) == 3  # returns, evaluation (a baseline has no loss or epsilon)


def test_a_controller_that_ignores_the_target_is_not_solved(tmp_path, tiny):
    # The plain LQR balances at x = 0 (a high return) but reaches a random target only by chance.
    cfg = tiny(
        total_steps=2000,
        **{
            "algo": "baseline",
            "baseline.controller": "lqr",
            "env.id": TARGET,
            "eval.success_threshold": 0.95,
            "eval.early_stop": True,
            "eval.episodes": 20,
            "eval.final_episodes": 20,
        },
    )
    s = dqnlab.train(cfg, tmp_path / "r", progress=False).summary
    assert s["stop_reason"] == "total_steps" and not s["solved"]
    assert s["eval_mean"] > 250 and s["success_rate"] < 0.5
    assert solve_point(tmp_path / "r", s) == (None, None)


def test_runs_without_success_have_no_success_axis(tmp_path, tiny):
    dqnlab.train(tiny(**{"algo": "baseline", "baseline.controller": "lqr"}), tmp_path / "r", progress=False)
    m = read_run_metrics(tmp_path / "r")
    assert np.isnan(m.eval_success).all() and len(run_figure(m).axes) == 2


def test_best_evaluation_goes_by_success_rate_first(tmp_path, tiny):
    cfg = tiny(**{"algo": "baseline", "baseline.controller": "random", "env.id": TARGET, "eval.success_threshold": 0.9})
    envs = make_vec_env(cfg.env, cfg.env.num_envs)
    run = BaselineLoop(RunContext(cfg, tmp_path, envs, (5,), 2, 450.0, 0.0, False))
    try:
        run.best_mean, run.best_success = 400.0, 0.5
        assert run._beats_best(result([True] * 6 + [False] * 4, returns=[100.0] * 10))  # 60% beats 50%
        assert not run._beats_best(result([True] * 4 + [False] * 6, returns=[499.0] * 10))
        assert run._beats_best(result([True] * 5 + [False] * 5, returns=[401.0] * 10))  # a tie: return decides
    finally:
        run.close()


def test_success_threshold_needs_a_task_that_reports_success(tmp_path, tiny):
    cfg = tiny(**{"eval.success_threshold": 0.9})
    with pytest.raises(ConfigError, match=r"info\['success'\].*CartPole-v1 does not"):
        dqnlab.train(cfg, tmp_path / "r", progress=False)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"eval.success_threshold": 0.9, "eval.threshold": 400}, "eval.threshold"),
        ({"eval.success_threshold": 0.9, "eval.stop_threshold": 400}, "eval.stop_threshold"),
        ({"eval.success_threshold": 1.5}, "success_threshold"),
        ({"eval.success_threshold": 0}, "success_threshold"),
    ],
)
def test_success_threshold_config_errors(fields, message):
    with pytest.raises(ConfigError, match=message):
        dqnlab.build_config(**fields)


def test_target_lqr_refuses_an_environment_without_a_target(tmp_path, tiny):
    cfg = tiny(**{"algo": "baseline", "baseline.controller": "target_lqr"})
    with pytest.raises(ConfigError, match="5th observation"):
        dqnlab.train(cfg, tmp_path / "r", progress=False)


def test_metrics_of_an_older_run_keep_their_columns(tmp_path):
    # A run begun before eval_success existed: resuming appends rows in the file's own columns,
    # and the reader gives NaN success rates.
    old = [c for c in METRIC_COLUMNS if c != "eval_success"]
    path = tmp_path / "metrics.csv"
    path.write_text(",".join(old) + "\n")
    log = MetricsLog(path)
    log.row(kind="eval", env_step=10, episode=1, eval_mean=5.0, eval_std=1.0, eval_success=0.5, wall_seconds=0.1)
    log.close()
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == old and len(rows[1]) == len(old)
    (tmp_path / "config.yaml").write_text("env: {id: CartPole-v1}\n")
    m = read_run_metrics(tmp_path)
    assert m.eval_mean.tolist() == [5.0] and np.isnan(m.eval_success).all()


# -- eval.env: evaluating on another version of the training environment --------------------------


def test_eval_env_judges_the_policy_on_the_clean_environment(tmp_path, tiny):
    # The LQR under heavy observation noise falls; evaluated without the noise it holds 500 steps.
    fields = {"algo": "baseline", "baseline.controller": "lqr", "env.obs_noise": 0.5, "total_steps": 1000}
    noisy = dqnlab.train(tiny(**fields), tmp_path / "a", progress=False).summary
    clean = dqnlab.train(tiny(**fields, **{"eval.env": {"obs_noise": 0.0}}), tmp_path / "b", progress=False).summary
    assert noisy["eval_mean"] < 200 and clean["eval_mean"] == 500.0
    # Training itself still ran under the noise: its episodes are as short as before.
    assert noisy["longest_train_episode"] == clean["longest_train_episode"] < 200


def test_an_eval_env_that_cannot_be_built_fails_before_the_run_starts(tmp_path, tiny):
    cfg = tiny(**{"env.id": "Acrobot-v1", "eval.env": {"force_noise": 0.1}})  # CartPole-only noise
    with pytest.raises(ConfigError, match="force_noise"):
        dqnlab.train(cfg, tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


@pytest.fixture
def reporting_env():
    success_env.register()
    yield success_env.ENV_ID
    success_env.unregister()


SILENT_EVAL_ENV = {
    "eval.success_threshold": 0.5,
    "eval.early_stop": True,  # the stop test is what failed on the missing success rates
    "eval.env": {"kwargs": {"report_success": False}},
}
"""Training reports info['success'], evaluations (which are what success_threshold judges) do not."""


def test_success_threshold_needs_an_eval_env_that_reports_success(tmp_path, tiny, reporting_env):
    # before: check_fits looked only at the training env, and the first evaluation failed an
    # assert mid-run, after checkpoint.pt and metrics.csv were written
    with pytest.raises(ConfigError, match=r"info\['success'\].*eval\.env") as exc:
        dqnlab.train(tiny(**{"env.id": reporting_env, **SILENT_EVAL_ENV}), tmp_path / "r", progress=False)
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "r").exists()
    # the same environment with success reported in evaluations too trains
    cfg = tiny(**{"env.id": reporting_env, "eval.success_threshold": 0.5, "total_steps": 1000})
    assert dqnlab.train(cfg, tmp_path / "ok", progress=False).summary["success_rate"] is not None


def test_an_eval_env_without_success_is_one_cli_line(tmp_path):
    sets = ["eval.success_threshold=0.5", "eval.env={kwargs: {report_success: false}}", "total_steps=3000"]
    args = ["train", "--env", success_env.ENV_ID, "--run-dir", "r", *(a for s in sets for a in ("--set", s))]
    path = [str(REPO), str(Path(success_env.__file__).parent), os.environ.get("PYTHONPATH", "")]
    proc = subprocess.run(
        [sys.executable, success_env.__file__, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(path)},
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dqnlab: error: eval.success_threshold"), proc.stderr[-2000:]
    assert not (tmp_path / "r").exists()


def test_eval_env_merges_into_the_env_section():
    cfg = dqnlab.build_config("robust", **{"eval.env": {"obs_noise": 0.0, "randomize": {}}})
    ev = cfg.eval_env()
    assert ev.obs_noise == 0.0 and not ev.randomize.ranges() and ev.max_episode_steps == 10_000
    assert cfg.env.obs_noise == 0.05  # training keeps its noise
    assert dqnlab.build_config().eval_env() == dqnlab.build_config().env


@pytest.mark.parametrize(
    "value, message",
    [
        ({"id": "Acrobot-v1"}, "cannot change env.id"),
        ({"pixels": {"mode": "track"}}, "cannot change env.pixels"),
        ({"obs_noise": -1}, "in eval.env: env.obs_noise must be"),
        ({"randomize": {"lenght": [0.4, 0.6]}}, "did you mean 'env.randomize.length'"),
        ({"max_episode_steps": 0}, "env.max_episode_steps"),
        (5, "eval.env"),
    ],
)
def test_eval_env_errors_are_one_line(value, message):
    with pytest.raises(ConfigError, match=message) as info:
        dqnlab.build_config(**{"eval.env": value})
    assert "\n" not in str(info.value)


def test_report_rows_show_task_success_only_for_tasks_that_report_it():
    from dqnlab.viz.report import summary_rows

    rows = dict(summary_rows({"threshold": 450.0, "success_rate": 0.97, "success_threshold": 0.95}))
    assert rows["task success"].startswith("97%") and "95%" in rows["task success"]
    assert "task success" not in dict(summary_rows({"threshold": 475.0}))


@pytest.mark.parametrize(
    "fields",
    [
        {"eval.success_threshold": 0.9},  # CartPole reports no success
        {"algo": "baseline", "baseline.controller": "target_lqr"},  # no target in CartPole's observation
        {
            "algo": "tabular",
            "tabular.dims": [0, 7],
            "tabular.bins": [2, 2],
            "tabular.low": [-1, -1],
            "tabular.high": [1, 1],
        },  # beyond the observation
    ],
)
def test_a_config_that_does_not_fit_the_env_touches_no_run_directory(tmp_path, tiny, fields):
    old = tmp_path / "old"
    dqnlab.train(tiny(**{"algo": "baseline", "baseline.controller": "lqr"}), old, progress=False)
    before = {p.name: p.read_bytes() for p in old.iterdir()}
    with pytest.raises(ConfigError):
        dqnlab.train(tiny(**fields), old, overwrite=True, progress=False)
    assert {p.name: p.read_bytes() for p in old.iterdir()} == before  # --overwrite removed nothing
    with pytest.raises(ConfigError):
        dqnlab.train(tiny(**fields), tmp_path / "new", progress=False)
    assert not (tmp_path / "new").exists()
