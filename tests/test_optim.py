"""dqnlab.nn.optim against torch.optim, step by step and bit for bit."""

import copy
import io

import pytest
import torch
from torch import nn

from dqnlab.nn.optim import _FUSED as FUSED  # torch.optim must use the same kernel to match exactly
from dqnlab.nn.optim import (
    Adam,
    RMSprop,
    clip_grad_norm_,
    clip_grad_value_,
    denormals_flushed,
    flushing_denormals,
    make_optimizer,
)

STEPS = 20


def make_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))


def data(step):
    g = torch.Generator().manual_seed(1000 + step)
    return torch.randn(8, 3, generator=g), torch.randn(8, 2, generator=g)


def backward(net, step):
    x, y = data(step)
    loss = ((net(x) - y) ** 2).mean()
    loss.backward()


def max_abs_diff(a: nn.Module, b: nn.Module) -> float:
    return max((pa - pb).abs().max().item() for pa, pb in zip(a.parameters(), b.parameters(), strict=True))


def run_pair(ours_factory, torch_factory, steps=STEPS, start=0, nets=None):
    """Step both optimizers on identical nets and data; the parameters must stay identical."""
    net_a, net_b = nets if nets is not None else (make_net(), make_net())
    opt_a, opt_b = ours_factory(net_a.parameters()), torch_factory(net_b.parameters())
    for step in range(start, start + steps):
        for net, opt in ((net_a, opt_a), (net_b, opt_b)):
            opt.zero_grad()
            backward(net, step)
            opt.step()
        assert max_abs_diff(net_a, net_b) == 0.0, f"diverged at step {step}"
    return net_a, net_b, opt_a, opt_b


@pytest.mark.parametrize("lr", [1e-3, 0.05])
def test_adam_matches_torch_exactly(lr):
    net_a, _, _, _ = run_pair(lambda p: Adam(p, lr), lambda p: torch.optim.Adam(p, lr=lr, fused=FUSED))
    # And the parameters did move (a no-op optimizer would also "match" an untouched copy).
    assert max_abs_diff(net_a, make_net()) > 1e-4


def test_adamw_weight_decay_matches_torch_adamw_exactly():
    net_a, _, _, _ = run_pair(
        lambda p: Adam(p, 0.01, weight_decay=0.01),
        lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.01, fused=FUSED),
    )
    assert max_abs_diff(net_a, make_net()) > 1e-4


def test_adamw_differs_from_adam():
    # weight_decay must actually do something.
    a, _, _, _ = run_pair(
        lambda p: Adam(p, 0.01, weight_decay=0.01), lambda p: torch.optim.AdamW(p, lr=0.01, fused=FUSED)
    )
    b, _, _, _ = run_pair(lambda p: Adam(p, 0.01), lambda p: torch.optim.Adam(p, lr=0.01, fused=FUSED))
    assert max_abs_diff(a, b) > 0


@pytest.mark.parametrize("lr", [1e-3, 0.01])
def test_rmsprop_matches_torch_exactly(lr):
    net_a, _, _, _ = run_pair(lambda p: RMSprop(p, lr), lambda p: torch.optim.RMSprop(p, lr=lr))
    assert max_abs_diff(net_a, make_net()) > 1e-4


@pytest.mark.parametrize(
    "name, torch_factory",
    [
        ("adam", lambda p, lr: torch.optim.Adam(p, lr=lr, fused=FUSED)),
        ("adamw", lambda p, lr: torch.optim.AdamW(p, lr=lr, fused=FUSED)),  # torch's default weight_decay, 0.01
        ("rmsprop", lambda p, lr: torch.optim.RMSprop(p, lr=lr)),
    ],
)
def test_make_optimizer_names_match_torch(name, torch_factory):
    run_pair(lambda p: make_optimizer(name, p, 0.01), lambda p: torch_factory(p, 0.01), steps=5)


def test_make_optimizer_unknown_name():
    with pytest.raises(ValueError, match="sgd"):
        make_optimizer("sgd", make_net().parameters(), 0.01)


def test_frozen_parameters_are_skipped():
    net = make_net()
    net[0].weight.requires_grad_(False)
    before = net[0].weight.clone()
    opt = Adam(net.parameters(), 0.1)
    assert len(opt.params) == 3
    opt.zero_grad()
    backward(net, 0)
    opt.step()
    assert torch.equal(net[0].weight, before)


def test_zero_grad_clears_gradients():
    net = make_net()
    opt = RMSprop(net.parameters(), 0.01)
    backward(net, 0)
    opt.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def roundtrip(state):
    f = io.BytesIO()
    torch.save(state, f)
    f.seek(0)
    return torch.load(f, weights_only=True)  # optimizer state must be tensors and plain data


