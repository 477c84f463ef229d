"""Prioritised replay: the sum tree, proportional sampling, importance weights, priorities,
checkpointing, the beta schedule and the config options, against hand computations."""

import io

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

from dqnlab.algos.replay import PrioritizedReplayBuffer, ReplayBuffer, SumTree, beta_at, importance_weights
from dqnlab.config import build_config
from dqnlab.core.errors import ConfigError


def transitions(values, obs_dim=2):
    """n transitions tagged by the integers in `values`: obs = [v, v], reward = 10 v, ..."""
    v = np.asarray(values, dtype=np.float64)
    obs = np.repeat(v[:, None], obs_dim, axis=1).astype(np.float32)
    return (
        obs,
        v.astype(np.int64) % 3,
        (10 * v).astype(np.float32),
        obs + 0.5,
        v.astype(np.int64) % 2 == 1,
        np.full(len(v), 0.99, dtype=np.float32),
    )


def assert_tree_consistent(tree: SumTree):
    """Every internal node is exactly the sum of its two children."""
    k = np.arange(1, tree.leaf0)
    assert_array_equal(tree.nodes[k], tree.nodes[2 * k] + tree.nodes[2 * k + 1])


# ---------------------------------------------------------------------------------------------
# SumTree
# ---------------------------------------------------------------------------------------------


