"""Q-networks: an MLP from observation vector to one value per action, plain or dueling; and a
convolutional one for pixel observations (env.pixels)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

from dqnlab.config import NetworkConfig, PixelConfig, conv_output_hw

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
}


class DuelingHead(nn.Module):
    """Q(s, a) = V(s) + A(s, a) - mean_a A(s, a) from two linear heads on the same features.

    Subtracting the mean makes V and A identifiable (a constant moved from A to V would
    otherwise leave Q unchanged) without changing which action is greedy. (B, in) -> (B, A)
    """

    def __init__(self, in_features: int, n_actions: int):
        super().__init__()
        self.value = nn.Linear(in_features, 1)
        self.advantage = nn.Linear(in_features, n_actions)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        adv = self.advantage(h)  # (B, A)
        return self.value(h) + adv - adv.mean(dim=1, keepdim=True)


class QuantileMean(nn.Module):
    """A QR-DQN network's Q-values: the mean of each action's N quantile outputs, the N of one
    action adjacent. (B, A * N) -> (B, A). Parameter-free: behind the quantile network, it makes
    the delivered policy an ordinary Q-network (evaluation, play and export read Q-values)."""

    def __init__(self, n_quantiles: int):
        super().__init__()
        self.n_quantiles = n_quantiles

    def forward(self, out: torch.Tensor) -> torch.Tensor:
        return quantile_mean(out, self.n_quantiles)


def quantile_mean(out: torch.Tensor, n_quantiles: int) -> torch.Tensor:
    """Q-values from a QR-DQN network's output, the mean of each action's N quantiles, the N of
    one action adjacent. (B, A * N) -> (B, A)"""
    return out.unflatten(1, (-1, n_quantiles)).mean(dim=2)  # (an empty batch too)


class InputScaling(nn.Module):
    """x -> (x - offset) * scale, per observation dimension: a fixed affine map in front of a
    network (buffers, not parameters: it is saved with the network and never trained). (B, D) -> (B, D)"""

    offset: torch.Tensor
    scale: torch.Tensor

    def __init__(self, offset: Sequence[float], scale: Sequence[float]):
        super().__init__()
        self.register_buffer("offset", torch.tensor(offset, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.offset) * self.scale


def bounds_scaling(low: Sequence[float], high: Sequence[float]) -> tuple[list[float], list[float]]:
    """(offset, scale) of InputScaling mapping [low, high] to [-1, 1] in each dimension; a
    dimension with an infinite (or empty) range keeps offset 0 and scale 1."""
    offset, scale = [], []
    for lo, hi in zip(low, high, strict=True):
        finite = math.isfinite(lo) and math.isfinite(hi) and hi > lo
        offset.append((lo + hi) / 2 if finite else 0.0)
        scale.append(2 / (hi - lo) if finite else 1.0)
    return offset, scale


def build_mlp(cfg: NetworkConfig, obs_dim: int, n_actions: int) -> nn.Sequential:
    """Linear -> [BatchNorm or LayerNorm] -> activation for each hidden size, then a linear head (or, with
    ``cfg.dueling``, a DuelingHead): DQN's Q-network, and PPO's actor (logits) and critic
    (n_actions 1).

    (batch, obs_dim) -> (batch, n_actions). The architecture is a function of `cfg` alone, so a
    saved state_dict loads into a network rebuilt from the same config. Initialisation draws
    from torch's global RNG: call under ``torch.random.fork_rng()`` with a seed to keep it
    explicit and reproducible.
    """
    layers: list[nn.Module] = []
    width = obs_dim
    for size in cfg.hidden:
        layers.append(nn.Linear(width, size))
        if cfg.batch_norm:
            layers.append(nn.BatchNorm1d(size))
        if cfg.layer_norm:
            layers.append(nn.LayerNorm(size))
        layers.append(_ACTIVATIONS[cfg.activation]())
        width = size
    layers.append(DuelingHead(width, n_actions) if cfg.dueling else nn.Linear(width, n_actions))
    return nn.Sequential(*layers)


def mlp_parameters(sizes: list[int]) -> int:
    """Weights and biases of an MLP with layer sizes [in, hidden..., out]."""
    return sum(a * b + b for a, b in itertools.pairwise(sizes))


def q_network_parameters(cfg: NetworkConfig, obs_shape: tuple[int, ...], n_actions: int) -> int:
    """The number of parameters `cfg` gives a Q-network (an MLP, or for frame stacks of shape
    (C, H, W) the convolutions before it), computed without building it: memory estimates use
    it before anything is allocated."""
    width, convs = obs_shape[0], 0
    if len(obs_shape) == 3:
        channels = obs_shape[0]
        for out, kernel, _ in cfg.conv:
            convs += channels * out * kernel * kernel + out
            channels = out
        h, w = conv_output_hw(obs_shape[1], obs_shape[2], cfg.conv)
        width = channels * h * w
    head = n_actions + 1 if cfg.dueling else n_actions
    norm = 2 * sum(cfg.hidden) if cfg.batch_norm or cfg.layer_norm else 0  # a scale and a shift per unit
    return convs + mlp_parameters([width, *cfg.hidden, head]) + norm


DIFFERENCE_GAIN = 5.0
"""Scale of the frame difference beside the last frame (input `last_and_difference`): a step moves
the pole by a fraction of a pixel, so differences are small; scaled up, a probe regressing the
state from frames learned the velocities in about 300 Adam steps instead of not at all."""


class PixelQNetwork(nn.Module):
    """Q-values from stacked frames: (B, K * C, H, W) pixel intensities 0..255 (uint8 or float)
    -> (B, n_actions).

    Scaling happens here, so replay and environments keep frames as uint8 (4x less memory than
    float32). The convolutions read, per `pixels.input`: all frames, as "ink" 1 - x / 255 (the
    white background 0: a probe regressing the pole angle from frames learned it within 200 steps
    so and not within 300 from x / 255); the last frame minus the previous one in [-1, 1] (S1's
    state, as S1 computed it); or the last frame as ink and DIFFERENCE_GAIN times the difference.
    """

    def __init__(self, net_cfg: NetworkConfig, pix_cfg: PixelConfig, n_actions: int):
        super().__init__()
        self.channels = c = pix_cfg.channels
        self.input = pix_cfg.input
        in_ch = {"frames": pix_cfg.frames * c, "difference": c, "last_and_difference": 2 * c}[self.input]
        layers: list[nn.Module] = []
        # Weights and inputs channels-last (NHWC): oneDNN's weight gradient of the first
        # convolution (2 input channels, 8x8 at stride 4) took 2-3x as long in NCHW on this
        # project's CPU (BENCHMARKS.md, "CartPole from pixels"); the values are the same.
        for out_ch, kernel, stride in net_cfg.conv:
            conv = nn.Conv2d(in_ch, out_ch, kernel, stride)
            conv.weight = nn.Parameter(conv.weight.detach().contiguous(memory_format=torch.channels_last))
            layers.append(conv)
            if net_cfg.batch_norm:
                layers.append(nn.BatchNorm2d(out_ch))
            layers.append(_ACTIVATIONS[net_cfg.activation]())
            in_ch = out_ch
        self.conv = nn.Sequential(*layers)
        h, w = conv_output_hw(pix_cfg.height, pix_cfg.width, net_cfg.conv)
        self.head = build_mlp(net_cfg, in_ch * h * w, n_actions)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The convolutions' input for frames `x`. (B, K * C, H, W) -> (B, C', H, W)"""
        x = x.to(torch.float32) * (1.0 / 255.0)
        c = self.channels
        if self.input == "frames":
            x = 1.0 - x
        elif self.input == "difference":
            x = x[:, c:] - x[:, :c]  # last minus previous (frames 2)
        else:
            x = torch.cat([1.0 - x[:, c:], DIFFERENCE_GAIN * (x[:, c:] - x[:, :c])], dim=1)
        return x.contiguous(memory_format=torch.channels_last)  # the convolutions' layout (__init__)

    def from_features(self, f: torch.Tensor) -> torch.Tensor:
        """Q-values from the convolutions' input `f` = features(x). (B, C', H, W) -> (B, n_actions)"""
        return self.head(self.conv(f).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.from_features(self.features(x))


def seeded_q_network(
    cfg: NetworkConfig, obs_dim: int, n_actions: int, seed: int, pixels: PixelConfig | None = None
) -> nn.Module:
    """build_mlp (or, with `pixels` enabled, a PixelQNetwork) with its initialisation drawn
    from `seed`, leaving the global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if pixels is not None and pixels.enabled:
            return PixelQNetwork(cfg, pixels, n_actions)
        return build_mlp(cfg, obs_dim, n_actions)


def has_batch_norm(net: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