@pytest.mark.parametrize(
    "factory",
    [
        lambda p: Adam(p, 0.01),
        lambda p: Adam(p, 0.01, weight_decay=0.01),
        lambda p: RMSprop(p, 0.01),
    ],
    ids=["adam", "adamw", "rmsprop"],
)
def test_state_dict_round_trip_continues_identically(factory):
    net = make_net()
    opt = factory(net.parameters())
    for step in range(5):
        opt.zero_grad()
        backward(net, step)
        opt.step()
    # A resumed copy: parameters and optimizer state restored into fresh objects.
    net2 = make_net(seed=123)
    net2.load_state_dict(copy.deepcopy(net.state_dict()))
    opt2 = factory(net2.parameters())
    opt2.load_state_dict(roundtrip(opt.state_dict()))
    for step in range(5, 15):
        for n, o in ((net, opt), (net2, opt2)):
            o.zero_grad()
            backward(n, step)
            o.step()
        assert max_abs_diff(net, net2) == 0.0


def test_fresh_state_differs_from_restored_state():
    # Without the optimizer state the continuation differs, so the round-trip test means something.
    net = make_net()
    opt = Adam(net.parameters(), 0.01)
    for step in range(5):
        opt.zero_grad()
        backward(net, step)
        opt.step()
    restored, fresh = copy.deepcopy(net), copy.deepcopy(net)
    opt_r, opt_f = Adam(restored.parameters(), 0.01), Adam(fresh.parameters(), 0.01)
    opt_r.load_state_dict(opt.state_dict())
    for n, o in ((restored, opt_r), (fresh, opt_f)):
        o.zero_grad()
        backward(n, 5)
        o.step()
    assert max_abs_diff(restored, fresh) > 0


def set_grads(net, seed, scale):
    g = torch.Generator().manual_seed(seed)
    for p in net.parameters():
        p.grad = torch.randn(p.shape, generator=g) * scale


@pytest.mark.parametrize("scale, max_norm", [(10.0, 1.0), (0.01, 5.0), (1.0, 0.5)])
def test_clip_grad_norm_matches_torch(scale, max_norm):
    a, b = make_net(), make_net()
    set_grads(a, 0, scale)
    set_grads(b, 0, scale)
    clip_grad_norm_(list(a.parameters()), max_norm)
    total_b = torch.nn.utils.clip_grad_norm_(b.parameters(), max_norm)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa.grad, pb.grad)
    new_norm = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in a.parameters()]))
    if total_b > max_norm:
        assert new_norm.item() == pytest.approx(max_norm, rel=1e-4)  # scaled down to the limit
    else:
        assert new_norm.item() == pytest.approx(total_b.item(), rel=1e-6)  # left alone


def test_clip_grad_norm_by_hand():
    # One gradient [3, 4] (norm 5) clipped to norm 1: [0.6, 0.8] (up to torch's 1e-6 epsilon).
    p = torch.zeros(2, requires_grad=True)
    p.grad = torch.tensor([3.0, 4.0])
    clip_grad_norm_([p], 1.0)
    torch.testing.assert_close(p.grad, torch.tensor([0.6, 0.8]))


def test_clip_grad_value_clamps():
    p = torch.zeros(5, requires_grad=True)
    q = torch.zeros(2, 2, requires_grad=True)
    p.grad = torch.tensor([-3.0, -0.5, 0.0, 0.7, 2.0])
    q.grad = torch.tensor([[5.0, -5.0], [0.9, -1.0]])
    clip_grad_value_([p, q], 1.0)
    torch.testing.assert_close(p.grad, torch.tensor([-1.0, -0.5, 0.0, 0.7, 1.0]), rtol=0, atol=0)
    torch.testing.assert_close(q.grad, torch.tensor([[1.0, -1.0], [0.9, -1.0]]), rtol=0, atol=0)


def test_clip_grad_value_matches_torch():
    a, b = make_net(), make_net()
    set_grads(a, 1, 3.0)
    set_grads(b, 1, 3.0)
    clip_grad_value_(list(a.parameters()), 0.5)
    torch.nn.utils.clip_grad_value_(b.parameters(), 0.5)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa.grad, pb.grad, rtol=0, atol=0)


