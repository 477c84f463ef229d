"""TD targets, next-state values, the DQN loss and its gradient, target-network updates (in the
learner and when the training loop calls for them) and epsilon-greedy acting (one step, or held), with hand numbers."""

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.testing import assert_close

from dqnlab.algos.dqn import (
    DQNLearner,
    DQNLoop,
    HeldExploration,
    epsilon_greedy,
    next_state_value,
    td_loss,
    td_loss_grad,
    td_target,
)
from dqnlab.algos.replay import Batch
from dqnlab.config import DQNConfig, NetworkConfig
from dqnlab.nn.networks import build_mlp


def exact(a, b):
    assert_close(a, b, rtol=0, atol=0)


def linear_net(weight, bias=None):
    """nn.Linear(obs_dim -> n_actions) with the given weights, so Q(s) = W s + b by hand."""
    w = torch.tensor(weight, dtype=torch.float32)
    net = nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        net.weight.copy_(w)
        net.bias.copy_(torch.zeros(w.shape[0]) if bias is None else torch.tensor(bias, dtype=torch.float32))
    return net


# ---------------------------------------------------------------------------------------------
# td_target
# ---------------------------------------------------------------------------------------------


def test_td_target_terminated_nonterminated_truncated():
    rewards = torch.tensor([1.0, 1.0, 0.5])
    next_q = torch.tensor([10.0, 10.0, 4.0])
    # [0] ordinary step: 1 + 0.9 * 10 = 10
    # [1] terminated: no bootstrap, just the reward 1
    # [2] truncated by a time limit: stored with terminated = 0, so it bootstraps: 0.5 + 0.9 * 4 = 4.1
    terminated = torch.tensor([0.0, 1.0, 0.0])
    y = td_target(rewards, next_q, terminated, 0.9)
    exact(y, torch.tensor([10.0, 1.0, 4.1]))


def test_td_target_per_transition_discounts():
    # n-step transitions carry their own bootstrap discount gamma^k (gamma = 0.5 here):
    # k=3: 1.75 + 0.125 * 8 = 2.75; k=2: 1 + 0.25 * 8 = 3; k=1 terminated: 2 (discount unused).
    rewards = torch.tensor([1.75, 1.0, 2.0])
    next_q = torch.tensor([8.0, 8.0, 8.0])
    terminated = torch.tensor([0.0, 0.0, 1.0])
    discounts = torch.tensor([0.125, 0.25, 0.5])
    exact(td_target(rewards, next_q, terminated, discounts), torch.tensor([2.75, 3.0, 2.0]))


def test_td_target_gamma_zero_and_one():
    r, q, t = torch.tensor([2.0]), torch.tensor([5.0]), torch.tensor([0.0])
    exact(td_target(r, q, t, 0.0), torch.tensor([2.0]))
    exact(td_target(r, q, t, 1.0), torch.tensor([7.0]))


def test_td_target_clamped_to_its_limit():
    # limit 10, gamma 0.5: 1 + 0.5 * 20 = 11 -> 10; -2 + 0.5 * (-30) = -17 -> -10; 1 + 0.5 * 5 = 3.5
    # stays; a terminated 12 (a reward past the limit) -> 10.
    rewards = torch.tensor([1.0, -2.0, 1.0, 12.0])
    next_q = torch.tensor([20.0, -30.0, 5.0, 99.0])
    terminated = torch.tensor([0.0, 0.0, 0.0, 1.0])
    exact(td_target(rewards, next_q, terminated, 0.5, 10.0), torch.tensor([10.0, -10.0, 3.5, 10.0]))
    exact(td_target(rewards, next_q, terminated, 0.5), torch.tensor([11.0, -17.0, 3.5, 12.0]))


@pytest.mark.parametrize("fast_path", [True, False])
def test_learner_targets_respect_the_limit(fast_path):
    learner = DQNLearner(
        linear_net([[30.0, 0.0, 0.0, 0.0], [0.0, 30.0, 0.0, 0.0]]),
        DQNConfig(lr=0.01, fast_path=fast_path, double=False),
    )
    batch = random_batch(n=8)
    batch.next_obs.fill_(1.0)  # max_a Q(s', a) = 30 on every row
    batch.terminated.zero_()
    unbounded = batch.rewards + batch.discounts * 30.0
    exact(learner.targets(batch), unbounded)
    learner.target_limit = 20.0
    exact(learner.targets(batch), unbounded.clamp(-20.0, 20.0))


