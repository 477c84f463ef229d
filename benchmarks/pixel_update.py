"""The cost of one gradient step of the `pixels` preset (issue #16): its network with the
convolutions channels-last (as dqnlab builds it) against the same network in the plain NCHW
layout, side by side in one process.

    python benchmarks/pixel_update.py [--reps 300] [--rounds 5] [--json OUT.json]

Each variant is a DQNLearner built from the preset's config (same initial weights), taking
``update`` steps on one fixed batch of random uint8 frames of the preset's shape (2x32x96, batch
64): the TD targets (two forward passes on next_obs, Double DQN), the loss's forward and backward
pass, gradient clipping, Adam and the target sync. The plain variant has its convolution weights
made contiguous and its network's input left in NCHW. Rounds alternate the variants (plain,
channels-last, plain, ...); each round's figure is the median of `reps` steps; reported: the
median over rounds, and the ratio within each round. One torch thread.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import dqnlab
from dqnlab.algos.dqn import DQNLearner
from dqnlab.algos.replay import Batch
from dqnlab.nn.networks import PixelQNetwork, seeded_q_network


def plain_layout(net: PixelQNetwork) -> None:
    """Give `net` NCHW convolution weights and an NCHW input (the layout before the change)."""
    for p in net.conv.parameters():
        p.data = p.data.contiguous()

    def features(x: torch.Tensor) -> torch.Tensor:
        return PixelQNetwork.features(net, x).contiguous()

    net.features = features  # type: ignore[method-assign]


def learner(cfg, plain: bool) -> DQNLearner:
    net = seeded_q_network(cfg.network, 0, 2, cfg.seed, cfg.env.pixels)
    assert isinstance(net, PixelQNetwork)
    if plain:
        plain_layout(net)
    out = DQNLearner(net, cfg.dqn)
    if plain:
        for copy in (out.target, out.average):
            assert isinstance(copy, PixelQNetwork)
            plain_layout(copy)
    return out


def step_seconds(lrn: DQNLearner, batch: Batch, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        lrn.update(batch)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = dqnlab.build_config(preset="pixels")
    b = cfg.dqn.batch_size
    g = torch.Generator().manual_seed(0)
    shape = (b, *cfg.env.pixels.obs_shape())
    batch = Batch(
        obs=torch.randint(0, 256, shape, dtype=torch.uint8, generator=g),
        actions=torch.randint(0, 2, (b,), generator=g),
        rewards=torch.ones(b),
        next_obs=torch.randint(0, 256, shape, dtype=torch.uint8, generator=g),
        terminated=torch.zeros(b),
        discounts=torch.full((b,), cfg.dqn.gamma**cfg.dqn.n_step),
    )
    variants = {"plain NCHW": learner(cfg, plain=True), "channels-last": learner(cfg, plain=False)}
    plain, cl = (lrn.online for lrn in variants.values())
    assert not plain.features(batch.obs).is_contiguous(memory_format=torch.channels_last)
    assert cl.features(batch.obs).is_contiguous(memory_format=torch.channels_last)
    losses = [lrn.loss(batch).item() for lrn in variants.values()]  # the same network either way
    assert abs(losses[0] - losses[1]) <= 1e-5 * abs(losses[0]), losses
    for lrn in variants.values():  # warm-up: oneDNN's kernels are chosen on first use
        step_seconds(lrn, batch, 30)
    rounds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, lrn in variants.items():
            rounds[name].append(step_seconds(lrn, batch, args.reps))
    ratios = [p / c for p, c in zip(rounds["plain NCHW"], rounds["channels-last"], strict=True)]
    result = {
        "batch": list(shape),
        "reps": args.reps,
        "rounds": rounds,
        "median_ms": {name: 1e3 * statistics.median(v) for name, v in rounds.items()},
        "ratio_per_round": ratios,
    }
    for name, v in rounds.items():
        print(
            f"{name:14s} one gradient step: median {1e3 * statistics.median(v):.2f} ms (rounds: "
            + ", ".join(f"{1e3 * x:.2f}" for x in v)
            + ")"
        )
    print("plain / channels-last per round: " + ", ".join(f"{r:.2f}x" for r in ratios))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
