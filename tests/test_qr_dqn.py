"""QR-DQN (dqn.n_quantiles): the quantile Huber loss and its gradient by hand, the next state's
quantiles, the fast path against autograd, the delivered policy (the quantiles' mean) through
policy files and export, and the config's refusals."""

import copy
import json

import pytest
import torch
from test_fast_mlp import batch, weighted  # the fast-path tests' random batches
from torch.testing import assert_close

import dqnlab
from dqnlab.algos.dqn import (
    DQNLearner,
    DQNLoop,
    next_state_quantiles,
    quantile_huber_loss,
    quantile_huber_loss_and_grad,
    quantile_midpoints,
)
from dqnlab.algos.registry import build_policy_net, load_policy
from dqnlab.config import DQNConfig, NetworkConfig, build_config
from dqnlab.core.errors import ConfigError, DqnlabError
from dqnlab.core.fileio import safe_torch_load
from dqnlab.nn import fast_mlp
from dqnlab.nn.networks import QuantileMean, build_mlp, quantile_mean
from dqnlab.runtime.export import onnx_bytes, onnx_scores, torchscript_bytes, torchscript_scores
from dqnlab.runtime.policy import Policy, policy_from_dict

# ---------------------------------------------------------------------------------------------
# The math, by hand
# ---------------------------------------------------------------------------------------------


def test_quantile_midpoints():
    assert quantile_midpoints(4).tolist() == [0.125, 0.375, 0.625, 0.875]


def test_quantile_huber_loss_and_its_gradient_by_hand():
    # One sample, N = N' = 2: quantiles (0, 1) at levels (1/4, 3/4), targets (0.5, 3).
    # u = target - quantile: row 0 (0.5, 3), row 1 (-0.5, 2).
    # rho: row 0, both u >= 0, weight 1/4: 1/4 * (0.125 + 2.5) = 0.65625;
    #      row 1, u = -0.5 < 0 weight |3/4 - 1| = 1/4: 0.03125; u = 2 weight 3/4: 0.75 * 1.5 = 1.125.
    # sum over the quantiles 1.8125, mean over the targets: 0.90625.
    q = torch.tensor([[0.0, 1.0]], requires_grad=True)
    t = torch.tensor([[0.5, 3.0]])
    loss = quantile_huber_loss(q, t)
    assert loss.item() == pytest.approx(0.90625)
    # d/dq_i = -(1/N') sum_j weight_ij clamp(u_ij, -1, 1):
    # q_0: -(1/2)(0.25 * 0.5 + 0.25 * 1) = -0.1875; q_1: -(1/2)(0.25 * -0.5 + 0.75 * 1) = -0.3125
    value, grad = quantile_huber_loss_and_grad(q.detach(), t)
    assert value.item() == pytest.approx(0.90625)
    assert grad[0].tolist() == pytest.approx([-0.1875, -0.3125])
    loss.backward()
    assert q.grad[0].tolist() == pytest.approx([-0.1875, -0.3125])
    # importance weights scale each sample's loss and gradient, and the batch mean divides by B:
    # the first sample as above at weight 2, a second one at weight 0
    two = torch.tensor([[0.0, 1.0], [0.5, 3.0]])
    targets = torch.tensor([[0.5, 3.0], [-1.0, 7.0]])
    weights = torch.tensor([2.0, 0.0])
    assert quantile_huber_loss(two, targets, weights).item() == pytest.approx(2.0 * 0.90625 / 2)
    value, grads = quantile_huber_loss_and_grad(two, targets, weights)
    assert value.item() == pytest.approx(2.0 * 0.90625 / 2)
    assert grads[0].tolist() == pytest.approx([-0.1875, -0.3125])  # 2 x the one-sample gradient / B = 2
    assert grads[1].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("with_weights", [False, True])
def test_the_fused_loss_and_gradient_equal_the_loss_and_autograd(with_weights):
    g = torch.Generator().manual_seed(3)
    q = (torch.randn(16, 5, generator=g) * 2).requires_grad_()
    t = torch.randn(16, 7, generator=g) * 2
    w = torch.rand(16, generator=g) if with_weights else None
    loss = quantile_huber_loss(q, t, w)
    loss.backward()
    value, grad = quantile_huber_loss_and_grad(q.detach(), t, w)
    assert_close(value, loss.detach(), rtol=1e-6, atol=1e-7)
    assert_close(grad, q.grad, rtol=1e-5, atol=1e-7)