@pytest.mark.parametrize("bound", [True, False])
def test_loop_bounds_targets_by_the_rewards_seen(dqn_loop, bound):
    loop = dqn_loop(**{"dqn.bound_targets": bound, "dqn.gamma": 0.5, "dqn.double": False})
    run_until(loop, episodes=0, grad_steps=1)
    # CartPole pays 1 a step: no return of such rewards exceeds 1 / (1 - 0.5) = 2.
    assert loop.reward_abs_max == 1.0
    assert loop.learner.target_limit == (2.0 if bound else float("inf"))
    # A target network that overestimates wildly (|Q| near 1000): its targets stay within 2 only
    # with the bound, in the learner's update as the loop calls it.
    with torch.no_grad():
        for p in loop.learner.target.parameters():
            p.mul_(30.0)
    batch = loop.buffer.sample(16, torch.Generator().manual_seed(0), False)
    y = loop.learner.targets(batch)
    unbounded = td_target(
        batch.rewards, loop.learner.target(batch.next_obs).max(dim=1).values, batch.terminated, batch.discounts
    )
    assert unbounded.abs().max() > 100.0
    if bound:
        exact(y, unbounded.clamp(-2.0, 2.0))
    else:
        exact(y, unbounded)


# ---------------------------------------------------------------------------------------------
# next_state_value: max vs Double DQN
# ---------------------------------------------------------------------------------------------

# next_obs rows s1 = [1, 0], s2 = [0, 1]
# target W = [[3, -1], [1, 2]]: Q_target(s1) = [3, 1], Q_target(s2) = [-1, 2]
# online W = [[0, 1], [1, 0]]:  Q_online(s1) = [0, 1] -> argmax 1; Q_online(s2) = [1, 0] -> argmax 0
NEXT_OBS = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
TARGET_W = [[3.0, -1.0], [1.0, 2.0]]
ONLINE_W = [[0.0, 1.0], [1.0, 0.0]]


def test_next_state_value_max():
    v = next_state_value(linear_net(ONLINE_W), linear_net(TARGET_W), NEXT_OBS, double=False)
    exact(v, torch.tensor([3.0, 2.0]))  # max of the target's own values


def test_next_state_value_double_dqn():
    v = next_state_value(linear_net(ONLINE_W), linear_net(TARGET_W), NEXT_OBS, double=True)
    # online picks a=1 for s1 and a=0 for s2; the target values them: Q_t(s1,1)=1, Q_t(s2,0)=-1
    exact(v, torch.tensor([1.0, -1.0]))


def test_next_state_value_double_equals_max_when_networks_agree():
    target = linear_net(TARGET_W)
    v = next_state_value(target, target, NEXT_OBS, double=True)
    exact(v, torch.tensor([3.0, 2.0]))


# ---------------------------------------------------------------------------------------------
# The loss on hand numbers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "weights, huber, mse",
    [
        # TD errors [-2, -0.5, 0, 0.5, 3]: Huber 1.5, 0.125, 0, 0.125, 2.5; squared 4, 0.25, 0, 0.25, 9
        (None, 4.25 / 5, 13.5 / 5),
        ([1.0, 0.5, 1.0, 0.0, 2.0], (1.5 + 0.0625 + 5.0) / 5, (4 + 0.125 + 18) / 5),
    ],
)
def test_td_loss_hand_numbers(weights, huber, mse):
    td = torch.tensor([-2.0, -0.5, 0.0, 0.5, 3.0])
    w = None if weights is None else torch.tensor(weights)
    assert td_loss(td, "huber", w).item() == pytest.approx(huber, rel=1e-6)
    assert td_loss(td, "mse", w).item() == pytest.approx(mse, rel=1e-6)
    # and their gradients by hand: clamp(d, -1, 1) / 5 and 2 d / 5, times the weights
    ones = torch.ones(5) if w is None else w
    assert_close(td_loss_grad(td, "huber", w), torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]) / 5 * ones)
    assert_close(td_loss_grad(td, "mse", w), td * 2 / 5 * ones)


