"""Perturbations: dqnlab's NumPy CartPole (cartpole_vec) against Gymnasium's, each kind of noise
measured, physics randomisation, the single-env wrappers, and make_vec_env's choices and errors."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv as GymCartPoleVectorEnv
from numpy.testing import assert_allclose, assert_array_equal

from dqnlab.config import EnvConfig, build_config
from dqnlab.core.errors import ConfigError
from dqnlab.envs.cartpole_vec import CartPoleVectorEnv
from dqnlab.envs.make import make_vec_env
from dqnlab.envs.physics import CartPoleParams, action_force, step_state
from dqnlab.envs.state import capture_env_state, restore_env_state
from dqnlab.envs.wrappers import ActionNoise, ObservationNoise

RANGES = {"length": (0.25, 1.0), "masspole": (0.05, 0.5), "masscart": (0.5, 2.0), "force_mag": (5.0, 15.0)}


def _rollout(envs, actions, seed):
    out = [envs.reset(seed=seed)[0]]
    for a in actions:
        out.append(envs.step(a))
    return out


# ---------------------------------------------------------------------------------------------
# The NumPy CartPole with perturbations
# ---------------------------------------------------------------------------------------------


def test_unperturbed_equals_gymnasium_step_by_step_with_autoresets():
    # A short time limit and random actions: many terminations, truncations and autoresets.
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 2, size=(1500, 6))
    ours = _rollout(CartPoleVectorEnv(num_envs=6, max_episode_steps=40), actions, seed=5)
    ref = _rollout(GymCartPoleVectorEnv(num_envs=6, max_episode_steps=40), actions, seed=5)
    assert_array_equal(ours[0], ref[0])
    truncations = 0
    for a, b in zip(ours[1:], ref[1:], strict=True):
        for x, y in zip(a[:4], b[:4], strict=True):
            assert_array_equal(x, y)
        truncations += b[3].sum()
    assert truncations > 0


def test_default_config_still_gets_gymnasiums_class():
    envs = make_vec_env(EnvConfig(), 2)
    assert type(envs.unwrapped) is GymCartPoleVectorEnv
    envs = make_vec_env(EnvConfig(obs_noise=0.01), 2)
    assert type(envs.unwrapped) is CartPoleVectorEnv


def test_observation_noise_has_the_asked_sigma_and_leaves_the_state_alone():
    sigma = [0.1, 0.0, 0.02, 0.3]
    noisy = make_vec_env(EnvConfig(obs_noise=sigma), 200)
    clean = make_vec_env(EnvConfig(), 200)
    obs, _ = noisy.reset(seed=3)
    obs_clean, _ = clean.reset(seed=3)
    # Start states come from the same stream as without noise: common random numbers.
    assert_array_equal(noisy.unwrapped.state, clean.unwrapped.state)
    errors = [obs - noisy.unwrapped.state.T]
    for _ in range(20):
        obs, *_ = noisy.step(np.ones(200, dtype=np.int64))
        errors.append(obs - noisy.unwrapped.state.T)
    err = np.concatenate(errors)  # (4200, 4)
    assert_allclose(err.std(axis=0), sigma, rtol=0.05, atol=1e-6)
    assert_allclose(err.mean(axis=0), 0.0, atol=0.02)
    assert (err[:, 1] == 0).all() or np.abs(err[:, 1]).max() < 1e-6  # float32 rounding only


def _inferred_forces(before: np.ndarray, after: np.ndarray, params: CartPoleParams) -> np.ndarray:
    """The force of each env's step, from x_dot: x_acc is affine in the force."""
    zero = step_state(before, 0.0, params)[1]
    one = step_state(before, 1.0, params)[1]
    return (after[1] - zero) / (one - zero)


def test_action_noise_replaces_actions_by_uniform_ones():
    envs = CartPoleVectorEnv(num_envs=500, action_noise=0.4)
    envs.reset(seed=0)
    before = envs.state.copy()
    envs.step(np.ones(500, dtype=np.int64))
    forces = _inferred_forces(before, envs.state, envs.params)
    assert_allclose(np.abs(forces), 10.0, rtol=1e-6)
    flipped = (forces < 0).mean()
    assert abs(flipped - 0.2) < 0.05  # p * 1/2: a uniform replacement is the same action half the time


