"""dqnlab's `default` preset against Stable-Baselines3 DQN (RL Zoo config) on CartPole-v1.

    pip install -e ".[bench]"          # stable-baselines3 and matplotlib
    python benchmarks/bench_cartpole.py --seeds 0-19 --out bench-out

One run, seeds alternating between the systems, each run in its own fresh process on one torch
thread, one run at a time. Both delivered policies are evaluated with the same protocol: 100
greedy episodes on seeds neither system trained on (the same start states for both). Writes
bench-out/rows.json (per seed), results.json (aggregates), results.md (the table for
BENCHMARKS.md) and seconds.png. `--stability` adds runs with early stopping off, measuring how
many evaluations stay >= 475 over the 50k steps after the first solve.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
EVAL_SEED = 1_000_000  # evaluation episodes start from EVAL_SEED + 1000 * seed, unseen by both systems
THRESHOLD = 475.0

# rl-baselines3-zoo hyperparams/dqn.yml, CartPole-v1
SB3_ZOO = dict(
    learning_rate=2.3e-3,
    batch_size=64,
    buffer_size=100_000,
    learning_starts=1000,
    gamma=0.99,
    target_update_interval=10,
    train_freq=256,
    gradient_steps=128,
    exploration_fraction=0.16,
    exploration_final_eps=0.04,
    policy_kwargs=dict(net_arch=[256, 256]),
)
SB3_STEPS = 50_000


def eval_seed(seed: int) -> int:
    return EVAL_SEED + 1000 * seed


# -- workers: each runs in a fresh interpreter (python bench_cartpole.py --worker ...) -----------


def worker_dqnlab(seed: int, run_dir: str, overrides: list[str]) -> dict:
    t0 = time.perf_counter()
    import torch

    import dqnlab

    t_import = time.perf_counter() - t0
    torch.set_num_threads(1)
    cfg = dqnlab.build_config(seed=seed, overrides=overrides)
    res = dqnlab.train(cfg, run_dir, progress=False)
    ev = dqnlab.evaluate(res.policy, episodes=100, seed=eval_seed(seed))
    s = res.summary
    return {
        "system": "dqnlab",
        "seed": seed,
        "train_seconds": s["train_seconds"],
        "import_seconds": t_import,
        "env_steps": s["env_steps"],
        "eval_mean": ev.mean,
        "eval_min": float(ev.returns.min()),
        "solved": ev.mean >= THRESHOLD,
        "run_dir": run_dir,
    }


def worker_sb3(seed: int) -> dict:
    t0 = time.perf_counter()
    import torch
    from stable_baselines3 import DQN

    import dqnlab
    from dqnlab.config import EnvConfig
    from dqnlab.runtime.evaluation import Evaluator

    t_import = time.perf_counter() - t0
    torch.set_num_threads(1)
    import gymnasium as gym

    t1 = time.perf_counter()
    model = DQN("MlpPolicy", gym.make("CartPole-v1"), seed=seed, verbose=0, device="cpu", **SB3_ZOO)
    model.learn(total_timesteps=SB3_STEPS)
    train_seconds = time.perf_counter() - t1

    def act(obs: np.ndarray) -> np.ndarray:
        return model.predict(obs, deterministic=True)[0]

    ev = Evaluator(EnvConfig(id="CartPole-v1"), 100).run(act, 100, eval_seed(seed))
    return {
        "system": "sb3",
        "seed": seed,
        "train_seconds": train_seconds,
        "import_seconds": t_import,
        "env_steps": SB3_STEPS,
        "eval_mean": float(ev.returns.mean()),
        "eval_min": float(ev.returns.min()),
        "solved": float(ev.returns.mean()) >= THRESHOLD,
        "versions": {"sb3": __import__("stable_baselines3").__version__, "dqnlab": dqnlab.__version__},
    }


def worker_stability(seed: int, run_dir: str, overrides: list[str], after: int) -> dict:
    import torch

    import dqnlab
    from dqnlab.runtime.rundir import read_metrics

    torch.set_num_threads(1)
    cfg = dqnlab.build_config(seed=seed, overrides=[*overrides, "eval.early_stop=false"], total_steps=70_000)
    dqnlab.train(cfg, run_dir, progress=False)
    evals = [
        (int(r["env_step"]), float(r["eval_mean"]))
        for r in read_metrics(Path(run_dir) / "metrics.csv")
        if r["kind"] == "eval"
    ]
    first = next((step for step, mean in evals if mean >= THRESHOLD), None)
    if first is None:
        return {"seed": seed, "first_solve": None, "share_after": None, "evals_after": 0}
    window = [mean for step, mean in evals if first < step <= first + after]
    share = float(np.mean([m >= THRESHOLD for m in window])) if window else None
    return {"seed": seed, "first_solve": first, "share_after": share, "evals_after": len(window)}


def spawn(kind: str, *args) -> dict:
    """Run one worker in a fresh process; return its JSON result plus the process wall time."""
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--worker", kind, json.dumps(args)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{out.stderr[-3000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["process_seconds"] = wall
    return row


# -- aggregation and report ---------------------------------------------------------------------


def aggregate(rows: list[dict]) -> dict:
    from dqnlab.experiments.stats import summarize

    out = {}
    for system in sorted({r["system"] for r in rows}):
        rs = [r for r in rows if r["system"] == system]
        out[system] = {
            "runs": len(rs),
            "solved": sum(r["solved"] for r in rs),
            "train_seconds": summarize([r["train_seconds"] for r in rs]),
            "process_seconds": summarize([r["process_seconds"] for r in rs]),
            "import_seconds": summarize([r["import_seconds"] for r in rs]),
            "env_steps": summarize([r["env_steps"] for r in rs]),
            "eval_mean": summarize([r["eval_mean"] for r in rs]),
        }
    if {"dqnlab", "sb3"} <= out.keys():
        # per seed, side by side: the ratio of SB3's to dqnlab's training time
        by = {(r["system"], r["seed"]): r for r in rows}
        ratios = [
            by["sb3", s]["train_seconds"] / by["dqnlab", s]["train_seconds"]
            for s in sorted({r["seed"] for r in rows})
            if ("sb3", s) in by and ("dqnlab", s) in by
        ]
        out["speedup_train_seconds"] = summarize(ratios)
        out["speedup_of_medians"] = out["sb3"]["train_seconds"]["median"] / out["dqnlab"]["train_seconds"]["median"]
    return out


def markdown(agg: dict, rows: list[dict], stability: list[dict] | None, command: str, overrides: list[str] = ()) -> str:
    def ci(s, fmt="{:.1f}"):
        return f"{fmt.format(s['iqm'])} [{fmt.format(s['iqm_ci_low'])}, {fmt.format(s['iqm_ci_high'])}]"

    lines = [
        f"Command: `{command}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"one torch thread, one run at a time, seeds alternating.",
        "",
        "| system | solved (mean ≥ 475 over 100 fresh episodes) | eval mean: median | eval mean: IQM [95% CI] "
        "| env steps: median | train s: median | train s: IQM [95% CI] | process s: median | import s: median |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    dqnlab_label = "dqnlab default" + (f" with {' '.join(overrides)}" if overrides else "")
    for system in ("dqnlab", "sb3"):
        if system not in agg:
            continue
        a = agg[system]
        lines.append(
            f"| {dqnlab_label if system == 'dqnlab' else 'SB3 DQN, RL Zoo'} | {a['solved']}/{a['runs']} "
            f"| {a['eval_mean']['median']:.1f} | {ci(a['eval_mean'])} | {a['env_steps']['median']:.0f} "
            f"| {a['train_seconds']['median']:.2f} | {ci(a['train_seconds'], '{:.2f}')} "
            f"| {a['process_seconds']['median']:.2f} | {a['import_seconds']['median']:.2f} |"
        )
    if "speedup_train_seconds" in agg:
        s = agg["speedup_train_seconds"]
        lines += [
            "",
            f"Speed-up in training time (SB3 / dqnlab, per seed): median {s['median']:.1f}×, "
            f"IQM {ci(s)}×, min {s['min']:.1f}×; ratio of medians {agg['speedup_of_medians']:.1f}×.",
        ]
    lines += [
        "",
        "Per seed (eval mean over 100 fresh episodes / training seconds / env steps):",
        "",
        "| seed | dqnlab | SB3 |",
        "| --- | --- | --- |",
    ]
    by = {(r["system"], r["seed"]): r for r in rows}
    for seed in sorted({r["seed"] for r in rows}):
        cells = []
        for system in ("dqnlab", "sb3"):
            r = by.get((system, seed))
            cells.append("-" if r is None else f"{r['eval_mean']:.1f} / {r['train_seconds']:.2f} s / {r['env_steps']}")
        lines.append(f"| {seed} | {cells[0]} | {cells[1]} |")
    if stability:
        solved = [s for s in stability if s["share_after"] is not None]
        shares = [s["share_after"] for s in solved]
        lines += [
            "",
            "Stability (early stopping off, 70k steps): share of evaluations (every 1000 steps, 100 "
            "episodes) at ≥ 475 in the 50k steps after the first solve: "
            + (
                f"median {np.median(shares):.2f}, mean {np.mean(shares):.2f}, "
                f"min {np.min(shares):.2f} over {len(solved)} seeds that solved "
                f"(of {len(stability)})."
                if shares
                else "no seed solved."
            ),
        ]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    systems = [s for s in ("dqnlab", "sb3") if any(r["system"] == s for r in rows)]
    for ax, key, label in (
        (axes[0], "train_seconds", "training seconds (log)"),
        (axes[1], "eval_mean", "eval mean, 100 fresh episodes"),
    ):
        for i, system in enumerate(systems):
            ys = [r[key] for r in rows if r["system"] == system]
            xs = np.full(len(ys), i) + np.random.default_rng(0).uniform(-0.15, 0.15, len(ys))
            ax.scatter(xs, ys, alpha=0.7)
            ax.hlines(np.median(ys), i - 0.3, i + 0.3, color="k")
        ax.set_xticks(range(len(systems)), ["dqnlab default" if s == "dqnlab" else "SB3 (RL Zoo)" for s in systems])
        ax.set_ylabel(label)
        if key == "train_seconds":
            ax.set_yscale("log")
        else:
            ax.axhline(THRESHOLD, ls="--", color="gray")
    fig.suptitle("CartPole-v1: dqnlab vs Stable-Baselines3 DQN, one seed per point")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0-19")
    ap.add_argument("--out", default="bench-out")
    ap.add_argument("--no-sb3", action="store_true", help="only dqnlab")
    ap.add_argument("--stability", action="store_true", help="also measure stability after the first solve")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="override dqnlab's config")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("args", nargs="?", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        fn = {"dqnlab": worker_dqnlab, "sb3": worker_sb3, "stability": worker_stability}[a.worker]
        print(json.dumps(fn(*json.loads(a.args))))
        return

    from dqnlab.experiments.multiseed import parse_seeds

    seeds = parse_seeds(a.seeds)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows, stability = [], []
    for seed in seeds:
        rows.append(spawn("dqnlab", seed, str(out / f"runs-{stamp}" / f"dqnlab-s{seed}"), a.overrides))
        print(f"seed {seed} dqnlab: {rows[-1]['eval_mean']:.1f} in {rows[-1]['train_seconds']:.2f} s", flush=True)
        if not a.no_sb3:
            rows.append(spawn("sb3", seed))
            print(f"seed {seed} sb3:    {rows[-1]['eval_mean']:.1f} in {rows[-1]['train_seconds']:.2f} s", flush=True)
    if a.stability:
        for seed in seeds:
            stability.append(
                spawn("stability", seed, str(out / f"runs-{stamp}" / f"stability-s{seed}"), a.overrides, 50_000)
            )
            print(f"seed {seed} stability: {stability[-1]}", flush=True)
    agg = aggregate(rows)
    command = "python benchmarks/bench_cartpole.py " + " ".join(sys.argv[1:])
    (out / "rows.json").write_text(json.dumps({"rows": rows, "stability": stability}, indent=1))
    (out / "results.json").write_text(json.dumps(agg, indent=1))
    md = markdown(agg, rows, stability or None, command, a.overrides)
    (out / "results.md").write_text(md)
    plot(rows, out / "seconds.png")
    print(md)


if __name__ == "__main__":
    main()