@pytest.mark.parametrize("kind", ["huber", "mse"])
@pytest.mark.parametrize("with_weights", [False, True])
def test_td_loss_grad_is_the_gradient_of_td_loss(kind, with_weights):
    # The fast path's hand-written gradient is autograd's gradient of the one loss definition,
    # on both sides of Huber's kink at |d| = 1 and on it.
    g = torch.Generator().manual_seed(0)
    td = torch.cat([torch.randn(61, generator=g) * 2, torch.tensor([-1.0, 1.0, 0.0])]).requires_grad_(True)
    w = torch.rand(64, generator=g) if with_weights else None
    td_loss(td, kind, w).backward()
    assert_close(td_loss_grad(td.detach(), kind, w), td.grad, rtol=1e-6, atol=1e-9)


def test_td_loss_refuses_an_unknown_kind():
    with pytest.raises(ValueError, match="unknown TD loss"):
        td_loss(torch.zeros(2), "l1")
    with pytest.raises(ValueError, match="unknown TD loss"):
        td_loss_grad(torch.zeros(2), "l1")


def hand_batch():
    # obs rows pick Q columns of the online net; actions select one of them.
    return Batch(
        obs=torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
        actions=torch.tensor([1, 0]),
        rewards=torch.tensor([1.0, 0.5]),
        next_obs=NEXT_OBS.clone(),
        terminated=torch.tensor([0.0, 1.0]),
        discounts=torch.tensor([0.5, 0.5]),
    )


@pytest.mark.parametrize(
    "double, loss_name, expected",
    [
        # Q_online(obs) = [[0, 1], [1, 0]]; chosen q = [Q(s1,1), Q(s2,0)] = [1, 1]
        # double: next values [1, -1]; y = [1 + 0.5 * 1, 0.5 (terminated)] = [1.5, 0.5]; errors [-0.5, 0.5]
        (True, "mse", 0.25),  # mean(0.25, 0.25)
        (True, "huber", 0.125),  # |e| < 1: 0.5 e^2 = 0.125 each
        # max: next values [3, 2]; y = [1 + 0.5 * 3, 0.5] = [2.5, 0.5]; errors [-1.5, 0.5]
        (False, "mse", 1.25),  # mean(2.25, 0.25)
        (False, "huber", 0.5625),  # mean(1.5 - 0.5, 0.125) = mean(1.0, 0.125)
    ],
)
def test_loss_hand_numbers(double, loss_name, expected):
    online = linear_net(ONLINE_W)
    learner = DQNLearner(online, DQNConfig(double=double, loss=loss_name))
    # Give the target its own weights (the learner starts with a copy of the online net).
    with torch.no_grad():
        learner.target.weight.copy_(torch.tensor(TARGET_W))
    loss = learner.loss(hand_batch())
    assert loss.item() == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize(
    "loss_name, expected",
    [
        # max targets: errors Q - y = [-1.5, 0.5] (see above); importance weights [0.5, 1.0]
        ("mse", 0.6875),  # mean(0.5 * 2.25, 1.0 * 0.25)
        ("huber", 0.3125),  # mean(0.5 * (1.5 - 0.5), 1.0 * 0.125)
    ],
)
def test_importance_weighted_loss_hand_numbers(fast, loss_name, expected):
    # nn.Linear alone takes autograd; wrapped in nn.Sequential it takes the fast path.
    online = nn.Sequential(linear_net(ONLINE_W)) if fast else linear_net(ONLINE_W)
    learner = DQNLearner(online, DQNConfig(double=False, loss=loss_name, max_grad_norm=None))
    assert learner.fast_path == fast
    target = learner.target[0] if fast else learner.target
    with torch.no_grad():
        target.weight.copy_(torch.tensor(TARGET_W))
    batch = hand_batch()._replace(weights=torch.tensor([0.5, 1.0]), indices=torch.tensor([7, 3]))
    assert learner.last_td_abs is None
    assert learner.update(batch).item() == pytest.approx(expected, abs=1e-7)
    exact(learner.last_td_abs, torch.tensor([1.5, 0.5]))
    # weights of one give back the unweighted loss
    learner2 = DQNLearner(copy.deepcopy(online), DQNConfig(double=False, loss=loss_name))
    with torch.no_grad():
        (learner2.target[0] if fast else learner2.target).weight.copy_(torch.tensor(TARGET_W))
    ones = hand_batch()._replace(weights=torch.ones(2))
    assert learner2.loss(ones).item() == pytest.approx(learner2.loss(hand_batch()).item(), abs=1e-7)