def test_sum_tree_totals_by_hand():
    tree = SumTree(5)  # 5 slots -> 8 leaves (nodes 8..15), 3 levels below the root
    assert (tree.leaf0, tree.depth) == (8, 3)
    tree.set(np.arange(5), np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    # level 2: nodes 4..7 = 1+2, 3+4, 5+0, 0+0; level 1: nodes 2, 3 = 3+7, 5+0; root = 15
    assert_array_equal(tree.nodes[4:8], [3, 7, 5, 0])
    assert_array_equal(tree.nodes[2:4], [10, 5])
    assert tree.total == 15.0
    tree.set(np.array([1]), np.array([0.5]))  # 2 -> 0.5 changes nodes 4, 2 and the root only
    assert_array_equal(tree.nodes[1:8], [13.5, 8.5, 5, 1.5, 7, 5, 0])


def test_sum_tree_prefix_search_by_hand():
    tree = SumTree(5)
    tree.set(np.arange(5), np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    # slot i owns [prefix(i), prefix(i+1)): [0,1) [1,3) [3,6) [6,10) [10,15)
    mass = np.array([0.0, 0.999, 1.0, 2.5, 3.0, 5.99, 6.0, 9.99, 10.0, 14.99])
    assert tree.find(mass).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    # a zero-priority slot is never found
    tree.set(np.array([2]), np.array([0.0]))  # now [0,1) [1,3) [] [3,7) [7,12)
    assert tree.find(np.array([2.99, 3.0, 6.99, 7.0])).tolist() == [1, 3, 3, 4]


def test_sum_tree_of_one_slot_and_of_a_power_of_two():
    one = SumTree(1)
    one.set(np.array([0]), np.array([2.0]))
    assert one.total == 2.0 and one.find(np.array([0.0, 1.9])).tolist() == [0, 0]
    four = SumTree(4)
    assert four.leaf0 == 4
    four.set(np.arange(4), np.ones(4))
    assert four.find(np.array([0.5, 1.5, 2.5, 3.5])).tolist() == [0, 1, 2, 3]


def test_rebuild_equals_incremental_updates_bit_for_bit():
    rng = np.random.default_rng(0)
    tree = SumTree(37)
    for _ in range(20):
        slots = rng.integers(0, 37, 6)
        tree.set(np.unique(slots), rng.random(len(np.unique(slots))) ** 3)
    other = SumTree(37)
    other.leaves()[:] = tree.leaves()
    other.rebuild()
    assert_array_equal(other.nodes, tree.nodes)


# ---------------------------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------------------------


def test_beta_schedule_by_hand():
    assert beta_at(0, 0.4, 100) == 0.4
    assert beta_at(50, 0.4, 100) == pytest.approx(0.7)
    assert beta_at(100, 0.4, 100) == 1.0
    assert beta_at(10_000, 0.4, 100) == 1.0


def test_importance_weights_by_hand():
    # N P = 0.4, 0.8, 1.2, 1.6; w = (N P)^-1/2, divided by the largest (the first):
    # w_i / w_0 = sqrt(P_0 / P_i) = 1, sqrt(1/2), sqrt(1/3), 1/2
    w = importance_weights(np.array([0.1, 0.2, 0.3, 0.4]), 4, 0.5)
    assert_allclose(w, [1.0, 0.5**0.5, (1 / 3) ** 0.5, 0.5], rtol=1e-12)
    # beta = 0: no correction; beta = 1: w_i proportional to 1 / P_i
    assert_allclose(importance_weights(np.array([0.1, 0.4]), 4, 0.0), [1.0, 1.0])
    assert_allclose(importance_weights(np.array([0.1, 0.4]), 4, 1.0), [1.0, 0.25])


# ---------------------------------------------------------------------------------------------
# PrioritizedReplayBuffer
# ---------------------------------------------------------------------------------------------


def test_new_transitions_get_the_max_priority():
    buf = PrioritizedReplayBuffer(8, (2,), alpha=1.0, eps=0.0)
    buf.add(*transitions([1, 2, 3]))
    assert_array_equal(buf.priorities(), [1.0, 1.0, 1.0])  # nothing seen yet: priority 1
    buf.update_priorities(torch.tensor([0, 2]), torch.tensor([4.0, 0.5]))
    buf.add(*transitions([4]))
    assert_array_equal(buf.priorities(), [4.0, 1.0, 0.5, 4.0])
    buf.update_priorities(torch.tensor([3]), torch.tensor([0.1]))  # the max never decreases
    buf.add(*transitions([5]))
    assert buf.priorities()[4] == 4.0


def test_priority_is_abs_td_plus_eps_to_the_alpha():
    buf = PrioritizedReplayBuffer(4, (2,), alpha=0.5, eps=1.0)
    buf.add(*transitions([1, 2, 3]))
    buf.update_priorities(torch.tensor([0, 1, 2]), torch.tensor([-3.0, 0.0, 8.0]))
    assert_allclose(buf.priorities(), [2.0, 1.0, 3.0])  # sqrt(3 + 1), sqrt(0 + 1), sqrt(8 + 1)


def test_non_finite_priority_is_refused():
    buf = PrioritizedReplayBuffer(4, (2,), alpha=0.6, eps=1e-6)
    buf.add(*transitions([1]))
    with pytest.raises(ValueError, match="non-finite"):
        buf.update_priorities(torch.tensor([0]), torch.tensor([float("nan")]))


def sampling_frequencies(buf, gen, draws=200, batch_size=100):
    counts = np.zeros(buf.capacity)
    for _ in range(draws):
        np.add.at(counts, buf.sample_indices(batch_size, gen).numpy(), 1)
    return counts / counts.sum()


def test_sampling_frequencies_match_priorities_to_the_alpha():
    buf = PrioritizedReplayBuffer(4, (2,), alpha=0.5, eps=1.0)
    buf.add(*transitions([1, 2, 3, 4]))
    buf.update_priorities(torch.arange(4), torch.tensor([0.0, 1.0, 3.0, 7.0]))
    expected = np.sqrt([1.0, 2.0, 4.0, 8.0])  # (|delta| + 1)^(1/2)
    expected /= expected.sum()
    freq = sampling_frequencies(buf, torch.Generator().manual_seed(0))
    assert_allclose(freq, expected, atol=0.01)  # 20000 draws: a binomial s.d. is below 0.004


def test_update_priorities_changes_the_sampling_distribution():
    buf = PrioritizedReplayBuffer(4, (2,), alpha=1.0, eps=1e-6)
    buf.add(*transitions([1, 2, 3, 4]))
    gen = torch.Generator().manual_seed(1)
    assert_allclose(sampling_frequencies(buf, gen), [0.25] * 4, atol=0.01)  # all at the max, 1
    buf.update_priorities(torch.tensor([0, 1, 2, 3]), torch.tensor([6.0, 1.0, 1.0, 2.0]))
    assert_allclose(sampling_frequencies(buf, gen), [0.6, 0.1, 0.1, 0.2], atol=0.01)


def test_only_filled_slots_are_sampled():
    buf = PrioritizedReplayBuffer(100, (2,), alpha=0.6, eps=1e-6)
    buf.add(*transitions([1, 2, 3]))
    idx = buf.sample_indices(3000, torch.Generator().manual_seed(2))
    assert idx.dtype == torch.int64 and set(idx.tolist()) == {0, 1, 2}


def test_sample_carries_weights_and_indices_by_hand():
    buf = PrioritizedReplayBuffer(6, (2,), alpha=1.0, eps=1e-9)
    buf.add(*transitions([1, 2, 3, 4]))
    buf.update_priorities(torch.arange(4), torch.tensor([1.0, 2.0, 3.0, 4.0]))  # P = 0.1 .. 0.4
    buf.beta = 0.5
    b = buf.sample(10, torch.Generator().manual_seed(3))
    # 10 strata of mass 1 over [0, 10): the first always lands in slot 0 (mass [0, 1)), the
    # largest weight, so the normalised weight of slot i is sqrt(P_0 / P_i) (see above).
    assert b.indices[0] == 0 and b.indices.dtype == torch.int64 and b.weights.dtype == torch.float32
    by_slot = {0: 1.0, 1: 0.5**0.5, 2: (1 / 3) ** 0.5, 3: 0.5}
    assert_allclose(b.weights.numpy(), [by_slot[i] for i in b.indices.tolist()], rtol=1e-6)
    # stratified: each slot gets exactly its share of the 10 strata: 1, 2, 3, 4
    assert b.indices.tolist() == [0, 1, 1, 2, 2, 2, 3, 3, 3, 3]
    # the other fields are the sampled slots' transitions
    assert_array_equal(b.rewards.numpy(), 10 * (b.indices.numpy() + 1))
    buf.beta = 0.0
    assert_array_equal(buf.sample(10, torch.Generator().manual_seed(3)).weights.numpy(), np.ones(10))


def test_ring_overwrite_keeps_the_tree_consistent():
    buf = PrioritizedReplayBuffer(5, (2,), alpha=1.0, eps=0.0)
    buf.add(*transitions([1, 2, 3, 4]))
    buf.update_priorities(torch.arange(4), torch.tensor([0.5, 3.0, 0.25, 2.0]))
    buf.add(*transitions([5, 6, 7]))  # 5 -> slot 4, 6 and 7 overwrite slots 0 and 1
    assert buf.obs[:, 0].tolist() == [6, 7, 3, 4, 5]
    assert_array_equal(buf.priorities(), [3.0, 3.0, 0.25, 2.0, 3.0])  # new ones at the max, 3
    assert_tree_consistent(buf.tree)
    assert buf.tree.total == 11.25
    buf.add(*transitions(list(range(10, 22))))  # more than the capacity at once
    assert_array_equal(buf.priorities(), [3.0] * 5)
    assert_tree_consistent(buf.tree)
    assert buf.tree.total == 15.0 and buf.tree.nodes[buf.tree.leaf0 + 5 :].sum() == 0.0


def test_sequential_sampling_is_refused():
    buf = PrioritizedReplayBuffer(4, (2,), alpha=0.6, eps=1e-6)
    buf.add(*transitions([1]))
    with pytest.raises(ValueError, match="sequential"):
        buf.sample(2, torch.Generator().manual_seed(0), sequential=True)
    with pytest.raises(ValueError, match="empty"):
        PrioritizedReplayBuffer(4, (2,), alpha=0.6, eps=1e-6).sample(2, torch.Generator())


def test_uniform_buffer_batches_have_no_weights():
    buf = ReplayBuffer(4, (2,))
    buf.add(*transitions([1, 2]))
    b = buf.sample(3, torch.Generator().manual_seed(0))
    assert b.weights is None and b.indices is None


def run_rounds(buf, gen, rounds, start):
    """Sample, update priorities from the rewards, add: what the training loop does."""
    out = []
    for k in range(rounds):
        b = buf.sample(8, gen)
        out.append(b)
        buf.update_priorities(b.indices, (b.rewards % 7) + k)
        buf.add(*transitions([start + k]))
    return out


def test_state_dict_round_trip_reproduces_the_following_samples():
    buf = PrioritizedReplayBuffer(12, (2,), alpha=0.6, eps=1e-6)
    buf.add(*transitions(list(range(1, 15))))  # wrapped
    gen = torch.Generator().manual_seed(4)
    buf.beta = 0.7
    run_rounds(buf, gen, 5, 100)
    f = io.BytesIO()
    torch.save({"buffer": buf.state_dict(), "gen": gen.get_state()}, f)
    f.seek(0)
    state = torch.load(f, weights_only=True)

    other = PrioritizedReplayBuffer(12, (2,), alpha=0.6, eps=1e-6)
    other.load_state_dict(state["buffer"])
    other_gen = torch.Generator()
    other_gen.set_state(state["gen"])
    assert_array_equal(other.tree.nodes, buf.tree.nodes)
    assert (other.pos, other.size, other.max_priority, other.beta) == (buf.pos, buf.size, buf.max_priority, 0.7)
    for a, b in zip(run_rounds(buf, gen, 6, 200), run_rounds(other, other_gen, 6, 200), strict=True):
        for x, y in zip(a, b, strict=True):
            torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_load_state_dict_of_a_uniform_buffer_is_refused():
    buf = ReplayBuffer(4, (2,))
    buf.add(*transitions([1]))
    with pytest.raises(ValueError, match="priorities"):
        PrioritizedReplayBuffer(4, (2,), alpha=0.6, eps=1e-6).load_state_dict(buf.state_dict())


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------


def test_prioritized_options_are_accepted_when_on():
    cfg = build_config(
        overrides=[
            "dqn.prioritized=true",
            "dqn.per_alpha=0.7",
            "dqn.per_beta_start=0.5",
            "dqn.per_beta_steps=1000",
            "dqn.per_eps=1e-5",
        ]
    )
    assert (cfg.dqn.per_alpha, cfg.dqn.per_beta_start, cfg.dqn.per_beta_steps, cfg.dqn.per_eps) == (
        0.7,
        0.5,
        1000,
        1e-5,
    )
    assert build_config(overrides=[]).model_validate(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "override", ["dqn.per_alpha=0.7", "dqn.per_beta_start=0.5", "dqn.per_beta_steps=10", "dqn.per_eps=0.01"]
)
def test_prioritized_options_without_prioritized_are_refused(override):
    with pytest.raises(ConfigError) as exc:
        build_config(overrides=[override])
    msg = str(exc.value)
    assert override.split("=")[0] in msg and "dqn.prioritized is true" in msg and "\n" not in msg


def test_prioritized_with_sequential_sampling_is_refused():
    with pytest.raises(ConfigError) as exc:
        build_config(overrides=["dqn.prioritized=true", "dqn.replay_sampling=sequential"])
    msg = str(exc.value)
    assert "dqn.prioritized" in msg and "sequential" in msg and "\n" not in msg


@pytest.mark.parametrize(
    "override", ["dqn.per_alpha=1.5", "dqn.per_beta_start=-0.1", "dqn.per_beta_steps=0", "dqn.per_eps=0"]
)
def test_prioritized_options_out_of_range(override):
    with pytest.raises(ConfigError, match=override.split("=")[0]):
        build_config(overrides=["dqn.prioritized=true", override])
