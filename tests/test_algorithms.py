"""PPO, tabular Q-learning and the baselines: their math by hand, their runs end to end, and the
stop and delivery rules the tutorial presets need."""

import json

import numpy as np
import pytest
import torch

import dqnlab
from dqnlab.algos.baselines import AngleRule, LinearFeedback, RandomController
from dqnlab.algos.ppo import gae, ppo_losses
from dqnlab.algos.registry import load_policy
from dqnlab.algos.schedules import log_episode
from dqnlab.algos.tabular import QTable, discretise, q_update
from dqnlab.config import TabularConfig
from dqnlab.config.presets import PRESETS
from dqnlab.core.errors import ConfigError

# -- PPO math -------------------------------------------------------------------------------------


def test_gae_by_hand_with_termination_truncation_and_autoreset_step():
    # One env, 5 steps: t0, t1 (terminated), t2 (autoreset step: invalid), t3, t4 (rollout end).
    r = np.array([[1.0], [1.0], [0.0], [1.0], [1.0]])
    v = np.array([[0.5], [0.4], [9.0], [0.2], [0.1]])
    nv = np.array([[0.4], [7.0], [0.2], [0.1], [0.3]])  # V of each step's own next observation
    term = np.array([[0.0], [1.0], [0.0], [0.0], [0.0]])
    done = term.copy()
    valid = np.array([[True], [True], [False], [True], [True]])
    g, lam = 0.9, 0.5
    adv = gae(r, v, nv, term, done, valid, g, lam)
    d4 = 1 + g * 0.3 - 0.1  # rollout end bootstraps
    d3 = 1 + g * 0.1 - 0.2
    d1 = 1 + 0 - 0.4  # terminated: no bootstrap, and the recursion stops
    d0 = 1 + g * 0.4 - 0.5
    expected = [d0 + g * lam * d1, d1, 0.0, d3 + g * lam * d4, d4]
    np.testing.assert_allclose(adv[:, 0], expected)


def test_gae_truncation_bootstraps_but_cuts_the_recursion():
    r = np.array([[1.0], [1.0]])
    v = np.array([[0.0], [0.0]])
    nv = np.array([[2.0], [5.0]])
    term = np.zeros((2, 1))
    done = np.array([[1.0], [0.0]])  # step 0 truncated by a time limit
    adv = gae(r, v, nv, term, done, np.ones((2, 1), bool), 0.5, 1.0)
    np.testing.assert_allclose(adv[:, 0], [1 + 0.5 * 2.0, 1 + 0.5 * 5.0])


def test_ppo_losses_by_hand():
    logits = torch.tensor([[0.0, 0.0], [np.log(3.0), 0.0]])  # probs (.5,.5) and (.75,.25)
    actions = torch.tensor([0, 0])
    old_logp = torch.log(torch.tensor([0.25, 0.75]))  # ratios 2.0 and 1.0
    adv = torch.tensor([1.0, -1.0])
    values, returns = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    pol, val, ent = ppo_losses(logits, actions, old_logp, adv, values, returns, clip=0.2)
    # sample 0: min(2 * 1, 1.2 * 1) = 1.2; sample 1: min(1 * -1, 1 * -1) = -1
    assert pol.item() == pytest.approx(-(1.2 - 1.0) / 2)
    assert val.item() == pytest.approx((1 + 4) / 2)
    h0 = np.log(2)
    h1 = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))
    assert ent.item() == pytest.approx((h0 + h1) / 2, rel=1e-6)


# -- tabular --------------------------------------------------------------------------------------


def test_discretise_by_hand():
    obs = np.array([[0.0, -5.0, 0.05], [0.0, 0.99, -1.0], [0.0, 1.0, 0.0]])
    cells = discretise(obs, np.array([1, 2]), np.array([4, 2]), np.array([-1.0, -0.1]), np.array([1.0, 0.1]))
    # dim 1: 4 bins over [-1, 1] (-5 -> 0, 0.99 -> 3, 1.0 -> clipped to 3); dim 2: 2 bins over [-0.1, 0.1]
    assert cells.tolist() == [0 * 2 + 1, 3 * 2 + 0, 3 * 2 + 1]