# ---------------------------------------------------------------------------------------------
# Target-network updates
# ---------------------------------------------------------------------------------------------


def small_net(batch_norm=False, seed=0):
    torch.manual_seed(seed)
    return build_mlp(NetworkConfig(hidden=[8], batch_norm=batch_norm), 4, 2)


def random_batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Batch(
        obs=torch.randn(n, 4, generator=g),
        actions=torch.randint(0, 2, (n,), generator=g),
        rewards=torch.randn(n, generator=g),
        next_obs=torch.randn(n, 4, generator=g),
        terminated=(torch.rand(n, generator=g) < 0.2).float(),
        discounts=torch.full((n,), 0.99),
    )


def assert_state_equal(a: nn.Module, b: nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        exact(sa[k], sb[k])


def states_differ(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return any(not torch.equal(sa[k], sb[k]) for k in sa)


def test_target_starts_as_an_independent_copy():
    learner = DQNLearner(small_net(), DQNConfig())
    assert_state_equal(learner.target, learner.online)
    assert all(not p.requires_grad for p in learner.target.parameters())
    # Not aliased: changing the online network leaves the target alone.
    with torch.no_grad():
        next(learner.online.parameters()).add_(1.0)
    assert states_differ(learner.target, learner.online)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_hard_update_copies_weights_and_batchnorm_buffers_exactly(batch_norm):
    cfg = DQNConfig(target_update="hard", target_update_every=10_000, lr=0.01)
    learner = DQNLearner(small_net(batch_norm), cfg)
    for i in range(3):
        learner.update(random_batch(seed=i))
    assert states_differ(learner.target, learner.online)  # the updates moved the online net only
    if batch_norm:
        bn_t, bn_o = learner.target[1], learner.online[1]
        assert not torch.equal(bn_t.running_mean, bn_o.running_mean)
        assert int(bn_o.num_batches_tracked) == 3 and int(bn_t.num_batches_tracked) == 0
    learner.hard_update()
    assert_state_equal(learner.target, learner.online)  # includes running_mean/var, num_batches_tracked
    # Still a copy, not a shared tensor.
    learner.update(random_batch(seed=99))
    assert states_differ(learner.target, learner.online)


def test_hard_update_every_k_gradient_steps():
    cfg = DQNConfig(target_update="hard", target_update_every=3, lr=0.01)
    learner = DQNLearner(small_net(), cfg)
    initial = copy.deepcopy(learner.target.state_dict())
    for step in range(1, 8):
        learner.update(random_batch(seed=step))
        assert learner.grad_steps == step
        if step % 3 == 0:
            assert_state_equal(learner.target, learner.online)  # copied at steps 3 and 6
        else:
            assert states_differ(learner.target, learner.online)
        if step < 3:
            # Before the first copy the target is untouched.
            for k, v in learner.target.state_dict().items():
                exact(v, initial[k])


def test_hard_update_in_episode_units_is_not_done_by_update():
    # With target_update_unit="episodes" the training loop copies per episode; update() must not.
    cfg = DQNConfig(target_update="hard", target_update_every=1, target_update_unit="episodes", lr=0.01)
    learner = DQNLearner(small_net(), cfg)
    initial = copy.deepcopy(learner.target.state_dict())
    learner.update(random_batch())
    for k, v in learner.target.state_dict().items():
        exact(v, initial[k])


@pytest.mark.parametrize("unit", ["steps", "episodes"])
def test_sync_target_hard_copies_only_on_multiples_of_its_own_unit(unit):
    other = "episodes" if unit == "steps" else "steps"
    cfg = DQNConfig(target_update="hard", target_update_every=3, target_update_unit=unit)
    learner = DQNLearner(small_net(), cfg)
    copies = []
    learner.hard_update = lambda: copies.append(True)
    for count in range(1, 10):
        learner.sync_target(other, count)  # the other unit's events never copy
    assert copies == []
    for count in range(1, 10):
        copies.clear()
        learner.sync_target(unit, count)
        assert copies == ([True] if count % 3 == 0 else [])


def test_sync_target_soft_only_after_gradient_steps():
    learner = DQNLearner(small_net(), DQNConfig(target_update="soft", tau=0.2, target_update_unit="episodes"))
    taus = []
    learner.soft_update = taus.append
    learner.hard_update = lambda: taus.append("hard")
    for count in range(1, 5):
        learner.sync_target("episodes", count)
    assert taus == []
    for count in range(1, 5):
        learner.sync_target("steps", count)
    assert taus == [0.2] * 4


def perturbed_learner(cfg, batch_norm):
    learner = DQNLearner(small_net(batch_norm), cfg)
    with torch.no_grad():  # make online and target differ everywhere, buffers included
        for i, t in enumerate(list(learner.online.parameters()) + list(learner.online.buffers())):
            if t.is_floating_point():
                t.add_(0.5 + 0.1 * i)
            else:
                t.add_(7)
    return learner


@pytest.mark.parametrize("batch_norm", [False, True])
def test_soft_update_by_hand(batch_norm):
    learner = perturbed_learner(DQNConfig(target_update="soft", tau=0.25), batch_norm)
    online = copy.deepcopy(learner.online.state_dict())
    target = copy.deepcopy(learner.target.state_dict())
    learner.soft_update(0.25)
    new = learner.target.state_dict()
    for k in online:
        if online[k].is_floating_point():  # weights, biases, running_mean, running_var
            assert_close(new[k], 0.25 * online[k] + 0.75 * target[k])
        else:  # num_batches_tracked: copied
            exact(new[k], online[k])
    # The online network is not touched by a target update.
    for k, v in learner.online.state_dict().items():
        exact(v, online[k])


def test_soft_update_happens_after_each_gradient_step():
    learner = perturbed_learner(DQNConfig(target_update="soft", tau=0.1, lr=0.01), batch_norm=False)
    target_before = copy.deepcopy(learner.target.state_dict())
    learner.update(random_batch())
    online_after = learner.online.state_dict()  # after the optimizer step
    for k, v in learner.target.state_dict().items():
        assert_close(v, 0.1 * online_after[k] + 0.9 * target_before[k])


# ---------------------------------------------------------------------------------------------
# dqn.policy_average_tau: the network evaluated is a Polyak average of the online one
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("fast_path", [True, False])
def test_policy_average_by_hand_after_each_gradient_step(batch_norm, fast_path):
    cfg = DQNConfig(lr=0.01, policy_average_tau=0.25, fast_path=fast_path)
    learner = DQNLearner(small_net(batch_norm), cfg)
    assert learner.average is not learner.online and not any(p.requires_grad for p in learner.average.parameters())
    assert_state_equal(learner.average, learner.online)  # starts as a copy
    for i in range(3):
        before = copy.deepcopy(learner.average.state_dict())
        learner.update(random_batch(n=32, seed=i))
        online = learner.online.state_dict()  # after the optimizer step
        for k, v in learner.average.state_dict().items():
            if v.is_floating_point():  # weights, biases, BatchNorm's running statistics
                assert_close(v, before[k] + 0.25 * (online[k] - before[k]))
            else:  # num_batches_tracked is not averaged
                exact(v, before[k])
    assert not learner.average.training
    # Evaluations act with the average: its argmax, not the online network's.
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        exact(learner.policy_actions(x), learner.average(x).argmax(dim=1))
        assert not torch.equal(learner.average(x), learner.online(x))


def test_without_a_policy_average_the_online_network_is_evaluated():
    learner = DQNLearner(small_net(), DQNConfig(lr=0.01, policy_average_tau=None))
    learner.update(random_batch())
    assert learner.average is learner.online and "average" not in learner.state_dict()
    x = torch.randn(8, 4)
    exact(learner.policy_actions(x), learner.greedy_actions(x))


def test_a_learner_state_without_its_policy_average_is_refused():
    # (the round trip of a state with the average: test_learner_state_dict_round_trip_continues_identically)
    cfg = DQNConfig(lr=0.01, policy_average_tau=0.1)
    state = DQNLearner(small_net(seed=1), cfg).state_dict()
    del state["average"]
    with pytest.raises(ValueError, match="no averaged network"):
        DQNLearner(small_net(seed=2), cfg).load_state_dict(state)


def test_loop_evaluates_and_delivers_the_average(dqn_loop):
    loop = dqn_loop(**{"dqn.policy_average_tau": 0.05})
    run_until(loop, episodes=0, grad_steps=20)
    assert loop.policy_net() is loop.learner.average is not loop.learner.online
    obs = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    with torch.no_grad():
        expected = loop.learner.average(torch.from_numpy(obs)).argmax(dim=1).numpy()
    np.testing.assert_array_equal(loop.greedy_act(obs), expected)


# ---------------------------------------------------------------------------------------------
# BatchNorm: acting uses running statistics
# ---------------------------------------------------------------------------------------------


def test_batchnorm_network_is_in_eval_mode_after_update_and_stats_move():
    learner = DQNLearner(small_net(batch_norm=True), DQNConfig(lr=0.01))
    bn = learner.online[1]
    assert isinstance(bn, nn.BatchNorm1d)
    mean0, var0 = bn.running_mean.clone(), bn.running_var.clone()
    target_stats = learner.target[1].running_mean.clone()
    learner.update(random_batch(n=32))
    # Back in eval mode, every submodule, for acting and targets.
    assert not learner.online.training
    assert all(not m.training for m in learner.online.modules())
    assert all(not m.training for m in learner.target.modules())
    # The gradient step used batch statistics and so moved the running ones...
    assert not torch.equal(bn.running_mean, mean0)
    assert not torch.equal(bn.running_var, var0)
    assert int(bn.num_batches_tracked) == 1
    # ...but the target network's forward passes (eval mode) did not touch its statistics.
    exact(learner.target[1].running_mean, target_stats)
    # Acting on a single observation works (train mode would refuse a batch of one) and does
    # not change the statistics.
    mean1 = bn.running_mean.clone()
    a = learner.greedy_actions(torch.randn(1, 4))
    assert a.shape == (1,)
    exact(bn.running_mean, mean1)


def test_batchnorm_acting_uses_running_stats():
    # In eval mode each row's output does not depend on the rest of the batch.
    learner = DQNLearner(small_net(batch_norm=True), DQNConfig(lr=0.01))
    learner.update(random_batch(n=32))
    x = torch.randn(10, 4, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = learner.online(x)
        first = learner.online(x[:1])
    assert_close(full[:1], first)


def test_greedy_actions_is_argmax():
    learner = DQNLearner(linear_net(ONLINE_W), DQNConfig())
    exact(learner.greedy_actions(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 2.0]])), torch.tensor([1, 0, 0]))


