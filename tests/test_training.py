"""Training runs end to end: determinism, resume, episode boundaries in the replay buffer."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import metrics_without_wall

import dqnlab
from dqnlab.core.fileio import safe_torch_load


def policy_weights(run_dir):
    return safe_torch_load(run_dir / "policy.pt", "policy")["state_dict"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_run_directory_contents(tmp_path, tiny):
    res = dqnlab.train(tiny(seed=0), tmp_path / "run", progress=False)
    run = tmp_path / "run"
    for name in ("config.yaml", "metrics.csv", "policy.pt", "checkpoint.pt", "summary.json"):
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    for key in (
        "solved",
        "env_steps",
        "train_seconds",
        "eval_mean",
        "eval_std",
        "eval_episodes",
        "seed",
        "preset",
        "versions",
    ):
        assert key in summary, key
    assert summary == res.summary
    assert summary["env_steps"] >= 3000 and summary["eval_episodes"] == 4
    rows = metrics_without_wall(run)
    kinds = {r["kind"] for r in rows}
    assert kinds == {"train", "eval"}
    # config.yaml round-trips to the same config
    assert dqnlab.build_config(config_file=run / "config.yaml") == tiny(seed=0)


def test_same_seed_same_run_and_different_seeds_differ(tmp_path, tiny):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        dqnlab.train(tiny(seed=seed), tmp_path / name, progress=False)
    assert metrics_without_wall(tmp_path / "a") == metrics_without_wall(tmp_path / "b")
    assert_same_weights(policy_weights(tmp_path / "a"), policy_weights(tmp_path / "b"))
    assert metrics_without_wall(tmp_path / "a") != metrics_without_wall(tmp_path / "c")
    wa, wc = policy_weights(tmp_path / "a"), policy_weights(tmp_path / "c")
    assert any(not torch.equal(wa[k], wc[k]) for k in wa)


RESUMABLE = {
    "dqn": {},
    "dqn-acrobot": {"env.id": "Acrobot-v1"},
    # env.kwargs keep Gymnasium's SyncVectorEnv (its TimeLimit and autoreset state are saved
    # through private names, which this variant guards); without them, MountainCar is NumPy.
    "dqn-mountaincar-sync-vector-env": {"env.id": "MountainCar-v0", "env.kwargs": {"goal_velocity": 0}},
    "dqn-mountaincar": {"env.id": "MountainCar-v0"},
    "dqn-held-exploration": {"explore.hold": 8, "explore.hold_duration": "zeta"},
    "dqn-acrobot-cut-evaluations": {"env.id": "Acrobot-v1", "eval.max_return_to_go": 0.0},
    "dqn-acrobot-shortlist": {"env.id": "Acrobot-v1", "eval.shortlist": 3, "eval.shortlist_episodes": 6},
    "dqn-input-scaling": {"env.id": "MountainCar-v0", "network.input_scaling": "bounds", "explore.hold": 4},
    "dqn-prioritized-dueling": {"dqn.prioritized": True, "network.dueling": True},
    "dqn-quantiles-prioritized": {"dqn.n_quantiles": 5, "dqn.prioritized": True},
    "dqn-batchnorm-per-episode-target": {
        "network.batch_norm": True,
        "dqn.target_update_unit": "episodes",
        "dqn.target_update_every": 3,
    },
    # constant rates: a linear schedule spans total_steps, which this test changes on resume
    "ppo": {"algo": "ppo", "ppo.n_steps": 16, "ppo.minibatch_size": 32, "ppo.epochs": 2, "ppo.lr_schedule": "constant"},
    "tabular": {"algo": "tabular"},
    "random": {"algo": "baseline", "baseline.controller": "random"},
    "pqn": {"algo": "pqn", "network.layer_norm": True, "pqn.n_steps": 16, "pqn.lr_schedule": "constant"},
    "dqn-layernorm": {"network.layer_norm": True},
    "dqn-policy-average": {"dqn.policy_average_tau": 0.01},
    "dqn-policy-average-input-scaling": {
        "env.id": "MountainCar-v0",
        "network.input_scaling": "bounds",
        "dqn.policy_average_tau": 0.01,
    },
}


@pytest.mark.parametrize("variant", list(RESUMABLE))
def test_resume_matches_uninterrupted_run(tmp_path, tiny, variant):
    cfg = tiny(seed=3, total_steps=4000, **{"env.num_envs": 4, **RESUMABLE[variant]})
    dqnlab.train(cfg, tmp_path / "straight", progress=False)
    # Stop half way (a budget of 2000), then resume with the full budget.
    dqnlab.train(cfg, tmp_path / "split", progress=False, total_steps=2000)
    dqnlab.train(run_dir=tmp_path / "split", resume=True, progress=False, total_steps=4000)
    assert metrics_without_wall(tmp_path / "straight") == metrics_without_wall(tmp_path / "split")
    assert_same_weights(policy_weights(tmp_path / "straight"), policy_weights(tmp_path / "split"))
    a = safe_torch_load(tmp_path / "straight" / "checkpoint.pt", "checkpoint")
    b = safe_torch_load(tmp_path / "split" / "checkpoint.pt", "checkpoint")
    assert a["algo_state"].keys() == b["algo_state"].keys()
    if "learner" in a["algo_state"]:
        assert a["algo_state"]["learner"].keys() == b["algo_state"]["learner"].keys()
        for net in ("online", "average"):
            if net in a["algo_state"]["learner"]:
                assert_same_weights(a["algo_state"]["learner"][net], b["algo_state"]["learner"][net])


def test_autoreset_step_never_enters_the_buffer(tmp_path, tiny):
    # 1-step transitions so that each buffer row is one environment step.
    dqnlab.train(tiny(seed=0, **{"dqn.n_step": 1, "env.num_envs": 8}), tmp_path / "r", progress=False)
    buf = safe_torch_load(tmp_path / "r" / "checkpoint.pt", "checkpoint")["algo_state"]["buffer"]
    obs = buf["obs"].numpy()
    # CartPole pays +1 on every real step; the NEXT_STEP autoreset step pays 0.
    np.testing.assert_array_equal(buf["rewards"].numpy(), 1.0)
    # An autoreset step would start from a terminal observation (|x| > 2.4 or |angle| > 12 deg).
    assert (np.abs(obs[:, 0]) <= 2.4).all()
    assert (np.abs(obs[:, 2]) <= 12 * 2 * np.pi / 360).all()
    # Terminal transitions end outside those bounds, and are flagged terminated.
    term = buf["terminated"].numpy() == 1
    nxt = buf["next_obs"].numpy()
    outside = (np.abs(nxt[:, 0]) > 2.4) | (np.abs(nxt[:, 2]) > 12 * 2 * np.pi / 360)
    np.testing.assert_array_equal(term, outside)
    assert term.sum() > 10


def test_truncated_transitions_are_bootstrapped(tmp_path, tiny):
    # A 10-step time limit: nearly every episode is truncated, never terminated by the limit.
    cfg = tiny(
        seed=0,
        total_steps=1500,
        **{"dqn.n_step": 1, "env.max_episode_steps": 10, "explore.schedule": "constant", "explore.start": 0.0},
    )
    dqnlab.train(cfg, tmp_path / "r", progress=False)
    buf = safe_torch_load(tmp_path / "r" / "checkpoint.pt", "checkpoint")["algo_state"]["buffer"]
    rows = metrics_without_wall(tmp_path / "r")
    truncated_episodes = sum(1 for r in rows if r["kind"] == "train" and r["length"] == "10")
    assert truncated_episodes > 50
    nxt = buf["next_obs"].numpy()
    outside = (np.abs(nxt[:, 0]) > 2.4) | (np.abs(nxt[:, 2]) > 12 * 2 * np.pi / 360)
    np.testing.assert_array_equal(buf["terminated"].numpy() == 1, outside)


def test_loaded_policy_matches_delivered_policy(tmp_path, tiny):
    res = dqnlab.train(tiny(seed=0), tmp_path / "r", progress=False)
    loaded = dqnlab.load_policy(tmp_path / "r")
    obs = np.random.default_rng(0).normal(size=(256, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded(obs), res.policy(obs))
    # Re-evaluating the loaded policy with the same seeds reproduces the summary.
    ev = dqnlab.evaluate(loaded, episodes=7, seed=5)
    ev2 = dqnlab.evaluate(tmp_path / "r" / "policy.pt", episodes=7, seed=5)
    np.testing.assert_array_equal(ev.returns, ev2.returns)


@pytest.mark.parametrize("env_id", ["Acrobot-v1", "MountainCar-v0"])
def test_other_discrete_envs_train(tmp_path, tiny, env_id):
    res = dqnlab.train(
        tiny(seed=0, total_steps=1500, **{"env.id": env_id, "eval.episodes": 2, "eval.final_episodes": 2}),
        tmp_path / "r",
        progress=False,
    )
    assert res.summary["env_id"] == env_id and res.summary["env_steps"] >= 1500


def test_lunarlander_preset_trains_when_box2d_is_installed(tmp_path, tiny):
    pytest.importorskip("Box2D", reason='LunarLander-v3 needs Box2D: pip install "dqnlab[box2d]"')
    overrides = {"eval.every_steps": 1000, "eval.episodes": 2, "eval.early_stop": True}
    cfg = tiny(preset="lunarlander", seed=0, total_steps=1500, **overrides)
    res = dqnlab.train(cfg, tmp_path / "r", progress=False)
    assert res.summary["env_id"] == "LunarLander-v3" and res.summary["preset"] == "lunarlander"
    assert res.summary["env_steps"] >= 1500 and res.summary["threshold"] == 200


def test_input_scaling_is_in_replay_and_in_the_delivered_network(tmp_path, tiny):
    cfg = tiny(seed=0, total_steps=1500, **{"env.id": "MountainCar-v0", "network.input_scaling": "bounds"})
    res = dqnlab.train(cfg, tmp_path / "r", progress=False)
    buf = safe_torch_load(tmp_path / "r" / "checkpoint.pt", "checkpoint")["algo_state"]["buffer"]
    obs = buf["obs"].numpy()[: len(buf["actions"])]
    assert np.abs(obs).max() <= 1.0 and obs[:, 1].std() > 0.05  # velocities in [-0.07, 0.07] now span [-1, 1]
    # the delivered policy takes raw observations, and reloads to the same actions
    raw = np.random.default_rng(0).uniform([-1.2, -0.07], [0.6, 0.07], size=(256, 2)).astype(np.float32)
    loaded = dqnlab.load_policy(tmp_path / "r")
    np.testing.assert_array_equal(loaded(raw), res.policy(raw))
    scaled = (raw - np.float32([-0.3, 0.0])) * np.float32([2 / 1.8, 2 / 0.14])
    q_raw = loaded.q_values(raw)
    q_scaled = loaded.net[1](torch.from_numpy(scaled.astype(np.float32))).detach().numpy()
    np.testing.assert_allclose(q_raw, q_scaled, rtol=1e-5, atol=1e-5)


def test_batch_norm_network_trains_and_reloads(tmp_path, tiny):
    res = dqnlab.train(tiny(seed=0, **{"network.batch_norm": True}), tmp_path / "r", progress=False)
    obs = np.random.default_rng(1).normal(size=(64, 4)).astype(np.float32)
    np.testing.assert_array_equal(dqnlab.load_policy(tmp_path / "r")(obs), res.policy(obs))
    # A single observation works in eval mode (BatchNorm in train mode would refuse a batch of 1).
    assert isinstance(res.policy(obs[0]), int)


@pytest.mark.slow
def test_default_preset_solves_cartpole_v1(tmp_path):
    """The one real learning test: the default preset, seed 0, solves CartPole-v1."""
    res = dqnlab.train(dqnlab.build_config(seed=0), tmp_path / "r", progress=False)
    assert res.summary["solved"], res.summary
    assert res.summary["eval_mean"] >= 475 and res.summary["eval_episodes"] == 100
    # The reloaded policy balances Gymnasium's own (non-vectorised) CartPole-v1 for 500 steps.
    policy = dqnlab.load_policy(tmp_path / "r")
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=12345)
    steps = 0
    while True:
        obs, _, terminated, truncated, _ = env.step(policy(obs))
        steps += 1
        if terminated or truncated:
            break
    assert steps == 500 and not terminated
