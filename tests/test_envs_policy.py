"""Environments (creation, space checks, exact state capture/restore), the saved Policy, and
the Evaluator."""

import io

import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal

from dqnlab.algos.registry import load_policy
from dqnlab.config import EnvConfig, NetworkConfig
from dqnlab.core.errors import ConfigError, DqnlabError
from dqnlab.envs.acrobot_vec import AcrobotVectorEnv
from dqnlab.envs.make import make_vec_env, reward_threshold
from dqnlab.envs.mountaincar_vec import MountainCarVectorEnv
from dqnlab.envs.state import capture_env_state, restore_env_state
from dqnlab.nn.networks import build_mlp
from dqnlab.runtime.evaluation import Evaluator
from dqnlab.runtime.policy import POLICY_FILE, Policy

# ---------------------------------------------------------------------------------------------
# make_vec_env
# ---------------------------------------------------------------------------------------------


def test_cartpole_uses_the_numpy_vector_env():
    envs = make_vec_env(EnvConfig(id="CartPole-v1"), 3)
    try:
        assert type(envs.unwrapped).__name__ == "CartPoleVectorEnv"
        assert envs.num_envs == 3
        obs, _ = envs.reset(seed=0)
        assert obs.shape == (3, 4)
    finally:
        envs.close()


@pytest.mark.parametrize(
    "env_id, obs_dim, n_actions, kind",
    [("Acrobot-v1", 6, 3, AcrobotVectorEnv), ("MountainCar-v0", 2, 3, MountainCarVectorEnv)],
)
def test_other_classic_envs_use_dqnlabs_numpy_vector_envs(env_id, obs_dim, n_actions, kind):
    envs = make_vec_env(EnvConfig(id=env_id), 2)
    try:
        assert isinstance(envs.unwrapped, kind)
        assert envs.single_observation_space.shape == (obs_dim,)
        assert envs.single_action_space.n == n_actions
        obs, _ = envs.reset(seed=0)
        obs, *_ = envs.step(np.array([0, n_actions - 1]))
        assert obs.shape == (2, obs_dim)
    finally:
        envs.close()


def test_max_episode_steps_override_truncates():
    envs = make_vec_env(EnvConfig(id="Acrobot-v1", max_episode_steps=3), 2)
    envs.reset(seed=0)
    truncs = [envs.step(np.array([1, 1]))[3].copy() for _ in range(3)]
    envs.close()
    assert_array_equal(np.array(truncs), [[False, False], [False, False], [True, True]])


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "MountainCarContinuous-v0"])
def test_continuous_action_env_is_refused(env_id):
    with pytest.raises(ConfigError) as info:
        make_vec_env(EnvConfig(id=env_id), 2)
    msg = str(info.value)
    assert env_id in msg
    assert "Discrete" in msg and "Box" in msg
    assert "\n" not in msg


def test_unknown_env_suggests_closest():
    with pytest.raises(ConfigError) as info:
        make_vec_env(EnvConfig(id="CartPol-v1"), 2)
    msg = str(info.value)
    assert "'CartPol-v1'" in msg and "did you mean 'CartPole-v1'" in msg
    assert "\n" not in msg


def test_reward_threshold():
    assert reward_threshold("CartPole-v1", None) == 475.0
    assert reward_threshold("CartPole-v0", None) == 195.0
    assert reward_threshold("CartPole-v1", 100) == 100.0


# ---------------------------------------------------------------------------------------------
# capture_env_state / restore_env_state
# ---------------------------------------------------------------------------------------------


def rollout(envs, actions):
    out = []
    for a in actions:
        obs, reward, terminated, truncated, _ = envs.step(a)
        out.append((obs.copy(), np.asarray(reward).copy(), terminated.copy(), truncated.copy()))
    return out


def assert_same_rollouts(a, b):
    assert len(a) == len(b)
    for t, (x, y) in enumerate(zip(a, b, strict=True)):
        for field, u, v in zip(("obs", "reward", "terminated", "truncated"), x, y, strict=True):
            assert_array_equal(u, v, err_msg=f"step {t}: {field} differs")


def saved_through_torch(state):
    # Checkpoints hold the env state and are loaded with weights_only=True.
    f = io.BytesIO()
    torch.save(state, f)
    f.seek(0)
    return torch.load(f, weights_only=True)


# Short time limits make episodes end (and NEXT_STEP autoresets happen) inside the rollout, so
# the RNG used for resets and the per-env step counters are part of what must be restored.
ENV_CASES = [
    ("CartPole-v1", None, "numpy_vector"),
    ("CartPole-v1", 9, "numpy_vector"),
    ("Acrobot-v1", 9, "sync"),
    ("MountainCar-v0", 9, "sync"),
]


