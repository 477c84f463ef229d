"""Epsilon and learning-rate schedules against small hand-computed tables."""

import math

import numpy as np
import pytest

from dqnlab.algos import schedules
from dqnlab.config import ExploreConfig


# linear(start=1.0, end=0.1, duration=10): slope -0.09 per step, then flat at `end`.
@pytest.mark.parametrize(
    "step, expected",
    [
        (0, 1.0),
        (1, 0.91),
        (5, 0.55),
        (9, 0.19),
        (10, 0.1),  # exactly the end of the ramp
        (11, 0.1),  # constant after the ramp, not overshooting below `end`
        (1000, 0.1),
    ],
)
def test_linear_table(step, expected):
    assert schedules.linear(step, 1.0, 0.1, 10) == pytest.approx(expected, abs=1e-12)


def test_linear_can_ramp_upwards():
    # Nothing in the formula assumes start > end: 0.0 -> 1.0 over 4 steps.
    assert [schedules.linear(s, 0.0, 1.0, 4) for s in range(6)] == pytest.approx([0, 0.25, 0.5, 0.75, 1, 1])


# exponential: end + (start - end) * exp(-step / tau) with start=1, end=0.05, tau=100.
@pytest.mark.parametrize(
    "step, expected",
    [
        (0, 1.0),
        (100, 0.05 + 0.95 * math.exp(-1)),  # 0.399486...
        (200, 0.05 + 0.95 * math.exp(-2)),  # 0.178569...
        (50, 0.05 + 0.95 * math.exp(-0.5)),
    ],
)
def test_exponential_table(step, expected):
    assert schedules.exponential(step, 1.0, 0.05, 100) == pytest.approx(expected, rel=1e-12)


def test_exponential_hand_numbers_and_floor():
    # exp(-1) = 0.36787944...: 0.05 + 0.95 * 0.36787944 = 0.39948547
    assert schedules.exponential(100, 1.0, 0.05, 100) == pytest.approx(0.39948547, abs=1e-8)
    # Far out it approaches the floor but never goes below it.
    far = schedules.exponential(100_000, 1.0, 0.05, 100)
    assert far >= 0.05
    assert far == pytest.approx(0.05, abs=1e-12)


# decrement: start - per_step * step, floored at end. start=1, end=0.2, per_step=0.1.
@pytest.mark.parametrize(
    "step, expected",
    [(0, 1.0), (1, 0.9), (3, 0.7), (7, 0.3), (8, 0.2), (9, 0.2), (100, 0.2)],
)
def test_decrement_table(step, expected):
    assert schedules.decrement(step, 1.0, 0.2, 0.1) == pytest.approx(expected, abs=1e-12)


# per_episode: start * factor ** episode floored at end. start=1, end=0.3, factor=0.5.
@pytest.mark.parametrize(
    "episode, expected",
    [(0, 1.0), (1, 0.5), (2, 0.3), (3, 0.3), (50, 0.3)],  # 0.25 and 0.125 are below the floor
)
def test_per_episode_table(episode, expected):
    assert schedules.per_episode(episode, 1.0, 0.3, 0.5) == pytest.approx(expected, abs=1e-12)


def test_per_episode_above_floor():
    # factor 0.9: 1, 0.9, 0.81, 0.729 (all above end=0.05)
    values = [schedules.per_episode(e, 1.0, 0.05, 0.9) for e in range(4)]
    assert values == pytest.approx([1.0, 0.9, 0.81, 0.729], abs=1e-12)


def test_epsilon_at_dispatches_linear_uses_steps_not_episodes():
    cfg = ExploreConfig(schedule="linear", start=1.0, end=0.1, decay_steps=10)
    assert schedules.epsilon_at(cfg, 5, 0) == pytest.approx(0.55)
    assert schedules.epsilon_at(cfg, 5, 999) == pytest.approx(0.55)  # episode count is irrelevant
    assert schedules.epsilon_at(cfg, 10, 0) == pytest.approx(0.1)
    assert schedules.epsilon_at(cfg, 20, 0) == pytest.approx(0.1)


def test_epsilon_at_dispatches_exponential():
    cfg = ExploreConfig(schedule="exponential", start=1.0, end=0.05, decay_steps=100)
    assert schedules.epsilon_at(cfg, 100, 3) == pytest.approx(0.05 + 0.95 * math.exp(-1), rel=1e-12)


def test_epsilon_at_dispatches_decrement():
    cfg = ExploreConfig(schedule="decrement", start=1.0, end=0.2, decrement=0.1, decay_steps=1)
    assert schedules.epsilon_at(cfg, 3, 0) == pytest.approx(0.7)
    assert schedules.epsilon_at(cfg, 30, 0) == pytest.approx(0.2)


def test_epsilon_at_dispatches_per_episode_uses_episodes_not_steps():
    cfg = ExploreConfig(schedule="per_episode", start=1.0, end=0.3, episode_decay=0.5)
    assert schedules.epsilon_at(cfg, 0, 1) == pytest.approx(0.5)
    assert schedules.epsilon_at(cfg, 10_000, 1) == pytest.approx(0.5)  # steps are irrelevant
    assert schedules.epsilon_at(cfg, 0, 2) == pytest.approx(0.3)


def test_epsilon_at_constant_is_start_forever():
    cfg = ExploreConfig(schedule="constant", start=0.37, end=0.05)
    assert [schedules.epsilon_at(cfg, s, e) for s, e in [(0, 0), (10**6, 0), (0, 10**6)]] == [0.37] * 3


def test_learning_rate_schedules_by_hand():
    from dqnlab.algos.schedules import lr_at

    assert lr_at(1e-3, "constant", 500, 1000) == 1e-3
    assert lr_at(1e-3, "linear", 0, 1000) == 1e-3
    assert lr_at(1e-3, "linear", 250, 1000) == pytest.approx(7.5e-4)
    assert lr_at(1e-3, "linear", 1000, 1000) == 0.0
    assert lr_at(1e-3, "linear", 1500, 1000) == 0.0  # a resume past the budget never goes negative


def test_dqn_linear_learning_rate_reaches_the_optimizer(tmp_path, tiny):
    import dqnlab
    from dqnlab.algos.dqn import DQNLoop
    from dqnlab.envs.make import make_vec_env
    from dqnlab.runtime.loop import RunContext

    cfg = tiny(total_steps=2000, **{"dqn.lr_schedule": "linear", "dqn.lr": 1e-3})
    loop = DQNLoop(RunContext(cfg, tmp_path, make_vec_env(cfg.env, cfg.env.num_envs), (4,), 2, 475.0, 0.0, False))
    try:
        while loop.env_steps < 1000:
            loop.advance()
        # Set before each round of gradient steps from the env steps taken so far.
        assert loop.learner.optimizer.lr == pytest.approx(1e-3 * (1 - loop.env_steps / 2000), abs=1e-3 * 8 / 2000)
    finally:
        loop.close()
    constant = dqnlab.train(tiny(total_steps=2000, **{"dqn.lr": 1e-3}), tmp_path / "c", progress=False).policy
    linear = dqnlab.train(cfg, tmp_path / "l", progress=False).policy
    obs = np.random.default_rng(0).normal(0, 0.1, (64, 4)).astype(np.float32)
    assert not np.allclose(constant.q_values(obs), linear.q_values(obs))