def test_learner_state_dict_round_trip_continues_identically():
    cfg = DQNConfig(lr=0.01, target_update_every=2)
    a = DQNLearner(small_net(seed=1), cfg)
    for i in range(3):
        a.update(random_batch(seed=i))
    b = DQNLearner(small_net(seed=2), cfg)
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    assert b.grad_steps == 3
    for i in range(3, 6):
        la, lb = a.update(random_batch(seed=i)), b.update(random_batch(seed=i))
        exact(la, lb)
    assert_state_equal(a.online, b.online)
    assert_state_equal(a.target, b.target)
    assert cfg.policy_average_tau is not None  # the default: the average round-trips too
    assert_state_equal(a.average, b.average)


def test_batchnorm_with_batch_size_one_is_refused_or_works():
    from dqnlab.config import build_config
    from dqnlab.core.errors import ConfigError

    try:
        cfg = build_config(overrides=["network.batch_norm=true", "network.hidden=[8]", "dqn.batch_size=1"])
    except ConfigError:
        return  # refusing the combination up front is one acceptable fix
    learner = DQNLearner(small_net(batch_norm=True), cfg.dqn)
    learner.update(random_batch(n=1))  # the other: a batch of one must not crash
    assert not learner.online.training


# ---------------------------------------------------------------------------------------------
# Target sync in the training loop: each kind exactly when due
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def dqn_loop(tmp_path, tiny):
    from dqnlab.envs.make import make_vec_env
    from dqnlab.runtime.loop import RunContext

    loops = []

    def build(**fields):
        cfg = tiny(
            **{"dqn.learning_starts": 64, "dqn.batch_size": 16, "dqn.train_freq": 4, "env.num_envs": 4, **fields}
        )
        loop = DQNLoop(RunContext(cfg, tmp_path, make_vec_env(cfg.env, cfg.env.num_envs), (4,), 2, 475.0, 0.0, False))
        loops.append(loop)
        return loop

    yield build
    for loop in loops:
        loop.close()


