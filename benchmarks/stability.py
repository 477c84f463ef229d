"""Does a preset hold what it learned? Train with early stopping off and evaluate all along.

    python benchmarks/stability.py --preset default --seeds 1000-1019 --json out.json \
        [--set dqn.lr_schedule=linear ...]

Each seed trains `--total-steps` (60k) with `eval.early_stop` off and an evaluation of 100
episodes every `--every` (2k) steps. Per seed it prints the first evaluation at >= 475 (the
"first solve"), the share of evaluations from there on that are >= 475, the lowest of them, and
the largest |Q| the divergence guard read (metrics.csv's q_max) with its bound: issue #16's
"no collapse" goal asks for a share >= 0.9 and no evaluation below 300 on every seed. Runs go to
a temporary folder, one at a time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from dqnlab import build_config, train
from dqnlab.runtime.rundir import read_metrics

SOLVED = 475.0


def run_one(preset: str, overrides: list[str], seed: int, total: int, every: int) -> dict:
    with tempfile.TemporaryDirectory() as root:
        cfg = build_config(
            preset,
            overrides=overrides,
            seed=seed,
            total_steps=total,
            artifacts=False,
            **{"eval.early_stop": False, "eval.every_steps": every, "eval.episodes": 100},
        )
        result = train(cfg, Path(root) / "run", progress=False)
        rows = [r for r in read_metrics(Path(root) / "run" / "metrics.csv") if r["kind"] == "eval"]
    evals = [(int(r["env_step"]), float(r["eval_mean"]), float(r.get("q_max") or "nan")) for r in rows]
    first = next((i for i, (_, mean, _) in enumerate(evals) if mean >= SOLVED), None)
    after = [mean for _, mean, _ in evals[first:]] if first is not None else []
    s = result.summary
    return {
        "preset": preset,
        "overrides": overrides,
        "seed": seed,
        "first_solve": evals[first][0] if first is not None else None,
        "share_after": float(np.mean([m >= SOLVED for m in after])) if after else None,
        "min_after": min(after) if after else None,
        "q_max": s.get("q_max"),
        "q_bound": s.get("q_bound"),
        "value_warning": s.get("value_warning"),
        "train_seconds": s["train_seconds"],
        "evals": evals,
    }


def parse_seeds(text: str) -> list[int]:
    """'0-3' -> [0, 1, 2, 3]; comma-separated parts are joined: '3,41-43' -> [3, 41, 42, 43]."""
    seeds = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        seeds += range(int(lo), int(hi or lo) + 1)
    return seeds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--seeds", default="0-3")
    ap.add_argument("--total-steps", type=int, default=60_000)
    ap.add_argument("--every", type=int, default=2_000)
    ap.add_argument("--json", help="write all rows here")
    args = ap.parse_args()
    rows = []
    for seed in parse_seeds(args.seeds):
        r = run_one(args.preset, args.overrides, seed, args.total_steps, args.every)
        rows.append(r)
        share = "-" if r["share_after"] is None else f"{r['share_after']:.2f}"
        print(
            f"seed {seed}: first solve {r['first_solve']}, share after {share}, lowest after {r['min_after']}, "
            f"max |Q| {r['q_max']} (bound {r['q_bound']}), {r['train_seconds']:.1f} s",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    held = [r for r in rows if r["share_after"] is not None and r["share_after"] >= 0.9 and r["min_after"] >= 300]
    print(f"{len(held)}/{len(rows)} seeds hold (share >= 0.9 after the first solve, none below 300)")


if __name__ == "__main__":
    main()
