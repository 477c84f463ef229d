"""The cost of one gradient step of an MLP DQN (issue #16): the fast path's activation gradients
by ATen's fused backward kernels (as dqnlab computes them) against the boolean masks they
replaced, side by side in one process.

    python benchmarks/mlp_update.py [--presets default acrobot] [--reps 400] [--rounds 7] [--json OUT.json]

For each preset, one DQNLearner built from its config takes ``update`` steps on a fixed batch
of random observations of its environment's size (CartPole-v1: 4 inputs, 2 actions; Acrobot-v1:
6 inputs, 3 actions), at the preset's batch size: the TD targets (two forward passes on
next_obs, Double DQN), the loss's forward and backward pass, gradient clipping, Adam, the
target sync and the policy average where the preset has one. The "mask" variant swaps in the
activation gradient as it was before (``g * (z > 0)``, a comparison, a conversion to float and
a product); the values are the same. Rounds alternate the variants (mask, kernel, mask, ...);
each round's figure is the median of `reps` steps; reported: the median over rounds and the
ratio within each round. One torch thread.
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch
from pixel_update import step_seconds  # benchmarks/pixel_update.py, next to this script

import dqnlab
from dqnlab.algos.dqn import DQNLearner
from dqnlab.algos.replay import Batch
from dqnlab.nn import fast_mlp
from dqnlab.nn.networks import seeded_q_network

SIZES = {"CartPole-v1": (4, 2), "Acrobot-v1": (6, 3)}  # (observation size, actions)
KERNEL = fast_mlp.activation_grad


def mask_act_grad(g: torch.Tensor, z: torch.Tensor, h: torch.Tensor, kind: str) -> torch.Tensor:
    """The activation gradient before this benchmark's change (relu networks only)."""
    assert kind == "relu"
    return g * (z > 0)


def measure(preset: str, reps: int, rounds: int) -> dict:
    cfg = dqnlab.build_config(preset=preset)
    obs_dim, n_actions = SIZES[cfg.env.id]
    b = cfg.dqn.batch_size
    g = torch.Generator().manual_seed(0)
    batch = Batch(
        obs=torch.randn(b, obs_dim, generator=g),
        actions=torch.randint(0, n_actions, (b,), generator=g),
        rewards=torch.ones(b),
        next_obs=torch.randn(b, obs_dim, generator=g),
        terminated=torch.zeros(b),
        discounts=torch.full((b,), cfg.dqn.gamma**cfg.dqn.n_step),
    )
    learners = {
        name: DQNLearner(seeded_q_network(cfg.network, obs_dim, n_actions, cfg.seed), cfg.dqn)
        for name in ("mask", "kernel")
    }
    variants = {"mask": mask_act_grad, "kernel": KERNEL}
    grads = {}
    for name, lrn in learners.items():  # the same gradients either way
        fast_mlp.activation_grad = variants[name]
        lrn.gradients(batch)
        grads[name] = [p.grad.clone() for p in lrn.online.parameters()]
    for a, k in zip(grads["mask"], grads["kernel"], strict=True):
        assert torch.equal(a, k)
    out: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for name, lrn in learners.items():  # warm-up
            fast_mlp.activation_grad = variants[name]
            step_seconds(lrn, batch, 50)
        for _ in range(rounds):
            for name, lrn in learners.items():
                fast_mlp.activation_grad = variants[name]
                out[name].append(step_seconds(lrn, batch, reps))
    finally:
        fast_mlp.activation_grad = KERNEL
    ratios = [m / k for m, k in zip(out["mask"], out["kernel"], strict=True)]
    return {
        "batch": b,
        "hidden": cfg.network.hidden,
        "rounds_s": out,
        "median_ms": {name: 1e3 * statistics.median(v) for name, v in out.items()},
        "ratio_per_round": ratios,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["default", "acrobot"])
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    result = {"reps": args.reps, "presets": {}}
    for preset in args.presets:
        r = measure(preset, args.reps, args.rounds)
        result["presets"][preset] = r
        ms = r["median_ms"]
        print(
            f"{preset} (batch {r['batch']}): one gradient step, median {ms['mask']:.3f} ms with masks, "
            f"{ms['kernel']:.3f} ms with the kernels; mask / kernel per round: "
            + ", ".join(f"{x:.2f}x" for x in r["ratio_per_round"])
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
