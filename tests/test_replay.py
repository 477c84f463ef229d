"""ReplayBuffer: ring-buffer bookkeeping, exact contents, sampling, checkpointing."""

import io

import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal

from dqnlab.algos.replay import ReplayBuffer


def transitions(values, obs_dim=2):
    """n transitions whose every field is derived from the integers in `values`, so that the
    buffer's contents can be checked exactly: obs = [v, v], next_obs = [v + 0.5, ...],
    action = v % 3, reward = 10 * v, terminated = v odd, discount = v / 100."""
    v = np.asarray(values, dtype=np.float64)
    obs = np.repeat(v[:, None], obs_dim, axis=1).astype(np.float32)
    return (
        obs,
        (v.astype(np.int64) % 3),
        (10 * v).astype(np.float32),
        obs + 0.5,
        (v.astype(np.int64) % 2 == 1),
        (v / 100).astype(np.float32),
    )


def stored_ids(buf):
    """The `v` of each physical slot (first column of obs), as ints."""
    return buf.obs[:, 0].numpy().astype(int).tolist()


def test_empty_buffer():
    buf = ReplayBuffer(5, (2,))
    assert (buf.size, buf.pos, len(buf)) == (0, 0, 0)
    with pytest.raises(ValueError):
        buf.sample(1, torch.Generator().manual_seed(0))


def test_add_updates_size_and_pos_and_stores_fields():
    buf = ReplayBuffer(5, (2,))
    buf.add(*transitions([1, 2]))
    assert (buf.size, buf.pos, len(buf)) == (2, 2, 2)
    buf.add(*transitions([3]))
    assert (buf.size, buf.pos) == (3, 3)
    # Every field of slots 0..2 as computed by hand from v = 1, 2, 3.
    assert_array_equal(buf.obs[:3].numpy(), [[1, 1], [2, 2], [3, 3]])
    assert_array_equal(buf.next_obs[:3].numpy(), [[1.5, 1.5], [2.5, 2.5], [3.5, 3.5]])
    assert_array_equal(buf.actions[:3].numpy(), [1, 2, 0])
    assert_array_equal(buf.rewards[:3].numpy(), np.array([10, 20, 30], dtype=np.float32))
    assert_array_equal(buf.terminated[:3].numpy(), np.array([1, 0, 1], dtype=np.float32))
    assert_array_equal(buf.discounts[:3].numpy(), np.array([0.01, 0.02, 0.03], dtype=np.float32))
    # Unwritten slots stay zero.
    assert_array_equal(buf.obs[3:].numpy(), np.zeros((2, 2)))


def test_add_of_zero_transitions_is_a_no_op():
    buf = ReplayBuffer(4, (2,))
    buf.add(*transitions([]))
    assert (buf.size, buf.pos) == (0, 0)


def test_wraparound_overwrites_the_oldest():
    buf = ReplayBuffer(5, (2,))
    buf.add(*transitions([1, 2, 3, 4]))
    # 3 more: 5 goes into slot 4, then 6 and 7 overwrite the two oldest (1 and 2) in slots 0, 1.
    buf.add(*transitions([5, 6, 7]))
    assert (buf.size, buf.pos) == (5, 2)
    assert stored_ids(buf) == [6, 7, 3, 4, 5]
    assert_array_equal(buf.rewards.numpy(), np.array([60, 70, 30, 40, 50], dtype=np.float32))
    assert_array_equal(buf.actions.numpy(), [0, 1, 0, 1, 2])
    assert_array_equal(buf.terminated.numpy(), np.array([0, 1, 1, 0, 1], dtype=np.float32))
    assert_array_equal(buf.next_obs[:, 1].numpy(), np.array([6.5, 7.5, 3.5, 4.5, 5.5], dtype=np.float32))
    # One more single add goes to slot 2 (the oldest now is 3).
    buf.add(*transitions([8]))
    assert (buf.size, buf.pos) == (5, 3)
    assert stored_ids(buf) == [6, 7, 8, 4, 5]