def test_force_noise_is_relative_and_never_reverses():
    envs = CartPoleVectorEnv(num_envs=2000, force_noise=0.2)
    envs.reset(seed=1)
    before = envs.state.copy()
    envs.step(np.ones(2000, dtype=np.int64))
    forces = _inferred_forces(before, envs.state, envs.params)
    assert (forces >= 0).all()
    assert abs(forces.mean() - 10.0) < 0.2 and abs(forces.std() - 2.0) < 0.15


def test_physics_is_drawn_per_env_at_every_reset_and_used():
    envs = CartPoleVectorEnv(num_envs=50, max_episode_steps=5, randomize=RANGES)
    envs.reset(seed=2)
    p0 = envs.params
    for name, (lo, hi) in RANGES.items():
        v = getattr(p0, name)
        assert ((lo <= v) & (v <= hi)).all() and np.unique(v).size == 50
    assert_array_equal(p0.gravity, 9.8)
    assert_allclose(p0.total_mass, p0.masscart + p0.masspole)
    assert_allclose(p0.polemass_length, p0.masspole * p0.length)
    before = envs.state.copy()
    actions = np.ones(50, dtype=np.int64)
    envs.step(actions)
    assert_array_equal(envs.state, step_state(before, action_force(actions, p0.force_mag), p0))
    for _ in range(4):  # the 5th step truncates everything; the 6th autoresets it
        envs.step(actions)
    assert envs.prev_done.all()
    envs.step(actions)
    assert not np.array_equal(envs.params.length, p0.length)


def test_only_autoreset_envs_get_new_physics():
    envs = CartPoleVectorEnv(num_envs=20, randomize={"length": (0.3, 0.9)})
    envs.reset(seed=4)
    lengths = envs.params.length.copy()
    for _ in range(200):
        done_before = envs.prev_done.copy()
        envs.step(np.zeros(20, dtype=np.int64))  # always left: episodes end within a few dozen steps
        changed = envs.params.length != lengths
        assert_array_equal(changed, done_before)
        lengths = envs.params.length.copy()


def test_same_seed_same_noise_and_different_seeds_differ():
    cfg = EnvConfig(obs_noise=0.05, action_noise=0.1, force_noise=0.1, randomize=RANGES)
    actions = np.random.default_rng(0).integers(0, 2, size=(300, 4))

    def obs_of(seed):
        return np.array([r[0] for r in _rollout(make_vec_env(cfg, 4), actions, seed)[1:]])

    assert_array_equal(obs_of(7), obs_of(7))
    assert not np.array_equal(obs_of(7), obs_of(8))


@pytest.mark.parametrize("env_id", ["CartPole-v1", "dqnlab/CartPoleTarget-v0"])
def test_capture_and_restore_continue_identically(env_id):
    cfg = EnvConfig(id=env_id, obs_noise=0.05, action_noise=0.1, force_noise=0.1, randomize=RANGES)
    actions = np.random.default_rng(1).integers(0, 2, size=(200, 3))
    envs = make_vec_env(cfg, 3)
    envs.reset(seed=0)
    for a in actions[:100]:
        envs.step(a)
    saved = capture_env_state(envs)
    first = [envs.step(a)[:4] for a in actions[100:]]
    fresh = make_vec_env(cfg, 3)
    fresh.reset(seed=99)
    restore_env_state(fresh, saved)
    second = [fresh.step(a)[:4] for a in actions[100:]]
    for a, b in zip(first, second, strict=True):
        for x, y in zip(a, b, strict=True):
            assert_array_equal(x, y)


# ---------------------------------------------------------------------------------------------
# make_vec_env: generic wrappers and errors
# ---------------------------------------------------------------------------------------------


