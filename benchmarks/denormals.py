"""Training with and without denormal floats flushed to zero (issue #16), side by side in one
process: the same `default` runs, seeds alternating between the two modes.

    python benchmarks/denormals.py [--seeds 0-4] [--preset default] [--total-steps N] [--json OUT.json]

dqnlab.train flushes denormals while it trains (``dqnlab.nn.optim.denormals_flushed``); the
"kept" mode replaces that with a block that leaves the CPU's mode alone (denormals computed).
For each seed and mode: the training seconds, the env steps to the stop and the evaluation mean
(the runs must be the same in both modes), and the median microseconds of an Adam step. One
torch thread, artifacts off.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

import dqnlab
from dqnlab.experiments.multiseed import parse_seeds
from dqnlab.nn import optim

train_module = importlib.import_module("dqnlab.train")  # the module (dqnlab.train is also the function)
MODES = ("kept", "flushed")


def run(preset: str, seed: int, mode: str, out: Path, total_steps: int | None) -> dict:
    steps: list[float] = []
    adam_step = optim.Adam.step

    def timed(self: optim.Adam) -> None:
        t0 = time.perf_counter()
        adam_step(self)
        steps.append(time.perf_counter() - t0)

    optim.Adam.step = timed  # type: ignore[method-assign]
    flush = train_module.denormals_flushed
    if mode == "kept":
        train_module.denormals_flushed = contextlib.nullcontext  # type: ignore[assignment]
    try:
        cfg = dqnlab.build_config(preset=preset, seed=seed, artifacts=False)
        summary = dqnlab.train(cfg, out / f"{mode}-{seed}", progress=False, total_steps=total_steps).summary
    finally:
        optim.Adam.step = adam_step  # type: ignore[method-assign]
        train_module.denormals_flushed = flush
    return {
        "seed": seed,
        "mode": mode,
        "train_seconds": summary["train_seconds"],
        "env_steps": summary["env_steps"],
        "eval_mean": summary["eval_mean"],
        "adam_step_us": 1e6 * statistics.median(steps) if steps else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=parse_seeds, default=parse_seeds("0-4"))
    ap.add_argument("--preset", default="default")
    ap.add_argument("--total-steps", type=int, default=None, help="the preset's budget unless given")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, seed in enumerate(args.seeds):
            for mode in MODES if i % 2 == 0 else MODES[::-1]:
                rows.append(run(args.preset, seed, mode, Path(tmp), args.total_steps))
                r = rows[-1]
                print(
                    f"seed {seed} {mode:8s} train {r['train_seconds']:.2f} s, {r['env_steps']} env steps, "
                    f"eval {r['eval_mean']:.2f}, Adam step {r['adam_step_us']:.1f} us",
                    flush=True,
                )
    by = {m: {r["seed"]: r for r in rows if r["mode"] == m} for m in MODES}
    same = all(
        (by["kept"][s]["env_steps"], by["kept"][s]["eval_mean"])
        == (by["flushed"][s]["env_steps"], by["flushed"][s]["eval_mean"])
        for s in args.seeds
    )
    ratios = [by["kept"][s]["train_seconds"] / by["flushed"][s]["train_seconds"] for s in args.seeds]
    summary = {
        "preset": args.preset,
        "seeds": args.seeds,
        "rows": rows,
        "same_runs": same,
        "train_s_median": {m: statistics.median(r["train_seconds"] for r in by[m].values()) for m in MODES},
        "adam_step_us_median": {m: statistics.median(r["adam_step_us"] for r in by[m].values()) for m in MODES},
        "kept_over_flushed_per_seed": ratios,
    }
    print(
        f"training, median: {summary['train_s_median']['kept']:.2f} s with denormals, "
        f"{summary['train_s_median']['flushed']:.2f} s flushed; per seed "
        + ", ".join(f"{x:.2f}x" for x in ratios)
        + f"; Adam step {summary['adam_step_us_median']['kept']:.0f} -> {summary['adam_step_us_median']['flushed']:.0f} us"
        + f"; same runs: {same}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
