"""A hand-written forward and backward pass for plain MLPs (the DQN learner's fast path).

Why: on a CPU, a CartPole-sized network spends most of a gradient step in framework overhead
(module calls, autograd graph building and the backward engine), not in arithmetic. For the
common case, Linear layers with relu/tanh/leaky_relu and no BatchNorm, the backward pass is a
dozen matrix products we can write down directly, about 3x faster.

This module knows networks, not losses: ``forward`` (no gradient), ``forward_keeping_activations``
and ``backward``, which takes dLoss/d(output) and writes each layer's gradients. The loss and its
gradient come from the caller (``dqnlab.algos.dqn.td_loss`` and ``td_loss_grad``, the one
definition that the autograd reference also uses). The DQN learner picks this path once, when it
is built (``dqn.fast_path``); tests check both paths give the same loss and gradients.

The functions take the network's ``nn.Linear`` modules and read ``.weight`` and ``.bias`` at every
call, so they always see the current parameters; the gradients they write are set on those very
Parameter objects, which are the ones the optimizer holds.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

_LEAKY_SLOPE = 0.01  # nn.LeakyReLU's default


def mlp_layers(net: nn.Module) -> tuple[list[nn.Linear], str] | None:
    """(linear layers, activation name) if `net` is Linear-act-...-Linear with one activation
    kind and nothing else; None otherwise (then autograd is used)."""
    if not isinstance(net, nn.Sequential):
        return None
    modules = list(net)
    linears = [m for m in modules[0::2] if isinstance(m, nn.Linear)]
    acts = modules[1::2]
    if not linears or len(linears) != len(modules[0::2]) or len(acts) != len(linears) - 1:
        return None
    kinds = {type(a) for a in acts}
    if len(kinds) > 1:
        return None
    if not acts:
        return linears, "relu"
    kind = kinds.pop()
    if kind is nn.LeakyReLU and all(a.negative_slope == _LEAKY_SLOPE for a in acts):
        return linears, "leaky_relu"
    name = {nn.ReLU: "relu", nn.Tanh: "tanh"}.get(kind)
    return (linears, name) if name else None


def _act(z: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "relu":
        return torch.relu(z)
    if kind == "tanh":
        return torch.tanh(z)
    return torch.nn.functional.leaky_relu(z, _LEAKY_SLOPE)


def activation_grad(g: torch.Tensor, z: torch.Tensor, h: torch.Tensor, kind: str) -> torch.Tensor:
    """dL/dz from dL/dh for h = act(z), by the ATen kernels autograd itself uses for these
    activations. Why not ``g * (z > 0)``: a boolean mask costs a comparison and a conversion to
    float before the product; a DQN gradient step of a relu network took 1.06-1.11x (batch 128)
    to 1.16-1.19x (batch 512) as long with the masks (benchmarks/mlp_update.py)."""
    if kind == "relu":
        return torch.ops.aten.threshold_backward(g, h, 0)  # g where h > 0, else 0
    if kind == "tanh":
        return torch.ops.aten.tanh_backward(g, h)  # g * (1 - h^2)
    return torch.ops.aten.leaky_relu_backward(g, z, _LEAKY_SLOPE, False)  # g, or slope * g where z <= 0


def forward(layers: list[nn.Linear], kind: str, x: torch.Tensor) -> torch.Tensor:
    """The network's output without module-call overhead (no autograd graph: call under no_grad)."""
    h = x
    last = len(layers) - 1
    for i, layer in enumerate(layers):
        h = torch.addmm(layer.bias, h, layer.weight.t())
        if i < last:
            h = _act(h, kind)
    return h


class Activations(NamedTuple):
    """What ``backward`` needs of a forward pass."""

    inputs: list[torch.Tensor]  # inputs[i] is the input of layer i: the batch, then each hidden output
    pre: list[torch.Tensor]  # pre[i] = the pre-activation of hidden layer i, (B, out_i)


@torch.no_grad()
def forward_keeping_activations(
    layers: list[nn.Linear], kind: str, x: torch.Tensor
) -> tuple[torch.Tensor, Activations]:
    """The network's output, (B, out), and the activations ``backward`` reuses."""
    inputs = [x]
    pre = []
    last = len(layers) - 1
    h = x
    for i, layer in enumerate(layers):
        z = torch.addmm(layer.bias, h, layer.weight.t())  # (B, out)
        if i < last:
            pre.append(z)
            h = _act(z, kind)
            inputs.append(h)
        else:
            h = z
    return h, Activations(inputs, pre)


@torch.no_grad()
def backward(layers: list[nn.Linear], kind: str, acts: Activations, grad_out: torch.Tensor) -> None:
    """Backpropagate dLoss/d(output), (B, out), through the layers of the forward pass that gave
    `acts`; set each layer's .weight.grad and .bias.grad (replacing what was there)."""
    g = grad_out
    hs, zs = acts.inputs, acts.pre
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        layer.weight.grad = g.t().mm(hs[i])  # (out, in)
        layer.bias.grad = g.sum(0)
        if i > 0:
            g = activation_grad(g.mm(layer.weight), zs[i - 1], hs[i], kind)