def test_generic_noise_on_other_envs_wraps_each_sub_env():
    envs = make_vec_env(EnvConfig(id="Acrobot-v1", obs_noise=0.1, action_noise=0.5), 3)
    assert isinstance(envs.unwrapped, gym.vector.SyncVectorEnv)
    obs, _ = envs.reset(seed=0)
    true = np.array([e.unwrapped._get_ob() for e in envs.unwrapped.envs])
    assert 0.02 < np.abs(obs - true).mean() < 0.2
    saved = capture_env_state(envs)
    a = [envs.step(np.array([0, 1, 2]))[0] for _ in range(30)]
    restore_env_state(envs, saved)
    b = [envs.step(np.array([0, 1, 2]))[0] for _ in range(30)]
    assert_array_equal(np.array(a), np.array(b))  # the wrappers' noise generators were restored too


@pytest.mark.parametrize("setting", [{"force_noise": 0.1}, {"randomize": {"length": (0.3, 0.6)}}])
def test_physics_perturbations_on_other_envs_are_one_line_errors(setting):
    with pytest.raises(ConfigError) as info:
        make_vec_env(EnvConfig(id="Acrobot-v1", **setting), 2)
    msg = str(info.value)
    assert "CartPole-style" in msg and "Acrobot-v1" in msg and "\n" not in msg


def test_obs_noise_of_the_wrong_length_is_a_config_error():
    with pytest.raises(ConfigError, match="2 values but observations have 4"):
        make_vec_env(EnvConfig(obs_noise=[0.1, 0.1]), 2)


def test_unknown_env_kwargs_are_a_config_error():
    with pytest.raises(ConfigError, match="does not accept env.kwargs"):
        make_vec_env(EnvConfig(id="dqnlab/CartPoleTarget-v0", kwargs={"colour": "red"}), 2)


@pytest.mark.parametrize(
    "override, expected",
    [
        ("env.randomize.length=[0.7,0.3]", "0 < lo <= hi"),
        ("env.randomize.masspole=[0,1]", "0 < lo <= hi"),
        ("env.randomize.mass=[1,2]", "did you mean"),
        ("env.obs_noise=-0.1", "env.obs_noise"),
        ("env.action_noise=1.5", "env.action_noise"),
        ("env.force_noise=-1", "env.force_noise"),
    ],
)
def test_bad_perturbation_config_is_one_line(override, expected):
    with pytest.raises(ConfigError) as info:
        build_config(overrides=[override])
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_perturbation_config_round_trips():
    cfg = build_config(overrides=["env.obs_noise=[0.05,0.05,0.05,0.05]", "env.randomize.length=[0.25,0.75]"])
    assert cfg.env.perturbed() and cfg.env.randomize.ranges() == {"length": (0.25, 0.75)}
    assert not build_config().env.perturbed()
    again = build_config(config_file=None, **{"env": cfg.to_dict()["env"]})
    assert again.env == cfg.env


# ---------------------------------------------------------------------------------------------
# Single-environment wrappers
# ---------------------------------------------------------------------------------------------


def test_observation_noise_wrapper_per_dimension():
    env = ObservationNoise(CartPoleEnv(), sigma=[0.0, 0.5, 0.0, 0.0])
    obs, _ = env.reset(seed=0)
    diffs = [obs - env.unwrapped.state]
    for _ in range(300):
        obs, _, term, trunc, _ = env.step(0)
        diffs.append(obs - env.unwrapped.state)
        if term:
            obs, _ = env.reset()
            diffs.append(obs - env.unwrapped.state)
    d = np.array(diffs)
    assert np.abs(d[:, [0, 2, 3]]).max() < 1e-6
    assert 0.4 < d[:, 1].std() < 0.6
    # The wrapped env's own start states are unchanged by the wrapper.
    plain = CartPoleEnv()
    plain.reset(seed=0)
    wrapped = ObservationNoise(CartPoleEnv(), 0.1)
    wrapped.reset(seed=0)
    assert_array_equal(plain.state, wrapped.unwrapped.state)


def test_action_noise_wrapper_flips_half_the_replaced_actions():
    env = ActionNoise(CartPoleEnv(), prob=1.0)
    env.reset(seed=0)
    got = [env.action(1) for _ in range(2000)]
    assert 0.45 < np.mean(got) < 0.55
    assert ActionNoise(CartPoleEnv(), prob=0.0).action(1) == 1