def test_the_loss_moves_each_quantile_towards_its_level():
    # Gradient descent on free quantile estimates against a fixed set of targets ends at the
    # targets' quantiles: with 4 levels (1/8 ... 7/8) and targets 0..79, about 10, 30, 50, 70.
    targets = torch.arange(80, dtype=torch.float32).unsqueeze(0)
    q = torch.zeros(1, 4, requires_grad=True)
    opt = torch.optim.SGD([q], lr=20.0)
    for _ in range(3000):
        opt.zero_grad()
        quantile_huber_loss(q, targets).backward()
        opt.step()
    assert q.detach().squeeze(0).tolist() == pytest.approx([9.5, 29.5, 49.5, 69.5], abs=0.6)


def test_quantile_mean_averages_each_actions_quantiles():
    out = torch.tensor([[1.0, 3.0, -2.0, 0.0], [0.0, 0.0, 5.0, 7.0]])  # A = 2, N = 2
    assert quantile_mean(out, 2).tolist() == [[2.0, -1.0], [0.0, 6.0]]
    assert QuantileMean(2)(out).tolist() == [[2.0, -1.0], [0.0, 6.0]]


def test_next_state_quantiles_by_hand():
    # A = 2 actions, N = 2 quantiles, one next state; outputs are fixed vectors (functions of nothing).
    target_out = torch.tensor([[0.0, 4.0, 1.0, 2.0]])  # means: a0 2.0, a1 1.5
    online_out = torch.tensor([[0.0, 0.0, 1.0, 1.0]])  # means: a0 0.0, a1 1.0
    obs = torch.zeros(1, 3)
    # without Double DQN the target network picks a0: its quantiles (0, 4)
    assert next_state_quantiles(lambda x: online_out, lambda x: target_out, obs, False, 2).tolist() == [[0.0, 4.0]]
    # with Double DQN the online network picks a1; the target network values it: (1, 2)
    assert next_state_quantiles(lambda x: online_out, lambda x: target_out, obs, True, 2).tolist() == [[1.0, 2.0]]


@pytest.mark.parametrize("fast_path", [True, False])
@pytest.mark.parametrize("double", [True, False])
def test_learner_targets_are_per_quantile_td_targets(fast_path, double):
    torch.manual_seed(0)
    n = 3
    cfg = DQNConfig(n_quantiles=n, fast_path=fast_path, double=double)
    learner = DQNLearner(build_mlp(NetworkConfig(hidden=[8]), 4, 2 * n), cfg)
    with torch.no_grad():  # a target network that differs from the online one
        for p in learner.target.parameters():
            p.add_(torch.randn_like(p))
    b = batch(n=64, n_actions=2)._replace(discounts=torch.rand(64) * 0.99)  # per-transition discounts
    with torch.no_grad():
        z = learner.target(b.next_obs).view(64, 2, n)
        picker = learner.online if double else learner.target
        best = picker(b.next_obs).view(64, 2, n).mean(2).argmax(1)
        want = b.rewards[:, None] + b.discounts[:, None] * (1 - b.terminated[:, None]) * z[torch.arange(64), best]
        other = b.rewards[:, None] + b.discounts[:, None] * (1 - b.terminated[:, None]) * z[torch.arange(64), 1 - best]
    assert not torch.allclose(want, other)  # the choice of the next action matters on this batch
    assert_close(learner.targets(b), want)
    learner.target_limit = 0.5  # dqn.bound_targets clamps every quantile's target
    assert_close(learner.targets(b), want.clamp(-0.5, 0.5))


def test_the_fused_loss_handles_ties_and_the_huber_kink_as_autograd():
    # u = target - quantile exactly 0 (the indicator's edge) and exactly +-1 (the Huber kink)
    q = torch.tensor([[0.0, 1.0, -1.0]], requires_grad=True)
    t = torch.tensor([[0.0, 1.0, 2.0]])
    loss = quantile_huber_loss(q, t)
    loss.backward()
    value, grad = quantile_huber_loss_and_grad(q.detach(), t)
    assert_close(value, loss.detach())
    assert_close(grad, q.grad)


