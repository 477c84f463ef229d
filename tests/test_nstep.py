"""NStepCollector (n=3, gamma=0.5) on a hand-written sequence for two environments.

Observations are 1-vectors holding an id, so every emitted transition can be named:
env 0 sees obs 0, 1, 2, 3, 4, 5 with rewards 1, 2, 3, 4, 5 and is truncated on its 5th step;
env 1 sees obs 100, 101, 102, 103 with rewards 10, 20, 30 and terminates on its 3rd step.
"""

import io

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

from dqnlab.algos.dqn import NStepCollector, n_step_return

N, GAMMA = 3, 0.5


def o(*ids):
    return np.array([[i] for i in ids], dtype=np.float32)


def push(c, env_ids, obs, actions, rewards, next_obs, terminated, truncated):
    return c.push(
        np.array(env_ids),
        o(*obs),
        np.array(actions),
        np.array(rewards, dtype=np.float32),
        o(*next_obs),
        np.array(terminated),
        np.array(truncated),
    )


def step1(c):
    return push(c, [0, 1], [0, 100], [0, 1], [1, 10], [1, 101], [False, False], [False, False])


def step2(c):
    return push(c, [0, 1], [1, 101], [1, 0], [2, 20], [2, 102], [False, False], [False, False])


def step3(c):
    # env 1 terminates here
    return push(c, [0, 1], [2, 102], [0, 1], [3, 30], [3, 103], [False, True], [False, False])


def step4(c):
    # env 1's autoreset step is not a transition: only env 0 is pushed
    return push(c, [0], [3], [1], [4], [4], [False], [False])


def step5(c):
    # env 0 hits a time limit: truncated, not terminated
    return push(c, [0], [4], [0], [5], [5], [False], [True])


def unpack(out):
    obs, actions, returns, next_obs, terminated, discounts = out
    return obs[:, 0].tolist(), actions.tolist(), returns, next_obs[:, 0].tolist(), terminated, discounts


def test_n_step_return_by_hand():
    assert n_step_return(np.array([1.0, 2.0, 3.0]), 0.5) == pytest.approx(1 + 1 + 0.75)
    assert n_step_return(np.array([4.0]), 0.5) == 4.0


def test_nothing_emitted_before_the_window_fills():
    c = NStepCollector(N, GAMMA, 2)
    assert step1(c) is None
    assert step2(c) is None


def test_full_window_and_termination_flush():
    c = NStepCollector(N, GAMMA, 2)
    step1(c)
    step2(c)
    obs, actions, returns, next_obs, terminated, discounts = unpack(step3(c))
    # env 0: the full window emits its oldest entry, obs 0:
    #   R = 1 + 0.5 * 2 + 0.25 * 3 = 2.75, next obs 3, not terminated, discount 0.5^3
    # env 1 terminated: its whole window is flushed with shrinking horizons, all terminated:
    #   obs 100: 10 + 0.5 * 20 + 0.25 * 30 = 27.5   (k=3, discount 0.125)
    #   obs 101: 20 + 0.5 * 30 = 35                  (k=2, discount 0.25)
    #   obs 102: 30                                  (k=1, discount 0.5)
    assert obs == [0, 100, 101, 102]
    assert actions == [0, 1, 0, 1]
    assert returns.dtype == np.float32 and discounts.dtype == np.float32
    assert_allclose(returns, [2.75, 27.5, 35.0, 30.0], rtol=0, atol=0)
    assert next_obs == [3, 103, 103, 103]  # the terminal observation for all of env 1's entries
    assert_array_equal(terminated.astype(np.float32), [0, 1, 1, 1])
    assert_allclose(discounts, [0.125, 0.125, 0.25, 0.5], rtol=0, atol=0)
    assert c.count[1] == 0  # nothing of the old episode leaks into the next one
    assert c.count[0] == 2