@pytest.mark.parametrize("env_id, max_steps, kind", ENV_CASES)
def test_capture_restore_same_env(env_id, max_steps, kind):
    envs = make_vec_env(EnvConfig(id=env_id, max_episode_steps=max_steps), 3)
    n = envs.single_action_space.n
    rng = np.random.default_rng(0)
    envs.reset(seed=1)
    rollout(envs, [rng.integers(0, n, 3) for _ in range(7)])
    state = capture_env_state(envs)
    assert state is not None and state["kind"] == kind
    state = saved_through_torch(state)
    actions = [rng.integers(0, n, 3) for _ in range(25)]
    first = rollout(envs, actions)
    assert any(f[2].any() or f[3].any() for f in first), "the rollout should contain episode ends"
    restore_env_state(envs, state)
    second = rollout(envs, actions)
    envs.close()
    assert_same_rollouts(first, second)


def _capture_then_restore_into_fresh(env_id, max_steps):
    cfg = EnvConfig(id=env_id, max_episode_steps=max_steps)
    envs = make_vec_env(cfg, 3)
    n = envs.single_action_space.n
    rng = np.random.default_rng(1)
    envs.reset(seed=2)
    rollout(envs, [rng.integers(0, n, 3) for _ in range(7)])
    state = saved_through_torch(capture_env_state(envs))
    actions = [rng.integers(0, n, 3) for _ in range(25)]
    first = rollout(envs, actions)
    # What a resume does: a new process makes new envs, resets them once, then restores.
    fresh = make_vec_env(cfg, 3)
    fresh.reset(seed=12345)
    restore_env_state(fresh, state)
    second = rollout(fresh, actions)
    envs.close()
    fresh.close()
    assert_same_rollouts(first, second)


@pytest.mark.parametrize(
    "env_id, max_steps",
    [
        ("CartPole-v1", None),
        ("CartPole-v1", 9),
        ("MountainCar-v0", None),
        ("MountainCar-v0", 9),
        # Acrobot's reset state is float32 and its step() makes it float64: restoring a float64
        # state into a freshly reset env must not round it to float32 (no short time limit here, so
        # the restored state carries on for all 25 steps instead of being replaced by a reset).
        ("Acrobot-v1", None),
        ("Acrobot-v1", 9),
    ],
)
def test_capture_restore_into_fresh_env(env_id, max_steps):
    _capture_then_restore_into_fresh(env_id, max_steps)


# ---------------------------------------------------------------------------------------------
# Policy save / load
# ---------------------------------------------------------------------------------------------


def make_policy(batch_norm=False, seed=0):
    net_cfg = NetworkConfig(hidden=[16, 16], batch_norm=batch_norm)
    torch.manual_seed(seed)
    net = build_mlp(net_cfg, 4, 2)
    if batch_norm:  # give the running statistics non-default values
        net.train()
        with torch.no_grad():
            net(torch.randn(64, 4) * 3 + 1)
    net.eval()
    with torch.no_grad():  # centre the head so that both actions are greedy on some observations
        q = net(torch.from_numpy(random_obs(500, seed=99)))
        net[-1].bias[1] -= (q[:, 1] - q[:, 0]).median()
    return Policy(net, "CartPole-v1", (4,), 2, net_cfg)


