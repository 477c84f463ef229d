"""Long-horizon evaluation: survival and cart drift in EvalResult, and `dqnlab evaluate` with
--max-steps and perturbations, on hand-made policies (an LQR controller as a linear Q-network)."""

import json

import numpy as np
import pytest
import torch
from controllers import acts
from numpy.testing import assert_array_equal

import dqnlab
from dqnlab.cli.main import main
from dqnlab.config import EnvConfig, NetworkConfig
from dqnlab.envs import lqr as control
from dqnlab.envs.make import make_vec_env
from dqnlab.nn.networks import build_mlp
from dqnlab.runtime.evaluation import EvalResult, Evaluator
from dqnlab.runtime.policy import Policy


def lqr_policy() -> Policy:
    """A linear Q-network whose greedy action is the LQR push: Q1 - Q0 = -K s."""
    cfg = NetworkConfig(hidden=[])
    net = build_mlp(cfg, 4, 2)
    with torch.no_grad():
        net[-1].weight.zero_()
        net[-1].bias.zero_()
        net[-1].weight[1] = -torch.as_tensor(control.lqr_gain(), dtype=torch.float32)
    return Policy(net, "CartPole-v1", (4,), 2, cfg)


def always_right(obs):
    return np.ones(len(obs), dtype=np.int64)


def test_the_linear_network_is_the_lqr_controller():
    obs = np.random.default_rng(0).uniform(-0.2, 0.2, size=(500, 4)).astype(np.float32)
    assert_array_equal(lqr_policy()(obs), acts("lqr")(obs))


def test_old_style_results_still_work():
    r = EvalResult(np.array([1.0, 3.0]), np.array([1, 3]))
    assert r.survival is None and set(r.as_dict()) == {"mean", "std", "min", "max", "episodes", "mean_length"}


def test_survival_and_drift_of_a_balancing_controller():
    ev = Evaluator(EnvConfig(max_episode_steps=2000), max_envs=10, track_drift=True)
    try:
        res = ev.run(acts("lqr"), 20, seed=0)
    finally:
        ev.close()
    assert_array_equal(res.lengths, 2000)
    assert res.survival == 1.0 and res.survived.all()
    assert (res.final_abs_x <= res.max_abs_x).all() and (res.max_abs_x < 0.5).all()
    d = res.as_dict()
    assert d["survival"] == 1.0 and d["max_abs_x_max"] == pytest.approx(res.max_abs_x.max())


def test_drift_is_the_true_cart_position_of_each_episode():
    # Pushing right always: the pole falls within a few dozen steps. Replay the same episodes by
    # hand on the same environments and seed and compare.
    cfg = EnvConfig(obs_noise=0.5)  # noisy observations must not leak into the drift
    ev = Evaluator(cfg, max_envs=5, track_drift=True)
    try:
        res = ev.run(always_right, 5, seed=3)
    finally:
        ev.close()
    assert res.survival == 0.0
    envs = make_vec_env(cfg, 5)
    envs.reset(seed=3)
    xs = [np.abs(envs.unwrapped.state[0])]
    for _ in range(res.lengths.max()):
        envs.step(always_right(np.zeros((5, 4))))
        xs.append(np.abs(envs.unwrapped.state[0]))
    xs = np.array(xs)  # (steps + 1, 5)
    for i, n in enumerate(res.lengths):
        assert res.max_abs_x[i] == pytest.approx(xs[: n + 1, i].max())
        assert res.final_abs_x[i] == pytest.approx(xs[n, i])


def test_drift_is_off_by_default_and_for_other_envs():
    for cfg, track in [(EnvConfig(), False), (EnvConfig(id="Acrobot-v1", max_episode_steps=20), True)]:
        ev = Evaluator(cfg, max_envs=2, track_drift=track)
        try:
            res = ev.run(lambda o: np.zeros(len(o), dtype=np.int64), 2, seed=0)
        finally:
            ev.close()
        assert res.max_abs_x is None and "max_abs_x_max" not in res.as_dict()
        assert res.survived is not None
    assert res.survival == 1.0  # Acrobot, pushing one way for 20 steps: truncated, not terminated


