"""The hand-written MLP forward/backward equals autograd's, for every activation and loss."""

import pytest
import torch

from dqnlab.nn import fast_mlp
from dqnlab.config import DQNConfig, NetworkConfig
from dqnlab.algos.dqn import DQNLearner
from dqnlab.nn.networks import build_q_network
from dqnlab.algos.replay import Batch


def batch(n=32, obs_dim=4, n_actions=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(n, obs_dim, generator=g) * 2, torch.randint(0, n_actions, (n,), generator=g),
                 torch.randn(n, generator=g), torch.randn(n, obs_dim, generator=g),
                 (torch.rand(n, generator=g) < 0.2).float(), torch.full((n,), 0.99))


@pytest.mark.parametrize("activation", ["relu", "tanh", "leaky_relu"])
@pytest.mark.parametrize("loss", ["huber", "mse"])
@pytest.mark.parametrize("hidden", [[16], [32, 16], [8, 8, 8], []])
@pytest.mark.parametrize("weighted", [False, True])
def test_loss_and_gradients_match_autograd(activation, loss, hidden, weighted):
    torch.manual_seed(1)
    net = build_q_network(NetworkConfig(hidden=hidden, activation=activation), 4, 3)
    learner = DQNLearner(net, DQNConfig(loss=loss))
    assert learner._fast is not None
    b = batch()
    if weighted:  # importance weights of prioritised replay
        b = b._replace(weights=torch.rand(len(b.actions), generator=torch.Generator().manual_seed(2)))
    ref, ref_td = learner._loss_and_td(b)
    learner.optimizer.zero_grad()
    ref.backward()
    expected = [p.grad.clone() for p in net.parameters()]
    value, td = fast_mlp.td_loss_backward(*learner._fast, b.obs, b.actions, learner.targets(b), loss, b.weights)
    torch.testing.assert_close(value, ref.detach(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(td, ref_td, rtol=1e-6, atol=1e-6)
    for got, want in zip((p.grad for p in net.parameters()), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_forward_matches_module():
    net = build_q_network(NetworkConfig(hidden=[16, 16], activation="tanh"), 4, 2)
    layers, kind = fast_mlp.mlp_layers(net)
    x = torch.randn(10, 4)
    with torch.no_grad():
        torch.testing.assert_close(fast_mlp.forward(layers, kind, x), net(x))


def test_batch_norm_networks_use_autograd():
    net = build_q_network(NetworkConfig(hidden=[16], batch_norm=True), 4, 2)
    assert DQNLearner(net, DQNConfig())._fast is None
    assert fast_mlp.mlp_layers(torch.nn.Linear(4, 2)) is None