def test_q_update_by_hand_including_terminal_and_repeats():
    table = np.zeros((3, 2))
    table[1] = [1.0, 4.0]
    q_update(
        table,
        np.array([0, 0, 2]),
        np.array([1, 1, 0]),
        np.array([1.0, 1.0, 1.0]),
        np.array([1, 1, 1]),
        np.array([0.0, 0.0, 1.0]),
        gamma=0.5,
        lr=0.1,
    )
    # (0,1): two increments of 0.1 * (1 + 0.5 * 4 - 0) = 0.3 each; (2,0): terminal, 0.1 * 1
    assert table[0, 1] == pytest.approx(0.6)
    assert table[2, 0] == pytest.approx(0.1)
    assert table[1].tolist() == [1.0, 4.0]


def test_log_episode_schedule_is_the_tutorials():
    # max(0.1, min(1, 1 - log10((n + 1) / 25)))
    assert log_episode(0, 1.0, 0.1, 25) == 1.0
    assert log_episode(24, 1.0, 0.1, 25) == 1.0
    assert log_episode(249, 1.0, 0.1, 25) == pytest.approx(0.1)
    assert log_episode(49, 1.0, 0.01, 25) == pytest.approx(1 - np.log10(2))


def test_qtable_module_reads_the_table():
    cfg = TabularConfig(dims=[0], bins=[2], low=[-1.0], high=[1.0])
    q = QTable(cfg, 2)
    q.table.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64))
    out = q(torch.tensor([[-0.5, 9.0], [0.5, 9.0]]))
    assert out.argmax(dim=1).tolist() == [0, 1]


# -- baselines ------------------------------------------------------------------------------------


def test_angle_rule_and_linear_feedback():
    obs = torch.tensor([[0.0, 0.0, 0.1, 0.0], [0.0, 0.0, -0.1, 0.0]])
    assert AngleRule()(obs).argmax(dim=1).tolist() == [1, 0]
    # u = -K x with K = (0, 0, -10, 0): a right lean gives positive force, a push right
    assert LinearFeedback(np.array([0.0, 0.0, -10.0, 0.0]))(obs).argmax(dim=1).tolist() == [1, 0]


def test_random_controller_is_reproducible():
    a = RandomController(2, seed=5)(torch.zeros(50, 4)).argmax(dim=1)
    b = RandomController(2, seed=5)(torch.zeros(50, 4)).argmax(dim=1)
    assert torch.equal(a, b) and 10 < int(a.sum()) < 40


# -- runs end to end ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"algo": "ppo", "ppo.n_steps": 16, "ppo.minibatch_size": 32},
        {"algo": "tabular"},
        {"algo": "baseline", "baseline.controller": "lqr"},
        {"algo": "baseline", "baseline.controller": "random"},
        {"algo": "dqn", "dqn.prioritized": True, "network.dueling": True},
    ],
)
def test_each_algorithm_trains_saves_and_reloads(tmp_path, tiny, fields):
    res = dqnlab.train(tiny(seed=1, total_steps=2000, **fields), tmp_path / "r", progress=False)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["algo"] == fields["algo"] and summary["status"] == "finished"
    policy = load_policy(tmp_path / "r")
    obs = np.random.default_rng(0).normal(0, 0.05, size=(32, 4)).astype(np.float32)
    if fields.get("baseline.controller") != "random":
        np.testing.assert_array_equal(policy(obs), res.policy(obs))
    assert policy(obs[0]) in (0, 1)
    if fields.get("baseline.controller") == "lqr":
        assert summary["eval_mean"] == 500.0  # the LQR holds every evaluation episode


def test_sections_of_other_algorithms_are_refused(tiny):
    with pytest.raises(ConfigError, match="section 'dqn' has no effect with algo 'ppo'"):
        dqnlab.build_config(**{"algo": "ppo", "dqn.lr": 0.01})
    with pytest.raises(ConfigError, match="section 'ppo' has no effect with algo 'dqn'"):
        dqnlab.build_config(**{"ppo.epochs": 3})
    with pytest.raises(ConfigError, match="num_envs 1"):
        dqnlab.build_config(**{"algo": "ppo", "ppo.rollout_until_done": True})
    with pytest.raises(ConfigError, match="tabular"):
        dqnlab.build_config(**{"algo": "tabular", "tabular.bins": [3, 3]})
    with pytest.raises(ConfigError, match="PPO"):
        dqnlab.build_config(**{"algo": "ppo", "network.batch_norm": True})