def test_api_evaluate_under_perturbations():
    policy = lqr_policy()
    plain = dqnlab.evaluate(policy, episodes=10, seed=0, max_steps=1000)
    assert plain.survival == 1.0 and plain.max_abs_x is not None
    noisy = dqnlab.evaluate(
        policy, episodes=10, seed=0, max_steps=1000, obs_noise=0.05, action_noise=0.1, force_noise=0.1, randomize=True
    )
    assert noisy.lengths.max() <= 1000
    assert not np.array_equal(plain.max_abs_x, noisy.max_abs_x)
    with pytest.raises(dqnlab.DqnlabError, match="action_noise"):
        dqnlab.evaluate(policy, episodes=2, action_noise=2.0)


def _run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_reports_survival_and_drift(tmp_path, capsys):
    path = tmp_path / "policy.pt"
    lqr_policy().save(path)
    code, out, err = _run(capsys, "evaluate", str(path), "--episodes", "6", "--max-steps", "1500", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["survival"] == 1.0 and result["max_steps"] == 1500 and result["perturbations"] == {}
    assert 0 < result["max_abs_x_max"] < 0.5 and result["mean"] == 1500
    code, out, err = _run(capsys, "evaluate", str(path), "--episodes", "4", "--max-steps", "300")
    assert code == 0, err
    assert "survival 100% (4 of 4 reached the 300-step limit)" in out and "cart drift" in out


def test_cli_evaluates_under_noise_and_randomized_physics(tmp_path, capsys):
    path = tmp_path / "policy.pt"
    lqr_policy().save(path)
    code, out, err = _run(
        capsys,
        "evaluate",
        str(path),
        "--episodes",
        "4",
        "--max-steps",
        "300",
        "--seed",
        "5",
        "--obs-noise",
        "0.05",
        "--action-noise",
        "0.1",
        "--force-noise",
        "0.1",
        "--randomize-physics",
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["seed"] == 5
    assert result["perturbations"]["obs_noise"] == 0.05 and result["perturbations"]["action_noise"] == 0.1
    assert result["perturbations"]["randomize"]["length"] == [0.25, 0.75]
    code, out, err = _run(capsys, "evaluate", str(path), "--episodes", "2", "--obs-noise", "0.1,0,0,0")
    assert code == 0 and "under obs noise [0.1, 0.0, 0.0, 0.0]" in out


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--obs-noise", "0.1,0.1"], "2 values but observations have 4"),
        (["--obs-noise", "abc"], "expected a number"),
        (["--action-noise", "1.5"], "probability"),
        (["--force-noise", "-1"], ">= 0"),
    ],
)
def test_cli_bad_perturbations_are_one_line(tmp_path, capsys, args, expected):
    path = tmp_path / "policy.pt"
    lqr_policy().save(path)
    code, out, err = _run(capsys, "evaluate", str(path), "--episodes", "2", *args)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dqnlab: error:") and expected in lines[0]


def test_target_task_outcomes_are_reported():
    ev = Evaluator(EnvConfig(id="dqnlab/CartPoleTarget-v0"), max_envs=10)
    good = ev.run(acts("target_lqr", 5), 20, seed=0)
    blind = ev.run(acts("lqr"), 20, seed=0)  # balances at x = 0, ignores the target
    ev.close()
    assert good.success_rate >= 0.9 and good.as_dict()["mean_abs_offset_last_100"] < 0.1
    assert blind.success_rate < 0.5 and blind.as_dict()["mean_abs_offset_last_100"] > 0.3
    assert "success_rate" not in Evaluator(EnvConfig()).run(acts("lqr"), 2, seed=0).as_dict()


