"""dqnlab's NumPy Acrobot (dqnlab.envs.acrobot_vec) against its reference, the SyncVectorEnv of
Gymnasium's AcrobotEnv: the same episodes bit for bit, autoresets and time limits included;
checkpoints move between the two; make_vec_env uses it only for plain Acrobot-v1."""

import gymnasium as gym
import numpy as np
import pytest

from dqnlab.config import EnvConfig
from dqnlab.envs.acrobot_vec import AcrobotVectorEnv
from dqnlab.envs.make import make_vec_env
from dqnlab.envs.state import capture_env_state, restore_env_state


def reference(n: int, max_steps: int = 500) -> gym.vector.VectorEnv:
    return gym.make_vec("Acrobot-v1", num_envs=n, vectorization_mode="sync", max_episode_steps=max_steps)


def swing_policy(obs: np.ndarray, rng: np.random.Generator, eps: float = 0.2) -> np.ndarray:
    """Torque along the second joint's velocity (pumps energy: episodes terminate within about a
    hundred steps), with random actions mixed in."""
    greedy = np.where(obs[:, 5] > 0, 2, 0)
    return np.where(rng.random(len(obs)) < eps, rng.integers(0, 3, len(obs)), greedy)


def run_both(ours, ref, steps: int, seed: int, policy_seed: int = 0):
    rng = np.random.default_rng(policy_seed)
    obs_a, info_a = ours.reset(seed=seed)
    obs_b, info_b = ref.reset(seed=seed)
    np.testing.assert_array_equal(obs_a, obs_b)
    assert obs_a.dtype == obs_b.dtype == np.float32 and info_a == info_b == {}
    counts = {"terminated": 0, "truncated": 0}
    for _ in range(steps):
        actions = swing_policy(obs_a, rng)
        a = ours.step(actions)
        b = ref.step(actions)
        for x, y in zip(a[:4], b[:4], strict=True):
            np.testing.assert_array_equal(x, y)
            assert x.dtype == y.dtype
        assert a[4] == b[4] == {}
        counts["terminated"] += int(a[2].sum())
        counts["truncated"] += int(a[3].sum())
        obs_a = a[0]
    return counts


def test_the_same_episodes_as_gymnasiums_sync_vector_env():
    counts = run_both(AcrobotVectorEnv(6, max_episode_steps=150), reference(6, 150), 1500, seed=11)
    assert counts["terminated"] > 20 and counts["truncated"] > 0  # both kinds of episode end were checked


def test_reset_seeds_as_sync_vector_env():
    ours, ref = AcrobotVectorEnv(3), reference(3)
    for seed in (5, None, [1, None, 7], None):
        np.testing.assert_array_equal(ours.reset(seed=seed)[0], ref.reset(seed=seed)[0])
    bounds = {"low": -0.5, "high": 0.5}
    np.testing.assert_array_equal(ours.reset(seed=2, options=bounds)[0], ref.reset(seed=2, options=bounds)[0])
    # an autoreset after a reset with options draws within the default bounds, as Gymnasium's does
    run_both(ours, ref, 300, seed=4)


def test_spaces_and_metadata_match():
    ours, ref = AcrobotVectorEnv(4), reference(4)
    assert ours.single_observation_space == ref.single_observation_space
    assert ours.observation_space == ref.observation_space
    assert ours.single_action_space == ref.single_action_space
    assert ours.action_space == ref.action_space
    assert ours.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP


@pytest.mark.parametrize("direction", ["ours to sync", "sync to ours"])
def test_checkpoints_resume_in_either_env(direction):
    # A checkpoint taken mid-run (episodes in progress, one about to autoreset) continues
    # identically in the other kind of env: old Acrobot checkpoints resume with the NumPy env.
    src, dst_kind = (AcrobotVectorEnv(5), "sync") if direction == "ours to sync" else (reference(5), "ours")
    rng = np.random.default_rng(3)
    obs, _ = src.reset(seed=21)
    for _ in range(137):
        obs = src.step(swing_policy(obs, rng))[0]
    saved = capture_env_state(src)
    assert saved is not None and saved["kind"] == "sync"
    dst = reference(5) if dst_kind == "sync" else AcrobotVectorEnv(5)
    dst.reset(seed=0)
    restore_env_state(dst, saved)
    for _ in range(400):
        actions = swing_policy(obs, rng)
        a, b = src.step(actions), dst.step(actions)
        for x, y in zip(a[:4], b[:4], strict=True):
            np.testing.assert_array_equal(x, y)
        obs = a[0]


def test_make_vec_env_uses_it_for_plain_acrobot_only():
    plain = make_vec_env(EnvConfig(id="Acrobot-v1"), 4)
    assert isinstance(plain.unwrapped, AcrobotVectorEnv)
    assert plain.unwrapped.max_episode_steps == 500
    shorter = make_vec_env(EnvConfig(id="Acrobot-v1", max_episode_steps=200), 2)
    assert shorter.unwrapped.max_episode_steps == 200
    noisy = make_vec_env(EnvConfig(id="Acrobot-v1", obs_noise=0.1), 2)
    assert isinstance(noisy.unwrapped, gym.vector.SyncVectorEnv)
    other = make_vec_env(EnvConfig(id="MountainCar-v0"), 2)
    assert isinstance(other.unwrapped, gym.vector.SyncVectorEnv)
