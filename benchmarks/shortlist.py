"""Does a second look at the best evaluations (eval.shortlist) deliver better policies?

    python benchmarks/shortlist.py --preset acrobot --seeds 0-7 --workers 2 --out OUT

Each seed trains once with a shortlist of `--keep` networks (its `eval.shortlist`), so that every
rule below chooses among the same networks of the same run. Every shortlisted network is then
scored on `--truth` episodes that neither training, the shortlist's second look, nor the other
rules saw: its "true" score. Rules compared, by the true score of the network each would deliver:

- `best_eval`: the best evaluation during training, as delivered without a shortlist;
- `recheck K/N`: the best of the K best evaluations, evaluated again on the same N fresh episodes
  (eval.shortlist K, eval.shortlist_episodes N): the first N of --recheck episodes, which are an
  N-episode evaluation of their own where episodes are seeded one by one (Acrobot, MountainCar,
  LunarLander) or N is a multiple of eval.max_envs;
- `oracle`: the best true score among the kept networks (no rule can do better with these).

Writes OUT/rows.json (per seed: every network's evaluation, recheck returns' means by prefix, true
score) and OUT/results.md (mean true score per rule, and per seed). Tune on seeds below 1000.
The networks are those TrainLoop.recheck_shortlist sees when training ends (the last network's
evaluation included).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

# This checkout's dqnlab, not an installed one (the pool's workers inherit sys.path).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TRUTH_SEED = 3_000_000  # truth episodes start at TRUTH_SEED + 10_000 * seed
RECHECK_SEED = 4_000_000  # the rules' second looks start at RECHECK_SEED + 10_000 * seed
KS = (2, 3, 5, 10)
NS = (100, 200, 500)


def parse_seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


def one_seed(preset: str, seed: int, keep: int, recheck: int, truth: int, overrides: list[str]) -> dict:
    import torch

    import dqnlab
    from dqnlab.runtime.evaluation import Evaluator
    from dqnlab.runtime.loop import TrainLoop

    seen: list = []
    original = TrainLoop.recheck_shortlist

    def keep_a_copy(loop: TrainLoop, prog) -> None:  # the candidates as the run's own recheck gets them
        seen.extend(loop.shortlist)
        original(loop, prog)

    torch.set_num_threads(1)
    # The run's own second look is not used here (the rules below make theirs): one episode each.
    shortlist = [f"eval.shortlist={keep}", "eval.shortlist_episodes=1"] if keep > 1 else []
    cfg = dqnlab.build_config(preset, seed=seed, overrides=["artifacts=false", *shortlist, *overrides])
    TrainLoop.recheck_shortlist = keep_a_copy  # type: ignore[method-assign]  # this worker process only
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = Path(tmp) / "run"
            t0 = time.perf_counter()
            res = dqnlab.train(cfg, run_dir, progress=False)
            seconds = time.perf_counter() - t0
            policy = dqnlab.load_policy(run_dir)
    finally:
        TrainLoop.recheck_shortlist = original  # type: ignore[method-assign]
    evaluator = Evaluator(cfg.eval_env(), cfg.eval.max_envs)
    nets = []
    for cand in seen:
        policy.net.load_state_dict(cand.state)
        second = evaluator.run(policy.act_batch, recheck, RECHECK_SEED + 10_000 * seed).returns
        true = evaluator.run(policy.act_batch, truth, TRUTH_SEED + 10_000 * seed).mean
        nets.append(
            {
                "step": cand.step,
                "eval_mean": cand.mean,
                "recheck": {n: float(second[:n].mean()) for n in NS if n <= recheck},
                "true": true,
            }
        )
    evaluator.close()
    delivered = next(r for r in res.summary["shortlist"] if r["delivered"]) if res.summary["shortlist"] else None
    return {
        "seed": seed,
        "preset": preset,
        "train_seconds": res.summary["train_seconds"],
        "seconds": seconds,
        "env_steps": res.summary["env_steps"],
        "delivered_step": None if delivered is None else delivered["env_step"],
        "networks": nets,
        "dqnlab_path": str(Path(dqnlab.__file__).parent),  # which checkout was measured
    }


def rules(row: dict) -> dict[str, float]:
    """The true score of the network each rule delivers on this seed (a run that kept fewer than
    K networks, one stopped early, has no `recheck K/N`). Ranked by mean return: not for tasks
    judged by success rate (eval.success_threshold)."""
    nets = row["networks"]  # best evaluation first (the shortlist's order)
    out = {"best_eval": nets[0]["true"]}
    for k in KS:
        if k > len(nets):
            continue
        for n in nets[0]["recheck"]:
            chosen = max(range(k), key=lambda i: nets[i]["recheck"][n])
            out[f"recheck {k}/{n}"] = nets[chosen]["true"]
    out["oracle"] = max(n["true"] for n in nets)
    return out


def table(rows: list[dict], goal: float | None) -> str:
    per = {r["seed"]: rules(r) for r in sorted(rows, key=lambda r: r["seed"]) if r["networks"]}
    names = list(dict.fromkeys(name for rs in per.values() for name in rs))
    head = "| rule | mean true score | " + (f"seeds ≥ {goal:g} | " if goal is not None else "") + "per seed |"
    lines = [head, "| --- | --- | " + ("--- | " if goal is not None else "") + "--- |"]
    for name in names:
        vals = [per[s][name] for s in per if name in per[s]]
        at_goal = f"{sum(v >= goal for v in vals)}/{len(vals)} | " if goal is not None else ""
        lines.append(f"| {name} | {np.mean(vals):.2f} | {at_goal}{', '.join(f'{v:.1f}' for v in vals)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", required=True)
    ap.add_argument("--seeds", default="0-7")
    ap.add_argument("--keep", type=int, default=10, help="networks kept (eval.shortlist of the runs)")
    ap.add_argument("--recheck", type=int, default=500, help="episodes of the second looks")
    ap.add_argument("--truth", type=int, default=1000, help="episodes of each network's true score")
    ap.add_argument("--goal", type=float, default=None, help="count the seeds whose true score reaches this")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = parse_seeds(args.seeds)
    rows: list[dict] = []
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [
            pool.submit(one_seed, args.preset, s, args.keep, args.recheck, args.truth, args.overrides) for s in seeds
        ]
        for fut in futures:
            rows.append(fut.result())
            print(f"seed {rows[-1]['seed']}: {rules(rows[-1])}", flush=True)
            (out / "rows.json").write_text(json.dumps(rows, indent=1))
    command = "python benchmarks/shortlist.py " + " ".join(sys.argv[1:] if argv is None else argv)
    (out / "results.md").write_text(f"`{command}`\n\n{table(rows, args.goal)}")
    print(table(rows, args.goal))
    return 0


if __name__ == "__main__":
    sys.exit(main())
