"""The hand-written MLP forward/backward equals autograd's, for every activation and loss; the
learner's fast path and its reference (dqn.fast_path false) give the same loss and gradients."""

import copy

import pytest
import torch

import dqnlab
from dqnlab.algos.dqn import DQNLearner, td_loss, td_loss_grad
from dqnlab.algos.replay import Batch
from dqnlab.config import DQNConfig, NetworkConfig
from dqnlab.nn import fast_mlp
from dqnlab.nn.networks import build_mlp


def batch(n=32, obs_dim=4, n_actions=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Batch(
        torch.randn(n, obs_dim, generator=g) * 2,
        torch.randint(0, n_actions, (n,), generator=g),
        torch.randn(n, generator=g),
        torch.randn(n, obs_dim, generator=g),
        (torch.rand(n, generator=g) < 0.2).float(),
        torch.full((n,), 0.99),
    )


def weighted(b, seed=2):
    """`b` with the importance weights of prioritised replay."""
    return b._replace(weights=torch.rand(len(b.actions), generator=torch.Generator().manual_seed(seed)))


def fast_and_reference(net, **cfg):
    """Two learners on equal copies of `net`: the fast path and the autograd reference."""
    fast = DQNLearner(net, DQNConfig(**cfg))
    ref = DQNLearner(copy.deepcopy(net), DQNConfig(**cfg, fast_path=False))
    assert fast.fast_path and not ref.fast_path
    return fast, ref


@pytest.mark.parametrize("activation", ["relu", "tanh", "leaky_relu"])
@pytest.mark.parametrize("loss", ["huber", "mse"])
@pytest.mark.parametrize("hidden", [[16], [32, 16], [8, 8, 8], []])
@pytest.mark.parametrize("with_weights", [False, True])
def test_fast_path_and_reference_give_the_same_loss_and_gradients(activation, loss, hidden, with_weights):
    torch.manual_seed(1)
    net = build_mlp(NetworkConfig(hidden=hidden, activation=activation), 4, 3)
    fast, ref = fast_and_reference(net, loss=loss)
    b = weighted(batch()) if with_weights else batch()
    ref_value, ref_td = ref.gradients(b)
    value, td = fast.gradients(b)
    assert not value.requires_grad  # the fast path builds no graph
    torch.testing.assert_close(value, ref_value.detach(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(td, ref_td, rtol=1e-6, atol=1e-6)
    for got, want in zip(fast.online.parameters(), ref.online.parameters(), strict=True):
        torch.testing.assert_close(got.grad, want.grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("loss", ["huber", "mse"])
@pytest.mark.parametrize("with_weights", [False, True])
def test_both_paths_compute_the_loss_with_td_loss(loss, with_weights, monkeypatch):
    # The one loss definition: both paths call dqnlab.algos.dqn.td_loss (and only the fast path
    # its hand-written gradient td_loss_grad), with the configured kind and the batch's weights.
    from dqnlab.algos import dqn

    calls = []
    monkeypatch.setattr(
        dqn, "td_loss", lambda td, kind, w=None: calls.append(("loss", kind, w)) or td_loss(td, kind, w)
    )
    monkeypatch.setattr(
        dqn, "td_loss_grad", lambda td, kind, w=None: calls.append(("grad", kind, w)) or td_loss_grad(td, kind, w)
    )
    fast, ref = fast_and_reference(build_mlp(NetworkConfig(hidden=[8]), 4, 3), loss=loss)
    b = weighted(batch()) if with_weights else batch()
    ref.gradients(b)
    assert calls == [("loss", loss, b.weights)]
    calls.clear()
    fast.gradients(b)
    assert calls == [("loss", loss, b.weights), ("grad", loss, b.weights)]


@pytest.mark.parametrize("loss", ["huber", "mse"])
def test_a_few_updates_match_the_reference_closely(loss):
    # The paths differ only in float rounding (d / B versus d * (1 / B), ...): after a few
    # optimizer steps the networks agree to rounding, not bit for bit.
    torch.manual_seed(3)
    net = build_mlp(NetworkConfig(hidden=[32, 16]), 4, 3)
    fast, ref = fast_and_reference(net, loss=loss, lr=1e-3, target_update_every=2)
    for i in range(6):
        b = weighted(batch(seed=i), seed=10 + i) if i % 2 else batch(seed=i)
        torch.testing.assert_close(fast.update(b), ref.update(b), rtol=1e-5, atol=1e-6)
    for name, t in fast.online.state_dict().items():
        torch.testing.assert_close(t, ref.online.state_dict()[name], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(fast.target.state_dict()[name], ref.target.state_dict()[name], rtol=1e-5, atol=1e-6)


def test_fast_path_false_trains_on_autograd(tmp_path, tiny, monkeypatch):
    from dqnlab.algos import dqn

    chosen = []
    original = dqn.DQNLearner.__init__

    def spy(self, online, cfg):
        original(self, online, cfg)
        chosen.append(self.fast_path)

    monkeypatch.setattr(dqn.DQNLearner, "__init__", spy)
    result = dqnlab.train(tiny(total_steps=1500, **{"dqn.fast_path": False}), tmp_path / "ref", progress=False)
    assert chosen == [False]
    assert result.summary["status"] == "finished" and result.summary["grad_steps"] > 0
    assert all(torch.isfinite(p).all() for p in result.policy.net.parameters())
    assert "fast_path: false" in (tmp_path / "ref" / "config.yaml").read_text()


def test_forward_matches_module():
    net = build_mlp(NetworkConfig(hidden=[16, 16], activation="tanh"), 4, 2)
    layers, kind = fast_mlp.mlp_layers(net)
    x = torch.randn(10, 4)
    with torch.no_grad():
        torch.testing.assert_close(fast_mlp.forward(layers, kind, x), net(x))
        out, acts = fast_mlp.forward_keeping_activations(layers, kind, x)
    torch.testing.assert_close(out, net(x).detach())
    assert len(acts.inputs) == 3 and len(acts.pre) == 2


@pytest.mark.parametrize("activation", ["relu", "tanh", "leaky_relu"])
def test_backward_of_any_output_gradient_matches_autograd(activation):
    # fast_mlp knows no loss: any dLoss/d(output) is backpropagated like autograd does.
    torch.manual_seed(4)
    net = build_mlp(NetworkConfig(hidden=[8, 8], activation=activation), 4, 3)
    x, grad_out = torch.randn(16, 4), torch.randn(16, 3)
    net(x).backward(grad_out)
    expected = [p.grad.clone() for p in net.parameters()]
    net.zero_grad(set_to_none=True)
    layers, kind = fast_mlp.mlp_layers(net)
    _, acts = fast_mlp.forward_keeping_activations(layers, kind, x)
    fast_mlp.backward(layers, kind, acts, grad_out)
    for p, want in zip(net.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, want, rtol=1e-5, atol=1e-7)


def test_batch_norm_networks_use_autograd():
    net = build_mlp(NetworkConfig(hidden=[16], batch_norm=True), 4, 2)
    assert not DQNLearner(net, DQNConfig()).fast_path
    assert fast_mlp.mlp_layers(torch.nn.Linear(4, 2)) is None


def test_fast_path_keeps_acting_on_the_live_parameters():
    # The in-place invariant: optimizer steps and hard copies change the tensors the fast path
    # reads, never replace them, so its forwards follow the modules.
    torch.manual_seed(5)
    learner = DQNLearner(build_mlp(NetworkConfig(hidden=[8]), 4, 3), DQNConfig(lr=0.05, target_update_every=2))
    tensors = list(learner.online.parameters()) + list(learner.target.parameters())
    storage = [t.data_ptr() for t in tensors]
    x = torch.randn(5, 4)
    for i in range(4):  # hard copies at gradient steps 2 and 4
        learner.update(batch(seed=i))
        with torch.no_grad():
            torch.testing.assert_close(learner._online_fn(x), learner.online(x), rtol=0, atol=0)
            torch.testing.assert_close(learner._target_fn(x), learner.target(x), rtol=0, atol=0)
    learner.load_state_dict(copy.deepcopy(learner.state_dict()))  # as on resume
    now = list(learner.online.parameters()) + list(learner.target.parameters())
    assert all(a is b for a, b in zip(now, tensors, strict=True))
    assert [t.data_ptr() for t in now] == storage
    assert all(a is b for a, b in zip(learner.optimizer.params, learner.online.parameters(), strict=True))


@pytest.mark.parametrize("kind", ["relu", "tanh", "leaky_relu"])
def test_activation_grad_is_autograds_gradient_exactly(kind):
    # Including the kinks: pre-activations at exactly 0 and on both sides of it.
    g = torch.Generator().manual_seed(3)
    z = torch.cat([torch.randn(64, 8, generator=g), torch.zeros(2, 8), -torch.rand(2, 8, generator=g)])
    upstream = torch.randn(z.shape, generator=g)
    z_leaf = z.clone().requires_grad_(True)
    module = {"relu": torch.nn.ReLU(), "tanh": torch.nn.Tanh(), "leaky_relu": torch.nn.LeakyReLU()}[kind]
    h = module(z_leaf)
    h.backward(upstream)
    assert z_leaf.grad is not None
    got = fast_mlp.activation_grad(upstream, z, h.detach(), kind)
    assert torch.equal(got, z_leaf.grad)
    if kind == "relu":  # 0 where z <= 0, the upstream gradient elsewhere
        torch.testing.assert_close(got, torch.where(z > 0, upstream, 0.0), rtol=0, atol=0)
