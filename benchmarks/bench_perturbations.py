"""Policies under perturbation: trains presets on a few seeds (through `dqnlab compare`, so
finished runs are reused), then evaluates every delivered policy on CartPole-v1 under each
perturbation and over the 10,000-step horizon.

    python benchmarks/bench_perturbations.py --presets default robust lqr --seeds 0-4 --out bench-out/perturb

Writes OUT/perturbations.md (the table: median over seeds of the 100-episode mean return, and
the median survival) and OUT/perturbations.json (every number).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

import dqnlab
from dqnlab.experiments.compare import compare, resolve_entries
from dqnlab.experiments.multiseed import parse_seeds

# name -> keyword arguments of dqnlab.evaluate
PERTURBATIONS: dict[str, dict] = {
    "none (500 steps)": {},
    "obs noise σ=0.05": {"obs_noise": 0.05},
    "obs noise σ=0.1": {"obs_noise": 0.1},
    "action noise p=0.1": {"action_noise": 0.1},
    "force noise σ=0.2": {"force_noise": 0.2},
    "randomised physics": {"randomize": True},
    "10,000 steps": {"max_steps": 10_000},
    "10,000 steps + obs noise 0.05": {"max_steps": 10_000, "obs_noise": 0.05},
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["default", "robust", "lqr"])
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--workers", type=int)
    ap.add_argument("--out", default="bench-out/perturb")
    args = ap.parse_args(argv)
    out = Path(args.out)
    seeds = parse_seeds(args.seeds)
    configs = resolve_entries(args.presets, ["artifacts=false"])
    compare(
        configs,
        seeds,
        out / "runs",
        args.workers,
        on_result=lambda label, s: print(
            f"trained {label} seed {s.get('seed')}: {s.get('eval_mean')}", file=sys.stderr, flush=True
        ),
    )
    results: dict[str, dict] = {}
    for label, _ in configs:
        results[label] = {}
        for name, kwargs in PERTURBATIONS.items():
            means, survival = [], []
            for seed in seeds:
                policy = dqnlab.load_policy(out / "runs" / label / f"seed-{seed}")
                res = dqnlab.evaluate(policy, episodes=args.episodes, seed=1000 + seed, env_id="CartPole-v1", **kwargs)
                means.append(res.mean)
                survival.append(res.survival)
            results[label][name] = {
                "means": means,
                "survival": survival,
                "median_mean": float(np.median(means)),
                "median_survival": float(np.median(survival)),
            }
            print(
                f"{label:>10} | {name:<30} | median mean {np.median(means):8.1f} | "
                f"median survival {np.median(survival):.0%}",
                file=sys.stderr,
                flush=True,
            )
    (out / "perturbations.json").write_text(
        json.dumps({"seeds": seeds, "episodes": args.episodes, "results": results}, indent=1)
    )
    head = "| perturbation | " + " | ".join(label for label, _ in configs) + " |"
    lines = [head, "|---|" + "---|" * len(configs)]
    for name in PERTURBATIONS:
        cells = [
            f"{results[label][name]['median_mean']:.0f} ({results[label][name]['median_survival']:.0%})"
            for label, _ in configs
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"Median over seeds {args.seeds} of the mean return over {args.episodes} episodes "
        "(in brackets: the median share of episodes that survived to the step cap)."
    )
    (out / "perturbations.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