def random_obs(n=200, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_policy_save_load_round_trip(tmp_path, batch_norm):
    policy = make_policy(batch_norm)
    path = tmp_path / "policy.pt"
    policy.save(path)
    loaded = load_policy(path)
    assert (loaded.env_id, loaded.obs_shape, loaded.n_actions) == ("CartPole-v1", (4,), 2)
    assert loaded.network == policy.network
    obs = random_obs()
    a, b = policy(obs), loaded(obs)
    assert_array_equal(a, b)
    assert len(set(a.tolist())) == 2  # both actions occur, so the comparison is informative
    np.testing.assert_array_equal(policy.q_values(obs), loaded.q_values(obs))
    # A run directory means the policy.pt inside it.
    policy.save(tmp_path / POLICY_FILE)
    assert_array_equal(load_policy(tmp_path)(obs), a)


def test_policy_single_and_batch_calls():
    policy = make_policy()
    obs = random_obs(5)
    single = policy(obs[0])
    assert type(single) is int
    batch = policy(obs)
    assert isinstance(batch, np.ndarray) and batch.shape == (5,)
    assert batch.dtype == np.int64
    assert single == int(batch[0])
    # Lists and float64 work too (raw Gymnasium observations).
    assert policy(obs[0].astype(np.float64).tolist()) == single
    # The greedy action is the argmax of the Q-values.
    assert_array_equal(batch, policy.q_values(obs).argmax(axis=1))


@pytest.mark.parametrize("shape", [(3,), (2, 5), (2, 4, 1)])
def test_policy_rejects_wrong_observation_shape(shape):
    with pytest.raises(DqnlabError) as info:
        make_policy()(np.zeros(shape, dtype=np.float32))
    assert "\n" not in str(info.value)


def load_error(path) -> DqnlabError:
    with pytest.raises(DqnlabError) as info:
        load_policy(path)
    msg = str(info.value)
    assert "\n" not in msg, msg
    return info.value


def test_load_policy_missing_file(tmp_path):
    err = load_error(tmp_path / "missing.pt")
    assert "not found" in str(err)


def test_load_policy_empty_file(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    assert "empty" in str(load_error(path))


def test_load_policy_random_bytes(tmp_path):
    path = tmp_path / "random.pt"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    assert str(path) in str(load_error(path))


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.99])
def test_load_policy_truncated_file(tmp_path, fraction):
    good = tmp_path / "good.pt"
    make_policy().save(good)
    data = good.read_bytes()
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(data[: int(len(data) * fraction)])
    load_error(bad)


@pytest.mark.parametrize(
    "obj",
    [
        {"weights": torch.zeros(3)},
        {"format": "something.else", "state_dict": {}},
        [1, 2, 3],
        torch.zeros(2),
    ],
)
def test_load_policy_foreign_torch_file(tmp_path, obj):
    path = tmp_path / "foreign.pt"
    torch.save(obj, path)
    assert "not a dqnlab policy" in str(load_error(path))


def test_load_policy_damaged_policy_dict(tmp_path):
    data = make_policy().to_dict()
    # Weights of the wrong shape for the declared network.
    bad = dict(data, n_actions=3)
    torch.save(bad, tmp_path / "shape.pt")
    assert "damaged" in str(load_error(tmp_path / "shape.pt"))
    # A missing key.
    bad = {k: v for k, v in data.items() if k != "network"}
    torch.save(bad, tmp_path / "nokey.pt")
    assert "damaged" in str(load_error(tmp_path / "nokey.pt"))
    # Another format version.
    torch.save(dict(data, format_version=99), tmp_path / "version.pt")
    assert "99" in str(load_error(tmp_path / "version.pt"))


def test_load_policy_directory_without_policy(tmp_path):
    assert POLICY_FILE in str(load_error(tmp_path))


# ---------------------------------------------------------------------------------------------
# Evaluator
# ---------------------------------------------------------------------------------------------


def angle_policy(obs):
    # Push toward the side the pole leans to: a mediocre policy with varied episode lengths.
    return (obs[:, 2] > 0).astype(np.int64)


def test_evaluator_episode_count_and_determinism():
    ev = Evaluator(EnvConfig(id="CartPole-v1"), max_envs=4)
    try:
        a = ev.run(angle_policy, 10, seed=7)  # rounds of 4, 4 and 2 environments
        b = ev.run(angle_policy, 10, seed=7)
        c = ev.run(angle_policy, 10, seed=8)
        one = ev.run(angle_policy, 1, seed=7)
    finally:
        ev.close()
    assert a.returns.shape == (10,) and a.lengths.shape == (10,)
    assert one.returns.shape == (1,)
    assert_array_equal(a.returns, b.returns)
    assert_array_equal(a.lengths, b.lengths)
    assert not np.array_equal(a.returns, c.returns)  # the seed matters
    # CartPole pays 1 per step, and only the steps of each episode were counted.
    assert_array_equal(a.returns, a.lengths.astype(np.float64))
    assert (a.lengths >= 1).all() and (a.lengths <= 500).all()
    assert len(set(a.lengths.tolist())) > 1
    d = a.as_dict()
    assert d["episodes"] == 10
    assert d["mean"] == pytest.approx(a.returns.mean())
    assert d["min"] == a.returns.min() and d["max"] == a.returns.max()


def test_evaluator_accepts_a_policy():
    # A Policy is an ActFn: batch in, actions out.
    ev = Evaluator(EnvConfig(id="CartPole-v1"), max_envs=3)
    try:
        res = ev.run(make_policy(), 5, seed=0)
    finally:
        ev.close()
    assert res.returns.shape == (5,)