def test_add_exactly_capacity_when_pos_in_the_middle():
    buf = ReplayBuffer(4, (2,))
    buf.add(*transitions([1, 2, 3]))
    buf.add(*transitions([4, 5, 6, 7]))  # 4 -> slot 3, then 5, 6, 7 -> slots 0, 1, 2
    assert (buf.size, buf.pos) == (4, 3)
    assert stored_ids(buf) == [5, 6, 7, 4]


def test_add_batch_larger_than_capacity_keeps_the_newest():
    buf = ReplayBuffer(4, (2,))
    buf.add(*transitions([1]))  # pos = 1
    buf.add(*transitions(list(range(10, 20))))  # 10 transitions into capacity 4: only 16..19 survive
    assert buf.size == 4
    assert buf.pos == 1  # advanced by 4 (mod 4) from 1
    # Written from slot 1 in order 16, 17, 18, then wrapped: 19 into slot 0.
    assert stored_ids(buf) == [19, 16, 17, 18]
    assert_array_equal(buf.rewards.numpy(), np.array([190, 160, 170, 180], dtype=np.float32))
    # Insertion order starts at pos: sequential sampling of everything gives 16, 17, 18, 19.
    idx = buf.sample_indices(4, torch.Generator().manual_seed(0), sequential=True)
    assert buf.obs[idx, 0].numpy().astype(int).tolist() == [16, 17, 18, 19]


def test_sample_shapes_and_dtypes():
    buf = ReplayBuffer(8, (3,))
    # Feed float64 observations and bool terminations: the buffer must convert them.
    obs = np.arange(12, dtype=np.float64).reshape(4, 3)
    buf.add(obs, np.array([0, 1, 0, 1]), np.ones(4), obs + 1, np.array([False, True, False, False]), np.full(4, 0.99))
    batch = buf.sample(6, torch.Generator().manual_seed(0))
    assert batch.obs.shape == (6, 3) and batch.obs.dtype == torch.float32
    assert batch.next_obs.shape == (6, 3) and batch.next_obs.dtype == torch.float32
    assert batch.actions.shape == (6,) and batch.actions.dtype == torch.int64
    assert batch.rewards.shape == (6,) and batch.rewards.dtype == torch.float32
    assert batch.terminated.shape == (6,) and batch.terminated.dtype == torch.float32
    assert batch.discounts.shape == (6,) and batch.discounts.dtype == torch.float32


def test_uniform_sampling_only_returns_filled_indices():
    buf = ReplayBuffer(100, (2,))
    buf.add(*transitions([1, 2, 3]))
    gen = torch.Generator().manual_seed(123)
    idx = buf.sample_indices(2000, gen)
    assert idx.dtype == torch.int64
    # Only slots 0..2 hold data; with 2000 draws all three show up and nothing else does.
    assert set(idx.tolist()) == {0, 1, 2}
    batch = buf.sample(500, gen)
    assert set(batch.obs[:, 0].tolist()) <= {1.0, 2.0, 3.0}
    assert set(batch.rewards.tolist()) <= {10.0, 20.0, 30.0}


def test_sampled_fields_stay_aligned():
    # Each sampled row's fields must come from the same transition.
    buf = ReplayBuffer(16, (2,))
    buf.add(*transitions(list(range(1, 12))))
    b = buf.sample(64, torch.Generator().manual_seed(5))
    v = b.obs[:, 0]
    torch.testing.assert_close(b.rewards, 10 * v)
    torch.testing.assert_close(b.next_obs[:, 0], v + 0.5)
    torch.testing.assert_close(b.actions, v.long() % 3)
    torch.testing.assert_close(b.terminated, (v.long() % 2).float())


def test_sampling_is_deterministic_for_the_same_generator_seed():
    buf = ReplayBuffer(50, (2,))
    buf.add(*transitions(list(range(30))))
    a = buf.sample(16, torch.Generator().manual_seed(42))
    b = buf.sample(16, torch.Generator().manual_seed(42))
    c = buf.sample(16, torch.Generator().manual_seed(43))
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    assert not torch.equal(a.obs, c.obs)  # a different seed gives a different batch
    s1 = buf.sample_indices(8, torch.Generator().manual_seed(7), sequential=True)
    s2 = buf.sample_indices(8, torch.Generator().manual_seed(7), sequential=True)
    assert torch.equal(s1, s2)