def record_syncs(loop):
    """Log (kind, gradient steps, finished episodes) at each target sync the learner does."""
    log = []
    hard, soft = loop.learner.hard_update, loop.learner.soft_update

    def hard_logged():
        log.append(("hard", loop.learner.grad_steps, loop.episodes))
        hard()

    def soft_logged(tau):
        log.append(("soft", loop.learner.grad_steps, loop.episodes))
        soft(tau)

    loop.learner.hard_update, loop.learner.soft_update = hard_logged, soft_logged
    return log


def run_until(loop, episodes, grad_steps):
    while loop.episodes < episodes or loop.learner.grad_steps < grad_steps:
        loop.advance()


def test_loop_hard_sync_every_k_gradient_steps(dqn_loop):
    loop = dqn_loop(**{"dqn.target_update": "hard", "dqn.target_update_unit": "steps", "dqn.target_update_every": 5})
    log = record_syncs(loop)
    run_until(loop, episodes=8, grad_steps=40)
    assert loop.episodes >= 8  # episodes ended, and copied nothing
    assert [(kind, steps) for kind, steps, _ in log] == [("hard", k) for k in range(5, loop.learner.grad_steps + 1, 5)]


def test_loop_hard_sync_every_k_episodes(dqn_loop):
    loop = dqn_loop(**{"dqn.target_update": "hard", "dqn.target_update_unit": "episodes", "dqn.target_update_every": 3})
    log = record_syncs(loop)
    run_until(loop, episodes=10, grad_steps=20)
    assert [(kind, episodes) for kind, _, episodes in log] == [("hard", e) for e in range(3, loop.episodes + 1, 3)]


