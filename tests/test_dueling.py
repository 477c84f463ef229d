"""Dueling Q-networks: the aggregation by hand, its invariance, and that the network works
everywhere a plain one does (BatchNorm, state_dict round trips, policies, the learner)."""

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from dqnlab.algos.dqn import DQNLearner
from dqnlab.algos.registry import build_policy_net
from dqnlab.algos.replay import Batch
from dqnlab.config import DQNConfig, NetworkConfig
from dqnlab.nn import fast_mlp
from dqnlab.nn.networks import DuelingHead, build_mlp, seeded_q_network
from dqnlab.runtime.policy import Policy, policy_from_dict


def hand_net():
    """No hidden layer: V(s) = s0 + s1 + 0.5 and A(s) = [s0, s1, s0 + s1 + 3]."""
    net = build_mlp(NetworkConfig(hidden=[], dueling=True), 2, 3)
    head = net[-1]
    with torch.no_grad():
        head.value.weight.copy_(torch.tensor([[1.0, 1.0]]))
        head.value.bias.copy_(torch.tensor([0.5]))
        head.advantage.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        head.advantage.bias.copy_(torch.tensor([0.0, 0.0, 3.0]))
    return net


def test_dueling_aggregation_by_hand():
    net = hand_net()
    assert isinstance(net[-1], DuelingHead)
    x = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    # s = (1, 2): V = 3.5, A = [1, 2, 6], mean A = 3 -> Q = 3.5 + [-2, -1, 3] = [1.5, 2.5, 6.5]
    # s = (0, 0): V = 0.5, A = [0, 0, 3], mean A = 1 -> Q = 0.5 + [-1, -1, 2] = [-0.5, -0.5, 2.5]
    with torch.no_grad():
        assert_close(net(x), torch.tensor([[1.5, 2.5, 6.5], [-0.5, -0.5, 2.5]]), rtol=0, atol=0)


def test_adding_a_constant_to_every_advantage_leaves_q_unchanged():
    net = build_mlp(NetworkConfig(hidden=[8], dueling=True), 4, 3)
    x = torch.randn(5, 4)
    with torch.no_grad():
        before = net(x)
        net[-1].advantage.bias.add_(7.25)  # A(s, a) + c for every s and a
        assert_close(net(x), before, rtol=0, atol=1e-5)
        # while a constant added to V shifts every Q by exactly that much
        net[-1].value.bias.add_(2.0)
        assert_close(net(x), before + 2.0, rtol=0, atol=1e-5)


def test_dueling_with_hidden_layers_is_value_plus_centred_advantage():
    net = seeded_q_network(NetworkConfig(hidden=[16, 8], dueling=True), 4, 3, seed=0)
    x = torch.randn(6, 4)
    with torch.no_grad():
        h = net[:-1](x)
        adv = net[-1].advantage(h)
        assert_close(net(x), net[-1].value(h) + adv - adv.mean(1, keepdim=True))
        assert net(x).shape == (6, 3)


def test_architecture_is_fixed_by_the_config_and_state_dicts_round_trip():
    cfg = NetworkConfig(hidden=[8], dueling=True, batch_norm=True)
    a = seeded_q_network(cfg, 4, 2, seed=1)
    b = seeded_q_network(cfg, 4, 2, seed=1)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])  # same seed, same network
    c = build_mlp(cfg, 4, 2)
    c.load_state_dict(a.state_dict())  # strict: every key and shape matches
    x = torch.randn(5, 4)
    a.eval(), c.eval()
    with torch.no_grad():
        assert_close(c(x), a(x), rtol=0, atol=0)
    # a plain network's state_dict does not load into a dueling one (and vice versa)
    with pytest.raises(RuntimeError):
        c.load_state_dict(build_mlp(NetworkConfig(hidden=[8], batch_norm=True), 4, 2).state_dict())


def test_dueling_policy_round_trip():
    cfg = NetworkConfig(hidden=[8], dueling=True)
    policy = Policy(seeded_q_network(cfg, 4, 2, seed=3), "CartPole-v1", (4,), 2, cfg)
    again = policy_from_dict(policy.to_dict(), "test", build_policy_net)
    obs = torch.randn(10, 4).numpy()
    assert (again(obs) == policy(obs)).all()
    assert again.q_values(obs).tolist() == policy.q_values(obs).tolist()


@pytest.mark.parametrize("batch_norm", [False, True])
def test_learner_trains_a_dueling_network_through_autograd(batch_norm):
    net = seeded_q_network(NetworkConfig(hidden=[16], dueling=True, batch_norm=batch_norm), 4, 2, seed=0)
    assert fast_mlp.mlp_layers(net) is None  # not a plain MLP: the learner falls back to autograd
    learner = DQNLearner(net, DQNConfig(lr=1e-2))
    assert not learner.fast_path
    g = torch.Generator().manual_seed(0)
    b = Batch(
        torch.randn(32, 4, generator=g),
        torch.randint(0, 2, (32,), generator=g),
        torch.randn(32, generator=g),
        torch.randn(32, 4, generator=g),
        torch.zeros(32),
        torch.full((32,), 0.9),
        weights=torch.rand(32, generator=g),
        indices=torch.arange(32),
    )
    before = {k: v.clone() for k, v in net.state_dict().items()}
    first = learner.update(b)
    for _ in range(20):
        loss = learner.update(b)
    assert loss < first  # it fits the fixed batch
    head = net[-1]
    for name in ("value.weight", "advantage.weight"):  # both heads learn
        assert not torch.equal(head.state_dict()[name], before[f"{len(net) - 1}.{name}"])
    assert learner.last_td_abs.shape == (32,) and (learner.last_td_abs >= 0).all()
    assert learner.greedy_actions(b.obs).shape == (32,)


def test_plain_network_is_unchanged():
    # The default network keeps its layout, so existing policy files still load.
    net = build_mlp(NetworkConfig(hidden=[8]), 4, 2)
    assert isinstance(net[-1], nn.Linear) and list(net.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
