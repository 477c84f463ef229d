"""dqnlab's NumPy Acrobot and MountainCar (dqnlab.envs.acrobot_vec, mountaincar_vec) against their
reference, the SyncVectorEnv of Gymnasium's own class: the same episodes bit for bit, autoresets
and time limits included; checkpoints move between the two; make_vec_env uses them only for
the plain environments."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from dqnlab.config import EnvConfig
from dqnlab.envs.acrobot_vec import AcrobotVectorEnv, bound, wrap
from dqnlab.envs.make import make_vec_env
from dqnlab.envs.mountaincar_vec import MountainCarVectorEnv
from dqnlab.envs.state import capture_env_state, restore_env_state

# env id -> (dqnlab's class, the observation column whose sign the energy-pumping policy follows,
# a time limit short enough for truncations in a short test)
ENVS = {
    "Acrobot-v1": (AcrobotVectorEnv, 5, 150),  # the second joint's velocity
    "MountainCar-v0": (MountainCarVectorEnv, 1, 180),  # the car's velocity
}


def reference(env_id: str, n: int, max_steps: int | None = None) -> gym.vector.VectorEnv:
    extra = {} if max_steps is None else {"max_episode_steps": max_steps}
    return gym.make_vec(env_id, num_envs=n, vectorization_mode="sync", **extra)


def ours(env_id: str, n: int, max_steps: int | None = None) -> gym.vector.VectorEnv:
    cls = ENVS[env_id][0]
    return cls(n) if max_steps is None else cls(n, max_episode_steps=max_steps)


def pumping_policy(env_id: str, obs: np.ndarray, rng: np.random.Generator, eps: float = 0.2) -> np.ndarray:
    """Push along a velocity (pumps energy: episodes reach the goal within a few hundred steps),
    with random actions mixed in."""
    greedy = np.where(obs[:, ENVS[env_id][1]] > 0, 2, 0)
    return np.where(rng.random(len(obs)) < eps, rng.integers(0, 3, len(obs)), greedy)


def run_both(env_id, a_env, b_env, steps: int, seed: int | None, policy_seed: int = 0, eps: float = 0.2, obs=None):
    """Step both envs with the same actions, comparing everything; reset both with `seed` first,
    unless `obs` (the current observations) is given. Counts the episode ends seen."""
    rng = np.random.default_rng(policy_seed)
    if obs is None:
        obs_a, info_a = a_env.reset(seed=seed)
        obs_b, info_b = b_env.reset(seed=seed)
        np.testing.assert_array_equal(obs_a, obs_b)
        assert obs_a.dtype == obs_b.dtype == np.float32 and info_a == info_b == {}
    else:
        obs_a = obs
    counts = {"terminated": 0, "truncated": 0}
    for _ in range(steps):
        actions = pumping_policy(env_id, obs_a, rng, eps)
        a = a_env.step(actions)
        b = b_env.step(actions)
        for x, y in zip(a[:4], b[:4], strict=True):
            np.testing.assert_array_equal(x, y)
            assert x.dtype == y.dtype
        assert a[4] == b[4] == {}
        counts["terminated"] += int(a[2].sum())
        counts["truncated"] += int(a[3].sum())
        obs_a = a[0]
    return counts


@pytest.mark.parametrize("env_id", ENVS)
def test_the_same_episodes_as_gymnasiums_sync_vector_env(env_id):
    limit = ENVS[env_id][2]
    counts = run_both(env_id, ours(env_id, 6, limit), reference(env_id, 6, limit), 1500, seed=11)
    assert counts["terminated"] > 20 and counts["truncated"] > 0  # both kinds of episode end were checked


@pytest.mark.parametrize("env_id", ENVS)
def test_the_registered_time_limit_by_default(env_id):
    # Random actions: no episode reaches the goal, each ends at the registered limit.
    limit = gym.spec(env_id).max_episode_steps
    assert ours(env_id, 1).max_episode_steps == limit
    counts = run_both(env_id, ours(env_id, 3), reference(env_id, 3), 2 * limit + 5, seed=3, eps=1.0)
    assert counts["truncated"] >= 6


@pytest.mark.parametrize("env_id", ENVS)
def test_reset_seeds_as_sync_vector_env(env_id):
    a_env, b_env = ours(env_id, 3), reference(env_id, 3)
    for seed in (5, None, [1, None, 7], None):
        np.testing.assert_array_equal(a_env.reset(seed=seed)[0], b_env.reset(seed=seed)[0])
    bounds = {"low": -0.5, "high": -0.3}
    obs = a_env.reset(seed=2, options=bounds)[0]
    np.testing.assert_array_equal(obs, b_env.reset(seed=2, options=bounds)[0])
    # an autoreset after a reset with options draws within the default bounds, as Gymnasium's does
    counts = run_both(env_id, a_env, b_env, 400, seed=None, obs=obs)
    assert counts["terminated"] + counts["truncated"] > 0


@pytest.mark.parametrize("env_id", ENVS)
def test_spaces_and_metadata_match(env_id):
    a_env, b_env = ours(env_id, 4), reference(env_id, 4)
    assert a_env.single_observation_space == b_env.single_observation_space
    assert a_env.observation_space == b_env.observation_space
    assert a_env.single_action_space == b_env.single_action_space
    assert a_env.action_space == b_env.action_space
    assert a_env.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP


@pytest.mark.parametrize("env_id", ENVS)
@pytest.mark.parametrize("direction", ["ours to sync", "sync to ours"])
@pytest.mark.parametrize("when", ["an autoreset pending", "just after an autoreset"])
def test_checkpoints_resume_in_either_env(env_id, direction, when):
    # A checkpoint taken mid-run continues identically in the other kind of env (older
    # checkpoints resume with the NumPy env), taken where it is hardest: with an environment
    # to reset on the next step, or holding a start state (float32 in Acrobot).
    src = ours(env_id, 5) if direction == "ours to sync" else reference(env_id, 5)
    rng = np.random.default_rng(3)
    obs, _ = src.reset(seed=21)
    ended = np.zeros(5, dtype=bool)
    for _ in range(1000):
        obs, _, terminated, truncated, _ = src.step(pumping_policy(env_id, obs, rng))
        if when == "an autoreset pending" and (terminated | truncated).any():
            break
        if when == "just after an autoreset" and ended.any():
            break
        ended = terminated | truncated
    saved = capture_env_state(src)
    assert saved is not None and saved["kind"] == "sync"
    if when == "an autoreset pending":
        assert np.asarray(saved["autoreset"]).any()
    elif env_id == "Acrobot-v1":
        assert any(sub["state"].dtype == torch.float32 for sub in saved["envs"])
    dst = reference(env_id, 5) if direction == "ours to sync" else ours(env_id, 5)
    dst.reset(seed=0)
    restore_env_state(dst, saved)
    ends = 0
    for _ in range(400):
        actions = pumping_policy(env_id, obs, rng)
        a, b = src.step(actions), dst.step(actions)
        for x, y in zip(a[:4], b[:4], strict=True):
            np.testing.assert_array_equal(x, y)
        obs = a[0]
        ends += int((a[2] | a[3]).sum())
    assert ends > 5


def test_wrap_and_bound_are_gymnasiums_elementwise():
    from gymnasium.envs.classic_control import acrobot

    x = np.random.default_rng(0).uniform(-30, 30, 2000)
    x[:4] = [np.pi, -np.pi, 3 * np.pi, -5 * np.pi]
    np.testing.assert_array_equal(wrap(x, -np.pi, np.pi), [acrobot.wrap(v, -np.pi, np.pi) for v in x])
    np.testing.assert_array_equal(bound(x, -4 * np.pi, 4 * np.pi), [acrobot.bound(v, -4 * np.pi, 4 * np.pi) for v in x])


@pytest.mark.parametrize("env_id", ENVS)
def test_bad_use_is_refused(env_id):
    env = ours(env_id, 3)
    with pytest.raises(gym.error.ResetNeeded):
        env.step(np.zeros(3, dtype=np.int64))
    env.reset(seed=0)
    for bad in (
        np.array([0, 1, 3]),
        np.array([0, -1, 1]),
        np.zeros(3),
        np.zeros((3, 1), dtype=np.int64),
        np.zeros(2, dtype=np.int64),
    ):
        with pytest.raises(ValueError, match="integer actions"):
            env.step(bad)
    with pytest.raises(ValueError, match="reset_mask"):
        env.reset(options={"reset_mask": np.ones(3, dtype=bool)})


@pytest.mark.parametrize("env_id", ENVS)
def test_make_vec_env_uses_it_for_the_plain_env_only(env_id):
    cls = ENVS[env_id][0]
    plain = make_vec_env(EnvConfig(id=env_id), 4)
    assert isinstance(plain.unwrapped, cls)
    assert plain.unwrapped.max_episode_steps == gym.spec(env_id).max_episode_steps
    shorter = make_vec_env(EnvConfig(id=env_id, max_episode_steps=50), 2)
    assert isinstance(shorter.unwrapped, cls) and shorter.unwrapped.max_episode_steps == 50
    noisy = make_vec_env(EnvConfig(id=env_id, obs_noise=0.1), 2)
    assert isinstance(noisy.unwrapped, gym.vector.SyncVectorEnv)


def test_env_kwargs_keep_sync_vector_env():
    # Arguments of Gymnasium's class (here MountainCar's goal_velocity) are for Gymnasium's class.
    cfg = EnvConfig(id="MountainCar-v0", kwargs={"goal_velocity": 0.01})
    assert isinstance(make_vec_env(cfg, 2).unwrapped, gym.vector.SyncVectorEnv)


@pytest.mark.parametrize(
    "extra",
    [{"max_episode_steps": None}, {"kwargs": {"goal_velocity": 0.01}}, {}],
    ids=["no time limit", "registered arguments", "another id"],
)
def test_the_same_class_registered_otherwise_keeps_sync_vector_env(extra):
    name = f"dqnlab-test/OtherMountainCar-{len(gym.registry)}-v0"
    settings = {"max_episode_steps": 200, **extra}
    gym.register(name, entry_point="gymnasium.envs.classic_control.mountain_car:MountainCarEnv", **settings)
    try:
        envs = make_vec_env(EnvConfig(id=name), 2)
        assert isinstance(envs.unwrapped, gym.vector.SyncVectorEnv)
        assert envs.reset(seed=0)[0].shape == (2, 2)
    finally:
        del gym.registry[name]


def test_the_derivatives_are_gymnasiums_on_every_state_drawn():
    # Over many states, not one run: a last-bit difference in one product (x * x where
    # Gymnasium's scalar code calls pow) shows in about 1 state in 1,000 and lets long runs drift.
    from gymnasium.envs.classic_control.acrobot import AcrobotEnv

    from dqnlab.envs.acrobot_vec import dsdt

    rng = np.random.default_rng(7)
    n = 20_000
    states = np.column_stack(
        [
            rng.uniform(-np.pi, np.pi, (n, 2)),
            rng.uniform(-4 * np.pi, 4 * np.pi, n),
            rng.uniform(-9 * np.pi, 9 * np.pi, n),
            rng.choice([-1.0, 0.0, 1.0], n),
        ]
    )
    env = AcrobotEnv()
    want = np.array([env._dsdt(row) for row in states])
    np.testing.assert_array_equal(dsdt(states), want)