def test_loop_episode_end_copies_the_online_network(dqn_loop):
    loop = dqn_loop(**{"dqn.target_update": "hard", "dqn.target_update_unit": "episodes", "dqn.target_update_every": 3})
    with torch.no_grad():
        next(loop.learner.online.parameters()).add_(1.0)
    loop.episodes = 4  # the loop counts the episode, then calls on_episode_end
    loop.on_episode_end(0)
    assert states_differ(loop.learner.target, loop.learner.online)
    loop.episodes = 6
    loop.on_episode_end(0)
    assert_state_equal(loop.learner.target, loop.learner.online)


def test_loop_soft_sync_after_every_gradient_step_and_nowhere_else(dqn_loop):
    loop = dqn_loop(**{"dqn.target_update": "soft", "dqn.tau": 0.1})
    log = record_syncs(loop)
    run_until(loop, episodes=8, grad_steps=30)
    assert [(kind, steps) for kind, steps, _ in log] == [("soft", k) for k in range(1, loop.learner.grad_steps + 1)]


# ---------------------------------------------------------------------------------------------
# Acting
# ---------------------------------------------------------------------------------------------


def test_epsilon_greedy_extremes_and_draw_order():
    greedy = np.array([1, 0, 1, 0, 1, 0])
    exact(torch.from_numpy(epsilon_greedy(greedy, 0.0, np.random.default_rng(0), 2)), torch.from_numpy(greedy))
    rng = np.random.default_rng(1)
    acts = epsilon_greedy(greedy, 1.0, rng, 5)
    # epsilon 1: every action random, from the second draw of the stream (the first decides)
    ref = np.random.default_rng(1)
    ref.random(6)
    assert acts.tolist() == ref.integers(0, 5, size=6).tolist()
    # the stream advances the same way whatever epsilon is
    a, b = np.random.default_rng(2), np.random.default_rng(2)
    epsilon_greedy(greedy, 0.0, a, 2)
    epsilon_greedy(greedy, 1.0, b, 2)
    assert a.random() == b.random()