def lqr_policy_with(eval_env: dict, env_id: str = "CartPole-v1") -> Policy:
    base = lqr_policy()
    return Policy(base.net, env_id, (4,), 2, base.network, extra={"eval_env": eval_env})


def test_evaluate_repeats_the_runs_own_time_limit(tmp_path, capsys):
    # A run evaluated with a 60-step cap (CartPole-v1's own is 500) is evaluated again at 60,
    # unless told otherwise; on another environment the record does not apply.
    path = tmp_path / "policy.pt"
    lqr_policy_with({"max_episode_steps": 60}).save(path)
    assert_array_equal(dqnlab.evaluate(path, episodes=3).lengths, 60)
    assert_array_equal(dqnlab.evaluate(path, episodes=3, env_id="CartPole-v1").lengths, 60)
    assert_array_equal(dqnlab.evaluate(path, episodes=3, max_steps=90).lengths, 90)
    assert_array_equal(dqnlab.evaluate(path, episodes=3, env_id="CartPole-v0").lengths, 200)
    code, out, err = _run(capsys, "evaluate", str(path), "--episodes", "3", "--json")
    assert code == 0, err
    assert json.loads(out)["max_steps"] == 60 and json.loads(out)["mean"] == 60
    # A policy file from before the record: the registered limit, as before.
    assert_array_equal(dqnlab.evaluate(lqr_policy(), episodes=2).lengths, 500)


def test_evaluate_repeats_the_runs_own_env_kwargs():
    # The target task with a margin other than its default (0.5): the reward differs, so the return
    # shows which margin the evaluation used.
    net_cfg = NetworkConfig(hidden=[])
    obs = make_vec_env(EnvConfig(id="dqnlab/CartPoleTarget-v0"), 1).observation_space.shape[1]
    policy = Policy(build_mlp(net_cfg, obs, 2), "dqnlab/CartPoleTarget-v0", (obs,), 2, net_cfg)
    recorded = Policy(policy.net, policy.env_id, (obs,), 2, net_cfg, extra={"eval_env": {"kwargs": {"margin": 0.1}}})
    default = dqnlab.evaluate(policy, episodes=2, seed=0, max_steps=50)
    sharp = dqnlab.evaluate(policy, episodes=2, seed=0, max_steps=50, env_kwargs={"margin": 0.1})
    assert default.mean != sharp.mean
    assert dqnlab.evaluate(recorded, episodes=2, seed=0, max_steps=50).mean == sharp.mean
    assert dqnlab.evaluate(recorded, episodes=2, seed=0, max_steps=50, env_kwargs={}).mean == default.mean


@pytest.mark.parametrize(
    "record", [{"max_episode_steps": 0}, {"max_episode_steps": "long"}, {"seed": 3}, ["max_episode_steps", 60]]
)
def test_a_damaged_evaluation_record_is_refused(tmp_path, capsys, record):
    path = tmp_path / "policy.pt"
    data = lqr_policy().to_dict()
    data["extra"] = {"eval_env": record}
    torch.save(data, path)
    code, out, err = _run(capsys, "evaluate", str(path))
    assert code == 1 and "damaged dqnlab policy file" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "preset, overrides, record",
    [
        ("default", ["env.max_episode_steps=60"], {"max_episode_steps": 60}),
        ("default", [], {}),
        # target trains with margin 0.25 and evaluates on 0.5 (eval.env): the evaluation's is kept
        ("target", [], {"kwargs": {"margin": 0.5}}),
    ],
)
def test_a_run_records_the_environment_it_evaluated_on(tmp_path, preset, overrides, record):
    from dqnlab.algos.registry import load_policy

    small = ["total_steps=200", "dqn.learning_starts=100", "eval.every_steps=200", "eval.episodes=2", "artifacts=false"]
    cfg = dqnlab.build_config(preset, seed=0, overrides=[*small, *overrides])
    dqnlab.train(cfg, tmp_path / "run", progress=False)
    assert load_policy(tmp_path / "run").evaluation_env() == record
