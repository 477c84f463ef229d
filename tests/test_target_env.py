"""dqnlab/CartPoleTarget-v0: registration, Gymnasium's checker, the reward by hand, the success
info, and the vectorised version against the single one."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from numpy.testing import assert_allclose, assert_array_equal

import dqnlab  # noqa: F401  (registers the environment)
from dqnlab.config import EnvConfig
from dqnlab.envs.make import make_vec_env, reward_threshold
from dqnlab.envs.physics import step_state
from dqnlab.envs.target import ENV_ID, REWARD_THRESHOLD, CartPoleTargetEnv, target_reward, tolerance


def test_registered_and_passes_gymnasiums_checker():
    env = gym.make(ENV_ID)
    assert env.spec.max_episode_steps == 500
    assert reward_threshold(ENV_ID, None) == REWARD_THRESHOLD
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CartPole's own warnings about infinite velocity bounds
        check_env(env.unwrapped)
    obs, info = env.reset(seed=0)
    assert obs.shape == (5,) and obs.dtype == np.float32
    assert set(info) == {"success", "mean_abs_offset_last_100"}


def test_tolerance_and_reward_by_hand():
    assert tolerance(0.0, 0.5) == 1.0
    assert tolerance(0.5, 0.5) == pytest.approx(0.1)
    assert tolerance(0.25, 0.5) == pytest.approx(0.1**0.25)
    # Upright, still, on target: the full 1.
    assert target_reward(np.array(0.0), np.array(0.0), np.array(0.0)) == pytest.approx(1.0)
    # theta = pi/2 (cos 0): upright 0.5; offset 0.5: centered (1 + 0.1) / 2; theta_dot 5: still 0.55.
    r = target_reward(np.array(np.pi / 2), np.array(5.0), np.array(0.5))
    assert r == pytest.approx(0.5 * 0.55 * 0.55)
    # Far from the target the centering factor tends to 1/2, never to 0.
    assert target_reward(np.array(0.0), np.array(0.0), np.array(3.0)) == pytest.approx(0.5, abs=1e-6)
    # A margin of 0.25 m: 0.25 away pays (1 + 0.1) / 2 for centering.
    assert target_reward(np.array(0.0), np.array(0.0), np.array(0.25), margin=0.25) == pytest.approx(0.55)


def test_margin_sets_the_reward_in_both_versions():
    single = CartPoleTargetEnv(target_range=(1.0, 1.0), margin=0.25)
    single.reset(seed=0)
    single.state = np.array([0.75, 0.0, 0.0, 0.0])
    _, reward, *_ = single.step(0)
    x, _, theta, theta_dot = single.state
    assert reward == pytest.approx(float(target_reward(theta, theta_dot, x - 1.0, margin=0.25)))
    vec = gym.make_vec(ENV_ID, 2, target_range=(1.0, 1.0), margin=0.25)
    vec.reset(seed=0)
    _, rewards, *_ = vec.step(np.array([0, 1]))
    x, _, theta, theta_dot = vec.unwrapped.state
    np.testing.assert_allclose(rewards, target_reward(theta, theta_dot, x - 1.0, margin=0.25), rtol=1e-6)
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="margin"):
            CartPoleTargetEnv(margin=bad)


def test_observation_offset_and_target_range():
    env = CartPoleTargetEnv(target_range=(1.0, 1.0))
    obs, _ = env.reset(seed=0)
    assert env.target == 1.0
    assert obs[4] == pytest.approx(obs[0] - 1.0)
    targets = []
    env = CartPoleTargetEnv()
    for seed in range(50):
        env.reset(seed=seed)
        targets.append(env.target)
    assert -1.5 <= min(targets) < -0.5 and 0.5 < max(targets) <= 1.5


def test_step_physics_reward_and_termination():
    env = CartPoleTargetEnv()
    env.reset(seed=1)
    state = env.state.copy()
    obs, reward, terminated, truncated, info = env.step(1)
    expected = step_state(state, 10.0)
    assert_allclose(obs[:4], expected.astype(np.float32))
    assert reward == pytest.approx(float(target_reward(expected[2], expected[3], expected[0] - env.target)))
    assert 0.0 <= reward <= 1.0 and not terminated and not truncated
    env.state = np.array([0.0, 0.0, 0.25, 0.0])  # past 12 degrees
    *_, terminated, _, info = env.step(0)
    assert terminated and not info["success"]


def test_success_and_mean_offset_over_the_last_100_steps():
    env = CartPoleTargetEnv(target_range=(0.0, 0.0))
    env.reset(seed=0)
    offsets = []
    for _ in range(150):
        # Hold the cart at a chosen place (teleporting: the bookkeeping is what is tested here).
        env.state = np.array([0.05 if len(offsets) < 120 else 0.3, 0.0, 0.0, 0.0])
        _, _, _, _, info = env.step(0)
        offsets.append(abs(env.state[0]))
    assert info["mean_abs_offset_last_100"] == pytest.approx(np.mean(offsets[-100:]))
    assert not info["success"]  # 0.3 away
    env.state = np.array([0.05, 0.0, 0.0, 0.0])
    _, _, _, _, info = env.step(0)
    assert info["success"]  # within 0.1 with the pole up


def test_time_limit_is_500_steps():
    from controllers import acts

    env = gym.make(ENV_ID)
    obs, _ = env.reset(seed=3)
    for t in range(1, 501):  # noqa: B007 (its last value is checked below)
        obs, _, terminated, truncated, info = env.step(int(acts("target_lqr", 5)(obs)))
        assert not terminated
        if truncated:
            break
    assert t == 500 and info["success"] and info["mean_abs_offset_last_100"] < 0.1


def test_moving_target():
    env = CartPoleTargetEnv(move_every=10)
    env.reset(seed=0)
    targets = {env.target}
    for _ in range(30):
        env.step(0 if env.state[2] < 0 else 1)
        targets.add(env.target)
    assert len(targets) == 4  # the first, then new ones after steps 10, 20 and 30
    with pytest.raises(ValueError, match="move_prob"):
        CartPoleTargetEnv(move_prob=2.0)
    with pytest.raises(ValueError, match="target_range"):
        CartPoleTargetEnv(target_range=(1.0, 3.0))


def test_vector_version_matches_the_single_one():
    envs = make_vec_env(EnvConfig(id=ENV_ID), 4)
    assert type(envs.unwrapped).__name__ == "CartPoleTargetVectorEnv"
    obs, info = envs.reset(seed=0)
    assert obs.shape == (4, 5) and info["success"].shape == (4,)
    singles = [CartPoleTargetEnv() for _ in range(4)]
    rng = np.random.default_rng(0)
    for _ in range(60):
        for i, env in enumerate(singles):  # put each single env in the vector env's state
            env.state = envs.unwrapped.state[:, i].copy()
            env.target = float(envs.unwrapped.targets[i])
        actions = rng.integers(0, 2, size=4)
        active = ~envs.unwrapped.prev_done
        obs, reward, terminated, _, info = envs.step(actions)
        for i, env in enumerate(singles):
            if active[i]:
                o, r, te, _, _ = env.step(int(actions[i]))
                assert_allclose(obs[i], o, rtol=1e-6)
                assert reward[i] == pytest.approx(r, rel=1e-6) and terminated[i] == te


def test_vector_mean_offset_matches_the_single_definition():
    envs = make_vec_env(EnvConfig(id=ENV_ID, max_episode_steps=150), 2)
    obs, _ = envs.reset(seed=0)
    base = envs.unwrapped
    offsets = []
    from controllers import acts

    for _ in range(150):
        obs, _, terminated, truncated, info = envs.step(acts("target_lqr", 5)(obs))
        offsets.append(np.abs(base.state[0] - base.targets))
    assert truncated.all() and not terminated.any()
    assert_allclose(info["mean_abs_offset_last_100"], np.mean(offsets[-100:], axis=0))
    assert_array_equal(info["success"], np.abs(base.state[0] - base.targets) < 0.1)
