"""Tune a preset (`default` unless --preset): run candidate overrides on several seeds, side by side.

    python benchmarks/tune_default.py --seeds 0-7 --workers 2 \
        --candidate "dqn.lr=1e-3 dqn.loss=mse" --candidate "dqn.lr=2e-3"

Each candidate is a space-separated list of --set overrides on the preset. Prints, per
candidate: seeds solved (final 100-episode evaluation >= 475), median steps and seconds to the
delivered policy, and the worst final mean. Runs go to a temporary folder.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import statistics
import tempfile


def run_one(args: tuple[str, str, int, int, str]) -> dict:
    preset, overrides, seed, total, root = args
    from dqnlab import build_config, train

    cfg = build_config(
        preset, overrides=overrides.split() if overrides else [], seed=seed, total_steps=total, artifacts=False
    )
    res = train(cfg, f"{root}/{abs(hash(overrides))}-s{seed}", progress=False)
    s = res.summary
    return {
        "candidate": overrides,
        "seed": seed,
        "solved": s["solved"],
        "eval_mean": s["eval_mean"],
        "steps": s["steps_to_threshold"] or s["env_steps"],
        "best_step": s["best_eval_step"],
        "seconds": s["train_seconds"],
        "early": s["steps_to_threshold"] is not None,
    }


def parse_seeds(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="default")
    ap.add_argument("--candidate", action="append", default=[])
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--total-steps", type=int, default=50_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", help="write all rows here")
    args = ap.parse_args()
    candidates = args.candidate or [""]
    seeds = parse_seeds(args.seeds)
    with tempfile.TemporaryDirectory() as root:
        jobs = [(args.preset, c, s, args.total_steps, root) for s in seeds for c in candidates]  # seeds alternate
        with cf.ProcessPoolExecutor(args.workers) as pool:
            rows = list(pool.map(run_one, jobs))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    for c in candidates:
        rs = [r for r in rows if r["candidate"] == c]
        solved = sum(r["solved"] for r in rs)
        print(
            f"{solved}/{len(rs)} solved  early {sum(r['early'] for r in rs)}  "
            f"med steps {statistics.median(r['steps'] for r in rs):>7.0f}  "
            f"med s {statistics.median(r['seconds'] for r in rs):5.2f}  "
            f"worst {min(r['eval_mean'] for r in rs):6.1f}  | {c or '(default)'}"
        )


if __name__ == "__main__":
    main()