class PartlyUsedNet(nn.Module):
    """A net with a frozen layer and a head the loss never reaches: after backward, four of its
    parameters have no gradient (grad None), as a frozen or unused part of a real network would."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.frozen = nn.Linear(3, 5).requires_grad_(False)
        self.used = nn.Linear(5, 2)
        self.unused = nn.Linear(5, 2)

    def forward(self, x):
        return self.used(torch.tanh(self.frozen(x)))


def partly_used_pair(scale):
    """Two identical PartlyUsedNets after the same backward, the loss scaled by `scale`."""
    nets = PartlyUsedNet(), PartlyUsedNet()
    for net in nets:
        x, y = data(0)
        (scale * ((net(x) - y) ** 2).mean()).backward()
        assert [p.grad is None for p in net.parameters()] == [True, True, False, False, True, True]
    return nets


@pytest.mark.parametrize("scale, max_norm", [(10.0, 1.0), (0.01, 5.0)])  # clipped, and left alone
def test_clip_grad_norm_skips_parameters_without_gradient_as_torch_does(scale, max_norm):
    # before: an assert (every parameter must have a gradient) failed on the frozen layer
    a, b = partly_used_pair(scale)
    total_a = clip_grad_norm_(list(a.parameters()), max_norm)
    total_b = torch.nn.utils.clip_grad_norm_(b.parameters(), max_norm)
    torch.testing.assert_close(total_a, total_b)  # the norm of the gradients that exist
    assert (total_b > max_norm) == (scale == 10.0)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert (pa.grad is None) == (pb.grad is None)
        if pb.grad is not None:
            torch.testing.assert_close(pa.grad, pb.grad)


def test_clip_grad_norm_of_no_gradients_is_zero():
    p = torch.zeros(3, requires_grad=True)
    torch.testing.assert_close(clip_grad_norm_([p], 1.0), torch.nn.utils.clip_grad_norm_([p], 1.0))
    assert clip_grad_norm_([p], 1.0).item() == 0.0 and p.grad is None


def test_clip_grad_value_skips_parameters_without_gradient_as_torch_does():
    a, b = partly_used_pair(10.0)
    clip_grad_value_(list(a.parameters()), 0.5)
    torch.nn.utils.clip_grad_value_(b.parameters(), 0.5)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert (pa.grad is None) == (pb.grad is None)
        if pb.grad is not None:
            torch.testing.assert_close(pa.grad, pb.grad, rtol=0, atol=0)
    assert a.used.weight.grad.abs().max().item() == 0.5  # something was clamped


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_foreach_fallback_matches_torch_exactly(monkeypatch, weight_decay):
    # Where torch lacks the fused kernels, the foreach path must equal torch's default Adam/AdamW.
    monkeypatch.setattr("dqnlab.nn.optim._FUSED", False)
    reference = torch.optim.AdamW if weight_decay else torch.optim.Adam
    run_pair(
        lambda p: Adam(p, 0.01, weight_decay=weight_decay),
        lambda p: reference(p, lr=0.01, weight_decay=weight_decay, foreach=True),
    )


@pytest.mark.parametrize("name", ["adam", "adamw", "rmsprop"])
def test_a_parameter_the_loss_does_not_reach_is_skipped_as_torch_skips_it(name):
    # A trainable head the loss never uses keeps grad None: torch.optim leaves it (and its state)
    # alone and updates the rest; ours must do the same rather than crash on the None.
    torch_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "rmsprop": torch.optim.RMSprop}[name]
    fused = {"fused": FUSED} if name != "rmsprop" else {}
    nets = []
    for _ in range(2):
        torch.manual_seed(0)
        nets.append(nn.ModuleDict({"body": make_net(), "unused": nn.Linear(3, 2)}))
    ours = make_optimizer(name, nets[0].parameters(), 0.01)
    theirs = torch_cls(nets[1].parameters(), lr=0.01, **fused)
    unused_before = nets[0]["unused"].weight.clone()
    for step in range(5):
        for net, opt in zip(nets, (ours, theirs), strict=True):
            opt.zero_grad()
            backward(net["body"], step)
            opt.step()
    assert nets[0]["unused"].weight.grad is None
    assert torch.equal(nets[0]["unused"].weight, unused_before)
    assert max_abs_diff(nets[0], nets[1]) == 0.0
    assert max_abs_diff(nets[0]["body"], make_net()) > 1e-4  # the body did learn


def test_no_gradient_at_all_is_a_no_op():
    net = make_net()
    before = copy.deepcopy(net)
    for opt in (Adam(net.parameters(), 0.1), RMSprop(net.parameters(), 0.1)):
        opt.zero_grad()
        opt.step()
    assert max_abs_diff(net, before) == 0.0


TINY = torch.finfo(torch.float32).tiny  # the smallest normal float32


def test_denormals_are_flushed_inside_the_block_and_the_mode_before_is_restored():
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush denormals")
    assert not flushing_denormals()
    assert (torch.full((1,), TINY) * 0.5).item() > 0.0  # a denormal, computed
    with denormals_flushed():
        assert flushing_denormals()
        assert (torch.full((1,), TINY) * 0.5).item() == 0.0
        # Adam's first moment of a weight whose gradient stays 0: decays to exactly 0, not into denormals
        m = torch.full((4,), 1e-36)
        for _ in range(100):
            m.mul_(0.9)
        assert torch.equal(m, torch.zeros(4))
    assert not flushing_denormals()
    torch.set_flush_denormal(True)
    try:  # a caller who flushed before keeps flushing after
        with denormals_flushed():
            pass
        assert flushing_denormals()
    finally:
        torch.set_flush_denormal(False)


def test_training_flushes_denormals_and_restores_the_mode(tmp_path, monkeypatch):
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush denormals")
    import dqnlab
    from dqnlab.algos.dqn import DQNLearner

    seen = []
    update = DQNLearner.update

    def watched(self, batch):
        seen.append(flushing_denormals())
        return update(self, batch)

    monkeypatch.setattr(DQNLearner, "update", watched)
    cfg = {"total_steps": 600, "artifacts": False, "dqn": {"learning_starts": 500}, "eval": {"every_steps": 300}}
    dqnlab.train(cfg, tmp_path / "run", progress=False)
    assert seen and all(seen)
    assert not flushing_denormals()