def test_held_exploration_holds_each_random_action_for_its_duration():
    hold = HeldExploration(num_envs=3, max_hold=4, duration="fixed", mu=2.0)
    rng = np.random.default_rng(0)
    greedy = np.array([7, 7, 7])
    acts = np.stack([hold.act(greedy, 1.0, rng, 5) for _ in range(12)])  # (steps, envs)
    # epsilon 1: every env explores all the time, in runs of exactly 4 steps of one action each
    for env in range(3):
        runs = acts[:, env].reshape(3, 4)
        assert (runs == runs[:, :1]).all()
        assert (runs < 5).all()
    # the action of each run is the random action drawn on its first step
    ref = np.random.default_rng(0)
    ref.random(3)
    assert acts[0].tolist() == ref.integers(0, 5, size=3).tolist()


def test_held_exploration_epsilon_zero_is_greedy_and_cut_ends_a_hold():
    hold = HeldExploration(num_envs=2, max_hold=10, duration="fixed", mu=2.0)
    rng = np.random.default_rng(1)
    greedy = np.array([3, 4])
    assert hold.act(greedy, 0.0, rng, 5).tolist() == [3, 4]
    assert hold.left.tolist() == [0, 0]
    hold.act(greedy, 1.0, rng, 5)  # both envs start a hold of 10 steps (1 used)
    assert hold.left.tolist() == [9, 9]
    held = hold.action.copy()
    assert hold.act(greedy, 0.0, rng, 5).tolist() == held.tolist()  # a hold outlasts epsilon 0
    hold.cut(np.array([True, False]))  # env 0's episode ended
    assert hold.act(greedy, 0.0, rng, 5).tolist() == [3, held[1]]


def test_held_exploration_zeta_durations_are_capped_and_the_stream_is_fixed():
    hold = HeldExploration(num_envs=1000, max_hold=6, duration="zeta", mu=2.0)
    hold.act(np.zeros(1000, dtype=np.int64), 1.0, np.random.default_rng(2), 3)
    durations = hold.left + 1
    assert durations.min() == 1 and durations.max() == 6
    assert 0.5 < (durations == 1).mean() < 0.7  # zeta(2): P(1) = 6 / pi^2 = 0.61
    # the stream advances by the same draws whatever epsilon and the holds are
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    HeldExploration(4, 6, "zeta", 2.0).act(np.zeros(4, dtype=np.int64), 0.0, a, 2)
    HeldExploration(4, 6, "zeta", 2.0).act(np.zeros(4, dtype=np.int64), 1.0, b, 2)
    assert a.random() == b.random()


def test_held_exploration_state_round_trips():
    hold = HeldExploration(num_envs=3, max_hold=5, duration="fixed", mu=2.0)
    hold.act(np.zeros(3, dtype=np.int64), 0.7, np.random.default_rng(4), 4)
    other = HeldExploration(num_envs=3, max_hold=5, duration="fixed", mu=2.0)
    other.load_state_dict(hold.state_dict())
    assert other.action.tolist() == hold.action.tolist() and other.left.tolist() == hold.left.tolist()
    with pytest.raises(ValueError):
        HeldExploration(num_envs=2, max_hold=5, duration="fixed", mu=2.0).load_state_dict(hold.state_dict())


def test_bounds_scaling_maps_each_range_to_minus_one_one_by_hand():
    from dqnlab.nn.networks import InputScaling, bounds_scaling

    offset, scale = bounds_scaling([-1.2, -0.07, -np.inf], [0.6, 0.07, np.inf])
    assert offset == pytest.approx([-0.3, 0.0, 0.0]) and scale == pytest.approx([2 / 1.8, 2 / 0.14, 1.0])
    x = torch.tensor([[-1.2, -0.07, 5.0], [0.6, 0.07, -5.0], [-0.3, 0.0, 0.0]])
    y = InputScaling(offset, scale)(x)
    assert_close(y, torch.tensor([[-1.0, -1.0, 5.0], [1.0, 1.0, -5.0], [0.0, 0.0, 0.0]]), rtol=0, atol=1e-6)