# ---------------------------------------------------------------------------------------------
# The learner: the fast path against the autograd reference
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("with_weights", [False, True])
def test_fast_path_and_reference_give_the_same_quantile_loss_and_gradients(activation, with_weights):
    torch.manual_seed(1)
    net = build_mlp(NetworkConfig(hidden=[16, 16], activation=activation), 4, 3 * 5)
    fast = DQNLearner(net, DQNConfig(n_quantiles=5))
    ref = DQNLearner(copy.deepcopy(net), DQNConfig(n_quantiles=5, fast_path=False))
    assert fast.fast_path and not ref.fast_path
    b = weighted(batch()) if with_weights else batch()
    ref_value, ref_td = ref.gradients(b)
    value, td = fast.gradients(b)
    assert_close(value, ref_value.detach(), rtol=1e-6, atol=1e-7)
    assert_close(td, ref_td, rtol=1e-6, atol=1e-6)
    for got, want in zip(fast.online.parameters(), ref.online.parameters(), strict=True):
        assert_close(got.grad, want.grad, rtol=1e-5, atol=1e-7)
    # the TD error that prioritised replay reads: the quantiles' mean less the targets' mean
    with torch.no_grad():
        z = net(b.obs).view(32, 3, 5)[torch.arange(32), b.actions]
        assert_close(td, z.mean(1) - fast.targets(b).mean(1), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("fast_path", [True, False])
def test_acting_reads_the_quantiles_mean(fast_path):
    torch.manual_seed(2)
    net = build_mlp(NetworkConfig(hidden=[8]), 4, 2 * 4)
    learner = DQNLearner(net, DQNConfig(n_quantiles=4, policy_average_tau=0.01, fast_path=fast_path))
    with torch.no_grad():  # an average that differs from the online network
        for p in learner.average.parameters():
            p.add_(torch.randn_like(p))
    obs = torch.randn(200, 4)
    with torch.no_grad():
        q = net(obs).view(200, 2, 4).mean(2)
        q_avg = learner.average(obs).view(200, 2, 4).mean(2)
    assert q.argmax(1).tolist() != q_avg.argmax(1).tolist()
    assert_close(learner.q_values(obs), q)
    assert learner.greedy_actions(obs).tolist() == q.argmax(1).tolist()  # training acts with the online one
    assert learner.policy_actions(obs).tolist() == q_avg.argmax(1).tolist()  # evaluations with the average


@pytest.mark.parametrize("norm", ["layer_norm", "batch_norm"])
def test_normalised_quantile_networks_train_through_autograd(norm):
    torch.manual_seed(5)
    net = build_mlp(NetworkConfig(hidden=[16], **{norm: True}), 4, 3 * 4)
    learner = DQNLearner(net, DQNConfig(n_quantiles=4, lr=1e-2))
    b = batch()
    first = learner.update(b)
    for _ in range(30):
        last = learner.update(b)
    assert last < first
    assert learner.greedy_actions(b.obs).shape == (32,)


def test_a_few_updates_fit_a_fixed_batch_on_both_paths():
    torch.manual_seed(4)
    net = build_mlp(NetworkConfig(hidden=[32]), 4, 3 * 8)
    for fast_path in (True, False):
        learner = DQNLearner(copy.deepcopy(net), DQNConfig(n_quantiles=8, fast_path=fast_path, lr=1e-2))
        b = batch()
        first = learner.update(b)
        for _ in range(30):
            last = learner.update(b)
        assert last < first


# ---------------------------------------------------------------------------------------------
# Runs, policy files, export, config
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("extra_options", [{}, {"env.id": "MountainCar-v0", "network.input_scaling": "bounds"}])
def test_a_run_delivers_an_ordinary_q_network(tmp_path, tiny, extra_options):
    cfg = tiny(seed=0, **{"dqn.n_quantiles": 4, **extra_options})
    dqnlab.train(cfg, tmp_path / "r", progress=False)
    data = safe_torch_load(tmp_path / "r" / "policy.pt", "policy")
    assert data["extra"]["n_quantiles"] == 4
    policy = load_policy(tmp_path / "r")
    n_actions = policy.n_actions
    obs_dim = policy.obs_shape[0]
    obs = torch.randn(20, obs_dim).numpy()
    q = policy.q_values(obs)
    assert q.shape == (20, n_actions)
    # the file's quantile network, averaged by hand, gives the same Q-values
    quantile_net = build_mlp(cfg.network, obs_dim, n_actions * 4)
    prefix = "1.0." if "network.input_scaling" in extra_options else "0."
    quantile_net.load_state_dict(
        {k.removeprefix(prefix): v for k, v in data["state_dict"].items() if k.startswith(prefix)}
    )
    x = torch.from_numpy(obs)
    if "network.input_scaling" in extra_options:
        x = (x - data["state_dict"]["0.offset"]) * data["state_dict"]["0.scale"]
    with torch.no_grad():
        assert_close(torch.as_tensor(q), quantile_net(x).view(20, n_actions, 4).mean(2))
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["eval_episodes"] == 4


def test_policy_round_trip_and_damaged_quantile_counts_are_refused():
    cfg = NetworkConfig(hidden=[8])
    net = build_policy_net("dqn", cfg, (4,), 2, {"n_quantiles": 3})
    policy = Policy(net, "CartPole-v1", (4,), 2, cfg, extra={"n_quantiles": 3})
    again = policy_from_dict(policy.to_dict(), "test", build_policy_net)
    obs = torch.randn(10, 4).numpy()
    assert again.q_values(obs).tolist() == policy.q_values(obs).tolist()
    for bad in (0, 1, "3", 3.0, True, 201, 10**9):
        data = policy.to_dict()
        data["extra"] = {"n_quantiles": bad}
        with pytest.raises(DqnlabError, match="damaged dqnlab policy file"):
            policy_from_dict(data, "test", build_policy_net)
    # a file that says 4 quantiles holding a 3-quantile network's tensors
    data = policy.to_dict()
    data["extra"] = {"n_quantiles": 4}
    with pytest.raises(DqnlabError, match="damaged dqnlab policy file"):
        policy_from_dict(data, "test", build_policy_net)


def test_export_of_a_quantile_policy(tmp_path, tiny):
    dqnlab.train(tiny(seed=0, **{"dqn.n_quantiles": 4}), tmp_path / "r", progress=False)
    policy = load_policy(tmp_path / "r")
    obs = torch.randn(7, 4).numpy()
    scores = torchscript_scores(torchscript_bytes(policy), obs)
    assert scores.shape == (7, 2)
    assert_close(torch.as_tensor(scores), torch.as_tensor(policy.q_values(obs)))
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    scores = onnx_scores(onnx_bytes(policy), obs)
    assert_close(torch.as_tensor(scores), torch.as_tensor(policy.q_values(obs)), rtol=1e-5, atol=1e-5)
    assert policy.q_values(obs[:0]).shape == (0, 2)  # an empty batch, as a plain Q-network gives


def test_memory_estimate_counts_every_quantile_output():
    plain = DQNLoop.memory_estimate(build_config(), (4,), 2)["Q-networks and optimizer"]
    qr = DQNLoop.memory_estimate(build_config(**{"dqn.n_quantiles": 50}), (4,), 2)["Q-networks and optimizer"]
    # default: 128-128, the last layer 129 x 2 -> 129 x 100 parameters, 7 copies of 4 bytes
    assert qr - plain == 7 * 4 * 129 * 98
    # and the loss's pairwise terms: batch 128 x 50 x 50, 8 float32 tensors
    estimate = DQNLoop.memory_estimate(build_config(**{"dqn.n_quantiles": 50}), (4,), 2)
    assert estimate["quantile loss terms"] == 8 * 4 * 128 * 50 * 50
    assert "quantile loss terms" not in DQNLoop.memory_estimate(build_config(), (4,), 2)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"dqn.n_quantiles": 8, "network.dueling": True}, "needs an MLP Q-network"),
        ({"dqn.n_quantiles": 8, "env.pixels.mode": "tutorial"}, "needs an MLP Q-network"),
        ({"dqn.n_quantiles": 8, "dqn.loss": "mse"}, "set dqn.loss=huber"),
        ({"dqn.n_quantiles": 1}, "n_quantiles"),
        ({"dqn.n_quantiles": 201}, "n_quantiles"),
    ],
)
def test_config_refuses_what_quantiles_cannot_do(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_config(**overrides)


def test_the_fast_path_is_kept_for_quantile_networks():
    net = build_mlp(NetworkConfig(hidden=[8]), 4, 2 * 3)
    assert fast_mlp.mlp_layers(net) is not None
    assert DQNLearner(net, DQNConfig(n_quantiles=3)).fast_path