def test_sequential_sampling_is_a_contiguous_run_in_insertion_order():
    buf = ReplayBuffer(20, (2,))
    buf.add(*transitions(list(range(100, 112))))  # 12 of 20 slots, no wrap yet
    for seed in range(10):
        b = buf.sample(5, torch.Generator().manual_seed(seed), sequential=True)
        ids = b.obs[:, 0].numpy().astype(int)
        assert len(ids) == 5
        assert_array_equal(np.diff(ids), np.ones(4, dtype=int))
        assert ids[0] >= 100 and ids[-1] <= 111


def test_sequential_sampling_after_wraparound_follows_insertion_order():
    buf = ReplayBuffer(6, (2,))
    buf.add(*transitions([1, 2, 3, 4]))
    buf.add(*transitions([5, 6, 7, 8, 9]))  # 7, 8, 9 overwrite slots 0-2: holds 4..9 as [7, 8, 9, 4, 5, 6]
    assert buf.pos == 3
    assert stored_ids(buf) == [7, 8, 9, 4, 5, 6]
    starts = set()
    for seed in range(40):
        b = buf.sample(4, torch.Generator().manual_seed(seed), sequential=True)
        ids = b.obs[:, 0].numpy().astype(int)
        # A run of 4 consecutive insertions: 4-7, 5-8 or 6-9 (the run crosses the physical wrap).
        assert_array_equal(np.diff(ids), np.ones(3, dtype=int))
        assert 4 <= ids[0] <= 6
        starts.add(int(ids[0]))
    assert starts == {4, 5, 6}  # every valid start is reachable, no run mixes old and new


def test_sequential_sampling_larger_than_size_returns_everything_in_order():
    buf = ReplayBuffer(10, (2,))
    buf.add(*transitions([3, 4, 5]))
    b = buf.sample(8, torch.Generator().manual_seed(0), sequential=True)
    assert b.obs[:, 0].tolist() == [3.0, 4.0, 5.0]


@pytest.mark.parametrize("n_added", [3, 9])  # partly filled, and full after a wrap
def test_state_dict_round_trip(n_added):
    buf = ReplayBuffer(6, (2,))
    buf.add(*transitions(list(range(1, n_added + 1))))
    state = buf.state_dict()
    # Through torch.save / weights_only load, as a checkpoint does.
    f = io.BytesIO()
    torch.save(state, f)
    f.seek(0)
    state = torch.load(f, weights_only=True)

    other = ReplayBuffer(6, (2,))
    other.load_state_dict(state)
    assert (other.size, other.pos) == (buf.size, buf.pos)
    for name in ("obs", "next_obs", "actions", "rewards", "terminated", "discounts"):
        torch.testing.assert_close(getattr(other, name), getattr(buf, name), rtol=0, atol=0)
    # Both continue identically: same samples, and the next add lands in the same slot.
    for seq in (False, True):
        a = buf.sample(5, torch.Generator().manual_seed(1), sequential=seq)
        b = other.sample(5, torch.Generator().manual_seed(1), sequential=seq)
        for x, y in zip(a, b, strict=True):
            torch.testing.assert_close(x, y, rtol=0, atol=0)
    buf.add(*transitions([50]))
    other.add(*transitions([50]))
    assert stored_ids(buf) == stored_ids(other)


def test_state_dict_is_a_copy():
    buf = ReplayBuffer(4, (2,))
    buf.add(*transitions([1, 2]))
    state = buf.state_dict()
    buf.add(*transitions([3, 4, 5]))  # overwrites slot 0
    assert state["obs"][:, 0].tolist() == [1.0, 2.0]


def test_load_state_dict_rejects_other_capacity():
    buf = ReplayBuffer(4, (2,))
    buf.add(*transitions([1]))
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(5, (2,)).load_state_dict(buf.state_dict())