def test_subset_of_envs_and_truncation_flush():
    c = NStepCollector(N, GAMMA, 2)
    for step in (step1, step2, step3):
        step(c)
    obs, actions, returns, next_obs, terminated, discounts = unpack(step4(c))
    # obs 1: R = 2 + 0.5 * 3 + 0.25 * 4 = 4.5, next obs 4
    assert (obs, actions, next_obs) == ([1], [1], [4])
    assert_allclose(returns, [4.5], rtol=0, atol=0)
    assert_array_equal(terminated.astype(np.float32), [0])
    assert_allclose(discounts, [0.125], rtol=0, atol=0)
    assert c.count[1] == 0  # env 1 untouched by a push that did not include it

    obs, actions, returns, next_obs, terminated, discounts = unpack(step5(c))
    # Truncation flushes the window like termination, but terminated stays 0 so each entry
    # bootstraps from obs 5 with its own discount gamma^k:
    #   obs 2: 3 + 0.5 * 4 + 0.25 * 5 = 6.25 (k=3), obs 3: 4 + 2.5 = 6.5 (k=2), obs 4: 5 (k=1)
    assert obs == [2, 3, 4]
    assert actions == [0, 1, 0]
    assert_allclose(returns, [6.25, 6.5, 5.0], rtol=0, atol=0)
    assert next_obs == [5, 5, 5]
    assert_array_equal(terminated.astype(np.float32), [0, 0, 0])
    assert_allclose(discounts, [0.125, 0.25, 0.5], rtol=0, atol=0)
    assert c.count[0] == 0


def test_n1_is_the_plain_transition():
    c = NStepCollector(1, 0.9, 1)
    obs, actions, returns, next_obs, terminated, discounts = unpack(
        push(c, [0], [7], [1], [2.0], [8], [False], [False])
    )
    assert (obs, actions, next_obs) == ([7], [1], [8])
    assert_allclose(returns, [2.0])
    assert_allclose(discounts, np.float32([0.9]), rtol=0, atol=0)


def test_output_goes_into_the_replay_buffer():
    # The collector's output is what the training loop passes to ReplayBuffer.add.
    from dqnlab.algos.replay import ReplayBuffer

    c = NStepCollector(N, GAMMA, 2)
    step1(c)
    step2(c)
    buf = ReplayBuffer(10, (1,))
    buf.add(*step3(c))
    assert buf.size == 4
    assert_array_equal(buf.terminated[:4].numpy(), np.float32([0, 1, 1, 1]))
    assert_array_equal(buf.discounts[:4].numpy(), np.float32([0.125, 0.125, 0.25, 0.5]))