def test_tabular_dims_beyond_the_observation_are_one_line(tmp_path, tiny):
    cfg = tiny(
        **{
            "algo": "tabular",
            "env.id": "Acrobot-v1",
            "tabular.dims": [0, 9],
            "tabular.bins": [2, 2],
            "tabular.low": [-1, -1],
            "tabular.high": [1, 1],
        }
    )
    with pytest.raises(ConfigError, match="do not fit"):
        dqnlab.train(cfg, tmp_path / "r", progress=False)


def test_episode_budget_and_train_return_stop(tmp_path, tiny):
    s = dqnlab.train(tiny(total_steps=100_000, total_episodes=7), tmp_path / "a", progress=False).summary
    assert s["episodes"] == 7 and s["stop_reason"] == "total_episodes"
    s = dqnlab.train(
        tiny(total_steps=100_000, **{"algo": "baseline", "baseline.controller": "lqr", "eval.stop_train_return": 200}),
        tmp_path / "b",
        progress=False,
    ).summary
    assert s["stop_reason"] == "train_return" and s["longest_train_episode"] >= 200


def test_patience_stops_when_evaluations_stop_improving(tmp_path, tiny):
    # The LQR's first evaluation is perfect; nothing can beat it, so patience 2 stops 2 later.
    cfg = tiny(
        total_steps=100_000,
        **{
            "algo": "baseline",
            "baseline.controller": "lqr",
            "eval.patience": 2,
            "eval.every_episodes": 1,
            "eval.episodes": 1,
            "env.num_envs": 1,
        },
    )
    s = dqnlab.train(cfg, tmp_path / "r", progress=False).summary
    assert s["stop_reason"] == "patience" and s["episodes"] == 3


def test_deliver_longest_episode_keeps_that_network(tmp_path, tiny):
    # The online network plays the training episodes, so it is what this delivery keeps: no average.
    cfg = tiny(
        total_steps=3000,
        **{"eval.deliver": "longest_episode", "env.num_envs": 1, "dqn.policy_average_tau": None},
    )
    res = dqnlab.train(cfg, tmp_path / "r", progress=False)
    rows = [r for r in dqnlab.runtime.rundir.read_metrics(tmp_path / "r" / "metrics.csv") if r["kind"] == "train"]
    assert res.summary["longest_train_episode"] == max(int(r["length"]) for r in rows)
    assert res.summary["best_eval_mean"] is None and res.summary["delivered"] == "longest_episode"


def test_every_preset_is_a_valid_config_and_listed():
    from dqnlab.cli.main import main

    for name in PRESETS:
        cfg = dqnlab.build_config(name)
        assert cfg.preset == name
    for needed in (
        "s0-keras",
        "s2-config",
        "s3b-tabular",
        "s3c-soft",
        "s3c-lucky",
        "s3d-ppo",
        "s4-batchnorm",
        "ppo",
        "tabular",
        "random",
        "angle-rule",
        "lqr",
    ):
        assert needed in PRESETS
    assert main(["presets"]) == 0


@pytest.mark.parametrize("fresh", [False, True])
def test_fresh_starts_change_the_evaluation_episodes(tmp_path, tiny, fresh):
    # A deterministic policy: the same starts give the same evaluation means, fresh ones differ.
    cfg = tiny(total_steps=3000, **{"algo": "baseline", "baseline.controller": "angle", "eval.fresh_starts": fresh})
    dqnlab.train(cfg, tmp_path / "r", progress=False)
    means = {
        r["eval_mean"]
        for r in dqnlab.runtime.rundir.read_metrics(tmp_path / "r" / "metrics.csv")
        if r["kind"] == "eval"
    }
    assert (len(means) > 1) == fresh