def test_state_dict_round_trip_continues_identically():
    a = NStepCollector(N, GAMMA, 2)
    step1(a)
    step2(a)  # both windows hold two pending entries
    f = io.BytesIO()
    torch.save(a.state_dict(), f)  # the checkpoint path: must load with weights_only=True
    f.seek(0)
    state = torch.load(f, weights_only=True)

    b = NStepCollector(N, GAMMA, 2)
    b.load_state_dict(state)
    for step in (step3, step4, step5):
        out_a, out_b = step(a), step(b)
        for x, y in zip(out_a, out_b, strict=True):
            assert_array_equal(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    # And the restored collector gives the hand-computed numbers (not just the same as `a`).
    c = NStepCollector(N, GAMMA, 2)
    c.load_state_dict(state)
    _, _, returns, _, _, _ = unpack(step3(c))
    assert_allclose(returns, [2.75, 27.5, 35.0, 30.0], rtol=0, atol=0)


def test_load_state_dict_replaces_existing_windows():
    a = NStepCollector(N, GAMMA, 2)
    empty_state = a.state_dict()
    step1(a)
    a.load_state_dict(empty_state)
    assert (a.count == 0).all()


# ---------------------------------------------------------------------------------------------
# Pixel frames: kept in the replay buffer's dtype (uint8), not widened to float32
# ---------------------------------------------------------------------------------------------


def frames(*values):
    """One 2x3 uint8 frame per value, filled with it."""
    return np.stack([np.full((2, 3), v, dtype=np.uint8) for v in values])


def test_pixel_frames_stay_uint8_and_exact():
    from dqnlab.algos.replay import ReplayBuffer

    c = NStepCollector(2, 0.5, 1, (2, 3), np.uint8)
    assert c.obs.dtype == np.uint8
    assert c.push([0], frames(0), [1], [1.0], frames(128), [False], [False]) is None
    obs, actions, returns, next_obs, terminated, discounts = c.push(
        [0], frames(128), [0], [2.0], frames(255), [False], [True]
    )  # truncated: the window flushes
    assert obs.dtype == np.uint8 and next_obs.dtype == np.uint8
    assert obs[:, 0, 0].tolist() == [0, 128] and next_obs[:, 0, 0].tolist() == [255, 255]
    assert actions.tolist() == [1, 0] and terminated.tolist() == [False, False]
    assert_allclose(returns, [1.0 + 0.5 * 2.0, 2.0], rtol=0, atol=0)
    assert_allclose(discounts, [0.25, 0.5], rtol=0, atol=0)
    assert c.state_dict()["obs"].dtype == torch.uint8  # checkpoints keep them small too
    buf = ReplayBuffer(4, (2, 3), torch.uint8)
    buf.add(obs, actions, returns, next_obs, terminated, discounts)
    assert buf.obs[:2, 0, 0].tolist() == [0, 128]


def test_float32_frames_of_a_release_0_1_0_checkpoint_load_as_uint8():
    old = NStepCollector(N, GAMMA, 2, (2, 3))  # 0.1.0 kept every observation as float32
    old.push(
        [0, 1],
        frames(7, 255).astype(np.float32),
        [0, 1],
        [1.0, 2.0],
        frames(8, 0).astype(np.float32),
        [False, False],
        [False, False],
    )
    state = old.state_dict()
    assert state["obs"].dtype == torch.float32
    new = NStepCollector(N, GAMMA, 2, (2, 3), np.uint8)
    new.load_state_dict(state)
    assert new.obs.dtype == np.uint8
    assert_array_equal(new.obs, old.obs.astype(np.uint8))
    assert_array_equal(new.obs.astype(np.float32), old.obs)  # exact: whole numbers 0..255
    for bad in (0.5, 256.0, -1.0, float("nan")):
        damaged = dict(state, obs=state["obs"].clone())
        damaged["obs"][0, 0, 0, 0] = bad
        with pytest.raises(ValueError, match="do not fit uint8"):
            NStepCollector(N, GAMMA, 2, (2, 3), np.uint8).load_state_dict(damaged)


@pytest.mark.parametrize("prioritized", [False, True])
def test_pixel_training_loop_keeps_frames_uint8_and_the_n_step_windows_small(tmp_path, prioritized):
    """Uniform replay of pixels stores each frame once (the windows hold the frames' pool slots);
    prioritised replay keeps full uint8 stacks, in replay and in the windows."""
    import dqnlab
    from dqnlab.algos.dqn import DQNLoop
    from dqnlab.algos.replay import FrameReplayBuffer
    from dqnlab.envs.make import check_spaces, make_vec_env
    from dqnlab.runtime.loop import RunContext

    overrides = {"dqn.buffer_size": 64, "dqn.n_step": 3, "env.num_envs": 2, "dqn.prioritized": prioritized}
    cfg = dqnlab.build_config("pixels", **overrides)
    envs = make_vec_env(cfg.env, cfg.env.num_envs)
    obs_shape, n_actions = check_spaces(envs, cfg.env.id)
    loop = DQNLoop(RunContext(cfg, tmp_path, envs, obs_shape, n_actions, None, 0.0, False))
    try:
        window = np.int32 if not prioritized else np.uint8
        assert isinstance(loop.buffer, FrameReplayBuffer) != prioritized
        assert loop.nstep.obs.dtype == window
        while len(loop.buffer) < 8:
            loop.advance()
        assert loop.nstep.obs.dtype == window
        assert loop.nstep.obs.max() > 0  # frames (or their slots) went through it
        stored = loop.buffer.sample(8, torch.Generator().manual_seed(0))
        assert stored.obs.dtype == torch.uint8 and stored.obs.shape == (8, *obs_shape)
    finally:
        loop.close()
